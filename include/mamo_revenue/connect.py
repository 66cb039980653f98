"""Connecting a company's ledger (OAuth consent) and mapping its categories to ledger accounts.

The consent has two halves with a person in between: ``start`` gives the ledger's consent URL
(with ``state`` and a PKCE challenge), ``finish`` takes the callback URL the browser came back
to, checks ``state``, exchanges the code, picks the organisation and stores the tokens encrypted
in the product DB. The CLI, the headless demo (which answers the sandbox's consent page over HTTP,
as a browser would) and, later, the UI page all use these two halves.
"""

from __future__ import annotations

import html.parser
import secrets
import sys
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urljoin, urlsplit

import requests

from mamo_revenue import errors
from mamo_revenue.db import repository as repo
from mamo_revenue.db.crypto import load_cipher
from mamo_revenue.db.session import session_scope
from mamo_revenue.hooks.oauth import pkce_pair
from mamo_revenue.hooks.tokens import TokenSet


@dataclass(frozen=True)
class PendingConsent:
    company_id: str
    platform: str
    url: str  # where to send the person
    state: str = field(repr=False)
    code_verifier: str = field(repr=False)


def _company(engine, company_id: str):
    with session_scope(engine) as session:
        company = repo.require_company(session, company_id)
        session.expunge(company)
        return company


def _xero_params(company):
    from airflow.sdk import BaseHook

    from mamo_revenue.hooks.xero import XeroHook

    return XeroHook.connection_params(BaseHook.get_connection(company.ledger_conn_id))


def start(engine, company_id: str) -> PendingConsent:
    """The consent URL for the company's ledger, with a fresh ``state`` and PKCE pair."""
    from mamo_revenue.hooks.xero import authorization_url

    company = _company(engine, company_id)
    if company.ledger_platform != "xero":
        raise errors.MamoRevenueError(f"connecting {company.ledger_platform} is not supported yet")
    params = _xero_params(company)
    state, pkce = secrets.token_urlsafe(24), pkce_pair()
    return PendingConsent(company_id, company.ledger_platform, authorization_url(params, state, pkce.challenge),
                          state, pkce.verifier)


def finish(engine, pending: PendingConsent, callback_url: str, *, tenant_name: str | None = None) -> str:
    """Exchange the callback's code, choose the organisation, store the grant; returns its name."""
    from mamo_revenue.hooks.xero import exchange_code, list_tenants

    query = parse_qs(urlsplit(callback_url).query)
    if query.get("state", [None])[0] != pending.state:
        raise errors.LedgerAuthError("the consent callback's state does not match: refused",
                                     guidance="Start the connection again from the beginning.")
    if "error" in query:
        raise errors.LedgerAuthError(f"the ledger's consent was not given ({query['error'][0]})",
                                     guidance="Start the connection again and choose Allow.")
    company = _company(engine, pending.company_id)
    params = _xero_params(company)
    tokens = exchange_code(params, query["code"][0], pending.code_verifier)
    tenants = list_tenants(params, tokens["access_token"], tokens.get("auth_event_id"))
    chosen = choose_tenant(tenants, tenant_name)
    with session_scope(engine) as session:
        repo.connect_ledger(
            session, company.id, platform="xero", cipher=load_cipher(), tenant_name=chosen["tenantName"],
            tokens=TokenSet(access_token=tokens["access_token"], refresh_token=tokens["refresh_token"],
                            access_expires_at=tokens["access_expires_at"], tenant_id=chosen["tenantId"]))
    return chosen["tenantName"]


def choose_tenant(tenants: list[dict], name: str | None) -> dict:
    organisations = [t for t in tenants if t.get("tenantType", "ORGANISATION") == "ORGANISATION"]
    if not organisations:
        raise errors.LedgerAuthError("the consent gave access to no organisation",
                                     guidance="Connect again and tick the organisation to connect.")
    if name is None:
        if len(organisations) == 1:
            return organisations[0]
        names = ", ".join(repr(t["tenantName"]) for t in organisations)
        raise errors.MamoRevenueError(f"the consent covers several organisations ({names})",
                                      guidance="Say which one with --tenant NAME.")
    for tenant in organisations:
        if tenant["tenantName"] == name:
            return tenant
    raise errors.MamoRevenueError(f"the consent does not cover an organisation named {name!r}",
                                  guidance="Pick one of the organisations ticked on the consent page.")


def connect_interactively(engine, company_id: str, *, tenant_name: str | None = None) -> str:
    pending = start(engine, company_id)
    print(f"Open this address, sign in and allow access:\n\n  {pending.url}\n")
    callback = input("Then paste the whole address your browser was sent back to: ").strip()
    return finish(engine, pending, callback, tenant_name=tenant_name)


class _ConsentForm(html.parser.HTMLParser):
    """The sandbox consent page's form: its action and fields, as a browser would submit them."""

    def __init__(self):
        super().__init__()
        self.action, self.fields, self.tenants = None, {}, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.action = attrs.get("action")
        elif tag == "input" and attrs.get("name"):
            if attrs.get("type") == "checkbox":
                self.tenants.append(attrs.get("value"))
            else:
                self.fields[attrs["name"]] = attrs.get("value", "")


def connect_through_sandbox_consent(engine, company_id: str, *, tenant_name: str = "Acme Trading LLC") -> str:
    """The headless demo's consent: answer the sandbox's consent page as a person clicking Allow."""
    pending = start(engine, company_id)
    page = requests.get(pending.url, timeout=10)
    page.raise_for_status()
    form = _ConsentForm()
    form.feed(page.text)
    if not form.action:
        sys.exit(f"unexpected consent page at {pending.url}")
    answer = requests.post(urljoin(pending.url, form.action), allow_redirects=False, timeout=10,
                           data={**form.fields, "tenant": form.tenants, "decision": "allow"})
    if answer.status_code not in (302, 303):
        sys.exit(f"the sandbox consent answered HTTP {answer.status_code}")
    return finish(engine, pending, answer.headers["Location"], tenant_name=tenant_name)


def map_by_codes(engine, company_id: str, codes: dict[str, str]) -> dict:
    """Map categories to the ledger accounts with these codes (active accounts only)."""
    from mamo_revenue.sync import ledger_hook_for

    company = _company(engine, company_id)
    accounts = {a.code: a for a in ledger_hook_for(company, engine).list_accounts() if a.code}
    chosen = {}
    for category, code in codes.items():
        account = accounts.get(code)
        if account is None or not account.active:
            state = "not in" if account is None else "archived in"
            raise errors.LedgerAccountError(f"company {company_id}: account code {code} for {category} is {state} "
                                            f"the ledger's chart of accounts")
        chosen[category] = repo.MappedAccount(account.id, account.code, account.name)
    with session_scope(engine) as session:
        return repo.set_mappings(session, company_id, chosen)
