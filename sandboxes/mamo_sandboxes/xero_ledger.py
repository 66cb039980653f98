"""The books of the Xero sandbox: organisations, charts of accounts and manual journals.

Validation follows LEDGER_APIS.md §1.6 and the §6 defaults. Amounts are ``Decimal`` throughout
(request bodies are parsed with ``parse_float=Decimal``); responses are Xero JSON objects whose
dates are Microsoft JSON dates (``/Date(ms+0000)/``).
"""

from __future__ import annotations

import copy
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from mamo_sandboxes.xero_data import CLASS_BY_TYPE, UAE_TAX_RATES, default_chart

if TYPE_CHECKING:
    from mamo_sandboxes.xero_settings import XeroSettings

CENT = Decimal("0.01")
ZONES = {
    "ARABIANSTANDARDTIME": "Asia/Dubai",
    "GMTSTANDARDTIME": "Europe/London",
    "NEWZEALANDSTANDARDTIME": "Pacific/Auckland",
    "AUSEASTERNSTANDARDTIME": "Australia/Sydney",
    "EASTERNSTANDARDTIME": "America/New_York",
    "UTC": "UTC",
}
_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
CREATE_STATUSES = ("DRAFT", "POSTED")


class QueryError(ValueError):
    """A ``where`` or ``order`` the sandbox cannot parse (Xero: QueryParseException)."""


# --- dates ------------------------------------------------------------------------------------------


def ms_date(value: date | datetime, *, zone: bool = True) -> str:
    """``/Date(ms+0000)/`` for a date (midnight UTC) or an aware datetime."""
    moment = (
        value if isinstance(value, datetime) else datetime(value.year, value.month, value.day, tzinfo=UTC)
    )
    ms = int(moment.timestamp() * 1000)
    return f"/Date({ms}+0000)/" if zone else f"/Date({ms})/"


def parse_request_date(value: Any) -> date | None:
    """``YYYY-MM-DD`` (also with a midnight time, or a ``/Date(…)/``) → date; ``None`` if unreadable."""
    if not isinstance(value, str):
        return None
    match = _MS_DATE.match(value)
    if match:
        return datetime.fromtimestamp(int(match.group(1)) / 1000, UTC).date()
    try:
        return date.fromisoformat(value[:10]) if len(value) == 10 or value[10] == "T" else None
    except ValueError:
        return None


def lock_message(kind: str, lock: date) -> str:
    """The §1.3 message, with "period lock date" in place of "end of year lock date" (§6)."""
    return f"The document date cannot be before the {kind}, currently set at {lock.strftime('%d-%b-%Y')}"


def money(value: Decimal) -> str:
    return f"{value.quantize(CENT, ROUND_HALF_UP):.2f}"


# --- organisations ----------------------------------------------------------------------------------


@dataclass
class Organisation:
    tenant_id: str
    name: str
    base_currency: str = "AED"
    legal_name: str | None = None
    country_code: str = "AE"
    timezone: str = "ARABIANSTANDARDTIME"
    short_code: str = "!Sandb"
    tax_number: str | None = None
    period_lock_date: date | None = None
    end_of_year_lock_date: date | None = None
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    accounts: dict[str, dict] = field(default_factory=dict)  # AccountID -> Account
    journals: dict[str, dict] = field(default_factory=dict)  # ManualJournalID -> ManualJournal
    tax_rates: dict[str, Decimal] = field(
        default_factory=lambda: {k: Decimal(v) for k, v in UAE_TAX_RATES.items()}
    )

    def zone(self) -> ZoneInfo:
        return ZoneInfo(ZONES.get(self.timezone, "UTC"))

    def account_by_code(self, code: str) -> dict | None:
        return next(
            (a for a in self.accounts.values() if a.get("Code") == code and a["Status"] != "DELETED"), None
        )

    def lock_refusing(self, day: date) -> tuple[str, date] | None:
        """The lock that refuses ``day`` (on or before it): the end-of-year lock binds everyone, so it is
        named first; else the period lock."""
        for kind, lock in (
            ("end of year lock date", self.end_of_year_lock_date),
            ("period lock date", self.period_lock_date),
        ):
            if lock is not None and day <= lock:
                return kind, lock
        return None

    def render(self) -> dict:
        org = {
            "OrganisationID": self.tenant_id,
            "APIKey": self.tenant_id.replace("-", "").upper()[:30],
            "Name": self.name,
            "LegalName": self.legal_name or self.name,
            "PaysTax": True,
            "Version": "GLOBAL",
            "OrganisationType": "COMPANY",
            "BaseCurrency": self.base_currency,
            "CountryCode": self.country_code,
            "IsDemoCompany": False,
            "OrganisationStatus": "ACTIVE",
            "FinancialYearEndDay": 31,
            "FinancialYearEndMonth": 12,
            "SalesTaxBasis": "ACCRUALS",
            "SalesTaxPeriod": "3MONTHLY",
            "DefaultSalesTax": "Tax Inclusive",
            "DefaultPurchasesTax": "Tax Inclusive",
            "CreatedDateUTC": ms_date(self.created, zone=False),
            "Timezone": self.timezone,
            "OrganisationEntityType": "COMPANY",
            "ShortCode": self.short_code,
            "Class": "PREMIUM",
            "Edition": "BUSINESS",
            "LineOfBusiness": "Retail",
            "Addresses": [],
            "Phones": [],
            "ExternalLinks": [],
            "PaymentTerms": {},
        }
        if self.tax_number:
            org["TaxNumber"] = self.tax_number
        if self.period_lock_date:
            org["PeriodLockDate"] = ms_date(self.period_lock_date)
        if self.end_of_year_lock_date:
            org["EndOfYearLockDate"] = ms_date(self.end_of_year_lock_date)
        return org


def new_organisation(spec: dict, now: datetime) -> Organisation:
    """An organisation from admin settings (``tenant_id``, ``name``, ``base_currency``, …, ``accounts``)."""
    tenant_id = spec.get("tenant_id") or str(uuid.uuid4())
    org = Organisation(tenant_id=tenant_id, name=spec.get("name") or "Sandbox organisation", created=now)
    update_organisation(org, {k: v for k, v in spec.items() if k not in {"tenant_id", "accounts"}})
    chart = spec.get("accounts")
    for account in default_chart(tenant_id) if chart is None else chart:
        upsert_account(org, account, now)
    return org


def update_organisation(org: Organisation, changes: dict) -> None:
    fields = {
        "name",
        "legal_name",
        "base_currency",
        "country_code",
        "timezone",
        "short_code",
        "tax_number",
        "period_lock_date",
        "end_of_year_lock_date",
    }
    unknown = set(changes) - fields
    if unknown:
        raise ValueError(f"unknown organisation fields: {sorted(unknown)}")
    for key, value in changes.items():
        if key.endswith("lock_date") and value is not None:
            value = date.fromisoformat(value) if isinstance(value, str) else value
        setattr(org, key, value)


def upsert_account(org: Organisation, fields: dict, now: datetime) -> dict:
    """Create an account (``Code``, ``Name``, ``Type`` …) or change the one with that Code/AccountID."""
    existing = org.accounts.get(fields.get("AccountID", "")) or (
        org.account_by_code(fields["Code"]) if fields.get("Code") else None
    )
    account = (
        existing
        if existing is not None
        else {
            "AccountID": fields.get("AccountID") or str(uuid.uuid4()),
            "Status": "ACTIVE",
            "TaxType": "NONE",
            "EnablePaymentsToAccount": False,
            "ShowInExpenseClaims": False,
            "BankAccountType": "",
            "HasAttachments": False,
            "AddToWatchlist": False,
        }
    )
    account.update(fields)
    if account.get("Type") not in CLASS_BY_TYPE:
        raise ValueError(f"account Type must be one of {sorted(CLASS_BY_TYPE)}")
    if account["Status"] not in ("ACTIVE", "ARCHIVED", "DELETED"):
        raise ValueError("account Status must be ACTIVE, ARCHIVED or DELETED")
    account["Class"] = CLASS_BY_TYPE[account["Type"]]
    account["UpdatedDateUTC"] = ms_date(now)
    org.accounts[account["AccountID"]] = account
    return account


# --- manual journals --------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What became of one journal of a write: ``journal`` is the stored (or echoed) ManualJournal."""

    journal: dict
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    fatal: bool = False  # refused as a whole request (archived account → HTTP 400 whatever summarizeErrors)

    @property
    def ok(self) -> bool:
        return not self.errors

    def element(self) -> dict:
        """The journal as ``Elements[]`` / ``ManualJournals[]`` echo it, with its messages."""
        out = render_journal(self.journal)
        if self.warnings:
            out["Warnings"] = [{"Message": m} for m in self.warnings]
        if self.errors:
            out["ValidationErrors"] = [{"Message": m} for m in self.errors]
            out["StatusAttributeString"] = "ERROR"
        return out


def check_journal(
    org: Organisation, raw: dict, settings: XeroSettings, now: datetime, existing: dict | None = None
) -> Outcome:
    """Validate one ManualJournal of a request (a new one, or a change of ``existing``); nothing is saved."""
    if existing is not None and set(raw) <= {"ManualJournalID", "Status"}:
        return _change_status(org, existing, raw.get("Status") or existing["Status"], now)
    errors: list[str] = []
    warnings: list[str] = []
    fatal = False
    merged = copy.deepcopy(existing) if existing else {}
    merged.update({k: v for k, v in raw.items() if k != "ManualJournalID"})

    narration = merged.get("Narration")
    if not isinstance(narration, str) or not narration.strip():
        errors.append("Narration is required")

    status = merged.get("Status") or "DRAFT"  # §1.6: omitted → DRAFT
    if existing is None and status not in CREATE_STATUSES:
        errors.append("A manual journal can only be created with Status DRAFT or POSTED")
    elif existing is not None:
        errors += _transition_errors(existing["Status"], status, raw)

    line_types = merged.get("LineAmountTypes") or settings.default_line_amount_types
    journal_date = (
        parse_request_date(merged.get("Date")) if merged.get("Date") else now.astimezone(org.zone()).date()
    )
    if journal_date is None:
        errors.append(f"The Date '{merged.get('Date')}' is not a valid date (YYYY-MM-DD)")
    elif lock := org.lock_refusing(journal_date):
        errors.append(lock_message(*lock))

    url = merged.get("Url")
    if url is not None and not re.match(r"^https?://\S+$", str(url)):
        errors.append("The Url is not a valid absolute http(s) URL")

    raw_lines = merged.get("JournalLines") or []
    if len(raw_lines) < 2:
        errors.append("A manual journal must have at least two journal lines")
    lines, debits, credits = [], Decimal(0), Decimal(0)
    for number, raw_line in enumerate(raw_lines, start=1):
        line, line_errors, line_warnings, line_fatal = _check_line(
            org, raw_line, line_types, settings, number
        )
        errors += line_errors
        warnings += line_warnings
        fatal = fatal or line_fatal
        lines.append(line)
        gross = line["LineAmount"] + (line["TaxAmount"] if line_types == "Exclusive" else 0)
        debits, credits = (debits + gross, credits) if gross > 0 else (debits, credits + gross)
    if lines and debits != -credits:
        errors.append(f"The total debits ({money(debits)}) must equal total credits ({money(credits)})")

    journal = {
        "Date": ms_date(journal_date) if journal_date else merged.get("Date"),
        "Status": status,
        "LineAmountTypes": line_types,
        "UpdatedDateUTC": ms_date(now),
        "ManualJournalID": existing["ManualJournalID"] if existing else None,
        "Narration": narration,
        "JournalLines": lines,
        "ShowOnCashBasisReports": merged.get("ShowOnCashBasisReports", True),
        "HasAttachments": False,
    }
    if url is not None:
        journal["Url"] = url
    if journal["ManualJournalID"] is None:
        del journal["ManualJournalID"]
    return Outcome(journal, errors, warnings, fatal)


def _change_status(org: Organisation, existing: dict, status: str, now: datetime) -> Outcome:
    """POST ``{"Status": "VOIDED"}`` (or DELETED, POSTED) to an existing journal."""
    journal = copy.deepcopy(existing)
    errors = _transition_errors(existing["Status"], status, {})
    journal_date = parse_request_date(existing["Date"])
    if status != existing["Status"] and journal_date and (lock := org.lock_refusing(journal_date)):
        errors.append(lock_message(*lock))
    journal["Status"], journal["UpdatedDateUTC"] = status, ms_date(now)
    return Outcome(journal, errors)


def _transition_errors(old: str, new: str, raw: dict) -> list[str]:
    allowed = {"DRAFT": {"DRAFT", "POSTED", "DELETED"}, "POSTED": {"POSTED", "VOIDED"}}
    if new not in allowed.get(old, set()):
        return [f"A {old} manual journal cannot be changed to {new}"]
    if old == "POSTED" and set(raw) - {"ManualJournalID", "Status"}:
        return ["A POSTED manual journal cannot be edited; void it and post a new one"]
    return []


def _check_line(org: Organisation, raw: dict, line_types: str, settings: XeroSettings, number: int):
    errors, warnings, fatal = [], [], False
    amount = raw.get("LineAmount")
    if isinstance(amount, bool) or not isinstance(amount, int | Decimal):
        errors.append(f"Journal line {number}: LineAmount is required")
        amount = Decimal(0)
    try:
        amount = Decimal(amount).quantize(CENT, ROUND_HALF_UP)  # money: two decimals (§1.6)
    except InvalidOperation:
        errors.append(f"Journal line {number}: LineAmount is not a valid amount")
        amount = Decimal(0)
    line: dict[str, Any] = {"Description": raw.get("Description", "")}
    code, account_id = raw.get("AccountCode"), raw.get("AccountID")
    account = None
    if code not in (None, ""):
        account = org.account_by_code(str(code))
        if account is None:
            if settings.unknown_account == "reject":
                errors.append(f"Account code '{code}' does not match a recognised account.")
            else:  # §1.6: the code is removed from the line with only a warning
                warnings.append(
                    f"Account code '{code}' has been removed as it does not match a recognised account."
                )
    elif account_id not in (None, ""):
        account = org.accounts.get(str(account_id))
        if account is None or account["Status"] == "DELETED":
            errors.append(
                f"Journal line {number}: AccountID '{account_id}' does not match a recognised account."
            )
            account = None
    else:
        errors.append(f"Journal line {number}: an AccountCode or AccountID is required")
    if account is not None and account["Status"] == "ARCHIVED":
        errors.append(f"Account code '{account.get('Code') or account['AccountID']}' has been archived")
        fatal = True
    tax_type = "NONE"
    if line_types != "NoTax":
        tax_type = raw.get("TaxType") or (account or {}).get("TaxType") or "NONE"
    rate = org.tax_rates.get(tax_type)
    if rate is None:
        errors.append(
            f"The TaxType code '{tax_type}' does not exist or cannot be used for this type of transaction."
        )
        rate = Decimal(0)
    if line_types == "Exclusive":
        tax = (amount * rate / 100).quantize(CENT, ROUND_HALF_UP)
    elif line_types == "Inclusive":
        tax = (amount * rate / (100 + rate)).quantize(CENT, ROUND_HALF_UP)
    else:
        tax = Decimal("0.00")
    tracking = raw.get("Tracking") or []
    if len(tracking) > 2:
        errors.append(f"Journal line {number}: at most two tracking categories are allowed")
    line.update({"TaxType": tax_type, "TaxAmount": tax, "LineAmount": amount})
    if account is not None:
        line["AccountCode"] = account.get("Code")
    line["Tracking"] = tracking
    if account is not None:
        line["AccountID"] = account["AccountID"]
    line["IsBlank"] = False
    return line, errors, warnings, fatal


def render_journal(journal: dict, *, with_lines: bool = True) -> dict:
    out = copy.deepcopy(journal)
    if not with_lines:
        out["JournalLines"] = []
    return out


# --- where / order ----------------------------------------------------------------------------------

_CLAUSE = re.compile(
    r"""^\s*(?P<field>[A-Za-z][A-Za-z0-9]*)\s*(?:
        (?P<op>==|!=)\s*(?P<literal>"(?:[^"\\]|\\.)*"|true|false|-?\d+(?:\.\d+)?)
      | \.(?P<method>StartsWith|EndsWith|Contains)\(\s*(?P<arg>"(?:[^"\\]|\\.)*")\s*\)
    )\s*$""",
    re.VERBOSE,
)
_JOINERS = re.compile(r"\s+(?:AND|and)\s+|\s*&&\s*")


def _unquote(literal: str) -> str:
    return re.sub(r"\\(.)", r"\1", literal[1:-1])


def compile_where(where: str | None):
    """A predicate over a rendered Xero object for a ``where`` made of clauses joined by AND.

    Supported (§6): ``Field=="text"``, ``Field!="text"``, ``Field==true``, and
    ``Field.StartsWith("…")``, ``.EndsWith``, ``.Contains`` on any top-level field. Case-sensitive, as .NET.
    """
    if not where or not where.strip():
        return lambda item: True
    if re.search(r"\s(OR|or)\s|\|\|", where):
        raise QueryError("OR is not supported by the sandbox")
    clauses = []
    for part in _JOINERS.split(where.strip()):
        match = _CLAUSE.match(part)
        if not match:
            raise QueryError(f"could not parse the where clause {part!r}")
        clauses.append(match.groupdict())

    def test(item: dict) -> bool:
        for c in clauses:
            value = item.get(c["field"])
            if c["op"]:
                lit = c["literal"]
                expected = _unquote(lit) if lit.startswith('"') else lit
                actual = (
                    str(value).lower()
                    if isinstance(value, bool)
                    else str(value)
                    if value is not None
                    else None
                )
                if (actual == expected) != (c["op"] == "=="):
                    return False
            else:
                arg, text = _unquote(c["arg"]), value if isinstance(value, str) else ""
                ok = {
                    "StartsWith": text.startswith,
                    "EndsWith": text.endswith,
                    "Contains": lambda a, t=text: a in t,
                }[c["method"]](arg)
                if not ok:
                    return False
        return True

    return test


def apply_order(items: list[dict], order: str | None) -> list[dict]:
    if not order:
        return items
    match = re.match(r"^\s*([A-Za-z][A-Za-z0-9]*)(?:\s+(ASC|DESC))?\s*$", order, re.IGNORECASE)
    if not match:
        raise QueryError(f"could not parse the order {order!r}")
    key, direction = match.group(1), (match.group(2) or "ASC").upper()

    def sort_key(item: dict):
        value = item.get(key)
        ms = _MS_DATE.match(value) if isinstance(value, str) else None
        return (value is None, int(ms.group(1)) if ms else value if value is not None else "")

    return sorted(items, key=sort_key, reverse=direction == "DESC")


def modified_since(items: list[dict], header: str | None) -> list[dict]:
    """``If-Modified-Since``: only objects whose ``UpdatedDateUTC`` is later."""
    if not header:
        return items
    try:
        since = datetime.fromisoformat(header.replace("Z", "+00:00"))
    except ValueError:
        return items
    since = since if since.tzinfo else since.replace(tzinfo=UTC)
    threshold = int(since.timestamp() * 1000)
    out = []
    for item in items:
        ms = _MS_DATE.match(item.get("UpdatedDateUTC", ""))
        if ms and int(ms.group(1)) > threshold:
            out.append(item)
    return out
