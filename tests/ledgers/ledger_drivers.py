"""Drivers of the ledger contract suite: one per ledger, each with its sandbox on a real socket.

A driver gives the suite a connected hook (tokens in the product's ``DbTokenStore`` on PostgreSQL,
the Airflow connection as an ``AIRFLOW_CONN_…`` variable) and works the sandbox's admin API: lock a
period, deactivate or delete an account, exhaust the daily limit, revoke the grant, lose an answer.
``journals()`` reads what the ledger holds and turns each ledger's encoding (Xero's signed
``LineAmount``, Zoho's ``debit_or_credit``) into one neutral form: (reference, counted, lines) with
lines as sorted (account code, side, amount in minor units).

Adding a ledger to the suite is one more driver here and its id in ``LEDGERS`` (the fixtures are in
``conftest.py``).
"""

from __future__ import annotations

import abc
import json
from dataclasses import dataclass
from decimal import Decimal

import requests
from token_stores import RecordingTokenStore

from mamo_revenue.hooks.ledger import LedgerHook, LedgerLine, Side
from mamo_revenue.hooks.oauth import expires_at, token_set
from mamo_revenue.hooks.tokens import TokenSet
from mamo_revenue.hooks.xero import XeroHook
from mamo_revenue.hooks.zoho_books import ZohoBooksHook
from mamo_revenue.hooks.zoho_identity import grant_extra
from mamo_revenue.money import to_minor
from mamo_sandboxes import xero_data, zoho_data
from mamo_sandboxes.xero import create_app as xero_app
from mamo_sandboxes.zoho import create_app as zoho_app

LEDGERS = ["xero", "zoho_books"]
TUNING = {"backoff": 0.01, "timeout": 2, "max_rate_limit_wait": 5, "max_attempts": 4}


@dataclass(frozen=True)
class NeutralJournal:
    reference: str
    counted: bool  # the ledger counts it in its books (Xero POSTED, Zoho published)
    lines: tuple[tuple[str | None, str, int], ...]  # sorted (account code, side, minor units)


def _sorted(lines) -> tuple:
    return tuple(sorted(lines, key=lambda line: (line[0] or "", line[1], line[2])))


class Driver(abc.ABC):
    platform: str
    ledger_name: str  # as guidance names it ("Reconnect Xero", "Reconnect Zoho Books")

    def __init__(self, url: str, monkeypatch, stores):
        self.url, self._monkeypatch, self._make_store = url, monkeypatch, stores
        self.store: RecordingTokenStore | None = None
        self.admin("POST", "/reset")

    def admin(self, method: str, path: str, body=None) -> dict:
        response = requests.request(method, f"{self.url}/_sandbox{path}", json=body, timeout=10)
        assert response.status_code < 300, response.text
        return json.loads(response.content, parse_float=Decimal) if response.content else {}

    def line(self, code: str, side: Side, minor: int, description: str) -> LedgerLine:
        return LedgerLine(self.account_id(code), code, side, minor, description)

    @abc.abstractmethod
    def account_id(self, code: str) -> str: ...

    @abc.abstractmethod
    def hook(self) -> LedgerHook:
        """A hook connected to the demo organisation (a fresh grant, its tokens in the product DB)."""

    @abc.abstractmethod
    def journals(self) -> list[NeutralJournal]: ...

    @abc.abstractmethod
    def lock(self, day: str) -> None: ...

    @abc.abstractmethod
    def deactivate(self, code: str) -> None: ...

    @abc.abstractmethod
    def delete(self, code: str) -> None: ...

    @abc.abstractmethod
    def limit_per_day(self, calls: int) -> None: ...

    @abc.abstractmethod
    def revoke_grant(self) -> None: ...

    @abc.abstractmethod
    def lose_next_post(self) -> None: ...

    @abc.abstractmethod
    def posts(self) -> int:
        """How many journal-creating requests reached the ledger."""


class XeroDriver(Driver):
    platform, ledger_name = "xero", "Xero"
    tenant = xero_data.DEMO_TENANT_ID

    def account_id(self, code: str) -> str:
        return xero_data.account_id(self.tenant, code)

    def hook(self) -> XeroHook:
        conn = {
            "conn_type": "xero",
            "host": f"{self.url}/api.xro/2.0",
            "login": xero_data.DEFAULT_CLIENT_ID,
            "password": xero_data.DEFAULT_CLIENT_SECRET,
            "extra": TUNING,
        }
        self._monkeypatch.setenv("AIRFLOW_CONN_XERO_CONTRACT", json.dumps(conn))
        self.grant = self.admin("POST", "/grants", {"tenant_ids": [self.tenant]})
        self.store = self._make_store(token_set(self.grant, tenant_id=self.tenant), platform="xero")
        return XeroHook(xero_conn_id="xero_contract", token_store=self.store, tenant_id=self.tenant)

    def journals(self) -> list[NeutralJournal]:
        out = []
        for journal in self.admin("GET", f"/organisations/{self.tenant}/journals")["journals"]:
            lines = _sorted(
                (
                    line.get("AccountCode"),
                    "debit" if line["LineAmount"] > 0 else "credit",
                    to_minor(abs(line["LineAmount"])),
                )
                for line in journal["JournalLines"]
            )
            out.append(NeutralJournal(journal["Narration"].split()[0], journal["Status"] == "POSTED", lines))
        return out

    def lock(self, day: str) -> None:
        self.admin("PATCH", f"/organisations/{self.tenant}", {"period_lock_date": day})

    def deactivate(self, code: str) -> None:
        self.admin("PATCH", f"/organisations/{self.tenant}/accounts/{code}", {"Status": "ARCHIVED"})

    def delete(self, code: str) -> None:
        self.admin("PATCH", f"/organisations/{self.tenant}/accounts/{code}", {"Status": "DELETED"})

    def limit_per_day(self, calls: int) -> None:
        self.admin("PATCH", "/settings", {"limit_per_day": calls})

    def revoke_grant(self) -> None:
        requests.post(
            f"{self.url}/identity/connect/revocation",
            data={"token": self.store.current().refresh_token},
            auth=(xero_data.DEFAULT_CLIENT_ID, xero_data.DEFAULT_CLIENT_SECRET),
            timeout=10,
        ).raise_for_status()

    def lose_next_post(self) -> None:
        self.admin("POST", "/faults", {"kind": "lost_response", "method": "PUT", "path": "/ManualJournals"})

    def posts(self) -> int:
        log = self.admin("GET", "/requests?path_contains=/ManualJournals")["requests"]
        return sum(1 for r in log if r["method"] == "PUT")


class ZohoDriver(Driver):
    platform, ledger_name = "zoho_books", "Zoho Books"
    organization = zoho_data.DEMO_ORGANIZATION_ID

    def account_id(self, code: str) -> str:
        return zoho_data.account_id(self.organization, code)

    def hook(self) -> ZohoBooksHook:
        conn = {
            "conn_type": "zoho_books",
            "login": zoho_data.DEFAULT_CLIENT_ID,
            "password": zoho_data.DEFAULT_CLIENT_SECRET,
            "extra": TUNING | {"accounts_url": f"{self.url}/us/accounts", "rate_limit_backoff": 0.01},
        }
        self._monkeypatch.setenv("AIRFLOW_CONN_ZOHO_CONTRACT", json.dumps(conn))
        grant = self.admin("POST", "/grants", {})
        tokens = TokenSet(
            grant["access_token"],
            grant["refresh_token"],
            expires_at(grant["expires_in"]),
            self.organization,
            extra=grant_extra(grant["api_domain"], grant["accounts_server"]),
        )
        self.grant, self.store = grant, self._make_store(tokens, platform="zoho_books")
        return ZohoBooksHook(
            zoho_books_conn_id="zoho_contract", token_store=self.store, tenant_id=self.organization
        )

    def journals(self) -> list[NeutralJournal]:
        out = []
        for journal in self.admin("GET", f"/organisations/{self.organization}/journals")["journals"]:
            lines = _sorted(
                (line.get("account_code") or None, line["debit_or_credit"], to_minor(line["amount"]))
                for line in journal["line_items"]
            )
            out.append(NeutralJournal(journal["reference_number"], journal["status"] == "published", lines))
        return out

    def lock(self, day: str) -> None:
        self.admin("PUT", f"/organisations/{self.organization}/lock", {"module": "accountant", "date": day})

    def deactivate(self, code: str) -> None:
        self.admin("PATCH", f"/organisations/{self.organization}/accounts/{code}", {"is_active": False})

    def delete(self, code: str) -> None:
        self.admin("PATCH", f"/organisations/{self.organization}/accounts/{code}", {"deleted": True})

    def limit_per_day(self, calls: int) -> None:
        self.admin("PATCH", "/settings", {"limit_per_day": calls})

    def revoke_grant(self) -> None:
        tokens = self.store.current()
        requests.post(
            f"{tokens.extra['accounts_server']}/oauth/v2/token/revoke",
            params={"token": tokens.refresh_token},
            timeout=10,
        ).raise_for_status()

    def lose_next_post(self) -> None:
        self.admin(
            "POST", "/faults", {"kind": "lost_response", "method": "POST", "path": "/books/v3/journals"}
        )

    def posts(self) -> int:
        log = self.admin("GET", "/requests?path_contains=/books/v3/journals")["requests"]
        return sum(1 for r in log if r["method"] == "POST" and r["short_path"] == "/books/v3/journals")


DRIVERS = {"xero": (XeroDriver, xero_app), "zoho_books": (ZohoDriver, zoho_app)}
