"""The books of the Zoho Books sandbox: organisations, charts of accounts, journals, transaction locks.

Validation follows LEDGER_APIS.md §2.5–2.6 and the §6 defaults: a journal must balance; its accounts
must exist and be active; nothing dated on or before the Accountant module's transaction lock date
may be created, changed, published or deleted; ``reference_number`` need not be unique; a journal
created without ``status`` is a draft. Refusals are HTTP 400 with a non-zero ``code`` and a message
naming the problem. Amounts are ``Decimal`` throughout, rounded to two decimals as Zoho's
``price_precision`` 2.

Error codes: Zoho documents ``code`` 0 for success and integrators report 2 (invalid value or id),
45 (request limit) and 57 (not authorised); the others below are the sandbox's own, as Zoho's are
unknown, and the hook must not depend on them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from mamo_sandboxes.zoho_data import (
    ACCOUNT_TYPE_GROUPS,
    ACCOUNT_TYPES,
    CURRENCY_IDS,
    LOCK_MODULES,
    default_chart,
)

CENT = Decimal("0.01")
INVALID_VALUE = 2
BAD_REQUEST_BODY = 4
NOT_FOUND = 1002
UNBALANCED = 13001  # sandbox's own
INACTIVE_ACCOUNT = 13002  # sandbox's own
LOCKED_PERIOD = 13003  # sandbox's own
BAD_STATUS = 13004  # sandbox's own
DUPLICATE_REFERENCE = 13005  # sandbox's own (only with settings.duplicate_reference = "reject")


class BooksError(Exception):
    """A refusal of the Books API: HTTP ``status`` with ``{"code": code, "message": message}``."""

    def __init__(self, status: int, code: int, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> dict:
        return {"code": self.code, "message": self.message}


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, ROUND_HALF_UP)


# --- organisations ----------------------------------------------------------------------------------


@dataclass
class Organisation:
    organization_id: str
    name: str
    location: str
    currency_code: str = "AED"
    country: str = "U.A.E"
    time_zone: str = "Asia/Dubai"
    users: list[str] = field(default_factory=list)
    created: datetime | None = None
    deleted: bool = False
    accounts: dict[str, dict] = field(default_factory=dict)  # account_id → account
    journals: dict[str, dict] = field(default_factory=dict)  # journal_id → journal
    locks: dict[str, dict] = field(default_factory=dict)  # module → {"date": date | None, "status": …}
    next_entry: int = 1

    def stamp(self, moment: datetime) -> str:
        """Zoho's timestamp: the organisation's offset, e.g. ``2026-11-20T09:40:07+0400``."""
        return moment.astimezone(ZoneInfo(self.time_zone)).strftime("%Y-%m-%dT%H:%M:%S%z")

    def account_by_code(self, code: str) -> dict | None:
        return next((a for a in self.accounts.values() if a.get("account_code") == code), None)

    def lock_date(self, module: str = "accountant") -> date | None:
        """The enabled lock date of ``module``: nothing dated on or before it may change."""
        lock = self.locks.get(module) or {}
        return lock.get("date") if lock.get("status", "disabled") != "disabled" else None

    def render(self) -> dict:
        """The organisation as ``GET /organizations`` lists it."""
        return {
            "organization_id": self.organization_id,
            "name": self.name,
            "contact_name": self.name,
            "email": self.users[0] if self.users else "",
            "is_default_org": False,
            "plan_type": 3,
            "tax_group_enabled": True,
            "plan_name": "Premium",
            "plan_period": "monthly",
            "language_code": "en",
            "fiscal_year_start_month": 0,
            "account_created_date": self.created.date().isoformat() if self.created else "",
            "account_created_date_formatted": self.created.strftime("%d/%m/%Y") if self.created else "",
            "time_zone": self.time_zone,
            "is_org_active": not self.deleted,
            "currency_id": CURRENCY_IDS.get(self.currency_code, "460000000000000"),
            "currency_code": self.currency_code,
            "currency_symbol": self.currency_code,
            "currency_format": "###,##0.00",
            "price_precision": 2,
            "country": self.country,
            "date_format": "dd/MM/yyyy",
        }

    def render_locks(self) -> list[dict]:
        """``GET /transactionlocks``: one lock per module (LEDGER_APIS.md §2.6)."""
        out = []
        for number, module in enumerate(LOCK_MODULES, start=1):
            lock = self.locks.get(module) or {"date": None, "status": "disabled"}
            locked = lock["status"] != "disabled" and lock["date"] is not None
            out.append(
                {
                    "transaction_lock_id": f"{self.organization_id[-6:]}{number:03d}",
                    "transaction_lock_module": module,
                    "transaction_lock_status": lock["status"] if locked else "disabled",
                    "transaction_lock_date": lock["date"].isoformat() if locked else "",
                    "lock_status": "locked" if locked else "unlocked",
                    "lock_status_formatted": "Locked" if locked else "Unlocked",
                }
            )
        return out


def new_organisation(spec: dict, now: datetime) -> Organisation:
    """An organisation from admin settings (``organization_id``, ``name``, ``location``, …, ``accounts``)."""
    for key in ("organization_id", "name", "location"):
        if not spec.get(key):
            raise ValueError(f"an organisation needs {key}")
    org = Organisation(
        organization_id=str(spec["organization_id"]),
        name=spec["name"],
        location=spec["location"],
        created=now,
    )
    update_organisation(org, {k: v for k, v in spec.items() if k not in {"organization_id", "accounts"}})
    chart = spec.get("accounts")
    for account in default_chart(org.organization_id, org.currency_code) if chart is None else chart:
        upsert_account(org, account, now)
    return org


def update_organisation(org: Organisation, changes: dict) -> None:
    fields = {"name", "location", "currency_code", "country", "time_zone", "users", "deleted"}
    unknown = set(changes) - fields
    if unknown:
        raise ValueError(f"unknown organisation fields: {sorted(unknown)}")
    if "time_zone" in changes:
        ZoneInfo(changes["time_zone"])
    for key, value in changes.items():
        setattr(org, key, list(value) if key == "users" else value)


def set_lock(org: Organisation, module: str, lock_date: str | date | None, status: str = "enabled") -> None:
    """Lock ``module`` (or ``all`` modules) up to ``lock_date``; ``None`` unlocks."""
    modules = LOCK_MODULES if module == "all" else (module,)
    if any(m not in LOCK_MODULES for m in modules):
        raise ValueError(f"module must be all or one of {LOCK_MODULES}")
    if status not in ("enabled", "enabled_with_logging", "disabled"):
        raise ValueError("status must be enabled, enabled_with_logging or disabled")
    day = date.fromisoformat(lock_date) if isinstance(lock_date, str) else lock_date
    for m in modules:
        org.locks[m] = {"date": day, "status": status if day is not None else "disabled"}


def upsert_account(org: Organisation, fields: dict, now: datetime) -> dict:
    """Create an account (``account_name``, ``account_type``, ``account_code`` …) or change the one with
    that ``account_id`` or ``account_code``; ``"deleted": true`` removes it from the chart."""
    existing = org.accounts.get(str(fields.get("account_id", ""))) or (
        org.account_by_code(str(fields["account_code"])) if fields.get("account_code") else None
    )
    if fields.get("deleted"):
        if existing is None:
            raise ValueError("no such account to delete")
        del org.accounts[existing["account_id"]]
        return existing
    account = (
        existing
        if existing is not None
        else {
            "account_id": str(
                fields.get("account_id") or f"46{org.organization_id[-6:]}8{len(org.accounts):06d}"
            ),
            "is_active": True,
            "currency_code": org.currency_code,
            "description": "",
            "parent_account_id": "",
            "is_user_created": True,
            "is_system_account": False,
            "is_involved_in_transaction": False,
            "created_time": org.stamp(now),
        }
    )
    account.update({k: v for k, v in fields.items() if k != "deleted"})
    if not account.get("account_name"):
        raise ValueError("an account needs account_name")
    if account.get("account_type") not in ACCOUNT_TYPES:
        raise ValueError(f"account_type must be one of {sorted(ACCOUNT_TYPES)}")
    if not isinstance(account["is_active"], bool):
        raise ValueError("is_active must be true or false")
    account["currency_id"] = CURRENCY_IDS.get(account["currency_code"], "460000000000000")
    account["last_modified_time"] = org.stamp(now)
    org.accounts[account["account_id"]] = account
    return account


def render_account(account: dict) -> dict:
    out = {
        "account_id": account["account_id"],
        "account_name": account["account_name"],
        "account_code": account.get("account_code", ""),
        "account_type": account["account_type"],
        "is_active": account["is_active"],
        "currency_id": account["currency_id"],
        "currency_code": account["currency_code"],
        "description": account.get("description", ""),
        "parent_account_id": account.get("parent_account_id", ""),
        "is_user_created": account.get("is_user_created", True),
        "is_system_account": account.get("is_system_account", False),
        "is_involved_in_transaction": account.get("is_involved_in_transaction", False),
        "created_time": account.get("created_time", ""),
        "last_modified_time": account.get("last_modified_time", ""),
    }
    return out


def filter_accounts(org: Organisation, filter_by: str) -> list[dict]:
    """``filter_by`` of ``GET /chartofaccounts`` (LEDGER_APIS.md §2.4), ordered by code then name."""
    items = sorted(org.accounts.values(), key=lambda a: (a.get("account_code") or "~", a["account_name"]))
    if filter_by == "AccountType.All":
        return items
    if filter_by == "AccountType.Active":
        return [a for a in items if a["is_active"]]
    if filter_by == "AccountType.Inactive":
        return [a for a in items if not a["is_active"]]
    if filter_by in ACCOUNT_TYPE_GROUPS:
        return [a for a in items if a["account_type"] in ACCOUNT_TYPE_GROUPS[filter_by]]
    raise BooksError(400, INVALID_VALUE, "Invalid value passed for filter_by")


# --- journals -----------------------------------------------------------------------------------------


def _lock_refusal(org: Organisation, day: date, what: str) -> BooksError | None:
    lock = org.lock_date("accountant")
    if lock is not None and day <= lock:
        return BooksError(
            400,
            LOCKED_PERIOD,
            f"Transactions dated on or before {lock.strftime('%d/%m/%Y')} are locked; "
            f"this journal dated {day.strftime('%d/%m/%Y')} cannot be {what}.",
        )
    return None


def check_journal(
    org: Organisation, body: dict, now: datetime, *, default_status: str, existing: dict | None = None
) -> dict:
    """The journal a schema-valid create (or update of ``existing``) body makes; nothing is saved.

    Raises ``BooksError`` for a bad date, an unknown or inactive account, an unbalanced journal, a
    locked period or a status change Zoho does not allow.
    """
    try:
        journal_date = date.fromisoformat(body["journal_date"])
    except ValueError:
        raise BooksError(400, BAD_REQUEST_BODY, "Invalid value passed for journal_date") from None
    if existing is not None:
        refusal = _lock_refusal(org, date.fromisoformat(existing["journal_date"]), "changed")
        if refusal:
            raise refusal
    status = body.get("status") or (existing["status"] if existing else default_status)
    if existing is not None and existing["status"] == "published" and status == "draft":
        raise BooksError(400, BAD_STATUS, "A published journal cannot be changed back to a draft.")
    lines, debits, credits = [], Decimal(0), Decimal(0)
    for number, raw in enumerate(body["line_items"], start=1):
        account = org.accounts.get(str(raw["account_id"]))
        if account is None:
            raise BooksError(400, INVALID_VALUE, f"Invalid value passed for account_id (line {number}).")
        if not account["is_active"]:
            raise BooksError(
                400,
                INACTIVE_ACCOUNT,
                f"The account '{account['account_name']}' is inactive. Mark it as active or choose another account.",
            )
        try:
            amount = money(Decimal(raw["amount"]))
        except (InvalidOperation, TypeError):
            raise BooksError(
                400, BAD_REQUEST_BODY, f"Invalid value passed for amount (line {number})."
            ) from None
        if raw["debit_or_credit"] == "debit":
            debits += amount
        else:
            credits += amount
        lines.append(
            {
                "line_id": f"{account['account_id'][:8]}{number:07d}",
                "account_id": account["account_id"],
                "account_name": account["account_name"],
                "account_code": account.get("account_code", ""),
                "account_type": account["account_type"],
                "debit_or_credit": raw["debit_or_credit"],
                "amount": amount,
                "bcy_amount": amount,
                "description": raw.get("description", ""),
                "tax_id": "",
                "tags": [],
            }
        )
    if debits != credits or debits == 0:
        raise BooksError(
            400,
            UNBALANCED,
            f"The journal is not balanced: the total debits ({money(debits)}) must equal the total "
            f"credits ({money(credits)}).",
        )
    refusal = _lock_refusal(org, journal_date, "created" if existing is None else "changed")
    if refusal:
        raise refusal
    journal = copy.deepcopy(existing) if existing else {}
    journal.update(
        {
            "journal_date": journal_date.isoformat(),
            "reference_number": body.get("reference_number", journal.get("reference_number", "")),
            "notes": body.get("notes", journal.get("notes", "")),
            "journal_type": body.get("journal_type", journal.get("journal_type", "both")),
            "currency_id": CURRENCY_IDS.get(org.currency_code, "460000000000000"),
            "currency_code": org.currency_code,
            "exchange_rate": Decimal(1),
            "status": status,
            "line_items": lines,
            "line_item_total": money(debits),
            "total": money(debits),
            "bcy_total": money(debits),
            "price_precision": 2,
            "last_modified_time": org.stamp(now),
        }
    )
    return journal


def save_new_journal(org: Organisation, journal: dict, now: datetime) -> dict:
    number = org.next_entry
    org.next_entry += 1
    journal["journal_id"] = f"46{org.organization_id[-6:]}9{number:06d}"
    journal["entry_number"] = str(number)
    journal["created_time"] = org.stamp(now)
    org.journals[journal["journal_id"]] = journal
    return journal


def publish(org: Organisation, journal: dict, now: datetime) -> None:
    """``POST /journals/{id}/status/publish``: a draft joins the books (publishing again changes nothing)."""
    if journal["status"] == "published":
        return
    refusal = _lock_refusal(org, date.fromisoformat(journal["journal_date"]), "published")
    if refusal:
        raise refusal
    for line in journal["line_items"]:
        account = org.accounts.get(line["account_id"])
        if account is None or not account["is_active"]:
            name = account["account_name"] if account else line["account_id"]
            raise BooksError(400, INACTIVE_ACCOUNT, f"The account '{name}' is inactive or was deleted.")
    journal["status"], journal["last_modified_time"] = "published", org.stamp(now)


def remove_journal(org: Organisation, journal_id: str) -> None:
    """``DELETE /journals/{id}``: gone from the books, unless its date is locked."""
    journal = org.journals[journal_id]
    refusal = _lock_refusal(org, date.fromisoformat(journal["journal_date"]), "deleted")
    if refusal:
        raise refusal
    del org.journals[journal_id]


LIST_FIELDS = (
    "journal_id",
    "journal_date",
    "entry_number",
    "reference_number",
    "notes",
    "currency_id",
    "currency_code",
    "total",
    "bcy_total",
    "status",
    "journal_type",
    "created_time",
    "last_modified_time",
)


def list_journals(org: Organisation, query: dict) -> list[dict]:
    """``GET /journals`` filters (LEDGER_APIS.md §2.7), oldest entry first; list items carry no lines."""
    items = sorted(org.journals.values(), key=lambda j: int(j["entry_number"]))
    exact, starts = query.get("reference_number"), query.get("reference_number_startswith")
    contains, entry = query.get("reference_number_contains"), query.get("entry_number")
    try:
        start = date.fromisoformat(query["date_start"]) if query.get("date_start") else None
        end = date.fromisoformat(query["date_end"]) if query.get("date_end") else None
    except ValueError:
        raise BooksError(400, INVALID_VALUE, "Invalid value passed for date_start or date_end") from None
    out = []
    for journal in items:
        ref, day = journal.get("reference_number") or "", date.fromisoformat(journal["journal_date"])
        if (
            (exact is not None and ref != exact)
            or (starts is not None and not ref.startswith(starts))
            or (contains is not None and contains not in ref)
            or (entry is not None and journal["entry_number"] != entry)
            or (start is not None and day < start)
            or (end is not None and day > end)
        ):
            continue
        out.append({key: journal.get(key) for key in LIST_FIELDS})
    return out


def render_journal(journal: dict) -> dict:
    return copy.deepcopy(journal)
