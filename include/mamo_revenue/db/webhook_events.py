"""Mamo webhook events: recorded once per distinct event, however often Mamo delivers it.

Invariants: one row per ``(company_id, event_key)``; a repeated delivery changes only
``deliveries`` and ``last_received_at``; ``received_at`` (the first delivery) never changes, so it
dates the event. Nothing here is ever booked: the sync re-reads charges from Mamo's API.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from mamo_revenue.db.models import MamoWebhookEvent, utcnow
from mamo_revenue.db.session import insert_for

#: Event types whose announcement dates a refund, as Mamo sends them (the ``payment.*`` family
#: mirrors ``charge.*``, MAMO_API.md §11).
REFUND_EVENT_TYPES = frozenset(
    f"{family}.{event}" for family in ("charge", "payment") for event in ("refund_initiated", "refunded")
)


def record_webhook_event(
    session: Session,
    company_id: str,
    *,
    event_key: str,
    event_type: str,
    charge_id: str,
    charge_status: str | None = None,
    cumulative_refund_minor: int | None = None,
    now: datetime | None = None,
) -> bool:
    """Record one delivery; True when the event is new, False for a duplicate (counted, not stored)."""
    now = now or utcnow()
    inserted = session.execute(
        insert_for(session)(MamoWebhookEvent.__table__)
        .values(
            company_id=company_id,
            event_key=event_key[:250],
            event_type=event_type[:60],
            charge_id=charge_id[:100],
            charge_status=(charge_status or None) and charge_status[:40],
            cumulative_refund_minor=cumulative_refund_minor,
            received_at=now,
            last_received_at=now,
            deliveries=1,
        )
        .on_conflict_do_nothing(index_elements=["company_id", "event_key"])
    ).rowcount
    if inserted == 1:
        return True
    session.execute(
        sa.update(MamoWebhookEvent)
        .where(MamoWebhookEvent.company_id == company_id, MamoWebhookEvent.event_key == event_key[:250])
        .values(deliveries=MamoWebhookEvent.deliveries + 1, last_received_at=now)
        .execution_options(synchronize_session=False)
    )
    return False


def list_webhook_events(session: Session, company_id: str, limit: int = 50) -> list[MamoWebhookEvent]:
    """The company's events, newest first."""
    return list(
        session.scalars(
            sa.select(MamoWebhookEvent)
            .where(MamoWebhookEvent.company_id == company_id)
            .order_by(MamoWebhookEvent.received_at.desc(), MamoWebhookEvent.id.desc())
            .limit(limit)
        )
    )


def refund_announcements(session: Session, company_id: str) -> dict[tuple[str, int], datetime]:
    """(charge id, cumulative refund in minor units) → when Mamo first announced that refund.

    What the extract step can use to date a refund by when it happened rather than by the run that
    first saw it (docs: README, "Mamo webhooks"): the refund event store is keyed the same way.
    """
    rows = session.execute(
        sa.select(
            MamoWebhookEvent.charge_id,
            MamoWebhookEvent.cumulative_refund_minor,
            sa.func.min(MamoWebhookEvent.received_at),
        )
        .where(
            MamoWebhookEvent.company_id == company_id,
            MamoWebhookEvent.event_type.in_(REFUND_EVENT_TYPES),
            MamoWebhookEvent.cumulative_refund_minor.is_not(None),
        )
        .group_by(MamoWebhookEvent.charge_id, MamoWebhookEvent.cumulative_refund_minor)
    )
    out = {}
    for charge_id, cumulative, first in rows:
        if first is not None and first.tzinfo is None:
            first = first.replace(tzinfo=UTC)
        out[(charge_id, int(cumulative))] = first
    return out
