"""Engines, sessions and migrations for the product database.

Tasks reach the product DB through the Airflow connection ``mamo_revenue_db`` (``postgres`` or
``sqlite``), never through Airflow's metadata DB. One engine is cached per URL per process, and
forked workers (Celery prefork, LocalExecutor) drop the parent's pooled connections.

SQLite invariants (the embedded default): WAL journal, foreign keys on, a busy timeout, and
every transaction starts with ``BEGIN IMMEDIATE`` so that a read-then-write (claiming a period,
refreshing a token) is serialised against every other writer. Read-only work can opt into a
plain deferred ``BEGIN`` with ``read_only=True`` (or ``reader(engine)``), which never blocks
writers under WAL.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.orm import Session

DEFAULT_CONN_ID = "mamo_revenue_db"
#: Alembic's version table; named for the product so it can never clash with another tool's.
VERSION_TABLE = "mamo_revenue_alembic_version"
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_S = 30.0

#: Execution option read by the SQLite ``begin`` listener: "IMMEDIATE" (default) or "DEFERRED".
_SQLITE_BEGIN = "mamo_sqlite_begin"
#: libpq parameters passed through from a postgres connection's extra.
_LIBPQ_EXTRAS = (
    "sslmode",
    "sslcert",
    "sslkey",
    "sslrootcert",
    "sslcrl",
    "connect_timeout",
    "application_name",
    "options",
    "target_session_attrs",
    "keepalives",
    "keepalives_idle",
)

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


# --- engines ---------------------------------------------------------------------------------------


def engine_for_url(url: str | URL) -> Engine:
    """The process-wide engine for ``url`` (created once, then cached)."""
    key = url.render_as_string(hide_password=False) if isinstance(url, URL) else str(url)
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = _create_engine(key)
        return engine


def _create_engine(url: str) -> Engine:
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise ValueError(
                "the product DB on SQLite must be a file (sqlite:////absolute/path.db); an in-memory "
                "database is private to one connection and cannot serialise concurrent runs"
            )
        engine = sa.create_engine(
            parsed,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
            pool_pre_ping=False,
        )
        _install_sqlite_listeners(engine)
        return engine
    return sa.create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=10)


def _install_sqlite_listeners(engine: Engine) -> None:
    """SQLAlchemy's documented pysqlite recipe: the driver emits no BEGIN; we emit our own."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # pragma: no cover - exercised by every test
        dbapi_connection.isolation_level = None  # the driver stops issuing BEGIN/COMMIT by itself
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection):  # pragma: no cover - exercised by every test
        mode = conn.get_execution_options().get(_SQLITE_BEGIN, "IMMEDIATE")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if mode == "IMMEDIATE" else "BEGIN")


def reader(engine: Engine) -> Engine:
    """The same engine, whose transactions only read: a deferred ``BEGIN`` on SQLite."""
    return engine.execution_options(**{_SQLITE_BEGIN: "DEFERRED"})


def dispose_engines() -> None:
    """Close every cached engine (tests, and a clean shutdown)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def _after_fork_in_child() -> None:
    # The child must not reuse the parent's sockets/file handles; close=False leaves them to the parent.
    for engine in list(_engines.values()):
        engine.dispose(close=False)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# --- Airflow connections ---------------------------------------------------------------------------


def url_from_connection(conn: Any) -> str:
    """The SQLAlchemy URL of an Airflow Connection of type ``postgres`` or ``sqlite``.

    ``postgres``: host, port, login, password and schema (= the database name); libpq options such
    as ``sslmode`` may come from the extra. ``sqlite``: host is the absolute path of the file.
    """
    conn_type = (conn.conn_type or "").lower()
    if conn_type in ("postgres", "postgresql"):
        extra = _extra(conn)
        query = {k: str(extra[k]) for k in _LIBPQ_EXTRAS if extra.get(k) not in (None, "")}
        url = URL.create(
            "postgresql+psycopg2",
            username=conn.login or None,
            password=conn.password or None,
            host=conn.host or None,
            port=int(conn.port) if conn.port else None,
            database=conn.schema or None,
            query=query,
        )
        return url.render_as_string(hide_password=False)
    if conn_type == "sqlite":
        path = conn.host or ""
        if not path or not os.path.isabs(path):
            raise ValueError(
                f"connection {conn.conn_id!r}: a sqlite product DB needs host = the absolute path of the "
                f"database file, got {path!r}"
            )
        return f"sqlite:///{path}"
    raise ValueError(
        f"connection {getattr(conn, 'conn_id', '?')!r} has type {conn.conn_type!r}; the product DB must be "
        "'postgres' or 'sqlite'"
    )


def _extra(conn: Any) -> dict:
    extra = getattr(conn, "extra_dejson", None)
    return extra if isinstance(extra, dict) else {}


def engine_for_connection(conn_id: str = DEFAULT_CONN_ID) -> Engine:
    """The engine of the product DB named by an Airflow connection (looked up at call time)."""
    from airflow.sdk import BaseHook  # imported here: the package must import without Airflow's cost

    return engine_for_url(url_from_connection(BaseHook.get_connection(conn_id)))


# --- sessions --------------------------------------------------------------------------------------


@contextmanager
def session_scope(engine: Engine, *, read_only: bool = False) -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back if it raises.

    Objects stay readable after the block (``expire_on_commit=False``). ``read_only`` commits
    nothing and, on SQLite, starts a deferred transaction that never waits for writers.
    """
    session = Session(bind=reader(engine) if read_only else engine, expire_on_commit=False)
    try:
        yield session
        if not read_only:  # a read-only scope just closes: its transaction ends, objects stay loaded
            session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# --- migrations ------------------------------------------------------------------------------------


def alembic_config(url: str | None = None):
    """An Alembic ``Config`` built in code (no alembic.ini needed at runtime)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("version_table", VERSION_TABLE)
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _as_engine(engine_or_url: Engine | str | URL) -> Engine:
    return engine_or_url if isinstance(engine_or_url, Engine) else engine_for_url(engine_or_url)


def upgrade(engine_or_url: Engine | str | URL, revision: str = "head") -> str | None:
    """Migrate the product DB to ``revision`` (head by default); returns the revision reached.

    Runs in one transaction. On PostgreSQL an advisory lock makes concurrent callers (several
    workers starting at once) wait for each other; on SQLite ``BEGIN IMMEDIATE`` does the same.
    """
    from alembic import command

    engine = _as_engine(engine_or_url)
    config = alembic_config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('mamo_revenue.migrations'))"))
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
    return current_revision(engine)


def current_revision(engine_or_url: Engine | str | URL) -> str | None:
    """The revision the product DB is at, or None before the first migration."""
    from alembic.runtime.migration import MigrationContext

    with reader(_as_engine(engine_or_url)).connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def head_revision() -> str | None:
    """The newest revision shipped with this package."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def insert_for(bind: Session | Connection):
    """The dialect's ``insert`` (it has ``on_conflict_do_*``): PostgreSQL's or SQLite's, the two product DBs."""
    from sqlalchemy.dialects import postgresql, sqlite

    name = bind.get_bind().dialect.name if isinstance(bind, Session) else bind.dialect.name
    if name == "postgresql":
        return postgresql.insert
    if name == "sqlite":
        return sqlite.insert
    raise NotImplementedError(f"the product DB supports PostgreSQL and SQLite, not {name}")
