"""The Mamo charge as the posting policy reads it: typed, in minor units, zone-less local time.

``parse_charge`` turns one raw charge object (list item, single charge or webhook body) into a
``Charge``. A ``created_date`` that does not parse raises ``ChargeDateError`` at once (the charge
cannot be placed in any period, so every run that sees it fails). Any other malformed field is
kept in ``Charge.problems`` and raised only by the run of the charge's own period
(ACCOUNTING.md, "Bad records").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum


class ChargeStatus(StrEnum):
    CONFIRMATION_REQUIRED = "confirmation_required"
    PROCESSING = "processing"
    CAPTURED = "captured"
    FAILED = "failed"
    REFUND_INITIATED = "refund_initiated"
    REFUNDED = "refunded"
    VOIDED = "voided"


#: Statuses that show the payment was captured: a sale (ACCOUNTING.md, "Events").
CAPTURED_STATUSES = frozenset({ChargeStatus.CAPTURED, ChargeStatus.REFUND_INITIATED, ChargeStatus.REFUNDED})


@dataclass(frozen=True, slots=True)
class Charge:
    id: str
    status: ChargeStatus
    created_local: datetime  # wall-clock time in the company's zone, naive
    currency: str  # amount_currency
    amount_minor: int
    refund_minor: int  # cumulative refund so far, in ``currency``
    settlement_currency: str | None = None
    settlement_minor: int | None = None
    settlement_date: date | None = None
    fee_currency: str | None = None
    fee_minor: int | None = None  # settlement_fee, before VAT
    fee_vat_minor: int | None = None  # settlement_vat
    #: (field, problem) for every malformed field other than created_date
    problems: tuple[tuple[str, str], ...] = ()
    raw: dict | None = field(default=None, compare=False, repr=False)

    @property
    def is_sale(self) -> bool:
        return self.status in CAPTURED_STATUSES
