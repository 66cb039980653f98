"""What keeps posting inside each ledger's limits (LEDGER_APIS.md §1.9, §2.9), whoever starts the run.

Three mechanisms, each enforced where an operator cannot bypass it:

- **One post at a time per ledger tenant.** ``tenant_lock(engine, platform, tenant)`` is held by
  ``sync.post_step`` around find + post. On PostgreSQL it is a session-level advisory lock on the
  product DB, keyed by (platform, tenant) (so two companies connected to the same organisation
  share it); on SQLite (the embedded install, one machine) an exclusive ``flock`` on a file beside
  the database. Whatever runs the step (scheduler, backfill, ``airflow dags test``, a worker on
  another host) takes the same lock; a process that dies releases it with its connection. A lock
  still held after ``TENANT_LOCK_WAIT`` raises ``LedgerTenantBusy`` (a ``PeriodBusy``: retried).
- **Pausing on a long rate limit.** A ledger that says "come back in N seconds" beyond what a hook
  waits in process (Xero's daily 5,000, ``X-Rate-Limit-Problem: Daily``; Zoho Books' plan cap)
  makes the hook raise ``LedgerRateLimited``. ``reschedule_after_limit`` turns it into Airflow's
  reschedule: the task goes ``up_for_reschedule`` until the limit resets (``retry_after`` plus a
  margin; ``DEFAULT_LIMIT_WAIT`` when the ledger did not say), frees its worker and pool slot, then
  runs again by itself. A reschedule is neither a failure nor a retry, so no alert fires and no
  retry is used up, however many days the pause lasts. ``LedgerRetryPolicy`` is the fallback for
  a rate limit that reaches the retry machinery: its delay follows ``retry_after`` too.
- **Fewer calls per period.** ``ledger_facts`` serves the chart of accounts and the organisation's
  settings (base currency, lock date) that ``validate`` checks against from a per-tenant cache
  (an Airflow Variable, shared by every worker) for ``LEDGER_FACTS_TTL`` (10 minutes): a backfill
  reads them once per window instead of twice per period. The trade-off, and why it is safe: the
  cache only ever lets a journal *through* validation; a journal the cached facts would refuse is
  checked again against facts read fresh, so a mapping fixed a minute ago is seen at once; and what
  the cache may miss (an account archived, a lock date moved within the window) the ledger itself
  refuses at post time (Xero rejects archived accounts and locked dates; the post step confirms
  the journal as the ledger returns it), which fails the period with the same error classes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from airflow.sdk import ExceptionRetryPolicy, RetryAction, RetryRule
from airflow.sdk.definitions.retry_policy import RetryDecision

from mamo_revenue.errors import LedgerRateLimited, PeriodBusy

log = logging.getLogger("mamo_revenue.ledger_limits")

#: How long a post waits for another post to the same tenant before giving up (and retrying).
TENANT_LOCK_WAIT = timedelta(minutes=5)
#: A rate limit whose reset time the ledger did not give is checked again after this long.
DEFAULT_LIMIT_WAIT = timedelta(hours=1)
#: Slack added to the ledger's ``Retry-After``, so the first call after the pause is past the reset.
LIMIT_MARGIN = timedelta(seconds=5)
#: How long validate trusts the cached chart and settings (s), unless ``MAMO_REVENUE_LEDGER_FACTS_TTL`` says
#: otherwise (0 = off); read when used, not at import (this module is imported while DAGs are parsed).
LEDGER_FACTS_TTL = timedelta(minutes=10)


def facts_ttl() -> timedelta:
    configured = os.environ.get("MAMO_REVENUE_LEDGER_FACTS_TTL")
    return LEDGER_FACTS_TTL if configured is None else timedelta(seconds=float(configured))


class LedgerTenantBusy(PeriodBusy):
    """Another post to the same ledger organisation held the tenant lock for too long."""

    guidance = "Another post to the same ledger organisation is under way; this task retries and posts after it."


# --- one post at a time per tenant -------------------------------------------------------------------


def tenant_lock_key(platform: str, tenant_id: str) -> int:
    """A stable signed 64-bit key for (platform, tenant): PostgreSQL's advisory lock key space."""
    digest = hashlib.sha256(f"mamo-revenue:post:{platform}:{tenant_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def tenant_lock(engine, platform: str, tenant_id: str, *, wait: timedelta = TENANT_LOCK_WAIT,
                poll: float = 0.2) -> Iterator[None]:
    """Hold the (platform, tenant) posting lock for the block; ``LedgerTenantBusy`` after ``wait``."""
    started = time.monotonic()
    backend = engine.dialect.name
    if backend == "postgresql":
        lock = _pg_lock(engine, platform, tenant_id, wait, poll)
    elif backend == "sqlite":
        lock = _file_lock(engine, platform, tenant_id, wait, poll)
    else:  # pragma: no cover - the product DB is PostgreSQL or SQLite
        raise ValueError(f"no tenant lock for a {backend} product DB")
    with lock:
        waited = time.monotonic() - started
        if waited >= 1:
            log.info("Waited %.1f s for the %s tenant %s: another post to it was under way.",
                     waited, platform, tenant_id)
        yield


def _busy(platform: str, tenant_id: str, wait: timedelta) -> LedgerTenantBusy:
    return LedgerTenantBusy(f"{platform} tenant {tenant_id}: another post held the posting lock for more "
                            f"than {wait.total_seconds():.0f} s")


@contextmanager
def _pg_lock(engine, platform: str, tenant_id: str, wait: timedelta, poll: float) -> Iterator[None]:
    import sqlalchemy as sa

    key = tenant_lock_key(platform, tenant_id)
    deadline = time.monotonic() + wait.total_seconds()
    conn = engine.connect()
    try:
        # A session-level lock, on a connection of its own: it outlives the commit below (so the
        # connection is not left idle in a transaction while the ledger answers) and dies with it.
        while not conn.execute(sa.select(sa.func.pg_try_advisory_lock(key))).scalar():
            conn.commit()
            if time.monotonic() >= deadline:
                raise _busy(platform, tenant_id, wait)
            time.sleep(poll)
        conn.commit()
        try:
            yield
        finally:
            try:
                conn.execute(sa.select(sa.func.pg_advisory_unlock(key)))
                conn.commit()
            except Exception:  # a broken connection released the lock already; never pool it
                conn.invalidate()
                raise
    finally:
        conn.close()


@contextmanager
def _file_lock(engine, platform: str, tenant_id: str, wait: timedelta, poll: float) -> Iterator[None]:
    import fcntl

    folder = Path(f"{engine.url.database}.locks")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"post-{tenant_lock_key(platform, tenant_id) & 0xFFFFFFFFFFFFFFFF:016x}.lock"
    deadline = time.monotonic() + wait.total_seconds()
    with path.open("a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise _busy(platform, tenant_id, wait) from None
                time.sleep(poll)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- rate limits: pause, never fail --------------------------------------------------------------------


def limit_wait(exc: LedgerRateLimited) -> timedelta:
    """How long to pause for a rate limit: the ledger's ``Retry-After`` plus a margin, or the default."""
    if exc.retry_after:
        return timedelta(seconds=float(exc.retry_after)) + LIMIT_MARGIN
    return DEFAULT_LIMIT_WAIT


def reschedule_after_limit(exc: LedgerRateLimited, *, now: datetime | None = None):
    """Airflow's reschedule for ``exc``: the task waits ``limit_wait`` without failing, then runs again."""
    from airflow.sdk.exceptions import AirflowRescheduleException

    until = (now or datetime.now(UTC)) + limit_wait(exc)
    log.warning("PAUSED: %s rate limit (%s) reached: %s. This task resumes by itself at %s UTC; nothing to "
                "do.", type(exc).__name__, exc.problem or "unknown", exc.args[0], f"{until:%Y-%m-%d %H:%M:%S}")
    return AirflowRescheduleException(reschedule_date=until)


_E = "mamo_revenue.errors."


class LedgerRetryPolicy(ExceptionRetryPolicy):
    """The project's rules (errors a retry cannot fix fail at once), with a rate limit's delay taken
    from the ledger's ``Retry-After`` rather than a fixed one."""

    def evaluate(self, exception, try_number, max_tries, context=None) -> RetryDecision:
        decision = super().evaluate(exception, try_number, max_tries, context)
        if isinstance(exception, LedgerRateLimited) and decision.action == RetryAction.RETRY:
            return RetryDecision.retry(limit_wait(exception), reason=f"ledger rate limit ({exception.problem})")
        return decision


RETRY_POLICY = LedgerRetryPolicy(
    rules=[
        RetryRule(exception=_E + "LedgerRateLimited", action=RetryAction.RETRY,
                  retry_delay=timedelta(minutes=5), reason="ledger rate limit"),
        RetryRule(exception=_E + "PeriodBusy", action=RetryAction.RETRY,
                  retry_delay=timedelta(minutes=1), reason="another run holds the period or the tenant"),
        RetryRule(exception=[_E + n for n in (
            "ChargeDataError", "CurrencyPolicyError", "JournalValidationError", "MamoAuthError",
            "LedgerAuthError", "LedgerValidationError", "LedgerConflict")],
            action=RetryAction.FAIL, reason="needs a person"),
    ]
)


# --- the chart of accounts and the organisation's settings, cached per tenant ----------------------------


@dataclass(frozen=True)
class LedgerFacts:
    """What validation checks a journal against; ``cached`` when it came from the cache."""

    accounts: list
    settings: object
    fetched_at: datetime
    cached: bool = False


class VariableFactsCache:
    """The cache in Airflow Variables: shared by every worker through the Execution API (tasks only)."""

    def get(self, key: str) -> str | None:
        from airflow.sdk import Variable

        return Variable.get(key, default=None)

    def set(self, key: str, value: str) -> None:
        from airflow.sdk import Variable

        Variable.set(key, value, description="Mamo revenue: cached chart of accounts and settings (no secret)")


def facts_key(platform: str, tenant_id: str) -> str:
    return f"mamo_revenue.ledger_facts.{platform}.{tenant_id}"


def ledger_facts(ledger, cache=None, *, ttl: timedelta | None = None, now: datetime | None = None,
                 refresh: bool = False) -> LedgerFacts:
    """The ledger's chart of accounts and settings: from ``cache`` while younger than ``ttl`` (unless
    ``refresh``), else read (two calls) and stored. A cache that fails is skipped, never an error."""
    from mamo_revenue.hooks.ledger import LedgerAccount, LedgerSettings

    ttl = facts_ttl() if ttl is None else ttl
    now = now or datetime.now(UTC)
    key = facts_key(ledger.platform, getattr(ledger, "tenant_id", None) or "?") if cache is not None else None
    if key is not None and ttl > timedelta(0) and not refresh:
        try:
            raw = cache.get(key)
            if raw:
                data = json.loads(raw)
                fetched = datetime.fromisoformat(data["fetched_at"])
                if timedelta(0) <= now - fetched < ttl:
                    settings = data["settings"]
                    lock = settings.get("lock_date")
                    return LedgerFacts(
                        accounts=[LedgerAccount(**a) for a in data["accounts"]],
                        settings=LedgerSettings(settings["organisation_name"], settings["base_currency"],
                                                date.fromisoformat(lock) if lock else None),
                        fetched_at=fetched, cached=True)
        except Exception as exc:  # a cache is an optimisation: read the ledger instead
            log.warning("Ledger facts cache unreadable (%s); reading the ledger.", type(exc).__name__)
    accounts, settings = ledger.list_accounts(), ledger.get_settings()
    facts = LedgerFacts(accounts=accounts, settings=settings, fetched_at=now)
    if key is not None and ttl > timedelta(0):
        try:
            cache.set(key, json.dumps({
                "fetched_at": now.isoformat(),
                "accounts": [{"id": a.id, "code": a.code, "name": a.name, "type": a.type, "active": a.active,
                              "status": a.status} for a in accounts],
                "settings": {"organisation_name": settings.organisation_name,
                             "base_currency": settings.base_currency,
                             "lock_date": settings.lock_date.isoformat() if settings.lock_date else None}}))
        except Exception as exc:
            log.warning("Could not cache the ledger facts (%s); the next run reads the ledger.", type(exc).__name__)
    return facts


def forget_ledger_facts(ledger, cache) -> None:
    """Drop the tenant's cached facts: the ledger refused a journal they let through (an account archived
    or a lock date moved within the window), so the next validation reads the ledger and says why."""
    if cache is None:
        return
    try:
        cache.set(facts_key(ledger.platform, getattr(ledger, "tenant_id", None) or "?"), "")
    except Exception as exc:
        log.warning("Could not drop the cached ledger facts (%s); they expire by themselves.", type(exc).__name__)
