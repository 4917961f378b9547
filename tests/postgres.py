"""A throwaway PostgreSQL server for tests (e.g. Optuna studies on a ``postgresql://`` URL).

Fixture ``postgres_url`` (session-scoped): starts one PostgreSQL server on 127.0.0.1 at a free
TCP port, in a fresh data folder under a temporary directory, with trust authentication, and
yields ``postgresql://postgres@127.0.0.1:<PORT>/svgbench`` (superuser ``postgres``, no
password; database ``svgbench``). After the session it stops the server
(``pg_ctl stop -m fast``) and removes the folder, also when tests fail. Tests share the one
database, so give Optuna studies / tables unique names.

Server binaries (``initdb``, ``pg_ctl``, ``createdb``) are looked for in, first match wins:

* ``$SVGBENCH_PG_BIN`` -- a folder holding them (if set, nothing else is tried);
* ``/usr/lib/postgresql/<version>/bin/`` -- Debian's ``postgresql`` package, newest version;
* ``PATH``.

PostgreSQL refuses to run as root: when the tests run as root, the server is run as the
unprivileged ``postgres`` system user (created by Debian's package) via ``runuser`` (or ``su``),
and the temporary folder is handed to that user. As any other user, it runs directly.

The fixture skips (``pytest.skip``) when the binaries are absent, or the DB-API driver that
SQLAlchemy (hence Optuna's RDBStorage) uses for a plain ``postgresql://`` URL is not installed:
psycopg2 (``psycopg2-binary``) for SQLAlchemy < 2.1, psycopg 3 (``psycopg[binary]``) from 2.1.
Start-up (initdb + start + createdb) takes a few seconds, once per session.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shlex
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

DEB_GLOB = "/usr/lib/postgresql/*/bin"
SERVER_USER = "postgres"  # OS user the server runs as when the tests run as root
DB_USER = "postgres"  # database superuser made by initdb
DB_NAME = "svgbench"
TOOLS = ("initdb", "pg_ctl", "createdb")
MISSING = "PostgreSQL server binaries not found (Debian package postgresql; .ci/run installs it)"


def _has_tools(folder: Path) -> bool:
    return all(os.access(folder / tool, os.X_OK) for tool in TOOLS)


def _version_key(folder: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", folder.parent.name)) or (0,)


def find_pg_bin() -> Path | None:
    """The folder holding initdb/pg_ctl/createdb, or None (see the module docstring)."""
    override = os.environ.get("SVGBENCH_PG_BIN")
    if override:
        folder = Path(override)
        return folder if _has_tools(folder) else None
    for folder in sorted((Path(p) for p in glob.glob(DEB_GLOB)), key=_version_key, reverse=True):
        if _has_tools(folder):
            return folder
    found = shutil.which("pg_ctl")
    if found and _has_tools(Path(found).parent):
        return Path(found).parent
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _world_traversable(path: Path) -> bool:
    """Whether another user can reach ``path`` (every folder on the way has o+x)."""
    for folder in [path, *path.parents]:
        if not os.stat(folder).st_mode & stat.S_IXOTH:
            return False
    return True


class _Runner:
    """Runs server commands as the right OS user, in a folder that user can read."""

    def __init__(self, cwd: Path, as_user: str | None) -> None:
        self.cwd = cwd
        self.as_user = as_user

    def __call__(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
        if self.as_user is not None:
            if shutil.which("runuser"):
                argv = ["runuser", "-u", self.as_user, "--", *argv]
            else:
                argv = ["su", self.as_user, "-s", "/bin/sh", "-c", shlex.join(argv)]
        proc = subprocess.run(argv, cwd=self.cwd, capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{shlex.join(argv)} failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc


def _log_tail(log: Path, n: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no server log)"


def _missing_driver() -> str | None:
    """Why SQLAlchemy cannot use a plain ``postgresql://`` URL here, or None if it can."""
    from sqlalchemy.dialects import registry  # noqa: PLC0415 - only the tests that start PostgreSQL load it

    dialect = registry.load("postgresql")  # psycopg2 for SQLAlchemy < 2.1, psycopg (3) after
    try:
        dialect.import_dbapi()
    except ImportError as e:
        return (
            f"PostgreSQL driver {dialect.driver!r} (SQLAlchemy's default for postgresql://) "
            f"not installed: {e} (pip install -e . installs psycopg[binary], psycopg2-binary)"
        )
    return None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL ``postgresql://postgres@127.0.0.1:<PORT>/svgbench`` of a throwaway server."""
    driver = _missing_driver()
    if driver:
        pytest.skip(driver)
    bin_dir = find_pg_bin()
    if bin_dir is None:
        where = os.environ.get("SVGBENCH_PG_BIN")
        pytest.skip(MISSING + (f" in SVGBENCH_PG_BIN={where}" if where else ""))

    as_user = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam(SERVER_USER)
        except KeyError:
            pytest.skip(f"running as root and no unprivileged {SERVER_USER!r} user to run PostgreSQL")
        as_user = SERVER_USER

    base = Path(tempfile.gettempdir())
    # The unix socket path (<tmp>/.s.PGSQL.<port>) must fit in ~107 bytes, and when the server
    # runs as another user it must be able to reach the folder.
    if len(str(base)) > 60 or (as_user and not _world_traversable(base)):
        base = Path("/tmp")
    tmp = Path(tempfile.mkdtemp(prefix="svgbench-pg-", dir=base))
    data, log = tmp / "data", tmp / "server.log"
    run = _Runner(tmp, as_user)
    started = False
    try:
        if as_user:
            os.chown(tmp, owner.pw_uid, owner.pw_gid)
        run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "--auth=trust",
                f"--username={DB_USER}",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ]
        )
        # Durability is worthless for a throwaway server; these settings make writes cheap.
        opts = (
            f"-c listen_addresses=127.0.0.1 -k {shlex.quote(str(tmp))} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        for attempt in range(3):  # the free port may be taken between probing and binding
            port = _free_port()
            proc = run(
                [
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-l",
                    str(log),
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    f"-p {port} {opts}",
                    "start",
                ],
                check=False,
            )
            if proc.returncode == 0:
                started = True
                break
            if attempt == 2 or "already in use" not in _log_tail(log):
                raise RuntimeError(
                    f"pg_ctl start failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}\n"
                    f"server log:\n{_log_tail(log)}"
                )
        run([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", DB_USER, DB_NAME])
        yield f"postgresql://{DB_USER}@127.0.0.1:{port}/{DB_NAME}"
    finally:
        if started:
            stop = run([str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-m", "fast", "stop"], check=False)
            if stop.returncode != 0:
                run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
