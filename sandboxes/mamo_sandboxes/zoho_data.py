"""Default fixtures of the Zoho Books sandbox: data centres, the registered app, users, organisations
and a UAE chart of accounts mirroring the Xero sandbox's codes.

Ids are fixed (or derived from the organisation and the code) so that a reset sandbox looks the same
every time: the demo, the docs and the tests can name the organisation and the accounts.
"""

from __future__ import annotations

from mamo_sandboxes.uae_chart import uae_chart

#: Zoho's data centres: ``location`` → (accounts server, API domain) of the real service
#: (LEDGER_APIS.md §2.1). The sandbox serves each under a path prefix of its own:
#: ``/{location}/accounts`` and ``/{location}/api``.
DATA_CENTRES: dict[str, tuple[str, str]] = {
    "us": ("https://accounts.zoho.com", "https://www.zohoapis.com"),
    "eu": ("https://accounts.zoho.eu", "https://www.zohoapis.eu"),
    "in": ("https://accounts.zoho.in", "https://www.zohoapis.in"),
    "au": ("https://accounts.zoho.com.au", "https://www.zohoapis.com.au"),
    "jp": ("https://accounts.zoho.jp", "https://www.zohoapis.jp"),
    "ca": ("https://accounts.zohocloud.ca", "https://www.zohoapis.ca"),
    "cn": ("https://accounts.zoho.com.cn", "https://www.zohoapis.com.cn"),
    "sa": ("https://accounts.zoho.sa", "https://www.zohoapis.sa"),
}
#: Where consent starts (Zoho: ``https://accounts.zoho.com``, whatever the user's data centre).
HOME_LOCATION = "us"

#: The app every fresh sandbox knows: a server-based client with multi-DC on (LEDGER_APIS.md §2.1).
#: The local connection ``zoho_books_default`` of ``airflow_settings.yaml`` uses these.
DEFAULT_CLIENT_ID = "mamo-sandbox-zoho-client"
DEFAULT_CLIENT_SECRET = "mamo-sandbox-zoho-secret"
DEFAULT_APP_NAME = "Mamo Revenue (sandbox)"
DEFAULT_REDIRECT_URIS = (
    "http://127.0.0.1:8080/revenue-accounting/oauth/callback",  # the UI plugin on the local api-server
    "http://localhost:8080/revenue-accounting/oauth/callback",
)
#: The project's scope string (LEDGER_APIS.md §2.2), comma-separated as Zoho wants it.
DEFAULT_SCOPES = "ZohoBooks.accountants.CREATE,ZohoBooks.accountants.READ,ZohoBooks.settings.READ"
KNOWN_SCOPES = frozenset(
    {"ZohoBooks.fullaccess.all"}
    | {
        f"ZohoBooks.{module}.{operation}"
        for module in ("accountants", "settings", "invoices", "contacts", "banking", "bills", "expenses")
        for operation in ("CREATE", "READ", "UPDATE", "DELETE", "ALL")
    }
    | {"AaaServer.profile.READ"}
)

#: The sandbox's users: each Zoho account lives in one data centre, with its organisations.
DEMO_USER = "finance@acme.example"
INDIA_USER = "accounts@acme-india.example"
USERS: tuple[dict, ...] = (
    {"email": DEMO_USER, "zuid": "70011223344", "location": "eu", "name": "Fatima Al Mansoori"},
    {"email": INDIA_USER, "zuid": "60055667788", "location": "in", "name": "Priya Raman"},
)

#: The demo company's organisation (company ``acme`` of ACCOUNTING.md), in the demo user's data
#: centre (EU, not the one consent starts at, so every run proves the data-centre rules).
DEMO_ORGANIZATION_ID = "20026112001"
DEMO_ORGANIZATION_NAME = "Acme Trading LLC"
SECOND_ORGANIZATION_ID = "20026112002"
SECOND_ORGANIZATION_NAME = "Acme Holdings FZ-LLC"
INDIA_ORGANIZATION_ID = "60026112003"
INDIA_ORGANIZATION_NAME = "Acme India Pvt Ltd"

#: Code -> (Zoho account_type, active, currency or None) of the UAE chart (``uae_chart``: the Xero
#: sandbox's codes and names), with 1216 inactive.
_ZOHO_ACCOUNTS: dict[str, tuple[str, bool, str | None]] = {
    "1010": ("bank", True, None),
    "1020": ("bank", True, "USD"),
    "1200": ("accounts_receivable", True, None),
    "1215": ("other_current_asset", True, None),
    "1216": ("other_current_asset", False, None),
    "1400": ("other_current_asset", True, None),
    "1600": ("fixed_asset", True, None),
    "2100": ("accounts_payable", True, None),
    "2200": ("other_current_liability", True, None),
    "2300": ("other_current_liability", True, None),
    "3000": ("equity", True, None),
    "3200": ("equity", True, None),
    "4000": ("income", True, None),
    "4010": ("income", True, None),
    "4900": ("other_income", True, None),
    "5000": ("cost_of_goods_sold", True, None),
    "6110": ("expense", True, None),
    "6120": ("expense", True, None),
    "6200": ("expense", True, None),
    "6300": ("expense", True, None),
    "7100": ("other_expense", True, None),
}
#: (code, name, Zoho account_type, active, currency or None) — the UAE chart in AED.
UAE_CHART: tuple[tuple[str, str, str, bool, str | None], ...] = uae_chart(_ZOHO_ACCOUNTS)
#: ``filter_by`` groups of ``GET /chartofaccounts`` (LEDGER_APIS.md §2.4): every account type Zoho knows.
ACCOUNT_TYPE_GROUPS: dict[str, frozenset[str]] = {
    "AccountType.Asset": frozenset(
        {
            "other_asset",
            "other_current_asset",
            "cash",
            "bank",
            "fixed_asset",
            "stock",
            "payment_clearing",
            "accounts_receivable",
            "input_tax",
        }
    ),
    "AccountType.Liability": frozenset(
        {
            "other_current_liability",
            "credit_card",
            "long_term_liability",
            "other_liability",
            "accounts_payable",
            "output_tax",
        }
    ),
    "AccountType.Equity": frozenset({"equity"}),
    "AccountType.Income": frozenset({"income", "other_income"}),
    "AccountType.Expense": frozenset({"expense", "cost_of_goods_sold", "other_expense"}),
}
ACCOUNT_TYPES = frozenset().union(*ACCOUNT_TYPE_GROUPS.values())
#: Currency ids of the sandbox (Zoho's are per organisation; fixed here for readability).
CURRENCY_IDS = {"AED": "460000000000097", "USD": "460000000000099", "INR": "460000000000101"}
LOCK_MODULES = ("sales", "purchase", "banking", "accountant")


def account_id(organization_id: str, code: str) -> str:
    """The stable ``account_id`` of ``code`` in an organisation's chart (15 digits, as Zoho's)."""
    return f"46{organization_id[-6:]}{int(code):07d}" if code.isdigit() else f"46{organization_id[-6:]}{code}"


def default_chart(organization_id: str, base_currency: str) -> list[dict]:
    """The UAE chart as admin account specs (``POST /_sandbox/organisations/{id}/accounts`` keys)."""
    return [
        {
            "account_id": account_id(organization_id, code),
            "account_code": code,
            "account_name": name,
            "account_type": type_,
            "is_active": active,
            "currency_code": currency or base_currency,
        }
        for code, name, type_, active, currency in UAE_CHART
    ]


def default_organisations() -> list[dict]:
    """Settings of the organisations a fresh sandbox holds (keys as ``POST /_sandbox/organisations``)."""
    return [
        {
            "organization_id": DEMO_ORGANIZATION_ID,
            "name": DEMO_ORGANIZATION_NAME,
            "currency_code": "AED",
            "country": "U.A.E",
            "time_zone": "Asia/Dubai",
            "location": "eu",
            "users": [DEMO_USER],
        },
        {
            "organization_id": SECOND_ORGANIZATION_ID,
            "name": SECOND_ORGANIZATION_NAME,
            "currency_code": "AED",
            "country": "U.A.E",
            "time_zone": "Asia/Dubai",
            "location": "eu",
            "users": [DEMO_USER],
        },
        {
            "organization_id": INDIA_ORGANIZATION_ID,
            "name": INDIA_ORGANIZATION_NAME,
            "currency_code": "INR",
            "country": "India",
            "time_zone": "Asia/Kolkata",
            "location": "in",
            "users": [INDIA_USER],
        },
    ]
