"""The registry file: what the DAG file reads, written only from a reachable product DB."""

from __future__ import annotations

import json
from datetime import date

import pytest
import sqlalchemy as sa
from worldkit import empty_product_db

from mamo_revenue.db import repository as repo
from mamo_revenue.db.session import session_scope
from mamo_revenue.registry import export_registry


@pytest.fixture
def engine(product_db):
    empty_product_db(product_db)
    with session_scope(product_db) as session:
        repo.upsert_company(session, "zeta", name="Zeta LLC", first_period=date(2026, 11, 1), frequency="weekly")
        repo.upsert_company(session, "alpha", name="Alpha LLC", first_period=date(2026, 11, 2), status="paused")
    return product_db


def test_export_writes_every_company_sorted_with_what_the_factory_needs(engine, tmp_path):
    path = tmp_path / "registry.json"
    export_registry(engine, path)
    companies = json.loads(path.read_text())["companies"]
    assert [c["id"] for c in companies] == ["alpha", "zeta"]
    assert companies[0] == {"id": "alpha", "name": "Alpha LLC", "timezone": "Asia/Dubai", "frequency": "daily",
                            "first_period": "2026-11-02", "status": "paused", "ledger_platform": "xero"}
    assert not any("token" in key or "conn" in key for c in companies for key in c)


def test_an_unchanged_registry_is_not_rewritten(engine, tmp_path):
    path = tmp_path / "registry.json"
    export_registry(engine, path)
    before = path.stat().st_mtime_ns, path.read_text()
    export_registry(engine, path)
    assert (path.stat().st_mtime_ns, path.read_text()) == before


def test_a_product_db_that_is_down_leaves_the_last_good_registry(engine, tmp_path):
    path = tmp_path / "registry.json"
    export_registry(engine, path)
    good = path.read_text()
    dead = sa.create_engine("postgresql+psycopg2://nobody@127.0.0.1:1/nothing", connect_args={"connect_timeout": 2})
    with pytest.raises(sa.exc.OperationalError):
        export_registry(dead, path)
    assert path.read_text() == good
    assert [p.name for p in tmp_path.iterdir()] == ["registry.json"]  # no half-written temporary left
