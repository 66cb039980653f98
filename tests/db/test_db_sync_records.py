"""Sync records: the claim that makes a period post at most once."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest

from mamo_revenue.db.session import session_scope
from mamo_revenue.db.sync_records import (
    SyncRecordConflict,
    claim_period,
    closed_period_keys,
    get_sync_record,
    list_sync_records,
    mark_failed,
    mark_nothing_to_post,
    mark_posted,
)
from mamo_revenue.errors import PeriodBusy
from mamo_revenue.periods import Period

DAY = Period.parse("2026-11-20")
REF = "MAMO-acme-20261120"
T0 = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)


def _claim(engine, run_id, *, period=DAY, reference=REF, now=T0, lease=timedelta(minutes=30)):
    with session_scope(engine) as session:
        return claim_period(session, "acme", period, reference, run_id, lease, now=now)


def test_first_claim_creates_a_running_record(engine, company):
    result = _claim(engine, "run-1")

    assert result.claimed and result.status == "running"
    record = result.record
    assert (record.period_key, record.period_label, record.reference) == ("20261120", "2026-11-20", REF)
    assert (record.period_first_day, record.period_last_day) == (date(2026, 11, 20), date(2026, 11, 20))
    assert (record.claimed_by, record.claimed_at, record.attempts) == ("run-1", T0, 1)


def test_weekly_period_record(engine, company):
    week = Period.parse("2026-W47")
    result = _claim(engine, "run-1", period=week, reference="MAMO-acme-2026W47")
    assert (result.record.period_key, result.record.period_first_day, result.record.period_last_day) == (
        "2026W47",
        date(2026, 11, 16),
        date(2026, 11, 22),
    )


def test_a_live_claim_makes_other_runs_wait(engine, company):
    _claim(engine, "run-1")
    with pytest.raises(PeriodBusy, match="run-1"):
        _claim(engine, "run-2", now=T0 + timedelta(minutes=29))


def test_the_same_run_may_reclaim_its_own_claim(engine, company):
    """An Airflow task retry keeps its run id: it picks the period up again at once."""
    _claim(engine, "run-1")
    again = _claim(engine, "run-1", now=T0 + timedelta(minutes=1))
    assert again.claimed and again.record.attempts == 2


def test_an_expired_lease_lets_a_new_run_take_over(engine, company):
    _claim(engine, "crashed-run")
    result = _claim(engine, "run-2", now=T0 + timedelta(minutes=31))

    assert result.claimed
    assert (result.record.claimed_by, result.record.attempts) == ("run-2", 2)
    with session_scope(engine) as session:  # the crashed run, waking up, cannot overwrite the new state
        assert not mark_failed(
            session, "acme", DAY.key, run_id="crashed-run", error_class="X", message="late"
        )
        assert get_sync_record(session, "acme", DAY.key).status == "running"


@pytest.mark.parametrize("close", ["posted", "nothing_to_post"])
def test_a_closed_period_refuses_every_claim(engine, company, close):
    _claim(engine, "run-1")
    with session_scope(engine) as session:
        if close == "posted":
            mark_posted(
                session,
                "acme",
                DAY.key,
                run_id="run-1",
                ledger_journal_id="J-1",
                ledger_url="https://x/J-1",
                totals={"sales": 18_474},
                line_count=5,
                now=T0,
            )
        else:
            mark_nothing_to_post(session, "acme", DAY.key, run_id="run-1", now=T0)

    for run_id, now in [("run-2", T0), ("run-1", T0), ("run-3", T0 + timedelta(days=30))]:
        result = _claim(engine, run_id, now=now)
        assert not result.claimed and result.already_closed and result.status == close
    with session_scope(engine) as session:
        assert closed_period_keys(session, "acme") == {DAY.key}
        record = get_sync_record(session, "acme", DAY.key)
    assert record.attempts == 1 and record.claimed_by is None
    if close == "posted":
        assert (record.ledger_journal_id, record.totals, record.line_count, record.posted_at) == (
            "J-1",
            {"sales": 18_474},
            5,
            T0,
        )


def test_marking_posted_is_idempotent_but_never_records_a_second_journal(engine, company):
    _claim(engine, "run-1")
    with session_scope(engine) as session:
        mark_posted(session, "acme", DAY.key, run_id="run-1", ledger_journal_id="J-1")
        mark_posted(session, "acme", DAY.key, run_id="run-1", ledger_journal_id="J-1")
    with pytest.raises(SyncRecordConflict, match="J-1"), session_scope(engine) as session:
        mark_posted(session, "acme", DAY.key, run_id="run-2", ledger_journal_id="J-2")
    with pytest.raises(SyncRecordConflict), session_scope(engine) as session:
        mark_nothing_to_post(session, "acme", DAY.key, run_id="run-2")


def test_a_run_whose_lease_lapsed_may_still_record_its_posting(engine, company):
    """The ledger is the truth: if the slow run did post, the record says so."""
    _claim(engine, "slow-run")
    _claim(engine, "run-2", now=T0 + timedelta(hours=1))
    with session_scope(engine) as session:
        record = mark_posted(session, "acme", DAY.key, run_id="slow-run", ledger_journal_id="J-1")
    assert record.status == "posted" and record.run_id == "slow-run"


def test_a_failure_releases_the_claim_for_the_next_attempt(engine, company):
    _claim(engine, "run-1")
    with session_scope(engine) as session:
        assert mark_failed(
            session,
            "acme",
            DAY.key,
            run_id="run-1",
            error_class="LedgerLockedPeriod",
            message="period locked",
            guidance="Move the lock date",
        )
        record = get_sync_record(session, "acme", DAY.key)
    assert (record.status, record.error_class, record.guidance, record.claimed_by) == (
        "failed",
        "LedgerLockedPeriod",
        "Move the lock date",
        None,
    )

    result = _claim(engine, "run-2", now=T0 + timedelta(minutes=1))
    assert result.claimed and result.record.attempts == 2
    with session_scope(engine) as session:
        mark_posted(session, "acme", DAY.key, run_id="run-2", ledger_journal_id="J-1")
        assert get_sync_record(session, "acme", DAY.key).error_class is None


def test_a_failure_without_a_run_id_releases_any_claim(engine, company):
    _claim(engine, "run-1")
    with session_scope(engine) as session:
        assert mark_failed(session, "acme", DAY.key, error_class="MamoUnavailable", message="timeout")
        record = get_sync_record(session, "acme", DAY.key)
    assert (record.status, record.claimed_by) == ("failed", None)
    assert _claim(engine, "run-2", now=T0 + timedelta(minutes=1)).claimed


def test_a_failure_before_any_claim_is_recorded(engine, company):
    with session_scope(engine) as session:
        assert mark_failed(
            session,
            "acme",
            DAY,
            reference=REF,
            run_id="run-1",
            error_class="ChargeDataError",
            message="charge c9, field 'amount': not money",
        )
        assert not mark_failed(
            session, "acme", "20261121", run_id="run-1", error_class="X", message="no record"
        )
        record = get_sync_record(session, "acme", DAY.key)
    assert (record.status, record.attempts, record.reference) == ("failed", 0, REF)


def test_a_reference_never_changes(engine, company):
    _claim(engine, "run-1")
    with pytest.raises(SyncRecordConflict, match="reference"):
        _claim(engine, "run-1", reference="MAMO-other-20261120")


def test_concurrent_claims_have_exactly_one_winner(engine, company):
    outcomes: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def run(run_id: str):
        barrier.wait(5)
        try:
            result = _claim(engine, run_id, now=datetime.now(UTC))
            outcome = "won" if result.claimed else f"closed:{result.status}"
        except PeriodBusy:
            outcome = "busy"
        except BaseException as exc:  # pragma: no cover - reported below
            outcome = f"error:{exc!r}"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=run, args=(f"run-{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert sorted(outcomes) == ["busy"] * 7 + ["won"]
    with session_scope(engine) as session:
        assert get_sync_record(session, "acme", DAY.key).attempts == 1


def test_list_sync_records_newest_first(engine, company):
    with session_scope(engine) as session:
        from mamo_revenue.db.companies import upsert_company

        upsert_company(session, "beta", name="Beta")
    for day in ["2026-11-18", "2026-11-20", "2026-11-19"]:
        period = Period.parse(day)
        _claim(engine, f"run-{day}", period=period, reference=f"MAMO-acme-{period.key}")
    with session_scope(engine) as session:
        claim_period(session, "beta", DAY, "MAMO-beta-20261120", "run-b", now=T0)
    with session_scope(engine) as session:
        everything = [(r.company_id, r.period_key) for r in list_sync_records(session)]
        acme = [r.period_key for r in list_sync_records(session, "acme", limit=2)]
    assert everything == [
        ("acme", "20261120"),
        ("beta", "20261120"),
        ("acme", "20261119"),
        ("acme", "20261118"),
    ]
    assert acme == ["20261120", "20261119"]
