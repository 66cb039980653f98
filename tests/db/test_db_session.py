"""Engines, connections and migrations of the product DB."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from mamo_revenue.db.models import Base, Company
from mamo_revenue.db.session import (
    VERSION_TABLE,
    alembic_config,
    current_revision,
    engine_for_url,
    head_revision,
    reader,
    session_scope,
    upgrade,
    url_from_connection,
)

TABLES = {
    "companies",
    "ledger_connections",
    "gl_mappings",
    "charge_snapshots",
    "revenue_events",
    "sync_records",
    "oauth_states",
    "mamo_webhook_events",
    "company_activity",
}


def test_upgrade_from_empty_reaches_head_and_is_repeatable(empty_db_url):
    assert current_revision(empty_db_url) is None

    assert upgrade(empty_db_url) == head_revision() == "0004"
    assert upgrade(empty_db_url) == "0004"  # a second run is a no-op

    tables = set(sa.inspect(engine_for_url(empty_db_url)).get_table_names())
    assert tables == TABLES | {VERSION_TABLE}


def test_models_match_the_migrations(db_url):
    """Autogenerate finds nothing to do: models.py and versions/ describe the same schema."""
    with engine_for_url(db_url).connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "version_table": VERSION_TABLE,
                "include_object": lambda obj, name, type_, *_: (
                    not (type_ == "table" and name == VERSION_TABLE)
                ),
            },
        )
        assert compare_metadata(context, Base.metadata) == []


def test_downgrade_to_base_removes_every_table(db_url):
    engine = engine_for_url(db_url)
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    assert set(sa.inspect(engine).get_table_names()) <= {VERSION_TABLE}
    assert current_revision(engine) is None
    assert upgrade(engine) == "0004"


@pytest.mark.parametrize(
    ("conn", "expected"),
    [
        (
            SimpleNamespace(
                conn_id="db",
                conn_type="postgres",
                host="db.internal",
                port=5433,
                login="mamo",
                password="p@ss/word",
                schema="revenue",
                extra_dejson={"sslmode": "require", "token_encryption_secret": "x"},
            ),
            "postgresql+psycopg2://mamo:p%40ss%2Fword@db.internal:5433/revenue?sslmode=require",
        ),
        (
            SimpleNamespace(
                conn_id="db",
                conn_type="postgres",
                host="localhost",
                port=None,
                login=None,
                password=None,
                schema="revenue",
                extra_dejson={},
            ),
            "postgresql+psycopg2://localhost/revenue",
        ),
        (
            SimpleNamespace(
                conn_id="db",
                conn_type="sqlite",
                host="/var/lib/mamo/product.db",
                port=None,
                login=None,
                password=None,
                schema=None,
                extra_dejson={},
            ),
            "sqlite:////var/lib/mamo/product.db",
        ),
    ],
    ids=["postgres-full", "postgres-minimal", "sqlite-path"],
)
def test_url_from_connection(conn, expected):
    assert url_from_connection(conn) == expected
    assert sa.make_url(url_from_connection(conn)).render_as_string(hide_password=False) == expected


@pytest.mark.parametrize(
    "conn",
    [
        SimpleNamespace(conn_id="db", conn_type="sqlite", host="relative/product.db", extra_dejson={}),
        SimpleNamespace(conn_id="db", conn_type="sqlite", host="", extra_dejson={}),
        SimpleNamespace(conn_id="db", conn_type="mysql", host="h", extra_dejson={}),
    ],
    ids=["sqlite-relative", "sqlite-no-path", "unsupported-type"],
)
def test_url_from_connection_refuses(conn):
    with pytest.raises(ValueError, match="db"):
        url_from_connection(conn)


def test_engine_for_connection_reads_the_airflow_connection(monkeypatch, tmp_path):
    from mamo_revenue.db.session import engine_for_connection

    path = tmp_path / "via-conn.db"
    monkeypatch.setenv("AIRFLOW_CONN_MAMO_REVENUE_DB", f'{{"conn_type": "sqlite", "host": "{path}"}}')
    engine = engine_for_connection()
    assert engine.url.database == str(path)
    assert engine is engine_for_url(f"sqlite:///{path}")


def test_engine_is_cached_per_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    assert engine_for_url(url) is engine_for_url(url)
    assert engine_for_url(url) is not engine_for_url(f"sqlite:///{tmp_path / 'b.db'}")


def test_sqlite_in_memory_is_refused():
    with pytest.raises(ValueError, match="file"):
        engine_for_url("sqlite://")


def test_sqlite_connection_settings(tmp_path):
    with engine_for_url(f"sqlite:///{tmp_path / 'p.db'}").connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sqlite_write_transactions_are_serialised_but_readers_are_not(db_url):
    """BEGIN IMMEDIATE: a second writer waits for the first; a reader does not wait."""
    engine = engine_for_url(db_url)
    holding, waited = threading.Event(), {}

    def first_writer():
        with session_scope(engine) as session:
            session.execute(sa.select(Company)).all()  # takes the writer lock at BEGIN
            holding.set()
            time.sleep(0.4)

    thread = threading.Thread(target=first_writer)
    thread.start()
    holding.wait(5)
    started = time.monotonic()
    with reader(engine).connect() as conn:
        conn.execute(sa.select(Company)).all()
    waited["reader"] = time.monotonic() - started
    started = time.monotonic()
    with session_scope(engine) as session:
        session.execute(sa.select(Company)).all()
    waited["writer"] = time.monotonic() - started
    thread.join()

    assert waited["reader"] < 0.2
    assert waited["writer"] > 0.2
