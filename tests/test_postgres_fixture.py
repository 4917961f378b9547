"""The throwaway PostgreSQL server (tests/postgres.py) is real and shared across processes."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import optuna
import pytest
import sqlalchemy as sa

WORKER = """
import os, sys
import optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
study = optuna.load_study(study_name=sys.argv[2], storage=sys.argv[1])

def f(trial):
    trial.set_user_attr("pid", os.getpid())
    return trial.suggest_float("x", -1.0, 1.0) ** 2

study.optimize(f, n_trials=3)
"""


@pytest.mark.parametrize("scheme", ["postgresql", "postgresql+psycopg2", "postgresql+psycopg"])
def test_server_is_real(postgres_url: str, scheme: str) -> None:
    """Plain postgresql:// (SQLAlchemy's default driver) and both drivers, named explicitly."""
    assert postgres_url.startswith("postgresql://")
    engine = sa.create_engine(postgres_url.replace("postgresql://", f"{scheme}://", 1))
    table = f"t_{uuid.uuid4().hex[:8]}"
    try:
        with engine.begin() as conn:
            assert "PostgreSQL" in conn.execute(sa.text("SELECT version()")).scalar_one()
            conn.execute(sa.text(f"CREATE TABLE {table} (id serial PRIMARY KEY, name text)"))
            conn.execute(sa.text(f"INSERT INTO {table} (name) VALUES (:n)"), {"n": "svg"})
        with engine.connect() as conn:  # a fresh transaction sees the committed row
            assert conn.execute(sa.text(f"SELECT name FROM {table}")).scalars().all() == ["svg"]
            conn.execute(sa.text(f"DROP TABLE {table}"))
            conn.commit()
    finally:
        engine.dispose()


def test_optuna_study_shared_by_two_processes(postgres_url: str) -> None:
    name = f"shared-{uuid.uuid4().hex[:8]}"
    optuna.create_study(storage=postgres_url, study_name=name, direction="maximize")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, postgres_url, name],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    for w in workers:
        out, _ = w.communicate(timeout=120)
        assert w.returncode == 0, out

    study = optuna.load_study(study_name=name, storage=postgres_url)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 6
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert {t.user_attrs["pid"] for t in trials} == {w.pid for w in workers}
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
