"""Default fixtures of the Xero sandbox: the registered app, two UAE organisations and their chart.

Ids are fixed (or derived with uuid5) so that a reset sandbox looks the same every time: the demo,
the docs and the tests can name the tenant and the accounts.
"""

from __future__ import annotations

import uuid

from mamo_sandboxes.uae_chart import uae_chart

#: The app every fresh sandbox knows (LEDGER_APIS.md §1.1: a confidential web app with a secret). The
#: local connection ``xero_default`` of ``airflow_settings.yaml`` uses these.
DEFAULT_CLIENT_ID = "mamo-sandbox-client"
DEFAULT_CLIENT_SECRET = "mamo-sandbox-secret"
DEFAULT_APP_NAME = "Mamo Revenue (sandbox)"
DEFAULT_REDIRECT_URIS = (
    "http://127.0.0.1:8080/revenue-accounting/oauth/callback",  # the UI plugin on the local api-server
    "http://localhost:8080/revenue-accounting/oauth/callback",
    "http://127.0.0.1:8765/xero/callback",  # a CLI's loopback listener
    "http://localhost:8765/xero/callback",
)
#: Scope string of a new app (LEDGER_APIS.md §1.1).
DEFAULT_SCOPES = "openid offline_access accounting.settings accounting.manualjournals"

#: The demo company's organisation (company id ``acme`` in ACCOUNTING.md's worked example).
DEMO_TENANT_ID = "a3f1c6de-5b2e-4d8a-9c71-2f0e8b4d6a10"
DEMO_TENANT_NAME = "Acme Trading LLC"
#: A second organisation reachable through the same consent (LEDGER_APIS.md §1.2).
SECOND_TENANT_ID = "b7d24e90-1c3f-4a6b-8e52-9d0a7c3f1e22"
SECOND_TENANT_NAME = "Acme Holdings FZ-LLC"

#: The sandbox user who "logs in" on the consent page.
SANDBOX_USER = {
    "xero_userid": "0d6a8c4e-2b1f-4e7a-9c3d-5f8e1a2b4c6d",
    "email": "finance@acme.example",
    "given_name": "Fatima",
    "family_name": "Al Mansoori",
}

_ACCOUNT_NAMESPACE = uuid.UUID("5a0c8a8e-7f3b-4e35-9b2c-0d7e6f1a2b3c")

#: Xero's account classes by account type (spec schema ``Account.Class``).
CLASS_BY_TYPE = {
    "BANK": "ASSET",
    "CURRENT": "ASSET",
    "FIXED": "ASSET",
    "INVENTORY": "ASSET",
    "NONCURRENT": "ASSET",
    "PREPAYMENT": "ASSET",
    "CURRLIAB": "LIABILITY",
    "LIABILITY": "LIABILITY",
    "TERMLIAB": "LIABILITY",
    "PAYG": "LIABILITY",
    "EQUITY": "EQUITY",
    "DEPRECIATN": "EXPENSE",
    "DIRECTCOSTS": "EXPENSE",
    "EXPENSE": "EXPENSE",
    "OVERHEADS": "EXPENSE",
    "OTHERINCOME": "REVENUE",
    "REVENUE": "REVENUE",
    "SALES": "REVENUE",
}

#: UAE tax rates of a Xero organisation with VAT (TaxType -> percent), for LineAmountTypes
#: Exclusive/Inclusive on manual journal lines.
UAE_TAX_RATES = {
    "OUTPUT": "5",  # standard-rated supplies
    "INPUT": "5",  # standard-rated expenses
    "ZERORATEDOUTPUT": "0",
    "EXEMPTOUTPUT": "0",
    "EXEMPTINPUT": "0",
    "NONE": "0",
    "BASEXCLUDED": "0",
}

#: Code -> (Type, TaxType, Status, extra fields) of the UAE chart (``uae_chart``: codes and names).
_XERO_ACCOUNTS: dict[str, tuple[str, str, str, dict]] = {
    "1010": (
        "BANK",
        "NONE",
        "ACTIVE",
        {"BankAccountNumber": "AE070331234567890123456", "BankAccountType": "BANK", "CurrencyCode": "AED"},
    ),
    "1020": (
        "BANK",
        "NONE",
        "ACTIVE",
        {"BankAccountNumber": "AE460331234567890654321", "BankAccountType": "BANK", "CurrencyCode": "USD"},
    ),
    "1200": ("CURRENT", "NONE", "ACTIVE", {"SystemAccount": "DEBTORS"}),
    "1215": (
        "CURRENT",
        "NONE",
        "ACTIVE",
        {"Description": "Card payments collected by Mamo Pay, awaiting settlement to the bank"},
    ),
    "1216": (
        "CURRENT",
        "NONE",
        "ARCHIVED",
        {"Description": "Clearing account of the previous payment gateway; archived"},
    ),
    "1400": ("PREPAYMENT", "NONE", "ACTIVE", {}),
    "1600": ("FIXED", "INPUT", "ACTIVE", {}),
    "2100": ("CURRLIAB", "NONE", "ACTIVE", {"SystemAccount": "CREDITORS"}),
    "2200": (
        "CURRLIAB",
        "NONE",
        "ACTIVE",
        {"SystemAccount": "GST", "Description": "Output VAT payable less input VAT recoverable (FTA)"},
    ),
    "2300": ("CURRLIAB", "NONE", "ACTIVE", {}),
    "3000": ("EQUITY", "NONE", "ACTIVE", {}),
    "3200": ("EQUITY", "NONE", "ACTIVE", {"SystemAccount": "RETAINEDEARNINGS"}),
    "4000": ("REVENUE", "OUTPUT", "ACTIVE", {"Description": "Income from card sales"}),
    "4010": ("REVENUE", "OUTPUT", "ACTIVE", {"Description": "Refunds to customers (contra revenue)"}),
    "4900": ("OTHERINCOME", "OUTPUT", "ACTIVE", {}),
    "5000": ("DIRECTCOSTS", "INPUT", "ACTIVE", {}),
    "6110": ("OVERHEADS", "INPUT", "ACTIVE", {"Description": "Card processing fees charged by Mamo"}),
    "6120": ("EXPENSE", "EXEMPTINPUT", "ACTIVE", {}),
    "6200": ("OVERHEADS", "INPUT", "ACTIVE", {}),
    "6300": ("EXPENSE", "NONE", "ACTIVE", {}),
    "7100": ("OVERHEADS", "NONE", "ACTIVE", {"SystemAccount": "REALISEDCURRENCYGAIN"}),
}
#: (Code, Name, Type, TaxType, Status, extra fields) — the UAE chart in AED.
UAE_CHART: tuple[tuple[str, str, str, str, str, dict], ...] = uae_chart(_XERO_ACCOUNTS)


def account_id(tenant_id: str, code: str) -> str:
    """The stable AccountID of ``code`` in ``tenant_id``'s chart."""
    return str(uuid.uuid5(_ACCOUNT_NAMESPACE, f"{tenant_id}:{code}"))


def default_chart(tenant_id: str) -> list[dict]:
    """The UAE chart as Xero ``Account`` objects (without the read-only timestamps)."""
    chart = []
    for code, name, type_, tax_type, status, extra in UAE_CHART:
        account = {
            "AccountID": account_id(tenant_id, code),
            "Code": code,
            "Name": name,
            "Type": type_,
            "TaxType": tax_type,
            "Status": status,
            "Class": CLASS_BY_TYPE[type_],
            "EnablePaymentsToAccount": False,
            "ShowInExpenseClaims": type_ in {"EXPENSE", "OVERHEADS"},
            "ReportingCode": CLASS_BY_TYPE[type_][:3],
            "ReportingCodeName": CLASS_BY_TYPE[type_].title(),
            "HasAttachments": False,
            "AddToWatchlist": False,
        }
        account.update(extra)
        if type_ != "BANK":
            account.setdefault("BankAccountType", "")
        chart.append(account)
    return chart


def default_organisations() -> list[dict]:
    """Settings of the organisations a fresh sandbox holds (keys as ``POST /_sandbox/organisations``)."""
    return [
        {
            "tenant_id": DEMO_TENANT_ID,
            "name": DEMO_TENANT_NAME,
            "legal_name": "Acme Trading L.L.C",
            "base_currency": "AED",
            "country_code": "AE",
            "timezone": "ARABIANSTANDARDTIME",
            "short_code": "!Acm3T",
            "tax_number": "100123456700003",
        },
        {
            "tenant_id": SECOND_TENANT_ID,
            "name": SECOND_TENANT_NAME,
            "legal_name": "Acme Holdings FZ-LLC",
            "base_currency": "AED",
            "country_code": "AE",
            "timezone": "ARABIANSTANDARDTIME",
            "short_code": "!Acm3H",
            "tax_number": "100765432100003",
        },
    ]
