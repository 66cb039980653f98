"""Acting on periods from the page — sync now, re-sync, backfill — and disconnecting: each runs through
Airflow's REST API as the user, and the real scheduler runs the company's DAG against the sandboxes."""

from __future__ import annotations

import html
from datetime import date

import requests
from helpers import (
    company,
    connect,
    connection,
    days_ago,
    map_accounts,
    new_xero_organisation,
    page_of,
    query_of,
    registry_entry,
    seed_charges,
    wait_for_record,
)

from mamo_revenue.db import repository as repo
from mamo_revenue.db.session import session_scope
from mamo_sandboxes import xero_data, zoho_data


def ready_company(stack, company_factory, *, first_days_ago: int = 1, charges_days_ago: int = 1,
                  platform: str = "xero"):
    """A company connected to the sandbox ledger's demo organisation and mapped (so active)."""
    cid, _, tag = company_factory(first_period=date.fromisoformat(days_ago(first_days_ago)))
    seed_charges(stack, tag, days_ago(charges_days_ago))
    session = stack.browser_session("admin")
    organisation = xero_data.DEMO_TENANT_NAME if platform == "xero" else zoho_data.DEMO_ORGANIZATION_NAME
    connect(stack, session, cid, platform, organisation)
    assert map_accounts(stack, session, cid, platform, organisation).status_code == 303
    stack.wait_for_dag(f"mamo_sync_{cid}", unpaused=True)
    return cid


def journals(stack, reference: str) -> list[dict]:
    answer = requests.get(f"{stack.xero_url}/_sandbox/organisations/{xero_data.DEMO_TENANT_ID}/journals", timeout=10)
    return [j for j in answer.json()["journals"] if j["Narration"].startswith(reference + " ")]


def test_sync_now_then_re_sync_a_period(stack, company_factory):
    cid = ready_company(stack, company_factory)
    period = days_ago(1)
    key = period.replace("-", "")
    session = stack.browser_session("admin")

    confirm = session.get(page_of(stack, f"/companies/{cid}/confirm/sync?period={period}"), timeout=30)
    assert confirm.status_code == 200 and f"Yes, sync {period}" in confirm.text
    answer = session.post(page_of(stack, f"/companies/{cid}/sync"), data={"period": period}, allow_redirects=False,
                          timeout=60)
    assert answer.status_code == 303, answer.text[:500]
    run_id = query_of(answer.headers["Location"])["run"]
    runs = {r["dag_run_id"]: r for r in stack.dag_runs(f"mamo_sync_{cid}")}
    run = runs[run_id]
    assert run["conf"] == {"period": period} and run["logical_date"] is None and run["run_type"] == "manual"

    record = wait_for_record(stack, cid, key)
    reference = f"MAMO-{cid}-{key}"
    assert record.reference == reference and record.ledger_url
    [posted] = journals(stack, reference)
    assert posted["Status"] == "POSTED" and posted["ManualJournalID"] == record.ledger_journal_id

    history = stack.api_session("viewer").get(page_of(stack, f"/api/companies/{cid}/history"), timeout=30).json()
    row = next(r for r in history["history"] if r["period"] == period)
    assert row["status_label"] == "Completed" and row["reference"] == reference
    assert row["journal_url"] == record.ledger_url and row["totals_minor"]["sales"] > 0
    assert row["airflow_run_url"] == f"/dags/mamo_sync_{cid}/runs/{requests.utils.quote(record.run_id, safe='')}"
    page = html.unescape(session.get(page_of(stack, f"/companies/{cid}"), timeout=30).text)
    assert "Completed" in page and record.ledger_url in page and f"{period} completed, journal {reference}" in page

    # re-sync: the journal is voided in Xero, the period reopened and posted again under the same reference
    confirm = session.get(page_of(stack, f"/companies/{cid}/confirm/resync?period={period}"), timeout=30)
    assert "is voided in Xero" in html.unescape(confirm.text)
    answer = session.post(page_of(stack, f"/companies/{cid}/resync"), data={"period": period}, allow_redirects=False,
                          timeout=60)
    assert answer.status_code == 303, answer.text[:500]
    again = wait_for_record(stack, cid, key)
    assert again.ledger_journal_id != record.ledger_journal_id
    states = sorted(j["Status"] for j in journals(stack, reference))
    assert states == ["POSTED", "VOIDED"]
    with session_scope(stack.engine) as db:
        actions = [a.action for a in repo.list_activity(db, cid)]
    assert actions[:2] == ["resync", "sync"]


def test_only_complete_periods_from_the_first_one_on_are_synced(stack, company_factory):
    cid = ready_company(stack, company_factory, first_days_ago=2)
    for text, problem in ((days_ago(0), "is not over yet"), (days_ago(5), "before the company's first period"),
                          ("soon", "is not a period")):
        answer = stack.browser_session("admin").post(page_of(stack, f"/companies/{cid}/sync"), data={"period": text},
                                                     allow_redirects=False, timeout=30)
        assert answer.status_code == 422 and problem in html.unescape(answer.text), text


def test_a_company_not_connected_or_paused_is_not_synced(stack, company_factory):
    cid = company_factory()[0]
    answer = stack.browser_session("admin").post(page_of(stack, f"/companies/{cid}/sync"),
                                                 data={"period": days_ago(1)}, allow_redirects=False, timeout=30)
    assert answer.status_code == 409 and "Connect the company's ledger first" in html.unescape(answer.text)


def test_a_backfill_is_created_in_airflow_as_the_user(stack, company_factory):
    cid = ready_company(stack, company_factory, first_days_ago=6)
    session = stack.browser_session("admin")
    confirm = session.get(page_of(stack, f"/companies/{cid}/confirm/backfill?from_date={days_ago(4)}"
                                         f"&to_date={days_ago(2)}"), timeout=30)
    assert confirm.status_code == 200 and "Yes, backfill" in confirm.text
    answer = session.post(page_of(stack, f"/companies/{cid}/backfill"),
                          data={"from_date": days_ago(4), "to_date": days_ago(2)}, allow_redirects=False, timeout=60)
    assert answer.status_code == 303, stack.log("api-server")[-6000:]
    backfills = stack.api_session("admin").get(f"{stack.url}/api/v2/backfills", params={"dag_id": f"mamo_sync_{cid}"},
                                               timeout=30).json()["backfills"]
    assert len(backfills) == 1 and backfills[0]["reprocess_behavior"] == "failed"
    assert backfills[0]["from_date"].startswith(days_ago(5)) or backfills[0]["from_date"].startswith(days_ago(4))
    wrong = session.post(page_of(stack, f"/companies/{cid}/backfill"),
                         data={"from_date": days_ago(2), "to_date": days_ago(4)}, allow_redirects=False, timeout=60)
    assert wrong.status_code == 422


def test_disconnect_withdraws_the_access_and_keeps_history_and_mappings(stack, company_factory):
    cid, _, _ = company_factory()
    organisation = f"Disconnect Test {cid}"
    tenant = new_xero_organisation(stack, organisation)
    session = stack.browser_session("admin")
    connect(stack, session, cid, "xero", organisation)
    assert map_accounts(stack, session, cid, "xero", organisation).status_code == 303
    assert any(c.tenant_id == tenant for c in stack.xero.identity.connections.values())
    confirm = session.get(page_of(stack, f"/companies/{cid}/confirm/disconnect"), timeout=30)
    assert "Yes, disconnect" in confirm.text
    answer = session.post(page_of(stack, f"/companies/{cid}/disconnect"), allow_redirects=False, timeout=60)
    assert answer.status_code == 303 and answer.headers["Location"].endswith("notice=disconnected")
    row = connection(stack, cid)
    assert row.status == "disconnected" and row.refresh_token_enc is None and row.access_token_enc is None
    assert company(stack, cid).status == "disconnected"
    assert registry_entry(stack, cid)["status"] == "disconnected"
    # Xero: the organisation's connection to the app is gone
    assert not any(c.tenant_id == tenant for c in stack.xero.identity.connections.values())
    with session_scope(stack.engine) as db:
        assert len(repo.get_mappings(db, cid)) == 5
        assert repo.list_activity(db, cid)[0].detail.startswith("Disconnected; the ledger's grant was revoked")
    page = html.unescape(session.get(page_of(stack, f"/companies/{cid}"), timeout=30).text)
    assert "Disconnected" in page and "Connect a ledger" in page and "Act on periods" not in page
    # connecting again resumes syncing, with the mapping it kept
    connect(stack, session, cid, "xero", organisation)
    assert company(stack, cid).status == "active" and connection(stack, cid).status == "connected"


def test_disconnecting_one_of_two_companies_on_one_xero_organisation_keeps_the_other_connected(
        stack, company_factory):
    first, second = company_factory()[0], company_factory()[0]
    organisation = f"Shared Test {first}"
    new_xero_organisation(stack, organisation)
    session = stack.browser_session("admin")
    for cid in (first, second):
        connect(stack, session, cid, "xero", organisation)
    answer = session.post(page_of(stack, f"/companies/{first}/disconnect"), allow_redirects=False, timeout=60)
    assert answer.headers["Location"].endswith("notice=disconnected_here")
    with session_scope(stack.engine) as db:
        assert f"company {second} posts to the same organisation" in repo.list_activity(db, first)[0].detail
    accounts = stack.api_session("admin").get(page_of(stack, f"/api/companies/{second}/accounts"), timeout=60)
    assert accounts.status_code == 200 and connection(stack, second).status == "connected"


def test_sync_and_re_sync_a_zoho_books_company(stack, company_factory):
    """Zoho Books voids by a reversing journal (``<reference>-VOID``), then posts the period again."""
    cid = ready_company(stack, company_factory, platform="zoho_books")
    period, session = days_ago(1), stack.browser_session("admin")
    key = period.replace("-", "")
    assert session.post(page_of(stack, f"/companies/{cid}/sync"), data={"period": period},
                        allow_redirects=False, timeout=60).status_code == 303
    first = wait_for_record(stack, cid, key)
    assert first.ledger_url.startswith(stack.zoho_url)
    assert session.post(page_of(stack, f"/companies/{cid}/resync"), data={"period": period},
                        allow_redirects=False, timeout=60).status_code == 303
    again = wait_for_record(stack, cid, key)
    assert again.ledger_journal_id != first.ledger_journal_id
    listed = requests.get(f"{stack.zoho_url}/_sandbox/organisations/{zoho_data.DEMO_ORGANIZATION_ID}/journals",
                          timeout=10).json()["journals"]
    references = sorted(j["reference_number"] for j in listed if j["reference_number"].startswith(first.reference))
    assert references == [first.reference, first.reference, f"{first.reference}-VOID"]
