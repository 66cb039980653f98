"""Alerts: a failed run mails and posts one message naming company, period, step, error class and what to
do, with a link to the log, and never a secret; a missing channel is off, not an error; a period still
not posted some hours after it closed raises a deadline alert, once."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from worldkit import MAMO_KEY, golden_charges

from mamo_revenue import errors
from mamo_revenue.notifiers import Alert, dispatch, failure_alert, record_failure_outcome, redact

ACME = {"id": "acme", "name": "Acme Trading LLC", "timezone": "Asia/Dubai", "frequency": "daily",
        "first_period": "2026-11-20", "status": "active", "ledger_platform": "xero"}
TOKEN_LIKE = "sk-live-9f8e7d6c5b4a3928"
#: Secrets of the test world: none may appear in any alert.
SECRETS = [TOKEN_LIKE, MAMO_KEY, "mamo-sandbox-secret", "test-only-secret"]


# --- redaction ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "kept", "gone"), [
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl refused", "refused", "eyJ"),
    ("GET /x?refresh_token=1000.abcdef0123456789&organization_id=42 -> 400", "organization_id=42", "1000.abc"),
    ('{"client_secret": "s3cr3t-value-123", "code": 57}', '"code": 57', "s3cr3t"),
    (f"charge ch_1, field 'amount': '{TOKEN_LIKE}' is not a number", "field 'amount'", TOKEN_LIKE),
    ("postgresql://mamo:hunter22@db:5432/product unreachable", "postgresql://mamo:", "hunter22"),
    ("opaque 9f8e7d6c5b4a39281706f5e4d3c2b1a0ffeeddcc here", "opaque", "9f8e7d6c5b"),
    ("journal 0f9e5a3c-1b2d-4e6f-8a9b-0c1d2e3f4a5b of tenant a3f1c6de-5b2e-4d8a-9c71-2f0e8b4d6a10",
     "0f9e5a3c-1b2d-4e6f-8a9b-0c1d2e3f4a5b", "\u0000"),
    ("TokenExpired: token expired at 04/09/2023 05:16:59", "token expired at 04/09/2023", "\u0000"),
], ids=["bearer-jwt", "query-token", "json-secret", "api-key", "url-password", "opaque", "uuids-kept",
        "prose-kept"])
def test_redact_removes_credentials_and_keeps_what_finance_reads(text, kept, gone):
    out = redact(text)
    assert kept in out
    assert gone not in out


def test_redact_removes_named_secrets_anywhere():
    assert redact("key sk-test-acme and password mamo-sandbox-secret", ["mamo-sandbox-secret"]).count("***") == 2


# --- the message ----------------------------------------------------------------------------------------


class FakeTI:
    dag_id, task_id, run_id, try_number = "mamo_sync_acme", "validate", "scheduled__2026-11-20T20:00:00+00:00", 2

    def xcom_pull(self, task_ids):
        return {"state": "extracted", "period": "2026-11-20"}


def test_the_alert_names_company_period_step_error_guidance_and_links_the_log(monkeypatch):
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/")
    exc = errors.LedgerAccountError(f"account 4000 is archived (Bearer {TOKEN_LIKE})")
    alert = failure_alert({"ti": FakeTI(), "exception": exc, "run_id": FakeTI.run_id})
    assert (alert.company, alert.period, alert.step, alert.error_class) == (
        "acme", "2026-11-20", "validate", "LedgerAccountError")
    assert alert.guidance == errors.LedgerAccountError.guidance
    assert alert.log_url == ("https://airflow.example.com/dags/mamo_sync_acme/runs/"
                             "scheduled__2026-11-20T20%3A00%3A00%2B00%3A00/tasks/validate?try_number=2")
    text = alert.text()
    for expected in ("Sync failed: acme, period 2026-11-20, step validate", "Failed step: validate",
                     "LedgerAccountError: account 4000 is archived", "What to do:", alert.log_url):
        assert expected in text
    assert TOKEN_LIKE not in text + json.dumps(alert.slack_payload()) + alert.html()


# --- end to end: a failing run, a real SMTP server and a real webhook receiver ------------------------------


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"secret {secret[:6]}… leaked"


@pytest.mark.airflow
def test_a_failed_run_alerts_by_email_and_webhook_without_a_secret(airflow_metadata, world, acme, receivers):
    from mamo_revenue.dag_factory import build_company_dag

    charges = golden_charges(1)
    world.add_charges(charges)
    world.patch_charge(charges[1]["id"], {"amount": TOKEN_LIKE})  # the error text will carry it
    dag_run = build_company_dag(ACME).test(run_conf={"period": "2026-11-20"})
    assert str(dag_run.state) == "failed"
    receivers.wait(mails=1, posts=1)
    [mail], [post] = receivers.smtp.mails, receivers.webhook.posts
    assert sorted(mail.recipients) == ["finance@example.com", "oncall@example.com"]
    assert mail.subject == "[Mamo revenue] Sync failed: acme, period 2026-11-20, step extract"
    body = re.sub(r"<[^>]+>", " ", mail.body)
    for expected in ("acme (Acme Trading LLC)", "2026-11-20", "extract", "ChargeDataError",
                     charges[1]["id"], errors.ChargeDataError.guidance,
                     "https://airflow.example.com/dags/mamo_sync_acme/runs/"):
        assert expected in body, expected
    assert post["path"] == receivers.webhook_path
    assert post["json"]["text"].startswith(mail.subject)
    assert "ChargeDataError" in post["json"]["text"] and charges[1]["id"] in post["json"]["text"]
    assert any("https://airflow.example.com/dags/mamo_sync_acme/runs/" in json.dumps(b) for b in post["json"]["blocks"])
    assert_no_secret(mail.raw, json.dumps(post["json"]))
    record = world.sync_record("acme", "20261120")
    assert record.status == "failed" and record.error_class == "ChargeDataError"  # for the accounting page
    assert record.run_id == dag_run.run_id


@pytest.mark.airflow
def test_without_alert_connections_a_failure_is_still_recorded_and_nothing_breaks(airflow_metadata, world, acme,
                                                                                   monkeypatch):
    from mamo_revenue.dag_factory import build_company_dag

    monkeypatch.delenv("AIRFLOW_CONN_MAMO_ALERTS_SMTP", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_MAMO_ALERTS_SLACK", raising=False)
    charges = golden_charges(1)
    world.add_charges(charges)
    world.patch_charge(charges[1]["id"], {"amount": "12.345"})
    dag_run = build_company_dag(ACME).test(run_conf={"period": "2026-11-20"})
    assert str(dag_run.state) == "failed"
    extract = next(ti for ti in dag_run.get_task_instances() if ti.task_id == "extract")
    assert str(extract.state) == "failed"
    assert world.sync_record("acme", "20261120").status == "failed"


def test_one_channel_down_does_not_stop_the_other(receivers, monkeypatch):
    down = receivers.connections()["MAMO_ALERTS_SMTP"] | {"port": 1}  # nothing listens there
    monkeypatch.setenv("AIRFLOW_CONN_MAMO_ALERTS_SMTP", json.dumps(down))
    alert = Alert(kind="failure", company="acme", period="2026-11-20", step="post", error_class="LedgerUnavailable",
                  message="Xero did not answer", guidance="The task will retry.", log_url=None)
    assert dispatch(alert) == ["webhook"]
    assert len(receivers.webhook.posts) == 1 and receivers.smtp.mails == []


def test_a_failure_outside_the_steps_is_recorded_for_the_accounting_page(world, acme):
    """A timeout or a killed task never reaches the steps' own bookkeeping: the callback records it."""
    from airflow.sdk.exceptions import AirflowTaskTimeout

    class TimedOut(FakeTI):
        task_id, run_id, try_number = "extract", "manual__timeout", 1

        def xcom_pull(self, task_ids):
            return None

    class Run:
        conf = {"period": "2026-11-21"}

    context = {"ti": TimedOut(), "exception": AirflowTaskTimeout("Timeout, PID: 4242"), "run_id": "manual__timeout",
               "dag_run": Run()}
    alert = failure_alert(context)
    assert alert.period == "2026-11-21" and "time limit" in alert.guidance
    record_failure_outcome(context, alert)
    record = world.sync_record("acme", "20261121")
    assert (record.status, record.error_class, record.run_id) == ("failed", "AirflowTaskTimeout", "manual__timeout")


# --- the posting deadline -------------------------------------------------------------------------------------


def test_a_period_not_posted_in_time_is_alerted_once(world, acme, receivers):
    from mamo_revenue.db import repository as repo
    from mamo_revenue.db.session import session_scope
    from mamo_revenue.deadlines import check_deadlines
    from mamo_revenue.periods import Period

    with session_scope(world.engine) as session:  # 20 posted, 21 failed, 22 never synced, 23 not due yet
        for day, status in ((20, "posted"), (21, "failed")):
            period = Period.parse(f"2026-11-{day}", "daily")
            repo.claim_period(session, "acme", period, f"MAMO-acme-{period.key}", f"run-{day}")
            if status == "posted":
                repo.mark_posted(session, "acme", period.key, run_id=f"run-{day}", ledger_journal_id="j-20")
            else:
                repo.mark_failed(session, "acme", period, error_class="LedgerUnavailable",
                                 message=f"post: Xero did not answer ({TOKEN_LIKE})", guidance="Retry.",
                                 run_id=f"run-{day}")
    grace = timedelta(hours=6)
    # Dubai midnight after the 22nd is 2026-11-22T20:00Z: its deadline is 2026-11-23T02:00Z.
    start, end = datetime(2026, 11, 20, 20, 0, tzinfo=UTC), datetime(2026, 11, 23, 2, 15, tzinfo=UTC)
    overdue = check_deadlines(world.engine, window_start=start, window_end=end, grace=grace)
    assert [(o.period, o.status) for o in overdue] == [("2026-11-22", "missing"), ("2026-11-21", "failed")]
    receivers.wait(mails=2, posts=2)
    subjects = sorted(m.subject for m in receivers.smtp.mails)
    assert subjects == ["[Mamo revenue] Not posted yet: acme, period 2026-11-21",
                        "[Mamo revenue] Not posted yet: acme, period 2026-11-22"]
    failed = next(m for m in receivers.smtp.mails if "2026-11-21" in m.subject)
    assert "LedgerUnavailable" in failed.body and "closed 6 h ago" in failed.body and "run-21" in failed.body
    assert_no_secret(*(m.raw for m in receivers.smtp.mails), json.dumps(receivers.webhook.posts))
    # the next check window does not alert the same periods again
    again = check_deadlines(world.engine, window_start=end, window_end=end + timedelta(minutes=15), grace=grace)
    assert again == []


def test_the_deadline_check_ignores_paused_companies_and_periods_before_the_first(world, acme):
    from mamo_revenue.db import repository as repo
    from mamo_revenue.db.session import session_scope
    from mamo_revenue.deadlines import overdue_periods

    start, end = datetime(2026, 11, 18, tzinfo=UTC), datetime(2026, 11, 21, 3, tzinfo=UTC)
    found = overdue_periods(world.engine, window_start=start, window_end=end, grace=timedelta(hours=6))
    assert [o.period for o in found] == ["2026-11-20"], "nothing before acme's first period, 2026-11-20"
    with session_scope(world.engine) as session:
        repo.set_company_status(session, "acme", "paused")
    assert overdue_periods(world.engine, window_start=start, window_end=end, grace=timedelta(hours=6)) == []


def test_deadline_grace_is_a_variable(monkeypatch):
    from mamo_revenue.deadlines import DEFAULT_GRACE, grace_from_variable

    monkeypatch.delenv("AIRFLOW_VAR_MAMO_REVENUE_POST_DEADLINE_HOURS", raising=False)
    assert grace_from_variable() == DEFAULT_GRACE
    monkeypatch.setenv("AIRFLOW_VAR_MAMO_REVENUE_POST_DEADLINE_HOURS", "2.5")
    assert grace_from_variable() == timedelta(hours=2.5)


@pytest.mark.airflow
def test_the_deadline_dag_alerts_a_missed_period(airflow_metadata, world, acme, receivers, monkeypatch):
    """`mamo_deadlines` as Airflow runs it: its 15-minute interval, the grace Variable, the product DB."""
    from pathlib import Path

    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW_VAR_MAMO_REVENUE_POST_DEADLINE_HOURS", "6")
    dags = Path(__file__).resolve().parents[2] / "dags" / "mamo_deadlines.py"
    dag = DagBag(dag_folder=str(dags)).dags["mamo_deadlines"]
    # dag.test() gives the interval that ends at the logical date (AIRFLOW3.md §9): [02:00, 02:15) UTC holds
    # the deadline of Dubai's 2026-11-22, which closed at 20:00 UTC, plus 6 h
    dag_run = dag.test(logical_date=datetime(2026, 11, 23, 2, 15, tzinfo=UTC))
    assert str(dag_run.state) == "success"
    receivers.wait(mails=1, posts=1)
    assert [m.subject for m in receivers.smtp.mails] == ["[Mamo revenue] Not posted yet: acme, period 2026-11-22"]
    assert "no run has synced it" in receivers.smtp.mails[0].body
