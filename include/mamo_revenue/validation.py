"""Small pure checks a journal must pass before it is posted. Each returns every problem it sees.

``validate_journal`` runs them all and returns every problem at once, each naming the company, the
period and the line, so finance fixes everything in one round; ``raise_for_problems`` turns a
non-empty list into ``JournalValidationError``. An empty journal (nothing to post) passes: it is
never sent to the ledger.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from mamo_revenue.errors import JournalValidationError
from mamo_revenue.hooks.ledger import LedgerAccount, LedgerSettings, Side
from mamo_revenue.journal import Category, Journal, JournalLine, mapping_fallbacks, resolve_account
from mamo_revenue.money import format_minor

#: Ledger status words of accounts that cannot take postings (Xero, Zoho; compared upper-case).
INACTIVE_STATUSES = frozenset({"ARCHIVED", "DELETED", "INACTIVE"})


class MappedAccountLike(Protocol):
    account_id: str
    code: str | None


@dataclass(frozen=True, slots=True)
class Problem:
    rule: str  # which check: balanced, line_count, line_amount, mapped, account_known, account_active, …
    message: str  # names company, period and, where it applies, the line

    def __str__(self) -> str:
        return f"{self.message} [{self.rule}]"


def validate_journal(
    journal: Journal,
    *,
    mapping: Mapping[str, MappedAccountLike],
    accounts: list[LedgerAccount] | None,
    settings: LedgerSettings | None,
    base_currency: str,
) -> list[Problem]:
    """Every problem of ``journal`` against the mapping and the ledger; empty when it may be posted.

    ``accounts`` (the ledger's chart) and ``settings`` may be None when not fetched (a dry run);
    the checks that need them are then skipped.
    """
    if journal.is_empty:
        return []
    problems = check_balanced(journal) + check_line_count(journal) + check_line_amounts(journal)
    problems += check_mapping(journal, mapping)
    if accounts is not None:
        problems += check_accounts(journal, mapping, accounts)
    if settings is not None:
        problems += check_lock_date(journal, settings) + check_base_currency(journal, settings, base_currency)
    return problems


def raise_for_problems(journal: Journal, problems: list[Problem]) -> None:
    """Raise ``JournalValidationError`` listing every problem; return quietly when there is none."""
    if problems:
        raise JournalValidationError(journal.company_id, journal.period.label, problems)


# --- the checks --------------------------------------------------------------------------------------


def check_balanced(journal: Journal) -> list[Problem]:
    debit, credit = journal.total_debit, journal.total_credit
    if debit == credit:
        return []
    return [
        Problem(
            "balanced",
            f"{_where(journal)}: debits {format_minor(debit)} ≠ credits {format_minor(credit)} "
            f"(difference {format_minor(debit - credit)})",
        )
    ]


def check_line_count(journal: Journal) -> list[Problem]:
    if len(journal.lines) >= 2:
        return []
    return [
        Problem(
            "line_count",
            f"{_where(journal)}: a journal needs at least two lines, it has {len(journal.lines)}",
        )
    ]


def check_line_amounts(journal: Journal) -> list[Problem]:
    return [
        Problem("line_amount", f"{_where(journal, number, line)}: amount must be positive")
        for number, line in enumerate(journal.lines, 1)
        if line.amount_minor <= 0
    ]


def check_mapping(journal: Journal, mapping: Mapping[str, MappedAccountLike]) -> list[Problem]:
    return [
        Problem(
            "mapped",
            f"{_where(journal, number, line)}: category {line.category.value!r} is not mapped to a ledger "
            f"account{_fallback_hint(line.category)}",
        )
        for number, line in enumerate(journal.lines, 1)
        if resolve_account(line.category, mapping) is None
    ]


def check_accounts(
    journal: Journal, mapping: Mapping[str, MappedAccountLike], accounts: list[LedgerAccount]
) -> list[Problem]:
    """Every mapped account exists in the ledger's chart (by id) and can take postings."""
    by_id = {account.id: account for account in accounts}
    problems = []
    for number, line in enumerate(journal.lines, 1):
        mapped = resolve_account(line.category, mapping)
        if mapped is None:
            continue  # check_mapping reports it
        shown = f"{mapped.account_id}" + (f" (code {mapped.code})" if mapped.code else "")
        account = by_id.get(mapped.account_id)
        if account is None:
            problems.append(
                Problem(
                    "account_known",
                    f"{_where(journal, number, line)}: mapped account {shown} is not in the ledger's chart",
                )
            )
        elif not account.active or (account.status or "").upper() in INACTIVE_STATUSES:
            problems.append(
                Problem(
                    "account_active",
                    f"{_where(journal, number, line)}: mapped account {shown} {account.name!r} is "
                    f"{(account.status or 'inactive').lower()} in the ledger",
                )
            )
    return problems


def check_lock_date(journal: Journal, settings: LedgerSettings) -> list[Problem]:
    lock = settings.lock_date
    if lock is None or journal.journal_date > lock:
        return []
    return [
        Problem(
            "lock_date",
            f"{_where(journal)}: journal date {journal.journal_date.isoformat()} is on or before the ledger's "
            f"lock date {lock.isoformat()}",
        )
    ]


def check_base_currency(journal: Journal, settings: LedgerSettings, base_currency: str) -> list[Problem]:
    if (settings.base_currency or "").upper() == base_currency.upper():
        return []
    return [
        Problem(
            "base_currency",
            f"{_where(journal)}: the ledger {settings.organisation_name!r} keeps its books in "
            f"{settings.base_currency}, the company's base currency is {base_currency}",
        )
    ]


def _where(journal: Journal, number: int | None = None, line: JournalLine | None = None) -> str:
    text = f"company {journal.company_id}, period {journal.period.label}"
    if line is not None:
        side = line.side.value if isinstance(line.side, Side) else str(line.side)
        text += f", line {number} ({line.category.value} {side} {format_minor(line.amount_minor)})"
    return text


def _fallback_hint(category: Category) -> str:
    fallback = mapping_fallbacks.get(category)
    return f" (nor is its fallback {fallback.value!r})" if fallback else ""
