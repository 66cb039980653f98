"""Airflow provider info: the ``mamo``, ``xero`` and ``zoho_books`` connection types and their forms.

Registered through the ``apache_airflow_provider`` entry point of the project's pyproject
(AIRFLOW3.md §4). Only provider info reaches the connection form; a hook in ``include/`` alone does not.
Pure data: importing this module must stay free of Airflow and of I/O.
"""

from __future__ import annotations


def _text(label: str, description: str, default: str | None = None) -> dict:
    schema: dict = {"type": ["string", "null"]}
    if default is not None:
        schema["default"] = default
    return {"label": label, "description": description, "schema": schema}


XERO_CONN_FIELDS = {
    "token_url": _text(
        "Token URL", "OAuth token endpoint. Empty: Xero's, or the sandbox's when the host is a sandbox."
    ),
    "authorize_url": _text(
        "Authorize URL", "Where users approve access. Empty: Xero's login page, or the sandbox's."
    ),
    "connections_url": _text(
        "Connections URL", "Lists the organisations a consent reached. Empty: derived from the host."
    ),
    "scopes": _text(
        "Scopes",
        "Space-separated OAuth scopes (apps created from 2026-03-02 need granular scopes).",
        "openid offline_access accounting.settings accounting.manualjournals",
    ),
    "redirect_uri": _text(
        "Redirect URI",
        "The OAuth callback registered with the Xero app, e.g. "
        "https://airflow.example.com/revenue-accounting/oauth/callback",
    ),
}


ZOHO_BOOKS_CONN_FIELDS = {
    "accounts_url": _text(
        "Accounts URL",
        "Where consent starts. Each grant's own data centre (accounts server and API domain) comes back "
        "with it and is stored with the grant.",
        "https://accounts.zoho.com",
    ),
    "redirect_uri": _text(
        "Redirect URI",
        "The OAuth callback registered with the Zoho client (api-console.zoho.com), e.g. "
        "https://airflow.example.com/revenue-accounting/oauth/callback",
    ),
    "scopes": _text(
        "Scopes",
        "Comma-separated OAuth scopes.",
        "ZohoBooks.accountants.CREATE,ZohoBooks.accountants.READ,ZohoBooks.settings.READ",
    ),
    "publish": _text(
        "Publish",
        "published: create journals published; draft_then_publish: create a draft, then publish it.",
        "published",
    ),
}


def get_provider_info() -> dict:
    return {
        "package-name": "mamo-revenue",
        "name": "Mamo revenue accounting",
        "description": "Mamo extraction and ledger posting hooks (Xero, Zoho Books).",
        "versions": ["0.1.0"],
        "connection-types": [
            {
                "connection-type": "mamo",
                "hook-name": "Mamo",
                "hook-class-name": "mamo_revenue.hooks.mamo.MamoHook",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login"],
                    "relabeling": {"host": "API base URL", "password": "API key"},
                    "placeholders": {"host": "https://business.mamopay.com/manage_api/v1"},
                },
            },
            {
                "connection-type": "xero",
                "hook-name": "Xero",
                "hook-class-name": "mamo_revenue.hooks.xero.XeroHook",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {"host": "API base URL", "login": "Client ID", "password": "Client secret"},
                    "placeholders": {
                        "host": "https://api.xero.com/api.xro/2.0",
                        "login": "the Xero app's client id (developer.xero.com > My Apps)",
                    },
                },
                "conn-fields": XERO_CONN_FIELDS,
            },
            {
                "connection-type": "zoho_books",
                "hook-name": "Zoho Books",
                "hook-class-name": "mamo_revenue.hooks.zoho_books.ZohoBooksHook",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "host"],
                    "relabeling": {"login": "Client ID", "password": "Client secret"},
                    "placeholders": {
                        "login": "the Zoho client's id (api-console.zoho.com > Server-based Applications)",
                        "password": "the Zoho client's secret",
                    },
                },
                "conn-fields": ZOHO_BOOKS_CONN_FIELDS,
            },
        ],
    }
