"""A production-shaped run: PostgreSQL metadata DB, scheduler (LocalExecutor), dag-processor and api-server as
real processes, the sandboxes on real sockets, and `mamo-revenue backfill` over 30 days for two companies on
different ledgers (Xero and Zoho Books).

Afterwards every period with activity is posted exactly once in each ledger, every empty one is recorded
as nothing to post, Airflow's run states agree with the sync records, the one period broken on purpose
failed and alerted (email and webhook, no secret), re-ran alone once fixed, and a re-run of posted periods
changed nothing.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests
from receivers import Receivers
from stack import TZ, Company, Stack, days_back, ledger_journals

pytestmark = [pytest.mark.airflow, pytest.mark.slow, pytest.mark.timeout(1500)]

COMPANIES = (Company("ops_xero", "xero", "xero_default"), Company("ops_zoho", "zoho_books", "zoho_books_default"))
DAYS = 30
BROKEN_DAY = 10  # days back: the period whose charge is made unreadable
TOKEN_LIKE = "sk-live-4b7c9d2e1f0a3b5c"


@pytest.fixture(scope="module")
def alerts():
    found = Receivers().start()
    yield found
    found.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, alerts):
    stack = Stack(home=tmp_path_factory.mktemp("production"), companies=COMPANIES, first_period=days_back(DAYS),
                  charges=150, days=DAYS, extra_connections=alerts.connections())
    try:
        stack.prepare()
        yield stack
    finally:
        stack.stop()


def backfill(stack: Stack, *args: str) -> list[int]:
    """`mamo-revenue backfill …` as a user runs it; the ids of the backfills it created."""
    done = stack.run("mamo-revenue", "backfill", *args, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return [int(i) for i in re.findall(r"backfill #(\d+)", done.stdout)]


def period_of(logical_date: str) -> str:
    return datetime.fromisoformat(logical_date).astimezone(ZoneInfo(TZ)).date().isoformat()


def sync_records(stack: Stack) -> dict[tuple[str, str], dict]:
    from mamo_revenue.db import repository as repo
    from mamo_revenue.db.session import session_scope

    with session_scope(stack.product_engine(), read_only=True) as session:
        return {(r.company_id, r.period_label): {"status": r.status, "reference": r.reference,
                                                 "journal": r.ledger_journal_id, "run_id": r.run_id,
                                                 "error": r.error_class}
                for r in repo.list_sync_records(session, limit=10_000)}


def break_a_charge(stack: Stack, day) -> tuple[str, dict]:
    """Give one charge of ``day`` an amount that is a token-like string; returns its id and old fields."""
    admin = f"{stack.mamo_url}/_sandbox/businesses/demo/charges"
    stamp = day.strftime("%Y-%m-%d-")
    for charge_id in requests.get(admin, timeout=30).json()["ids"]:
        charge = requests.get(f"{admin}/{charge_id}", timeout=30).json()
        if charge["created_date"].startswith(stamp) and charge["status"] == "captured":
            requests.patch(f"{admin}/{charge_id}", json={"amount": TOKEN_LIKE}, timeout=30).raise_for_status()
            return charge_id, {"amount": str(charge["amount"])}
    raise AssertionError(f"no captured charge on {day}")


def assert_agreement(stack: Stack, records: dict) -> dict[str, dict[str, str]]:
    """Airflow's run states and the sync records say the same thing, period by period."""
    states = {}
    for company in COMPANIES:
        runs = stack.dag_runs(f"mamo_sync_{company.id}")
        by_period = {period_of(r["logical_date"]): r for r in runs}
        assert len(by_period) == len(runs) == DAYS, "one run per period, never two"
        states[company.id] = {p: r["state"] for p, r in by_period.items()}
        for period, run in by_period.items():
            record = records[(company.id, period)]
            expected = "success" if record["status"] in ("posted", "nothing_to_post") else "failed"
            assert run["state"] == expected, (company.id, period, run["state"], record)
            assert record["run_id"] == run["dag_run_id"], (company.id, period)
    return states


def assert_each_posted_once(stack: Stack, records: dict) -> dict[str, Counter]:
    journals = ledger_journals(stack)
    counts = {}
    for company in COMPANIES:
        posted = [j for j in journals[company.platform] if j["reference"].startswith(f"MAMO-{company.id}-")]
        counts[company.id] = Counter(j["reference"] for j in posted)
        assert all(n == 1 for n in counts[company.id].values()), counts[company.id].most_common(3)
        recorded = {r["reference"]: r["journal"] for (c, _), r in records.items()
                    if c == company.id and r["status"] == "posted"}
        assert set(counts[company.id]) == set(recorded), "the ledger holds exactly the posted periods"
        assert {j["reference"]: j["id"] for j in posted} == recorded
        assert all(j["status"].lower() in ("posted", "published") for j in posted)
    return counts


def diagnostics(stack: Stack) -> str:
    """What to read when this test fails: run states per company and the tails of the processes' logs."""
    out = []
    for company in COMPANIES:
        try:
            runs = stack.dag_runs(f"mamo_sync_{company.id}")
            out.append(f"{company.id}: {Counter((r['run_type'], r['state']) for r in runs)}")
        except Exception as exc:  # the api-server may be what failed
            out.append(f"{company.id}: runs unreadable ({type(exc).__name__})")
    for name in ("scheduler", "dag-processor", "api-server", "sandboxes"):
        path = stack.home / "logs" / f"{name}.out"
        if path.exists():
            out.append(f"--- {name} (last lines) ---\n" + "\n".join(path.read_text(errors="replace").splitlines()[-25:]))
    return "\n".join(out)


def failure_mails(alerts) -> list:
    """The sync-failure alerts (a deadline alert may also land if the test runs across 02:00 UTC)."""
    return [m for m in alerts.smtp.mails if "Sync failed" in m.subject]


def test_a_30_day_backfill_of_two_companies_on_two_ledgers(stack, alerts):
    try:
        run_the_scenario(stack, alerts)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n\n{diagnostics(stack)}") from exc


def run_the_scenario(stack: Stack, alerts) -> None:
    broken_day = days_back(BROKEN_DAY)
    charge_id, original = break_a_charge(stack, broken_day)
    stack.launch()
    first, last = days_back(DAYS), days_back(1)

    ids = backfill(stack, "--from", str(first), "--to", str(last), "--all")
    assert ids, "a backfill per company (the scheduler's catch-up may already hold the first days)"
    stack.wait_for_backfills(ids, timeout=900)
    for company in COMPANIES:
        stack.wait_for_runs(f"mamo_sync_{company.id}", DAYS, timeout=600)

    records = sync_records(stack)
    states = assert_agreement(stack, records)
    counts = assert_each_posted_once(stack, records)
    broken = broken_day.isoformat()
    for company in COMPANIES:
        statuses = Counter(records[(company.id, (first + timedelta(d)).isoformat())]["status"] for d in range(DAYS))
        assert statuses["failed"] == 1 and records[(company.id, broken)]["error"] == "ChargeDataError"
        assert statuses["posted"] >= DAYS // 2, statuses  # the demo business sells on most days
        assert statuses["posted"] + statuses["nothing_to_post"] == DAYS - 1
        assert states[company.id][broken] == "failed"

    # the broken period alerted, once per company, by email and webhook, without the token-like value
    alerts.wait(mails=2, posts=2, timeout=60)
    subjects = sorted(m.subject for m in failure_mails(alerts))
    assert subjects == [f"[Mamo revenue] Sync failed: {c.id}, period {broken}, step extract" for c in COMPANIES]
    for mail in failure_mails(alerts):
        assert "ChargeDataError" in mail.body and charge_id in mail.body
        assert f"{stack.api_url}/dags/mamo_sync_" in mail.body, "links to the run's log"
        assert TOKEN_LIKE not in mail.raw
    assert all(TOKEN_LIKE not in json.dumps(p["json"]) for p in alerts.webhook.posts)

    # fixed, the failed period re-runs alone and posts once; nothing else moves
    requests.patch(f"{stack.mamo_url}/_sandbox/businesses/demo/charges/{charge_id}", json=original,
                   timeout=30).raise_for_status()
    ids = backfill(stack, "--from", broken, "--to", broken, "--company", "ops_xero", "--company", "ops_zoho",
                   "--reprocess-behavior", "failed")
    assert len(ids) == 2
    stack.wait_for_backfills(ids, timeout=600)
    for company in COMPANIES:
        stack.wait_for_runs(f"mamo_sync_{company.id}", DAYS, timeout=300)
    records = sync_records(stack)
    assert_agreement(stack, records)
    after = assert_each_posted_once(stack, records)
    for company in COMPANIES:
        assert records[(company.id, broken)]["status"] == "posted"
        assert set(after[company.id]) - set(counts[company.id]) == {f"MAMO-{company.id}-{broken_day:%Y%m%d}"}

    # re-running posted periods (reprocess completed) says "already posted" and posts nothing
    recent = days_back(3)
    ids = backfill(stack, "--from", str(recent), "--to", str(last), "--all", "--reprocess-behavior", "completed")
    stack.wait_for_backfills(ids, timeout=600)
    for company in COMPANIES:
        stack.wait_for_runs(f"mamo_sync_{company.id}", DAYS, timeout=300)
    assert assert_each_posted_once(stack, sync_records(stack)) == after
    run = next(r for r in stack.dag_runs("mamo_sync_ops_xero") if period_of(r["logical_date"]) == str(last))
    tries = stack.api("GET", f"/dags/mamo_sync_ops_xero/dagRuns/{run['dag_run_id']}/taskInstances/extract").json()
    log = stack.task_log("mamo_sync_ops_xero", run["dag_run_id"], "extract", tries["try_number"])
    assert re.search(r"already (posted|nothing to post)", log), log[-2000:]
    assert len(failure_mails(alerts)) == 2, "no new alert"
