"""A period's revenue events → one balanced journal (ACCOUNTING.md, "The journal for one period").

With G gross sales, Gv their VAT, F fees, Fv VAT on fees, R refunds and Rv their VAT, all sums of
per-event integer figures (VAT rounded half-up once per sale and per refund event):

    debit  clearing G − F − Fv − R (credit when negative), fees F, VAT recoverable Fv,
           refunds R − Rv, VAT payable on refunds Rv
    credit sales G − Gv, VAT payable on sales Gv

Debits and credits both come to G (plus |clearing| when the clearing line is a credit), so the
journal balances to the minor unit by construction; ``validation`` still checks it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import TypeVar

import numpy as np
import pandas as pd

from mamo_revenue.events import EventKind, mul_div_half_up, text_in
from mamo_revenue.hooks.ledger import Side
from mamo_revenue.money import format_minor, vat_rate_fraction
from mamo_revenue.periods import Period


class Category(StrEnum):
    """The mapping keys: each journal line books one category to one mapped ledger account."""

    CLEARING = "clearing"
    SALES = "sales"
    REFUNDS = "refunds"
    FEES = "fees"
    VAT_PAYABLE = "vat_payable"
    VAT_REFUNDS = "vat_refunds"
    VAT_RECOVERABLE = "vat_recoverable"


#: Line descriptions start with these words, then the period label.
CATEGORY_LABELS: Mapping[Category, str] = MappingProxyType(
    {
        Category.CLEARING: "Mamo clearing",
        Category.FEES: "Processing fees",
        Category.VAT_RECOVERABLE: "VAT recoverable on fees",
        Category.REFUNDS: "Refunds",
        Category.VAT_REFUNDS: "VAT payable on refunds",
        Category.SALES: "Sales",
        Category.VAT_PAYABLE: "VAT payable on sales",
    }
)

#: An unmapped category books to the account of its fallback (ACCOUNTING.md, the journal table).
mapping_fallbacks: Mapping[Category, Category] = MappingProxyType(
    {
        Category.VAT_REFUNDS: Category.VAT_PAYABLE,
        Category.VAT_RECOVERABLE: Category.VAT_PAYABLE,
        Category.REFUNDS: Category.SALES,
    }
)

#: Line order: debits, then credits; the clearing line leads the debits or closes the credits.
_DEBIT_ORDER = (Category.FEES, Category.VAT_RECOVERABLE, Category.REFUNDS, Category.VAT_REFUNDS)
_CREDIT_ORDER = (Category.SALES, Category.VAT_PAYABLE)


@dataclass(frozen=True, slots=True)
class MappedAccount:
    """The ledger account a company mapped a category to (what the mapping screen stores)."""

    account_id: str
    code: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class JournalLine:
    """One side, an integer amount of base-currency minor units (positive in a valid journal)."""

    category: Category
    side: Side
    amount_minor: int
    description: str

    def __post_init__(self):
        if not isinstance(self.side, Side):
            raise TypeError(f"side must be a Side, not {self.side!r}")
        if not isinstance(self.amount_minor, int) or isinstance(self.amount_minor, bool):
            raise TypeError(f"amount_minor must be an int count of minor units, not {self.amount_minor!r}")
        object.__setattr__(self, "category", Category(self.category))


@dataclass(frozen=True, slots=True)
class Journal:
    """One company's journal for one period; ``lines`` is empty when there is nothing to post."""

    company_id: str
    period: Period
    reference: str
    narration: str
    lines: tuple[JournalLine, ...]
    totals: dict[str, int] = field(default_factory=dict, hash=False)

    @property
    def total_debit(self) -> int:
        return sum(line.amount_minor for line in self.lines if line.side is Side.DEBIT)

    @property
    def total_credit(self) -> int:
        return sum(line.amount_minor for line in self.lines if line.side is Side.CREDIT)

    @property
    def journal_date(self) -> date:
        return self.period.last_day

    @property
    def is_empty(self) -> bool:
        return not self.lines


def reference_for(company_id: str, period: Period) -> str:
    """``MAMO-<company>-<period key>``: the ledger reference and the idempotency key."""
    return f"MAMO-{company_id}-{period.key}"


T = TypeVar("T")


def resolve_account(category: Category | str, mapping: Mapping[str, T]) -> T | None:
    """The mapping entry a category books to, following ``mapping_fallbacks``; None when unmapped."""
    current: Category | None = Category(category)
    seen: set[Category] = set()
    while current is not None and current not in seen:
        seen.add(current)
        account = mapping.get(current.value)
        if account is not None and account != "":
            return account
        current = mapping_fallbacks.get(current)
    return None


def build_journal(
    events: pd.DataFrame, *, company_id: str, period: Period, sales_vat_rate: Decimal | None
) -> Journal:
    """The journal of ``period`` from all its events (every ``period_key`` must be ``period.key``).

    ``events`` is an events frame as the DB returns it or as ``derive_events`` returns it (text
    columns object or ``category``; only ``kind``, ``period_key`` and ``amount_minor`` are read).

    ``sales_vat_rate`` is the company's VAT rate on sales (prices VAT-inclusive), None when it
    charges none. ``totals`` carries G, Gv, F, Fv, R, Rv, the signed clearing figure, every
    category's amount and event counts, for the sync history.
    """
    column = events["amount_minor"]
    if len(events) and not pd.api.types.is_integer_dtype(column.dtype):
        raise TypeError(f"amount_minor must hold integer minor units, not {column.dtype}")
    amounts = column.to_numpy(dtype=np.int64)  # a null amount raises here
    by_kind = {kind: text_in(events["kind"], [kind.value]) for kind in EventKind}
    if len(events):
        if (amounts <= 0).any():
            raise ValueError("every event amount must be a positive count of minor units")
        if not text_in(events["period_key"], [period.key]).all():
            raise ValueError(f"build_journal got events of periods other than {period.key}")
        if sum(np.count_nonzero(mask) for mask in by_kind.values()) != len(events):
            known = {kind.value for kind in EventKind}
            raise ValueError(f"unknown event kinds {sorted(set(map(str, events['kind'])) - known)}")
    sales = amounts[by_kind[EventKind.SALE]]
    refunds = amounts[by_kind[EventKind.REFUND]]
    gross, refunded = int(sales.sum()), int(refunds.sum())
    fees = int(amounts[by_kind[EventKind.FEE]].sum())
    fee_vat = int(amounts[by_kind[EventKind.FEE_VAT]].sum())
    sales_vat, refunds_vat = _vat_inside(sales, sales_vat_rate), _vat_inside(refunds, sales_vat_rate)

    clearing = gross - fees - fee_vat - refunded
    amounts_by_category = {
        Category.CLEARING: clearing,
        Category.FEES: fees,
        Category.VAT_RECOVERABLE: fee_vat,
        Category.REFUNDS: refunded - refunds_vat,
        Category.VAT_REFUNDS: refunds_vat,
        Category.SALES: gross - sales_vat,
        Category.VAT_PAYABLE: sales_vat,
    }
    debits = ((Category.CLEARING,) if clearing > 0 else ()) + _DEBIT_ORDER
    credits = _CREDIT_ORDER + ((Category.CLEARING,) if clearing < 0 else ())
    lines = tuple(
        JournalLine(
            category, side, abs(amounts_by_category[category]), f"{CATEGORY_LABELS[category]} {period.label}"
        )
        for side, categories in ((Side.DEBIT, debits), (Side.CREDIT, credits))
        for category in categories
        if amounts_by_category[category] != 0
    )
    totals = {"G": gross, "Gv": sales_vat, "F": fees, "Fv": fee_vat, "R": refunded, "Rv": refunds_vat}
    totals.update({category.value: amount for category, amount in amounts_by_category.items()})
    totals.update(events=len(events), sale_events=int(sales.size), refund_events=int(refunds.size))
    reference = reference_for(company_id, period)
    narration = f"{reference} Mamo revenue {period.label}"
    if lines:
        narration += (
            f": sales {format_minor(gross)}, refunds {format_minor(refunded)}, fees {format_minor(fees)}"
        )
    return Journal(company_id, period, reference, narration, lines, totals)


def _vat_inside(amounts: np.ndarray, rate: Decimal | None) -> int:
    """Σ round_half_up(amount × rate / (1 + rate)), rounding each event (``money.vat_inside``)."""
    if rate is None or amounts.size == 0:
        return 0
    numerator, denominator = vat_rate_fraction(rate)
    if numerator == 0:
        return 0
    return int(mul_div_half_up(amounts, numerator, denominator + numerator).sum())
