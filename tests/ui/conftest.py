"""The page's test product: Airflow with the plugin, the sandboxes and a product DB (``ui_stack.py``),
started once per session; ``company_factory`` makes fresh companies so tests never share one."""

from __future__ import annotations

import os
import sys
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest
from ui_stack import CIPHER, start_stack, stop_stack

from mamo_revenue.db import repository as repo
from mamo_revenue.db.company_secrets import set_mamo_api_key
from mamo_revenue.db.session import session_scope

# The page's package lives in plugins/ (Airflow puts that folder on sys.path; so do the tests).
PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
if str(PLUGINS) not in sys.path:
    sys.path.append(str(PLUGINS))

#: The PostgreSQL server of the suite (tests/conftest.py): the page's product DB is a database of its own there.
PG_ADMIN_URL = os.environ.get("MAMO_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    started = start_stack(tmp_path_factory.mktemp("ui"), PG_ADMIN_URL)
    yield started
    stop_stack(started, PG_ADMIN_URL)


@pytest.fixture(scope="session")
def company_factory(stack):
    """``company_factory(status=..., first_period=...)``: a company of its own (a fresh id and Mamo
    business with its own key), straight into the product DB, not connected; returns (company id, Mamo
    API key, business tag)."""

    def make(*, status: str = "paused", first_period: date | None = None) -> tuple[str, str, str]:
        company_id = "c" + uuid.uuid4().hex[:10]
        key, tag = stack.new_business()
        with session_scope(stack.engine) as session:
            repo.upsert_company(session, company_id, name=f"Company {company_id}", timezone="Asia/Dubai",
                                frequency="daily", base_currency="AED", status=status,
                                first_period=first_period or date.today() - timedelta(days=10),
                                mamo_conn_id="mamo_default", ledger_platform="xero", ledger_conn_id="xero_default")
            set_mamo_api_key(session, company_id, key, CIPHER, business_name="Test Trading LLC")
        return company_id, key, tag

    return make
