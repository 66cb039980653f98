"""Ledger limits: one post at a time per tenant (whatever runs it), a long rate limit pauses the task
instead of failing it, and the chart of accounts is read once per window, not twice per period."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
import sqlalchemy as sa
from worldkit import golden_charges

from mamo_revenue import errors, sync
from mamo_revenue.ledger_limits import (
    LIMIT_MARGIN,
    RETRY_POLICY,
    LedgerTenantBusy,
    facts_key,
    ledger_facts,
    reschedule_after_limit,
    tenant_lock,
    tenant_lock_key,
)
from mamo_revenue.sync import RunInfo

ACME = {"id": "acme", "name": "Acme Trading LLC", "timezone": "Asia/Dubai", "frequency": "daily",
        "first_period": "2026-11-20", "status": "active", "ledger_platform": "xero"}


def ledger_reads(world) -> int:
    log = requests.get(f"{world.xero_url}/_sandbox/requests", timeout=10).json()["requests"]
    return sum(1 for r in log if r["path"].endswith(("/Accounts", "/Organisation")))


# --- the tenant lock ------------------------------------------------------------------------------------


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request, product_db, tmp_path):
    if request.param == "postgresql":
        yield product_db
        return
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'product.db'}")
    yield engine
    engine.dispose()


def hold(engine, platform, tenant, held: threading.Event, release: threading.Event):
    with tenant_lock(engine, platform, tenant):
        held.set()
        release.wait(30)


@pytest.mark.parametrize("other", [("xero", "tenant-1", True), ("xero", "tenant-2", False),
                                   ("zoho_books", "tenant-1", False)],
                         ids=["same-tenant-waits", "other-tenant-runs", "other-platform-runs"])
def test_the_tenant_lock_serialises_posts_to_one_tenant_only(engine, other):
    platform, tenant, waits = other
    held, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold, args=(engine, "xero", "tenant-1", held, release))
    holder.start()
    assert held.wait(10)
    got = threading.Event()

    def second():
        with tenant_lock(engine, platform, tenant, poll=0.05):
            got.set()

    contender = threading.Thread(target=second)
    contender.start()
    assert got.wait(0.6) is (not waits)
    release.set()
    holder.join(10)
    contender.join(10)
    assert got.is_set(), "the lock is free again once its holder is done"


def test_a_lock_held_too_long_raises_a_retryable_busy_error(engine):
    held, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold, args=(engine, "xero", "t", held, release))
    holder.start()
    assert held.wait(10)
    try:
        with pytest.raises(LedgerTenantBusy, match="xero tenant t") as caught:
            with tenant_lock(engine, "xero", "t", wait=timedelta(seconds=0.3), poll=0.05):
                pass
        assert isinstance(caught.value, errors.PeriodBusy)  # retried by the DAG's rule for PeriodBusy
        decision = RETRY_POLICY.evaluate(caught.value, 1, 4)
        assert decision.action.value == "retry" and decision.retry_delay == timedelta(minutes=1)
    finally:
        release.set()
        holder.join(10)


def test_a_dead_holder_releases_the_postgres_lock(product_db):
    """The lock lives on a connection: when its process dies, PostgreSQL drops it."""
    key = tenant_lock_key("xero", "dead-holder")
    conn = product_db.connect()
    assert conn.execute(sa.select(sa.func.pg_try_advisory_lock(key))).scalar()
    conn.commit()
    conn.invalidate()  # the connection goes away without unlocking, as a killed worker's would
    conn.close()
    with tenant_lock(product_db, "xero", "dead-holder", wait=timedelta(seconds=5)):
        pass


def test_the_post_step_waits_for_the_tenant_lock(world, acme):
    """Whatever starts it (scheduler, backfill, `airflow dags test`), the post step takes the lock."""
    world.add_charges(golden_charges(1))
    info = RunInfo(run_id="manual__lock", explicit_period="2026-11-20")
    validated = sync.extract_step("acme", info)
    for step in (sync.build_step, sync.validate_step):
        validated = step("acme", validated, info)
    tenant = "a3f1c6de-5b2e-4d8a-9c71-2f0e8b4d6a10"
    held, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold, args=(world.engine, "xero", tenant, held, release))
    holder.start()
    assert held.wait(10)
    result = {}
    poster = threading.Thread(target=lambda: result.update(sync.post_step("acme", validated, info)))
    poster.start()
    time.sleep(1.5)
    assert not result and world.journals() == [], "nothing reaches the ledger while another post holds the tenant"
    release.set()
    poster.join(30)
    holder.join(10)
    assert result["state"] == "posted" and len(world.journals()) == 1


# --- rate limits: a pause, not a failure -------------------------------------------------------------------


@pytest.mark.parametrize(("retry_after", "expected"), [(66975, timedelta(seconds=66975) + LIMIT_MARGIN),
                                                       (None, timedelta(hours=1))],
                         ids=["xero-daily-retry-after", "zoho-plan-cap-no-retry-after"])
def test_a_long_rate_limit_reschedules_the_task_until_the_reset(retry_after, expected):
    from airflow.sdk.exceptions import AirflowRescheduleException

    now = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
    exc = errors.LedgerRateLimited("Xero rate limit (Daily) reached", retry_after=retry_after, problem="Daily")
    pause = reschedule_after_limit(exc, now=now)
    assert isinstance(pause, AirflowRescheduleException)
    assert pause.reschedule_date == now + expected


@pytest.mark.parametrize(("exc", "action", "delay"), [
    (errors.LedgerRateLimited("daily", retry_after=7200, problem="Daily"), "retry", timedelta(seconds=7205)),
    (errors.LedgerRateLimited("cap", problem="Daily"), "retry", timedelta(hours=1)),
    (errors.PeriodBusy("busy"), "retry", timedelta(minutes=1)),
    (errors.LedgerAuthError("reconnect"), "fail", None),
    (errors.JournalValidationError("acme", "2026-11-20", ["unmapped"]), "fail", None),
    (errors.LedgerUnavailable("503"), "default", None),
], ids=["rate-limit-follows-retry-after", "rate-limit-without-header", "busy", "auth", "validation", "outage"])
def test_the_retry_policy(exc, action, delay):
    decision = RETRY_POLICY.evaluate(exc, 1, 4)
    assert decision.action.value == action
    assert decision.retry_delay == delay


@pytest.mark.airflow
def test_a_daily_limit_pauses_the_post_and_it_resumes_by_itself(airflow_metadata, world, acme, receivers,
                                                                 monkeypatch):
    """Xero answers the PUT with 429 `X-Rate-Limit-Problem: Daily`: the task is rescheduled (no failure, no
    retry used, no alert), then posts once when the limit has reset."""
    from mamo_revenue.dag_factory import build_company_dag

    conn = json.loads(os.environ["AIRFLOW_CONN_XERO_DEFAULT"])
    conn["extra"]["max_rate_limit_wait"] = 1  # a wait longer than this is the task's, not the hook's
    monkeypatch.setenv("AIRFLOW_CONN_XERO_DEFAULT", json.dumps(conn))
    world.add_charges(golden_charges(1))
    requests.post(f"{world.xero_url}/_sandbox/faults", timeout=10, json={
        "kind": "rate_limit", "method": "PUT", "path": "/ManualJournals", "problem": "Daily", "retry_after": 2,
        "times": 1}).raise_for_status()
    started = time.monotonic()
    dag_run = build_company_dag(ACME).test(run_conf={"period": "2026-11-20"})
    assert str(dag_run.state) == "success"
    post = next(ti for ti in dag_run.get_task_instances() if ti.task_id == "post")
    assert post.try_number == 1, "a pause uses up no retry"
    assert time.monotonic() - started >= 2 + LIMIT_MARGIN.total_seconds()
    puts = [r for r in requests.get(f"{world.xero_url}/_sandbox/requests", timeout=10).json()["requests"]
            if r["method"] == "PUT"]
    assert [r["status"] for r in puts] == [429, 200]
    assert len(world.journals()) == 1
    assert receivers.smtp.mails == [] and receivers.webhook.posts == [], "a pause is not a failure"


# --- the chart of accounts and settings, cached per tenant -------------------------------------------------


class MemoryCache(dict):
    def get(self, key):
        return super().get(key)

    def set(self, key, value):
        self[key] = value


def test_ledger_facts_come_from_the_cache_within_the_ttl(world, acme):
    from mamo_revenue.db import repository as repo
    from mamo_revenue.db.session import session_scope

    with session_scope(world.engine) as session:
        company = repo.get_company(session, "acme")
        session.expunge(company)
    ledger = sync.ledger_hook_for(company, world.engine)
    cache, now, before = MemoryCache(), datetime.now(UTC), ledger_reads(world)
    first = ledger_facts(ledger, cache, now=now)
    second = ledger_facts(ledger, cache, now=now + timedelta(minutes=5))
    third = ledger_facts(ledger, cache, now=now + timedelta(minutes=11))
    assert (first.cached, second.cached, third.cached) == (False, True, False)
    assert second.accounts == first.accounts and second.settings == first.settings
    assert facts_key("xero", ledger.tenant_id) in cache
    assert ledger_reads(world) - before == 2 * 2, "read at first, not within the TTL, again after it"


def test_a_journal_the_cached_facts_refuse_is_checked_against_fresh_ones(world, acme):
    """The cache only ever lets a journal through: an account that was archived in the cached chart but
    is active again now does not fail the period."""
    world.add_charges(golden_charges(1))
    info = RunInfo(run_id="manual__cache", explicit_period="2026-11-20")
    built = sync.build_step("acme", sync.extract_step("acme", info), info)
    cache = MemoryCache()
    validated = sync.validate_step("acme", built, info, facts_cache=cache)  # fills the cache
    [key] = cache
    stale = json.loads(cache[key])
    for account in stale["accounts"]:
        if account["code"] == "4000":
            account["active"], account["status"] = False, "ARCHIVED"
    cache[key] = json.dumps(stale)
    validated = sync.validate_step("acme", built, info, facts_cache=cache)
    assert validated["state"] == "validated"
    assert all(a["active"] for a in json.loads(cache[key])["accounts"] if a["code"] == "4000"), "refreshed"


def test_a_journal_the_ledger_refuses_drops_the_cached_facts(world, acme):
    """An account archived within the cache's window: validate lets the journal through on the cached
    chart, Xero refuses it at the PUT, and the next validation reads the chart afresh and says why."""
    world.add_charges(golden_charges(1))
    info = RunInfo(run_id="manual__refused", explicit_period="2026-11-20")
    built = sync.build_step("acme", sync.extract_step("acme", info), info)
    cache = MemoryCache()
    validated = sync.validate_step("acme", built, info, facts_cache=cache)  # fills the cache
    requests.patch(f"{world.xero_url}/_sandbox/organisations/a3f1c6de-5b2e-4d8a-9c71-2f0e8b4d6a10/accounts/4000", json={"Status": "ARCHIVED"},
                   timeout=10).raise_for_status()
    assert sync.validate_step("acme", built, info, facts_cache=cache)["state"] == "validated", "cached: let through"
    with pytest.raises(errors.LedgerValidationError):
        sync.post_step("acme", validated, info, facts_cache=cache)
    [key] = cache
    assert cache[key] == "", "the facts that let it through are dropped"
    with pytest.raises(errors.JournalValidationError, match="4000"):
        sync.validate_step("acme", built, info, facts_cache=cache)
    assert world.journals() == []
