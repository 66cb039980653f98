"""Shared fixtures: a real PostgreSQL database per test session, and sandbox servers on real sockets."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

#: The server the suite talks to (trust auth on this machine and in CI).
PG_ADMIN_URL = os.environ.get("MAMO_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def pg_url():
    """A fresh, empty PostgreSQL database for this session, dropped afterwards."""
    name = f"mamo_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def pytest_configure(config):
    """Every test process gets its own throw-away AIRFLOW_HOME unless one is given."""
    if "AIRFLOW_HOME" not in os.environ or os.environ["AIRFLOW_HOME"].endswith("var/airflow"):
        import tempfile

        home = tempfile.mkdtemp(prefix="mamo-airflow-test-")
        os.environ["AIRFLOW_HOME"] = home
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    # Airflow reads its DAG folder once, at import: the project's own.
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).resolve().parents[1] / "dags")
    os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")


#: The product around a test (PostgreSQL product DB, sandboxes, a connected company): tests/worldkit.py.
pytest_plugins = ["worldkit"]
