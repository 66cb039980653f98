"""Adding a company, connecting its ledger (OAuth state, PKCE, choice of organisation, refusals),
mapping its accounts and changing its settings, through the page's own endpoints."""

from __future__ import annotations

import html
import uuid
from decimal import Decimal

import pytest
import requests
from helpers import (
    add_company,
    company,
    connect,
    connection,
    days_ago,
    map_accounts,
    page_of,
    query_of,
    registry_entry,
    start_connect,
)
from ui_stack import CIPHER, answer_consent, hidden_fields

from mamo_revenue.db import repository as repo
from mamo_revenue.db.company_secrets import mamo_api_key
from mamo_revenue.db.session import session_scope
from mamo_sandboxes import xero_data, zoho_data


def text(answer) -> str:
    return html.unescape(answer.text)


def new_id() -> str:
    return "t" + uuid.uuid4().hex[:10]


# --- add a company ------------------------------------------------------------------------------------


def test_adding_a_company_checks_its_mamo_key_and_keeps_it_encrypted(stack):
    key, _ = stack.new_business("Beta Trading LLC")
    session, cid = stack.browser_session("admin"), new_id()
    answer = add_company(stack, session, name="Beta Trading LLC", key=key, first_period=days_ago(2), company_id=cid)
    assert answer.status_code == 303
    assert answer.headers["Location"] == f"/revenue-accounting/companies/{cid}?notice=added"
    row = company(stack, cid)
    assert row.name == "Beta Trading LLC" and row.status == "paused" and row.mamo_business_name == "Beta Trading LLC"
    assert row.mamo_api_key_enc and key not in row.mamo_api_key_enc
    assert mamo_api_key(row, CIPHER) == key
    assert registry_entry(stack, cid)["status"] == "paused"  # the DAG exists, scheduling nothing yet
    page = session.get(page_of(stack, f"/companies/{cid}?notice=added"), timeout=30).text
    assert "Company added" in page and "Connect a ledger" in page and key not in page
    with session_scope(stack.engine) as db:
        assert [a.action for a in repo.list_activity(db, cid)] == ["added"]


def test_a_key_mamo_refuses_adds_no_company(stack):
    session, cid = stack.browser_session("admin"), new_id()
    answer = add_company(stack, session, name="Nope LLC", key="sk-not-a-key", first_period=days_ago(2), company_id=cid)
    assert answer.status_code == 422
    assert "Mamo refused this API key" in text(answer) and "sk-not-a-key" not in text(answer)
    assert company(stack, cid) is None


def test_the_company_id_is_made_from_the_name(stack):
    key, _ = stack.new_business()
    name = f"Gamma {uuid.uuid4().hex[:6]} Trading L.L.C."
    answer = add_company(stack, stack.browser_session("admin"), name=name, key=key, first_period=days_ago(2))
    assert answer.status_code == 303
    cid = answer.headers["Location"].split("/companies/")[1].split("?")[0]
    assert cid.startswith("gamma_") and cid.endswith("_trading_l_l_c")


def test_every_problem_of_the_form_is_listed_at_once(stack, company_factory):
    existing = company_factory()[0]
    answer = add_company(stack, stack.browser_session("admin"), name="", key="", first_period="yesterday",
                         company_id=existing, timezone="Mars/Olympus", base_currency="dirham",
                         vat_policy="custom", vat_rate="abc", frequency="hourly")
    assert answer.status_code == 422
    for problem in ("Give the company a name", "not a time zone", "three-letter code", "daily or weekly",
                    "VAT rate is a percentage", "first period is a date", "Mamo API key"):
        assert problem in text(answer)


# --- connect a ledger ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("platform", "organisation"), [
    ("xero", xero_data.SECOND_TENANT_NAME),
    ("zoho_books", zoho_data.DEMO_ORGANIZATION_NAME),
])
def test_connecting_a_ledger_with_a_choice_of_organisation(stack, company_factory, platform, organisation):
    cid = company_factory()[0]
    session = stack.browser_session("admin")
    started = start_connect(stack, session, cid, platform)
    assert started.status_code == 303
    consent = query_of(started.headers["Location"])
    assert len(consent["state"]) >= 32
    if platform == "xero":
        assert consent["code_challenge_method"] == "S256" and len(consent["code_challenge"]) == 43  # PKCE
    else:
        assert consent["access_type"] == "offline" and consent["prompt"] == "consent"
    callback = answer_consent(started.headers["Location"])
    choice = session.get(callback, allow_redirects=False, timeout=60)
    assert choice.status_code == 200 and "Which" in text(choice)  # the consent covers two organisations
    fields = hidden_fields(choice.text)
    organisation_id = {xero_data.SECOND_TENANT_NAME: xero_data.SECOND_TENANT_ID,
                       zoho_data.DEMO_ORGANIZATION_NAME: zoho_data.DEMO_ORGANIZATION_ID}[organisation]
    done = session.post(page_of(stack, "/oauth/choose"), data={"choice": fields["choice"], "organisation": organisation_id},
                        allow_redirects=False, timeout=60)
    assert done.status_code == 303
    assert done.headers["Location"] == f"/plugin/revenue-accounting/revenue-accounting/companies/{cid}?notice=connected"
    row = connection(stack, cid)
    assert (row.platform, row.tenant_id, row.tenant_name, row.status) == (platform, organisation_id, organisation,
                                                                          "connected")
    assert company(stack, cid).ledger_platform == platform
    assert registry_entry(stack, cid)["ledger_platform"] == platform
    # the choice is single-use too
    again = session.post(page_of(stack, "/oauth/choose"), data={"choice": fields["choice"], "organisation": organisation_id},
                         allow_redirects=False, timeout=60)
    assert again.status_code == 400


def test_a_replayed_callback_is_refused(stack, company_factory):
    cid = company_factory()[0]
    session = stack.browser_session("admin")
    started = start_connect(stack, session, cid, "xero")
    callback = answer_consent(started.headers["Location"], tenants=[xero_data.DEMO_TENANT_ID])
    first = session.get(callback, allow_redirects=False, timeout=60)
    assert first.status_code == 303 and connection(stack, cid).tenant_id == xero_data.DEMO_TENANT_ID
    replay = session.get(callback, allow_redirects=False, timeout=60)
    assert replay.status_code == 400 and "not valid any more" in text(replay)


def test_a_forged_state_is_refused_and_changes_nothing(stack, company_factory):
    cid = company_factory()[0]
    session = stack.browser_session("admin")
    start_connect(stack, session, cid, "xero")  # a real consent is pending; the forged callback is not it
    forged = session.get(page_of(stack, "/oauth/callback?code=abc&state=" + "x" * 32), allow_redirects=False,
                         timeout=30)
    assert forged.status_code == 400
    missing = session.get(page_of(stack, "/oauth/callback?code=abc"), allow_redirects=False, timeout=30)
    assert missing.status_code == 400
    assert connection(stack, cid) is None


def test_a_callback_is_refused_to_a_user_who_did_not_start_the_consent(stack, company_factory):
    cid = company_factory()[0]
    started = start_connect(stack, stack.browser_session("admin"), cid, "xero")
    callback = answer_consent(started.headers["Location"], tenants=[xero_data.DEMO_TENANT_ID])
    stolen = stack.browser_session("editor").get(callback, allow_redirects=False, timeout=60)
    assert stolen.status_code == 400
    assert connection(stack, cid) is None


@pytest.mark.parametrize("platform", ["xero", "zoho_books"])
def test_a_cancelled_consent_is_shown_with_guidance(stack, company_factory, platform):
    cid = company_factory()[0]
    session = stack.browser_session("admin")
    started = start_connect(stack, session, cid, platform)
    callback = answer_consent(started.headers["Location"], decision="cancel" if platform == "xero" else "deny")
    assert query_of(callback)["error"] == "access_denied"
    answer = session.get(callback, allow_redirects=False, timeout=60)
    assert answer.status_code == 400
    assert "is not connected" in text(answer) and "choose Allow" in text(answer)
    assert connection(stack, cid) is None
    with session_scope(stack.engine) as db:
        assert repo.list_activity(db, cid)[0].action == "connect_failed"


def test_the_callback_code_never_reaches_the_access_log(stack, company_factory):
    cid = company_factory()[0]
    session = stack.browser_session("admin")
    started = start_connect(stack, session, cid, "xero")
    callback = answer_consent(started.headers["Location"], tenants=[xero_data.DEMO_TENANT_ID])
    params = query_of(callback)
    assert session.get(callback, allow_redirects=False, timeout=60).status_code == 303
    log = stack.log("api-server")
    assert "/revenue-accounting/oauth/callback" in log
    assert params["code"] not in log and params["state"] not in log


# --- mapping --------------------------------------------------------------------------------------------


@pytest.fixture
def connected(stack, company_factory):
    cid = company_factory()[0]
    connect(stack, stack.browser_session("admin"), cid, "xero", xero_data.DEMO_TENANT_NAME)
    return cid


def test_the_mapping_dropdowns_come_live_from_the_ledgers_chart(stack, connected):
    page = stack.browser_session("admin").get(page_of(stack, f"/companies/{connected}/mapping"), timeout=60).text
    tenant = xero_data.DEMO_TENANT_ID
    sales = page.split('name="map_sales"')[1].split("</select>")[0]
    suggested = sales.split('label="Suggested"')[1].split("</optgroup>")[0]
    assert xero_data.account_id(tenant, "4000") in suggested and "4000 · Sales" in suggested
    assert xero_data.account_id(tenant, "6110") not in suggested  # an expense is no sales account
    archived = xero_data.account_id(tenant, "1216")
    assert f'value="{archived}"  disabled' in page.split('name="map_clearing"')[1].split("</select>")[0]
    accounts = stack.api_session("admin").get(page_of(stack, f"/api/companies/{connected}/accounts"), timeout=60).json()
    first_fit = accounts["categories"]["fees"][0]
    assert first_fit["fitting"] and first_fit["active"]


def test_saving_a_mapping_validates_it_and_starts_syncing(stack, connected):
    session = stack.browser_session("admin")
    tenant = xero_data.DEMO_TENANT_ID
    missing = session.post(page_of(stack, f"/companies/{connected}/mapping"), data={"map_sales": ""}, timeout=60)
    assert missing.status_code == 422 and "Choose an account for Sales" in text(missing)
    archived = map_accounts(stack, session, connected, clearing=xero_data.account_id(tenant, "1216"))
    assert archived.status_code == 422 and "inactive in the ledger" in text(archived)
    unknown = map_accounts(stack, session, connected, fees="not-an-account")
    assert unknown.status_code == 422 and "not in the ledger's chart" in text(unknown)
    same = map_accounts(stack, session, connected, sales=xero_data.account_id(tenant, "1215"))
    assert same.status_code == 422 and "clearing account cannot also be" in text(same)
    assert company(stack, connected).status == "paused"

    saved = map_accounts(stack, session, connected)
    assert saved.status_code == 303 and saved.headers["Location"].endswith("notice=mapped")
    with session_scope(stack.engine) as db:
        mapping = repo.get_mappings(db, connected)
    assert {c: m.code for c, m in mapping.items()} == {"clearing": "1215", "sales": "4000", "refunds": "4010",
                                                        "fees": "6110", "vat_payable": "2200"}
    assert company(stack, connected).status == "active"  # connected and mapped: syncing starts
    assert registry_entry(stack, connected)["status"] == "active"
    stack.wait_for_dag(f"mamo_sync_{connected}", unpaused=True)

    # editable later: the VAT recoverable line gets an account of its own
    again = map_accounts(stack, session, connected, vat_recoverable=xero_data.account_id(tenant, "2200"))
    assert again.status_code == 303
    with session_scope(stack.engine) as db:
        assert repo.get_mappings(db, connected)["vat_recoverable"].code == "2200"


# --- settings and the webhook secret ----------------------------------------------------------------------


def test_settings_are_validated_and_the_dag_follows(stack, company_factory):
    cid = company_factory()[0]
    session = stack.browser_session("admin")
    form = {"name": "Delta LLC", "timezone": "Asia/Riyadh", "frequency": "weekly", "base_currency": "SAR",
            "vat_policy": "custom", "vat_rate": "15", "first_period": days_ago(30), "status": "paused"}
    bad = session.post(page_of(stack, f"/companies/{cid}/settings"), data=form | {"timezone": "Nowhere"}, timeout=30)
    assert bad.status_code == 422 and "not a time zone" in text(bad)
    saved = session.post(page_of(stack, f"/companies/{cid}/settings"), data=form, allow_redirects=False, timeout=30)
    assert saved.status_code == 303
    row = company(stack, cid)
    assert (row.name, row.timezone, row.frequency, row.base_currency, row.sales_vat_rate) == (
        "Delta LLC", "Asia/Riyadh", "weekly", "SAR", Decimal("0.15"))
    entry = registry_entry(stack, cid)
    assert (entry["timezone"], entry["frequency"], entry["status"]) == ("Asia/Riyadh", "weekly", "paused")
    page = session.get(page_of(stack, f"/companies/{cid}/settings"), timeout=30).text
    assert 'value="Asia/Riyadh"' in page and 'value="15"' in page


def test_a_new_mamo_key_is_checked_before_it_replaces_the_old_one(stack, company_factory):
    cid, key, _ = company_factory()
    form = {"name": "Epsilon LLC", "timezone": "Asia/Dubai", "frequency": "daily", "base_currency": "AED",
            "vat_policy": "none", "first_period": days_ago(5), "status": "paused", "mamo_api_key": "sk-wrong"}
    answer = stack.browser_session("admin").post(page_of(stack, f"/companies/{cid}/settings"), data=form, timeout=60)
    assert answer.status_code == 422 and "Mamo refused" in text(answer) and "sk-wrong" not in text(answer)
    assert mamo_api_key(company(stack, cid), CIPHER) == key


def test_the_webhook_secret_is_stored_encrypted_and_never_shown(stack, company_factory):
    cid = company_factory()[0]
    session = stack.browser_session("admin")
    short = session.post(page_of(stack, f"/companies/{cid}/webhook-secret"), data={"secret": "short"}, timeout=30)
    assert short.status_code == 422
    secret = "whsec-" + uuid.uuid4().hex
    saved = session.post(page_of(stack, f"/companies/{cid}/webhook-secret"), data={"secret": secret},
                         allow_redirects=False, timeout=30)
    assert saved.status_code == 303
    row = company(stack, cid)
    assert row.webhook_secret_enc and secret not in row.webhook_secret_enc
    page = session.get(page_of(stack, f"/companies/{cid}"), timeout=30).text
    assert secret not in page and "secret set" in page
    assert f"{stack.url}/mamo-webhooks/{cid}" in page


def test_the_overview_and_its_json_list_every_company(stack, company_factory):
    cid = company_factory()[0]
    page = stack.browser_session("viewer").get(page_of(stack, "/"), timeout=30).text
    assert f"/revenue-accounting/companies/{cid}" in page
    listed = stack.api_session("viewer").get(page_of(stack, "/api/companies"), timeout=30).json()
    entry = next(c for c in listed["companies"] if c["id"] == cid)
    assert entry["connection"] == "Not connected" and entry["status"] == "paused"
    assert requests.get(page_of(stack, "/api/companies"), timeout=30).status_code == 401


def test_no_key_token_or_secret_reaches_a_page_the_json_or_the_log(stack, company_factory):
    cid, key, _ = company_factory()
    session = stack.browser_session("admin")
    connect(stack, session, cid, "xero", xero_data.DEMO_TENANT_NAME)
    map_accounts(stack, session, cid)
    secret = "whsec-" + uuid.uuid4().hex
    session.post(page_of(stack, f"/companies/{cid}/webhook-secret"), data={"secret": secret}, timeout=30)
    with session_scope(stack.engine) as db:
        tokens = repo.read_tokens(repo.get_ledger_connection(db, cid), CIPHER)
    secrets = {"mamo key": key, "access token": tokens.access_token, "refresh token": tokens.refresh_token,
               "webhook secret": secret}
    answers = {path: session.get(page_of(stack, path), timeout=60).text for path in (
        "/", f"/companies/{cid}", f"/companies/{cid}/settings", f"/companies/{cid}/mapping",
        f"/companies/{cid}/connect", f"/companies/{cid}/confirm/disconnect", "/api/companies",
        f"/api/companies/{cid}/history", f"/api/companies/{cid}/accounts")}
    log = stack.log("api-server") + stack.log("scheduler") + stack.log("dag-processor")
    for what, value in secrets.items():
        assert value and len(value) > 10
        for path, body in answers.items():
            assert value not in body, f"the {what} is in {path}"
        assert value not in log, f"the {what} is in Airflow's log"


def test_connecting_another_organisation_asks_for_the_mapping_again(stack, connected):
    session = stack.browser_session("admin")
    assert map_accounts(stack, session, connected).status_code == 303
    assert company(stack, connected).status == "active"
    connect(stack, session, connected, "xero", xero_data.SECOND_TENANT_NAME)
    assert connection(stack, connected).tenant_id == xero_data.SECOND_TENANT_ID
    with session_scope(stack.engine) as db:
        assert repo.get_mappings(db, connected) == {}
    assert company(stack, connected).status == "paused"
    assert map_accounts(stack, session, connected, "xero", xero_data.SECOND_TENANT_NAME).status_code == 303
    assert company(stack, connected).status == "active"
    # reconnecting the same organisation keeps the mapping
    connect(stack, session, connected, "xero", xero_data.SECOND_TENANT_NAME)
    with session_scope(stack.engine) as db:
        assert len(repo.get_mappings(db, connected)) == 5
