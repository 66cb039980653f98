"""The companies' audit trail: who did what on the Revenue accounting page, and when.

``detail`` is plain words for the page: never a token, an API key or a secret.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from mamo_revenue.db.models import CompanyActivity, SyncRecord, utcnow


def record_activity(
    session: Session,
    company_id: str,
    *,
    user: str,
    action: str,
    detail: str | None = None,
    period_label: str | None = None,
    run_id: str | None = None,
    now: datetime | None = None,
) -> CompanyActivity:
    row = CompanyActivity(
        company_id=company_id,
        at=now or utcnow(),
        user_name=user[:250],
        action=action[:40],
        detail=detail,
        period_label=period_label[:32] if period_label else None,
        run_id=run_id,
    )
    session.add(row)
    session.flush()
    return row


def list_activity(session: Session, company_id: str, limit: int = 20) -> list[CompanyActivity]:
    """The company's activity, newest first."""
    return list(
        session.scalars(
            sa.select(CompanyActivity)
            .where(CompanyActivity.company_id == company_id)
            .order_by(CompanyActivity.at.desc(), CompanyActivity.id.desc())
            .limit(limit)
        )
    )


#: Statuses that are an outcome of a run (what the page's notification reports).
OUTCOMES = ("posted", "nothing_to_post", "failed")


def latest_sync_records(session: Session) -> dict[str, SyncRecord]:
    """Each company's latest outcome: its most recently changed record that is posted, nothing to post
    or failed; a company with none yet gets its most recently changed record (running or pending)."""
    def newest(where) -> dict[str, SyncRecord]:
        last = (
            sa.select(SyncRecord.company_id, sa.func.max(SyncRecord.updated_at).label("at"))
            .where(where)
            .group_by(SyncRecord.company_id)
            .subquery()
        )
        rows = session.scalars(
            sa.select(SyncRecord)
            .join(last, sa.and_(SyncRecord.company_id == last.c.company_id, SyncRecord.updated_at == last.c.at))
            .where(where)
            .order_by(SyncRecord.company_id, SyncRecord.id.desc())
        )
        found: dict[str, SyncRecord] = {}
        for record in rows:
            found.setdefault(record.company_id, record)
        return found

    return newest(sa.true()) | newest(SyncRecord.status.in_(OUTCOMES))
