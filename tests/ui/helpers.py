"""Steps the page's tests share: add a company through the page, connect it through a sandbox's consent
page, map its accounts, wait for Airflow and the product DB."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

from ui_stack import Stack, answer_consent, hidden_fields

from mamo_revenue.db import repository as repo
from mamo_revenue.db.session import session_scope
from mamo_sandboxes import xero_data, zoho_data

DUBAI = ZoneInfo("Asia/Dubai")
XERO_TENANTS = {xero_data.DEMO_TENANT_NAME: xero_data.DEMO_TENANT_ID,
                xero_data.SECOND_TENANT_NAME: xero_data.SECOND_TENANT_ID}
ZOHO_ORGS = {zoho_data.DEMO_ORGANIZATION_NAME: zoho_data.DEMO_ORGANIZATION_ID,
             zoho_data.SECOND_ORGANIZATION_NAME: zoho_data.SECOND_ORGANIZATION_ID}
CODES = {"clearing": "1215", "sales": "4000", "refunds": "4010", "fees": "6110", "vat_payable": "2200"}


def new_xero_organisation(stack: Stack, name: str) -> str:
    """An organisation of its own in the Xero sandbox (the UAE chart), so a test can disconnect it
    without cutting off other tests' companies; returns its tenant id."""
    tenant_id = str(uuid.uuid4())
    stack.xero.add_organisation({"tenant_id": tenant_id, "name": name, "legal_name": name, "base_currency": "AED",
                                 "country_code": "AE", "timezone": "ARABIANSTANDARDTIME"})
    XERO_TENANTS[name] = tenant_id
    return tenant_id


def today() -> datetime:
    return datetime.now(DUBAI)


def days_ago(n: int) -> str:
    return (today().date() - timedelta(days=n)).isoformat()


def page_of(stack: Stack, path: str) -> str:
    return f"{stack.url}/revenue-accounting{path}"


def add_company(stack: Stack, session, *, name: str, key: str, first_period: str, company_id: str = "",
                **overrides):
    form = {"name": name, "company_id": company_id, "mamo_api_key": key, "timezone": "Asia/Dubai",
            "base_currency": "AED", "frequency": "daily", "vat_policy": "standard", "vat_rate": "",
            "first_period": first_period} | overrides
    return session.post(page_of(stack, "/companies"), data=form, allow_redirects=False, timeout=60)


def start_connect(stack: Stack, session, company_id: str, platform: str):
    return session.post(page_of(stack, f"/companies/{company_id}/connect"), data={"platform": platform},
                        allow_redirects=False, timeout=60)


def connect(stack: Stack, session, company_id: str, platform: str = "xero",
            organisation: str = xero_data.DEMO_TENANT_NAME) -> str:
    """The whole consent round trip as a browser makes it; returns where the page finally sent the browser."""
    started = start_connect(stack, session, company_id, platform)
    assert started.status_code == 303, started.text[:500]
    callback = answer_consent(started.headers["Location"])
    answer = session.get(callback, allow_redirects=False, timeout=60)
    if answer.status_code == 200 and 'name="choice"' in answer.text:  # several organisations: pick one
        ids = XERO_TENANTS if platform == "xero" else ZOHO_ORGS
        choice = hidden_fields(answer.text)["choice"]
        answer = session.post(page_of(stack, "/oauth/choose"),
                              data={"choice": choice, "organisation": ids[organisation]},
                              allow_redirects=False, timeout=60)
    assert answer.status_code == 303, answer.text[:800]
    return answer.headers["Location"]


def account_ids(platform: str, organisation: str) -> dict[str, str]:
    if platform == "xero":
        return {c: xero_data.account_id(XERO_TENANTS[organisation], code) for c, code in CODES.items()}
    return {c: zoho_data.account_id(ZOHO_ORGS[organisation], code) for c, code in CODES.items()}


def map_accounts(stack: Stack, session, company_id: str, platform: str = "xero",
                 organisation: str = xero_data.DEMO_TENANT_NAME, **overrides):
    form = {f"map_{c}": a for c, a in account_ids(platform, organisation).items()}
    form |= {f"map_{c}": a for c, a in overrides.items()}
    return session.post(page_of(stack, f"/companies/{company_id}/mapping"), data=form, allow_redirects=False,
                        timeout=60)


def company(stack: Stack, company_id: str):
    with session_scope(stack.engine) as session:
        row = repo.get_company(session, company_id)
        if row is not None:
            session.expunge(row)
        return row


def connection(stack: Stack, company_id: str):
    with session_scope(stack.engine) as session:
        row = repo.get_ledger_connection(session, company_id)
        if row is not None:
            session.expunge(row)
        return row


def registry_entry(stack: Stack, company_id: str) -> dict | None:
    entries = json.loads(stack.registry.read_text())["companies"]
    return next((e for e in entries if e["id"] == company_id), None)


def wait_for_record(stack: Stack, company_id: str, period_key: str, statuses=("posted",), timeout: float = 240):
    deadline = time.monotonic() + timeout
    while True:
        with session_scope(stack.engine) as session:
            record = repo.get_sync_record(session, company_id, period_key)
            if record is not None:
                session.expunge(record)
        if record is not None and record.status in statuses:
            return record
        if time.monotonic() > deadline:
            state = record.status if record else "no record"
            raise TimeoutError(f"{company_id} {period_key}: still {state} ({record and record.error_message})\n"
                               f"{stack.log('scheduler')[-3000:]}")
        time.sleep(1)


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def seed_charges(stack: Stack, tag: str, day: str, count: int = 12, seed: int = 7) -> None:
    start = datetime.fromisoformat(day)
    stack.mamo.generate(tag, seed=seed, count=count, start=start + timedelta(hours=1),
                        end=start + timedelta(hours=22), status_weights={"captured": 1},
                        currency_weights={"AED": 1})
