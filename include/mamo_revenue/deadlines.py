"""The posting deadline: an alert when a period is still not posted a while after it closed.

Why a product check (the ``mamo_deadlines`` DAG, every 15 minutes) rather than Airflow 3's
``DeadlineAlert``: a DeadlineAlert watches a DAG *run* (queued-at or logical date plus an interval,
fired by the triggerer, experimental in 3.3), so it says nothing when the run was never created (a
paused DAG, a scheduler down, a company whose DAG vanished), and it fires for every backfill run whose
logical date is long past. What finance needs is about the *period*: "is 2026-11-20 of acme posted
six hours after the day ended?", which the sync records answer directly, whatever ran or did not.

Each deadline is checked once: a check run looks at the deadlines that fell since the previous
successful check (its data interval, stretched back to the last success after downtime, at most
``MAX_LOOKBACK``), so an overdue period is alerted once, not every 15 minutes. The grace is the
Airflow Variable ``mamo_revenue_post_deadline_hours`` (default 6), read at run time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

log = logging.getLogger("mamo_revenue.deadlines")

GRACE_VARIABLE = "mamo_revenue_post_deadline_hours"
DEFAULT_GRACE = timedelta(hours=6)
MAX_LOOKBACK = timedelta(days=2)


@dataclass(frozen=True)
class Overdue:
    company: str
    company_name: str
    period: str
    closed_at: datetime  # when the period ended, UTC
    status: str  # the sync record's status, or "missing"
    run_id: str | None
    error: str | None
    guidance: str | None


def _closed_at(period, tz: str) -> datetime:
    return period.local_end.replace(tzinfo=ZoneInfo(tz)).astimezone(UTC)


def overdue_periods(engine, *, window_start: datetime, window_end: datetime, grace: timedelta) -> list[Overdue]:
    """Periods of active companies whose deadline (end + ``grace``) fell in [start, end) and that are
    neither posted nor empty."""
    from mamo_revenue.db import repository as repo
    from mamo_revenue.db.session import session_scope
    from mamo_revenue.periods import Period

    found = []
    with session_scope(engine, read_only=True) as session:
        for company in repo.list_companies(session):
            if company.status != "active" or company.first_period is None:
                continue
            period = Period.last_complete_before(window_end - grace, company.timezone, company.frequency)
            first = Period.containing(company.first_period, company.frequency)
            while period >= first and _closed_at(period, company.timezone) + grace >= window_start:
                closed_at = _closed_at(period, company.timezone)
                if closed_at + grace < window_end:
                    record = repo.get_sync_record(session, company.id, period.key)
                    if record is None or not record.closed:
                        found.append(Overdue(
                            company.id, company.name, period.label, closed_at,
                            record.status if record else "missing", record.run_id if record else None,
                            f"{record.error_class}: {record.error_message}" if record and record.error_class else None,
                            record.guidance if record else None))
                period = period.previous()
    return found


def grace_from_variable() -> timedelta:
    from airflow.sdk import Variable

    value = Variable.get(GRACE_VARIABLE, default=None)
    return timedelta(hours=float(value)) if value not in (None, "") else DEFAULT_GRACE


def check_deadlines(engine=None, *, window_start: datetime, window_end: datetime, grace: timedelta,
                    send=None) -> list[Overdue]:
    """Alert every period whose deadline fell in the window; returns them."""
    from mamo_revenue.dag_factory import dag_id_for
    from mamo_revenue.notifiers import deadline_alert, dispatch

    if engine is None:
        from mamo_revenue.sync import product_engine

        engine = product_engine()
    send = send or dispatch
    overdue = overdue_periods(engine, window_start=window_start, window_end=window_end, grace=grace)
    hours = grace.total_seconds() / 3600
    for item in overdue:
        send(deadline_alert(item.company, item.period, item.status, hours, dag_id=dag_id_for(item.company),
                            run_id=item.run_id, error=item.error, guidance=item.guidance,
                            company_name=item.company_name, closed_at=item.closed_at))
    log.info("Deadline check %s – %s (grace %g h): %d period(s) not posted in time%s", f"{window_start:%Y-%m-%d %H:%M}",
             f"{window_end:%Y-%m-%d %H:%M}", hours, len(overdue),
             ": " + ", ".join(f"{o.company} {o.period} ({o.status})" for o in overdue) if overdue else ".")
    return overdue


def check_task(**context) -> list[str]:
    """The ``mamo_deadlines`` task: the window is this run's interval, reaching back to the last success."""
    def plain(value):  # the context hands some values over as lazy proxies
        value = getattr(value, "__wrapped__", value)
        return None if value is None else datetime.fromisoformat(value.isoformat())

    end = plain(context.get("data_interval_end")) or plain(context["dag_run"].run_after)
    start = plain(context.get("prev_data_interval_end_success")) or plain(context.get("data_interval_start")) \
        or end - timedelta(minutes=15)
    start = max(start, end - MAX_LOOKBACK)
    overdue = check_deadlines(window_start=start, window_end=end, grace=grace_from_variable())
    return [f"{o.company} {o.period} {o.status}" for o in overdue]
