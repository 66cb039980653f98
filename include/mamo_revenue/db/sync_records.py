"""Sync records: the posting state of each (company, period), and the claim that guards posting.

State machine::

    pending ─claim─► running ─► posted | nothing_to_post        (closed: never claimed again)
                       │  ▲
                       ▼  │ claim (a new attempt)
                     failed

Invariants:
- one record per (company, period), with one deterministic reference;
- at most one run holds an unexpired claim on a period at any time, on PostgreSQL and SQLite,
  whatever the concurrency: the claim is a single conditional ``UPDATE … WHERE`` whose row count
  says who won (PostgreSQL re-checks the condition after a concurrent commit; SQLite serialises
  writers with ``BEGIN IMMEDIATE``);
- a claim older than its lease belongs to a crashed run and may be taken over; the same run id
  (an Airflow task retry) may re-claim its own claim at once;
- a closed period is never reopened by a run: ``mark_posted`` with another journal id raises. Only a
  person's re-sync reopens one (``reopen_period``), after the ledger voided or reversed its journal;
  the next run then posts again under the same reference.

Functions take an open ``Session``; the caller commits. Commit right after ``claim_period`` so the
claim is visible to other runs before the slow work starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from mamo_revenue.db.models import CLOSED_SYNC_STATUSES, SyncRecord, SyncStatus, utcnow
from mamo_revenue.db.session import insert_for
from mamo_revenue.errors import MamoRevenueError, PeriodBusy
from mamo_revenue.periods import Period

DEFAULT_LEASE = timedelta(minutes=30)
_CLOSED = tuple(s.value for s in CLOSED_SYNC_STATUSES)


class SyncRecordConflict(MamoRevenueError):
    """A state change would contradict what the sync record already says (e.g. a second journal)."""

    guidance = (
        "The period's sync record and the ledger disagree; compare the ledger's journals with this "
        "reference before re-syncing."
    )


@dataclass(frozen=True, slots=True)
class ClaimResult:
    """Outcome of ``claim_period``: ``claimed`` True when this run may post the period."""

    claimed: bool
    record: SyncRecord

    @property
    def status(self) -> SyncStatus:
        return SyncStatus(self.record.status)

    @property
    def already_closed(self) -> bool:
        return not self.claimed and self.record.closed


def _key(company_id: str, period_key: str) -> sa.ColumnElement[bool]:
    return sa.and_(SyncRecord.company_id == company_id, SyncRecord.period_key == period_key)


def _reload(session: Session, company_id: str, period_key: str) -> SyncRecord | None:
    return session.scalars(
        sa.select(SyncRecord).where(_key(company_id, period_key)).execution_options(populate_existing=True)
    ).one_or_none()


def get_sync_record(session: Session, company_id: str, period_key: str) -> SyncRecord | None:
    """The record of one (company, period), freshly read."""
    return _reload(session, company_id, period_key)


def closed_period_keys(session: Session, company_id: str) -> set[str]:
    """Keys of the company's periods that are posted or had nothing to post."""
    return set(
        session.scalars(
            sa.select(SyncRecord.period_key).where(
                SyncRecord.company_id == company_id, SyncRecord.status.in_(_CLOSED)
            )
        )
    )


def list_sync_records(session: Session, company_id: str | None = None, limit: int = 100) -> list[SyncRecord]:
    """The newest records first (by period, then company)."""
    query = sa.select(SyncRecord).order_by(
        SyncRecord.period_first_day.desc(), SyncRecord.company_id, SyncRecord.id.desc()
    )
    if company_id is not None:
        query = query.where(SyncRecord.company_id == company_id)
    return list(session.scalars(query.limit(limit)))


def _ensure_record(session: Session, company_id: str, period: Period, reference: str, now: datetime) -> None:
    """Insert the pending record if missing; a concurrent insert of the same key is a no-op."""
    session.execute(
        insert_for(session)(SyncRecord.__table__)
        .values(
            company_id=company_id,
            period_key=period.key,
            period_label=period.label,
            period_first_day=period.first_day,
            period_last_day=period.last_day,
            reference=reference,
            status=SyncStatus.PENDING.value,
            attempts=0,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["company_id", "period_key"])
    )


def claim_period(
    session: Session,
    company_id: str,
    period: Period,
    reference: str,
    run_id: str,
    lease: timedelta = DEFAULT_LEASE,
    *,
    now: datetime | None = None,
) -> ClaimResult:
    """Take the right to post ``period`` for ``run_id``.

    Returns ``ClaimResult(claimed=True)`` with the record now ``running`` (attempts + 1), or
    ``claimed=False`` when the period is already closed (posted or nothing_to_post). Raises
    ``PeriodBusy`` while another run holds an unexpired claim.
    """
    now = now or utcnow()
    _ensure_record(session, company_id, period, reference, now)
    claimable = sa.and_(
        _key(company_id, period.key),
        SyncRecord.status.not_in(_CLOSED),
        sa.or_(
            SyncRecord.status != SyncStatus.RUNNING.value,
            SyncRecord.claimed_at.is_(None),
            SyncRecord.claimed_at < now - lease,
            SyncRecord.claimed_by == run_id,
        ),
    )
    won = session.execute(
        sa.update(SyncRecord)
        .where(claimable)
        .values(
            status=SyncStatus.RUNNING.value,
            claimed_by=run_id,
            claimed_at=now,
            attempts=SyncRecord.attempts + 1,
            run_id=run_id,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    record = _reload(session, company_id, period.key)
    assert record is not None  # inserted above, and records are never deleted
    if record.reference != reference:
        raise SyncRecordConflict(
            f"company {company_id}, period {period.label}: the sync record's reference is {record.reference!r}, "
            f"not {reference!r}; a reference never changes once used"
        )
    if won == 1:
        return ClaimResult(True, record)
    if record.closed:
        return ClaimResult(False, record)
    raise PeriodBusy(
        f"company {company_id}, period {period.label}: run {record.claimed_by!r} holds the posting claim since "
        f"{record.claimed_at:%Y-%m-%d %H:%M:%S} UTC (lease {lease})"
    )


def mark_posted(
    session: Session,
    company_id: str,
    period_key: str,
    *,
    run_id: str,
    ledger_journal_id: str,
    ledger_url: str | None = None,
    totals: Mapping[str, Any] | None = None,
    line_count: int | None = None,
    now: datetime | None = None,
) -> SyncRecord:
    """Record that the ledger holds the period's journal; the period is closed for good.

    The ledger is the truth: this succeeds whoever holds the claim (a run whose lease lapsed may
    still have posted). Recording the same journal again is a no-op; another journal id for a
    closed period raises ``SyncRecordConflict``.
    """
    now = now or utcnow()
    record = _require(session, company_id, period_key)
    if record.status == SyncStatus.POSTED and record.ledger_journal_id == ledger_journal_id:
        return record
    if record.closed:
        raise SyncRecordConflict(
            f"company {company_id}, period {period_key}: already {record.status} "
            f"(journal {record.ledger_journal_id!r}); refusing to record journal {ledger_journal_id!r}"
        )
    return _close(
        session,
        record,
        status=SyncStatus.POSTED,
        run_id=run_id,
        now=now,
        ledger_journal_id=ledger_journal_id,
        ledger_url=ledger_url,
        totals=dict(totals) if totals is not None else None,
        line_count=line_count,
        posted_at=now,
    )


def mark_nothing_to_post(
    session: Session,
    company_id: str,
    period_key: str,
    *,
    run_id: str,
    totals: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> SyncRecord:
    """Record that the period had no events: closed, nothing posted. Idempotent."""
    now = now or utcnow()
    record = _require(session, company_id, period_key)
    if record.status == SyncStatus.NOTHING_TO_POST:
        return record
    if record.closed:
        raise SyncRecordConflict(
            f"company {company_id}, period {period_key}: already posted as journal {record.ledger_journal_id!r}"
        )
    return _close(
        session,
        record,
        status=SyncStatus.NOTHING_TO_POST,
        run_id=run_id,
        now=now,
        totals=dict(totals) if totals is not None else None,
        line_count=0,
    )


def mark_failed(
    session: Session,
    company_id: str,
    period: Period | str,
    *,
    error_class: str,
    message: str,
    guidance: str | None = None,
    run_id: str | None = None,
    reference: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Record a failed attempt and release the claim; returns False (and changes nothing) when the
    period is closed or has no record.

    Pass the failing run's ``run_id``: then a run whose lease lapsed and was taken over cannot
    mark the new holder's attempt failed (returns False). Without it, any open record is marked
    failed and its claim released, whoever holds it.

    Given a ``Period`` and its ``reference``, a missing record is created first, so a run that
    fails before claiming (a bad charge, an invalid journal) still leaves its error in the history.
    """
    now = now or utcnow()
    if isinstance(period, Period):
        if reference is not None:
            _ensure_record(session, company_id, period, reference, now)
        period_key = period.key
    else:
        period_key = period
    conditions = [_key(company_id, period_key), SyncRecord.status.not_in(_CLOSED)]
    if run_id is not None:
        conditions.append(sa.or_(SyncRecord.claimed_by.is_(None), SyncRecord.claimed_by == run_id))
    done = session.execute(
        sa.update(SyncRecord)
        .where(*conditions)
        .values(
            status=SyncStatus.FAILED.value,
            claimed_by=None,
            claimed_at=None,
            error_class=error_class[:200],
            error_message=message,
            guidance=guidance,
            run_id=run_id,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    _reload(session, company_id, period_key)
    return done == 1


def _require(session: Session, company_id: str, period_key: str) -> SyncRecord:
    record = _reload(session, company_id, period_key)
    if record is None:
        raise LookupError(
            f"company {company_id}, period {period_key}: no sync record (claim the period first)"
        )
    return record


def _close(
    session: Session, record: SyncRecord, *, status: SyncStatus, run_id: str, now: datetime, **values: Any
) -> SyncRecord:
    """Close the record with a conditional UPDATE, so two closers cannot both succeed."""
    done = session.execute(
        sa.update(SyncRecord)
        .where(SyncRecord.id == record.id, SyncRecord.status.not_in(_CLOSED))
        .values(
            status=status.value,
            claimed_by=None,
            claimed_at=None,
            error_class=None,
            error_message=None,
            guidance=None,
            run_id=run_id,
            updated_at=now,
            **values,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    fresh = _reload(session, record.company_id, record.period_key)
    assert fresh is not None
    if done != 1 and not (
        fresh.status == status and fresh.ledger_journal_id == values.get("ledger_journal_id")
    ):
        raise SyncRecordConflict(
            f"company {record.company_id}, period {record.period_key}: closed concurrently as {fresh.status} "
            f"(journal {fresh.ledger_journal_id!r})"
        )
    return fresh


def reopen_period(session: Session, company_id: str, period_key: str, *, now: datetime | None = None) -> SyncRecord:
    """A re-sync: make a closed (or failed) period claimable again; returns the record, now ``pending``.

    The caller voids the period's journal in the ledger first (``LedgerHook.void_journal``); the
    journal id stays on the record until the next post replaces it. Refuses, with ``PeriodBusy``, while
    a run holds an unexpired claim; ``LookupError`` when the period has no record.
    """
    now = now or utcnow()
    record = _require(session, company_id, period_key)
    done = session.execute(
        sa.update(SyncRecord)
        .where(
            SyncRecord.id == record.id,
            sa.or_(SyncRecord.status != SyncStatus.RUNNING.value, SyncRecord.claimed_at < now - DEFAULT_LEASE),
        )
        .values(status=SyncStatus.PENDING.value, claimed_by=None, claimed_at=None, error_class=None,
                error_message=None, guidance=None, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    fresh = _reload(session, company_id, period_key)
    assert fresh is not None
    if done != 1:
        raise PeriodBusy(f"company {company_id}, period {fresh.period_label}: run {fresh.claimed_by!r} is posting it now")
    return fresh
