"""A whole product around one test (a pytest plugin, loaded by tests/conftest.py): a PostgreSQL product
DB, the Mamo and Xero sandboxes on real sockets, Airflow connections as env vars, and a company
connected through the sandbox consent."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from mamo_revenue.db import repository as repo
from mamo_revenue.db.session import dispose_engines, engine_for_url, session_scope, upgrade
from mamo_sandboxes.mamo import MamoSandbox
from mamo_sandboxes.mamo import create_app as mamo_app
from mamo_sandboxes.serving import BackgroundServer
from mamo_sandboxes.xero import XeroSandbox
from mamo_sandboxes.xero import create_app as xero_app

GOLDEN = Path(__file__).resolve().parent / "engine" / "golden" / "worked_example"
MAMO_KEY = "sk-test-acme"
MAPPING = {"clearing": "1215", "sales": "4000", "refunds": "4010", "fees": "6110", "vat_payable": "2200"}


def golden_charges(day: int) -> list[dict]:
    return json.loads((GOLDEN / f"charges_day{day}.json").read_text())["data"]


@dataclass
class World:
    engine: object
    mamo: MamoSandbox
    mamo_url: str
    xero: XeroSandbox
    xero_url: str

    def add_charges(self, charges: list[dict]) -> None:
        requests.post(f"{self.mamo_url}/_sandbox/businesses/acme/charges", json={"charges": charges},
                      timeout=10).raise_for_status()

    def patch_charge(self, charge_id: str, fields: dict) -> None:
        requests.patch(f"{self.mamo_url}/_sandbox/businesses/acme/charges/{charge_id}", json=fields,
                       timeout=10).raise_for_status()

    def journals(self, tenant: str = "a3f1c6de-5b2e-4d8a-9c71-2f0e8b4d6a10") -> list[dict]:
        answer = requests.get(f"{self.xero_url}/_sandbox/organisations/{tenant}/journals", timeout=10)
        answer.raise_for_status()
        return answer.json()["journals"]

    def sync_record(self, company_id: str, period_key: str):
        with session_scope(self.engine) as session:
            record = repo.get_sync_record(session, company_id, period_key)
            session.expunge(record)
            return record




def empty_product_db(engine) -> None:
    """Delete every row of every product table, children before parents (whatever tables a migration adds)."""
    from mamo_revenue.db.models import Base

    with session_scope(engine) as session:
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(table.delete())


@pytest.fixture(scope="session")
def product_db(pg_url):
    engine = engine_for_url(pg_url)
    upgrade(engine)
    return engine


@pytest.fixture
def world(product_db, pg_url, monkeypatch):
    mamo_state, xero_state = MamoSandbox(), XeroSandbox()
    mamo_state.add_business(MAMO_KEY, "Acme Trading LLC", business_tag="acme")
    servers = [BackgroundServer(mamo_app(mamo_state)).start(), BackgroundServer(xero_app(xero_state)).start()]
    mamo_url, xero_url = servers[0].url, servers[1].url
    db = urlsplit(pg_url)
    connections = {
        "MAMO_REVENUE_DB": {"conn_type": "postgres", "host": db.hostname, "port": db.port or 5432,
                            "login": db.username, "schema": db.path.lstrip("/"),
                            "extra": {"token_encryption_secret": "test-only-secret"}},
        "MAMO_DEFAULT": {"conn_type": "mamo", "host": f"{mamo_url}/manage_api/v1", "password": MAMO_KEY},
        "XERO_DEFAULT": {"conn_type": "xero", "host": f"{xero_url}/api.xro/2.0", "login": "mamo-sandbox-client",
                         "password": "mamo-sandbox-secret",
                         "extra": {"redirect_uri": "http://127.0.0.1:8080/revenue-accounting/oauth/callback",
                                   "backoff": 0.01}},
    }
    for name, value in connections.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{name}", json.dumps(value))
    empty_product_db(product_db)  # every test starts from an empty product DB
    yield World(product_db, mamo_state, mamo_url, xero_state, xero_url)
    for server in servers:
        server.stop()
    dispose_engines()


@pytest.fixture
def acme(world):
    """Company acme: daily, Asia/Dubai, AED, 5 % VAT, from 2026-11-20, connected to the Xero sandbox."""
    from mamo_revenue.connect import connect_through_sandbox_consent, map_by_codes

    with session_scope(world.engine) as session:
        repo.upsert_company(session, "acme", name="Acme Trading LLC", timezone="Asia/Dubai", frequency="daily",
                            base_currency="AED", first_period=date(2026, 11, 20), mamo_conn_id="mamo_default",
                            ledger_platform="xero", ledger_conn_id="xero_default")
    connect_through_sandbox_consent(world.engine, "acme")
    map_by_codes(world.engine, "acme", MAPPING)
    return "acme"
