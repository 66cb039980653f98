"""Product DB fixtures: every test runs on PostgreSQL and on SQLite (a file, as in production).

PostgreSQL: one migrated database of our own for the session (on the server of ``pg_url``),
emptied before each test. SQLite: a fresh migrated file per test.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from mamo_revenue.charges import Charge, ChargeStatus
from mamo_revenue.db import session as db_session
from mamo_revenue.db.companies import upsert_company
from mamo_revenue.db.models import Base
from mamo_revenue.db.session import engine_for_url, session_scope, upgrade

BACKENDS = ["postgresql", "sqlite"]


def _server_url(pg_url: str) -> sa.URL:
    return sa.make_url(pg_url)


@pytest.fixture(scope="session")
def pg_database_factory(pg_url):
    """Creates empty PostgreSQL databases on the test server; drops them at the end."""
    admin = sa.create_engine(_server_url(pg_url), isolation_level="AUTOCOMMIT")
    created: list[str] = []

    def create() -> str:
        name = f"mamo_db_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return _server_url(pg_url).set(database=name).render_as_string(hide_password=False)

    yield create
    db_session.dispose_engines()
    with admin.connect() as conn:
        for name in created:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def pg_migrated_url(pg_database_factory) -> str:
    url = pg_database_factory()
    upgrade(url)
    return url


@pytest.fixture(params=BACKENDS)
def empty_db_url(request, tmp_path) -> str:
    """A database with no tables at all."""
    if request.param == "postgresql":
        return request.getfixturevalue("pg_database_factory")()
    return f"sqlite:///{tmp_path / 'product.db'}"


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    """A migrated, empty product DB on each backend."""
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_migrated_url")
        tables = ", ".join(t.name for t in reversed(Base.metadata.sorted_tables))
        with engine_for_url(url).begin() as conn:
            conn.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        yield url
    else:
        url = f"sqlite:///{tmp_path / 'product.db'}"
        upgrade(url)
        yield url
        engine_for_url(url).dispose()


@pytest.fixture
def engine(db_url):
    return engine_for_url(db_url)


@pytest.fixture
def company(engine) -> str:
    """A company ``acme`` with default settings."""
    with session_scope(engine) as session:
        upsert_company(session, "acme", name="Acme Trading LLC")
    return "acme"


T0 = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)


def make_charge(
    charge_id: str,
    *,
    status: ChargeStatus = ChargeStatus.CAPTURED,
    created: datetime = datetime(2026, 11, 20, 9, 15),
    amount: int = 10_500,
    refund: int = 0,
    currency: str = "AED",
    fee: int | None = 405,
    fee_vat: int | None = 20,
    settlement: int | None = 10_075,
    problems: tuple[tuple[str, str], ...] = (),
    raw: dict | None = None,
) -> Charge:
    return Charge(
        id=charge_id,
        status=status,
        created_local=created,
        currency=currency,
        amount_minor=amount,
        refund_minor=refund,
        settlement_currency="AED" if settlement is not None else None,
        settlement_minor=settlement,
        settlement_date=None,
        fee_currency="AED" if fee is not None else None,
        fee_minor=fee,
        fee_vat_minor=fee_vat,
        problems=problems,
        raw=raw,
    )


def many_charges(n: int, start: datetime = datetime(2026, 11, 1)) -> list[Charge]:
    return [
        make_charge(f"ch_{i:07d}", created=start + timedelta(seconds=7 * i), amount=10_000 + i)
        for i in range(n)
    ]


@pytest.fixture
def charge():
    """``charge("c1", amount=..., ...)`` builds a parsed Mamo charge."""
    return make_charge


@pytest.fixture
def charges():
    """``charges(n)`` builds n captured charges, 7 seconds apart from 2026-11-01 00:00 local."""
    return many_charges
