"""Mamo webhook deliveries (MAMO_API.md §8): authenticate, read, key, record — never book.

Mamo signs nothing: each delivery carries, byte for byte, the ``Authorization`` header registered with
the webhook (``auth_header``), so the receiver compares it in constant time with the company's stored
secret. The body is the charge itself plus ``event_type``, with no event id: an event is keyed by
``<event type>:<charge id>:<cumulative refund minor>`` (the ``payment.*`` family read as ``charge.*``),
so a repeated delivery records nothing new while a later partial refund of the same charge is a new
event. ``{"ping": "pong"}`` (sent when the webhook is registered) is answered, not recorded.

Amounts in a delivery are never booked: the sync re-reads every charge from the API. What a delivery
adds is *when* Mamo announced it, which dates refunds (``repository.refund_announcements``).
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from mamo_revenue.money import MoneyFormatError, to_minor


class BadDelivery(ValueError):
    """The body is not a Mamo charge event this receiver understands (answered 400, not recorded)."""


@dataclass(frozen=True)
class ChargeEvent:
    event_type: str  # as Mamo sent it
    charge_id: str
    charge_status: str | None
    cumulative_refund_minor: int | None  # of the charge's own currency; a key, not a booking

    @property
    def canonical_type(self) -> str:
        return canonical_event_type(self.event_type)

    @property
    def key(self) -> str:
        refund = "" if self.cumulative_refund_minor is None else str(self.cumulative_refund_minor)
        return f"{self.canonical_type}:{self.charge_id}:{refund}"


PING = object()


def canonical_event_type(event_type: str) -> str:
    """``payment.refunded`` → ``charge.refunded``: the two families mirror each other (§11)."""
    return "charge." + event_type[len("payment."):] if event_type.startswith("payment.") else event_type


def authorised(header: str | None, secret: str | None) -> bool:
    """Whether ``header`` is the company's webhook secret, compared in constant time.

    A missing header or secret still costs one comparison, so timing says nothing about which is absent.
    """
    expected = (secret or "").encode("utf-8")
    given = (header or "").encode("utf-8")
    if not expected:
        hmac.compare_digest(given, b"\0" * max(len(given), 1))
        return False
    return hmac.compare_digest(given, expected)


def parse_delivery(body: bytes) -> ChargeEvent | object:
    """``PING`` for the registration ping, else the ``ChargeEvent`` a delivery announces.

    Raises ``BadDelivery`` for a body that is not JSON, or an object without a charge ``id`` and an
    ``event_type``.
    """
    try:
        data = json.loads(body or b"null", parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        raise BadDelivery("the body is not JSON") from None
    if data == {"ping": "pong"}:
        return PING
    if not isinstance(data, dict):
        raise BadDelivery("the body is not a JSON object")
    event_type, charge_id = data.get("event_type"), data.get("id")
    if not isinstance(event_type, str) or not event_type.strip():
        raise BadDelivery("the body has no event_type")
    if not isinstance(charge_id, str) or not charge_id.strip():
        raise BadDelivery("the body has no charge id")
    refund = data.get("refund_amount")
    try:
        refund_minor = None if refund in (None, "") else to_minor(refund)
    except MoneyFormatError:
        raise BadDelivery("refund_amount is not an amount") from None
    status = data.get("status")
    return ChargeEvent(event_type.strip(), charge_id.strip(), status if isinstance(status, str) else None,
                       refund_minor)


def record(session, company_id: str, event: ChargeEvent, *, now: datetime | None = None) -> bool:
    """Store the event once; True when it is new, False for a duplicate delivery."""
    from mamo_revenue.db.webhook_events import record_webhook_event

    return record_webhook_event(
        session, company_id, event_key=event.key, event_type=event.event_type, charge_id=event.charge_id,
        charge_status=event.charge_status, cumulative_refund_minor=event.cumulative_refund_minor, now=now)
