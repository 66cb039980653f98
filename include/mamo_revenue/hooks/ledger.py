"""The ledger interface: what the DAGs, the mapping and the sync history need from any ledger.

Ledger-specific encodings (Xero's signed ``LineAmount``, Zoho's ``debit_or_credit``) live only in
each hook. Amounts here are integer minor units of the ledger's base currency.
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum


class Side(StrEnum):
    DEBIT = "debit"
    CREDIT = "credit"


@dataclass(frozen=True, slots=True)
class LedgerAccount:
    id: str  # the ledger's stable id (Xero AccountID)
    code: str | None
    name: str
    type: str  # the ledger's own type word (Xero: REVENUE, CURRLIAB, …)
    active: bool
    status: str = "ACTIVE"  # the ledger's own status word


@dataclass(frozen=True, slots=True)
class LedgerSettings:
    organisation_name: str
    base_currency: str
    lock_date: date | None  # the binding lock date: nothing may be dated on or before it


@dataclass(frozen=True, slots=True)
class LedgerLine:
    account_id: str
    account_code: str | None
    side: Side
    amount_minor: int  # > 0
    description: str


@dataclass(frozen=True, slots=True)
class JournalRequest:
    reference: str  # MAMO-<company>-<period key>; also the idempotency key
    journal_date: date  # the period's last day
    narration: str
    lines: tuple[LedgerLine, ...]
    source_url: str | None = None


@dataclass(frozen=True, slots=True)
class PostedJournal:
    ledger_id: str
    reference: str
    status: str  # the ledger's own status word, e.g. POSTED
    posted: bool  # True when the ledger counts it in its books
    journal_date: date | None = None
    url: str | None = None  # a link a finance user can open
    lines: tuple[LedgerLine, ...] = field(default=())


_PERIOD_LABEL = re.compile(r"\s+\d{4}-(?:\d{2}-\d{2}|W\d{2})$")


def line_label(line: LedgerLine) -> str:
    """The category a line books, in the product's words, for guidance ("map Sales to …"): its
    description without the trailing period label (``Sales 2026-11-20`` → ``Sales``)."""
    label = _PERIOD_LABEL.sub("", line.description or "").strip()
    return label or "the category"


class LedgerHook(abc.ABC):
    """One implementation per ledger platform.

    Every method raises only the ``Ledger*`` classes of ``errors.py``, each with guidance a finance
    user can act on; a ledger's own words are kept in the message.
    """

    platform: str

    @abc.abstractmethod
    def list_accounts(self) -> list[LedgerAccount]: ...

    @abc.abstractmethod
    def get_settings(self) -> LedgerSettings: ...

    @abc.abstractmethod
    def find_journal(self, reference: str) -> PostedJournal | None:
        """The journal carrying ``reference`` in the ledger, if any (voided ones included, ``posted`` False)."""

    @abc.abstractmethod
    def post_journal(self, request: JournalRequest, *, idempotency_key: str | None = None) -> PostedJournal:
        """Post once; a retried call with the same reference (or key) never creates a second journal.

        ``idempotency_key`` defaults to the reference; a deliberate re-post after a void passes a new one.
        """

    @abc.abstractmethod
    def void_journal(self, reference: str) -> PostedJournal | None:
        """Void (or reverse) the posted journal carrying ``reference``; returns it as the ledger now
        shows it (``posted`` False), or None when no journal carries the reference.

        Afterwards ``find_journal(reference)`` answers it with ``posted`` False, so a re-sync posts the
        period again (with a new ``idempotency_key``). Voiding in a locked period raises
        ``LedgerLockedPeriod``; voiding again changes nothing. Each hook documents how its ledger
        does it (Xero: Status VOIDED; Zoho Books: a reversing journal).
        """

    @abc.abstractmethod
    def test_connection(self) -> tuple[bool, str]: ...
