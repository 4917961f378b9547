"""Opening Optuna storages and studies from what a user types: a journal file path, or any
Optuna storage URL (sqlite:///..., postgresql://...), and checking a study is the one asked for."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
import sqlalchemy.exc
from optuna.storages.journal import JournalFileBackend

from harness.config import ConfigError, RunFailure

optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own lines say what happened
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

IDENTITY_ATTR = "svgbench"  # study user attribute holding the settings the study was made with
FOLDER_ATTR = "folder"  # study user attribute: the study folder of the last worker that opened it
CREATION_LOCK_KEY = 61_462_093  # PostgreSQL advisory lock held while creating tables or a study: any number, fixed


# what a storage raises when it cannot be reached or written (a journal file's OSError
# included); optuna.exceptions.UpdateFinishedTrialError is not one: it means another worker
# finished or failed the trial first
STORAGE_ERRORS = (optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError, OSError)


class StorageUnavailable(RunFailure):
    """The study's storage failed mid-search. Nothing is lost: the trial in flight stays
    RUNNING under this (then exited) process and a rerun takes it over from its checkpoints."""


@contextmanager
def storage_errors(storage: str) -> Iterator[None]:
    """Turn a storage failure into one line for the user (exit 1)."""
    try:
        yield
    except StorageUnavailable:
        raise
    except STORAGE_ERRORS as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise StorageUnavailable(
            f"the study's storage {describe(storage)} failed ({type(error).__name__}: {first}); "
            f"rerun the same command to resume"
        ) from error


def is_url(storage: str) -> bool:
    return "://" in storage


def describe(storage: str) -> str:
    """The storage as it may be printed and stored: a URL's password is masked."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", storage) if is_url(storage) else str(Path(storage).resolve())


def _check_scheme(url: str) -> None:
    """Refuse ``postgres://`` (libpq's and Heroku's spelling) naming the one SQLAlchemy knows;
    SQLAlchemy itself says only "Can't load plugin: sqlalchemy.dialects:postgres"."""
    scheme, _, rest = url.partition("://")
    dialect, plus, driver = scheme.partition("+")
    if dialect == "postgres":
        fixed = f"postgresql{plus}{driver}://{rest}"
        raise ConfigError(
            f"cannot open storage {describe(url)}: SQLAlchemy spells PostgreSQL URLs "
            f"postgresql://, not postgres://; write {describe(fixed)}"
        )


@contextmanager
def creation_lock(url: str) -> Iterator[None]:
    """Hold, on a PostgreSQL storage, a database-wide advisory lock while Optuna's tables or a
    study are created: workers that start at the same moment (a SLURM array, several shells)
    otherwise all run CREATE TABLE at once and all but one fail on PostgreSQL's catalog
    (UniqueViolation on pg_type_typname_nsp_index; optuna issue #1092). The lock is the
    server's, so it is released when this connection ends, however the process does. A journal
    file needs none (its writes are serialised), nor SQLite (one worker); MySQL is not covered."""
    if not is_url(url) or sqlalchemy.engine.make_url(url).get_backend_name() != "postgresql":
        yield
        return
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": CREATION_LOCK_KEY})
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": CREATION_LOCK_KEY})
    finally:
        engine.dispose()


def open_storage(storage: str) -> optuna.storages.BaseStorage:
    """A journal file at a path (created with its folder), or the RDB storage of a URL."""
    try:
        if is_url(storage):
            _check_scheme(storage)
            with creation_lock(storage):  # workers that start at once create Optuna's tables one at a time
                return optuna.storages.RDBStorage(storage)
        path = Path(storage)
        if path.is_dir():
            raise ConfigError(f"--storage {storage} is a folder; give a journal file path or a storage URL")
        journal_problem = not_a_journal(path)
        if journal_problem:
            raise ConfigError(
                f"cannot open storage {path.resolve()}: not an Optuna journal file ({journal_problem}); "
                f"it is left as it is: give another --storage, or move it away to start a new study"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = JournalFileBackend(str(path))
        return optuna.storages.JournalStorage(backend)
    except ConfigError:
        raise
    except ModuleNotFoundError as error:
        raise ConfigError(
            f"cannot open storage {describe(storage)}: the driver {error.name!r} is not installed"
        ) from error
    except Exception as error:  # SQLAlchemy and Optuna raise many types; one line for the user
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"cannot open storage {describe(storage)}: {first}") from error


def not_a_journal(path: Path) -> str | None:
    """Why the file at ``path`` is not a journal of Optuna operations, or None (also when it
    does not exist yet, or is empty). Every whole line must be a JSON object with an
    ``op_code``; a last line without its newline is one being written, as Optuna reads it.
    Checked before Optuna opens the file: Optuna skips a bad last line and appends after it,
    and only the next reader fails, with a traceback."""
    try:
        with open(path, "rb") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.endswith(b"\n"):
                    break
                try:
                    operation = json.loads(line)
                except ValueError:  # JSONDecodeError, or bytes that are not UTF-8
                    return f"line {number} is not JSON"
                if not isinstance(operation, dict) or "op_code" not in operation:
                    return f"line {number} is not an Optuna operation"
    except FileNotFoundError:
        return None
    return None


def study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    return sorted(s.study_name for s in storage.get_all_studies())


def load_study(name: str, storage_text: str) -> optuna.Study:
    """An existing study; a missing one is one line naming the studies that are there."""
    storage = open_storage(storage_text)
    if name not in study_names(storage):
        there = ", ".join(study_names(storage)) or "none"
        raise ConfigError(f"no study {name!r} in {describe(storage_text)}; studies there: {there}")
    return optuna.load_study(study_name=name, storage=storage)


def identity_differences(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """Keys whose values differ between the stored and the wanted identity, as 'key: a -> b'."""
    return [
        f"{key}: {stored.get(key)!r} -> {wanted.get(key)!r}"
        for key in sorted(set(stored) | set(wanted))
        if stored.get(key) != wanted.get(key)
    ]


def create_or_load_study(
    name: str,
    storage_text: str,
    identity: dict[str, Any],
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
    grows: tuple[str, ...] = (),
) -> optuna.Study:
    """Create the study, or load it if it exists with the same identity (settings and search
    space); one with another identity is refused, not mixed. Safe when many workers start at once.

    The identity's ``grows`` keys (integers, e.g. the number of trials) may be raised by a
    later command: the study is extended and its stored identity says the larger value. A
    smaller value than the stored one is refused: the study already holds more."""
    storage = open_storage(storage_text)
    with storage_errors(storage_text), creation_lock(storage_text):  # one worker at a time sets the identity
        if name in study_names(storage):  # load without writing: a refused command leaves the storage as it was
            study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
        else:  # load_if_exists: another worker may create it at the same moment
            study = optuna.create_study(
                storage=storage,
                study_name=name,
                direction="maximize",
                sampler=sampler,
                pruner=pruner,
                load_if_exists=True,
            )
        stored = study.user_attrs.get(IDENTITY_ATTR)
        if stored is None:
            study.set_user_attr(IDENTITY_ATTR, identity)
            return study
        fixed = {k: v for k, v in stored.items() if k not in grows}
        if fixed != {k: v for k, v in identity.items() if k not in grows}:
            differences = identity_differences(fixed, {k: v for k, v in identity.items() if k not in grows})
            raise ConfigError(
                f"study {name!r} in {describe(storage_text)} was made with other settings "
                f"({'; '.join(differences[:3])}); use another --study name or the same settings"
            )
        shrunk = [f"{k} {identity[k]} < {stored[k]}" for k in grows if identity.get(k, 0) < stored.get(k, 0)]
        if shrunk:
            raise ConfigError(
                f"study {name!r} in {describe(storage_text)} already holds more ({'; '.join(shrunk)}): "
                f"ask for at least {', '.join(f'{k}={stored[k]}' for k in grows)}, or use another --study name"
            )
        if any(identity.get(k) != stored.get(k) for k in grows):  # extended: later commands load the larger study
            study.set_user_attr(IDENTITY_ATTR, identity)
    return study
