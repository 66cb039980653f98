"""The mapping screen's rules: which ledger accounts suit which category, and what a mapping must be.

Accounts of a fitting type come first in each dropdown (the ledger's own type words, Xero's upper-case
and Zoho's snake_case alike); inactive accounts are listed last, disabled. Saving refuses an unknown or
inactive account, a missing required category, and a clearing account shared with a profit-and-loss
category. Categories with a fallback (``journal.mapping_fallbacks``) may stay unmapped.
"""

from __future__ import annotations

from dataclasses import dataclass

from mamo_revenue.journal import Category, mapping_fallbacks

_ASSET = {"current", "bank", "prepayment", "other_current_asset", "cash", "accounts_receivable",
          "payment_clearing", "other_asset"}
_INCOME = {"revenue", "sales", "otherincome", "income", "other_income"}
_EXPENSE = {"expense", "overheads", "directcosts", "cost_of_goods_sold", "other_expense"}
_LIABILITY = {"currliab", "liability", "other_current_liability", "output_tax", "tax_payable"}

FITTING_TYPES: dict[str, frozenset[str]] = {
    Category.CLEARING: frozenset(_ASSET),
    Category.SALES: frozenset(_INCOME),
    Category.REFUNDS: frozenset(_INCOME),
    Category.FEES: frozenset(_EXPENSE),
    Category.VAT_PAYABLE: frozenset(_LIABILITY),
    Category.VAT_REFUNDS: frozenset(_LIABILITY),
    Category.VAT_RECOVERABLE: frozenset(_LIABILITY | {"current", "other_current_asset", "input_tax"}),
}
CATEGORIES = tuple(c.value for c in Category)
REQUIRED = tuple(c.value for c in Category if c not in mapping_fallbacks)
FALLBACK_OF = {c.value: f.value for c, f in mapping_fallbacks.items()}


@dataclass(frozen=True)
class Option:
    id: str
    label: str
    fitting: bool
    active: bool


def fits(category: str, account) -> bool:
    return (account.type or "").lower() in FITTING_TYPES[category]


def options(category: str, accounts) -> list[Option]:
    """The dropdown of one category: fitting active accounts, other active ones, then inactive ones."""
    def label(a) -> str:
        return f"{a.code} · {a.name}" if a.code else a.name

    def rank(a) -> tuple:
        return (not a.active, not fits(category, a), a.code or "~", a.name)

    return [Option(a.id, label(a) + ("" if a.active else " (inactive)"), fits(category, a), a.active)
            for a in sorted(accounts, key=rank)]


def validate(chosen: dict[str, str], accounts) -> tuple[dict[str, object], list[str], list[str]]:
    """``chosen``: category → account id ('' for unmapped). Returns (category → account, errors, warnings)."""
    by_id = {a.id: a for a in accounts}
    mapped, errors, warnings = {}, [], []
    for category in CATEGORIES:
        account_id = (chosen.get(category) or "").strip()
        if not account_id:
            if category in REQUIRED:
                errors.append(f"Choose an account for {category_label(category)}.")
            continue
        account = by_id.get(account_id)
        if account is None:
            errors.append(f"{category_label(category)}: that account is not in the ledger's chart of accounts "
                          "(any more); reload the page and choose again.")
            continue
        if not account.active:
            errors.append(f"{category_label(category)}: {account.name} is inactive in the ledger; choose an "
                          "active account.")
            continue
        if not fits(category, account):
            warnings.append(f"{category_label(category)} is mapped to {account.name}, a {account.type} account: "
                            "check that this is intended.")
        mapped[category] = account
    clearing = mapped.get("clearing")
    if clearing is not None:
        for category in ("sales", "refunds", "fees"):
            if category in mapped and mapped[category].id == clearing.id:
                errors.append(f"The clearing account cannot also be the {category_label(category)} account.")
    return mapped, errors, warnings


def category_label(category: str) -> str:
    from .context import CATEGORY_LABELS

    return CATEGORY_LABELS[category]
