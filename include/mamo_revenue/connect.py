"""Connecting a company's ledger (OAuth consent) and mapping its categories to ledger accounts.

The consent has two halves with a person in between: ``start`` gives the ledger's consent URL
(with ``state`` and a PKCE challenge), ``finish`` takes the callback URL the browser came back
to, checks ``state``, exchanges the code, picks the organisation and stores the tokens encrypted
in the product DB. The CLI, the headless demo (which answers the sandbox's consent page over HTTP,
as a browser would) and the Revenue accounting page all use these two halves; the page splits
``finish`` into ``exchange`` and ``store`` because a person picks the organisation in between.
"""

from __future__ import annotations

import dataclasses
import html.parser
import secrets
import sys
from dataclasses import dataclass, field
from datetime import datetime
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
    conn_id: str | None = None  # the ledger app's Airflow connection (None: the company's)
    redirect_uri: str | None = None  # None: the connection's redirect_uri


@dataclass(frozen=True)
class Consent:
    """A callback's code exchanged: the tokens (never shown) and the organisations they reach."""

    exchanged: dict = field(repr=False)
    organisations: list[dict]  # {"id", "name"}

    def to_dict(self) -> dict:
        """JSON-safe, to keep (encrypted) while a person picks the organisation."""
        exchanged = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in self.exchanged.items()}
        return {"exchanged": exchanged, "organisations": self.organisations}

    @classmethod
    def from_dict(cls, data: dict) -> Consent:
        exchanged = dict(data["exchanged"])
        if isinstance(exchanged.get("access_expires_at"), str):
            exchanged["access_expires_at"] = datetime.fromisoformat(exchanged["access_expires_at"])
        return cls(exchanged, list(data["organisations"]))


def _company(engine, company_id: str):
    with session_scope(engine) as session:
        company = repo.require_company(session, company_id)
        session.expunge(company)
        return company


class _Connector:
    """One ledger's consent: its consent URL, and what the callback is exchanged for."""

    pkce = False
    platform = ""
    #: Whether withdrawing one grant disconnects the organisation from the app for every grant (Xero).
    revoke_cuts_organisation = False

    def params(self, company, conn_id: str | None = None, redirect_uri: str | None = None):
        from airflow.sdk import BaseHook

        from mamo_revenue.hooks.registry import ledger_hook_class

        params = ledger_hook_class(self.platform or company.ledger_platform).connection_params(
            BaseHook.get_connection(conn_id or company.ledger_conn_id))
        return dataclasses.replace(params, redirect_uri=redirect_uri) if redirect_uri else params

    def authorization_url(self, params, state: str, challenge: str | None, *, first_connect: bool) -> str:
        raise NotImplementedError

    def complete(self, params, query: dict, verifier: str | None, *, stored_refresh: str | None
                 ) -> tuple[dict, list[dict]]:
        """The exchanged tokens and the organisations of this consent, as ``{"id", "name"}``."""
        raise NotImplementedError

    def token_set(self, params, exchanged: dict, organisation_id: str, *, stored_refresh: str | None) -> TokenSet:
        raise NotImplementedError

    def revoke(self, params, tokens: TokenSet) -> None:
        """Withdraw the grant at the ledger (its tokens stop working)."""
        raise NotImplementedError


class _XeroConnector(_Connector):
    pkce = True
    platform = "xero"
    revoke_cuts_organisation = True

    def authorization_url(self, params, state, challenge, *, first_connect):
        from mamo_revenue.hooks.xero import authorization_url

        return authorization_url(params, state, challenge)

    def complete(self, params, query, verifier, *, stored_refresh):
        from mamo_revenue.hooks.xero import exchange_code, list_tenants

        tokens = exchange_code(params, query["code"][0], verifier)
        tenants = list_tenants(params, tokens["access_token"], tokens.get("auth_event_id"))
        return tokens, [{"id": t["tenantId"], "name": t["tenantName"]} for t in tenants
                        if t.get("tenantType", "ORGANISATION") == "ORGANISATION"]

    def token_set(self, params, exchanged, organisation_id, *, stored_refresh):
        return TokenSet(access_token=exchanged["access_token"], refresh_token=exchanged["refresh_token"],
                        access_expires_at=exchanged["access_expires_at"], tenant_id=organisation_id)

    def revoke(self, params, tokens):
        """Remove the organisation's connection to the app (``DELETE /connections/{id}``). Not the token
        revocation: that would also drop every other organisation the same consent reached, which other
        companies may post to; the refresh token is erased here and dies unused at Xero."""
        from mamo_revenue.hooks.xero import disconnect, list_tenants, refresh_tokens

        fresh = refresh_tokens(params, tokens.refresh_token)
        for connection in list_tenants(params, fresh["access_token"]):
            if connection.get("tenantId") == tokens.tenant_id:
                disconnect(params, fresh["access_token"], connection["id"])


class _ZohoBooksConnector(_Connector):
    platform = "zoho_books"

    def authorization_url(self, params, state, challenge, *, first_connect):
        from mamo_revenue.hooks.zoho_identity import authorization_url

        # prompt=consent (a new refresh token) only when the company holds no live grant: Zoho keeps
        # at most 20 refresh tokens per user and silently drops the oldest.
        return authorization_url(params, state, first_connect=first_connect)

    def complete(self, params, query, verifier, *, stored_refresh):
        from mamo_revenue.hooks.zoho_identity import exchange_code, list_organizations

        tokens = exchange_code(params, query["code"][0], query.get("accounts-server", [None])[0])
        organisations = list_organizations(params, tokens["access_token"], tokens["api_domain"])
        return tokens, [{"id": str(o["organization_id"]), "name": o["name"]} for o in organisations]

    def token_set(self, params, exchanged, organisation_id, *, stored_refresh):
        from mamo_revenue.hooks.zoho_identity import token_set

        return token_set(exchanged, organisation_id, refresh_token=stored_refresh)

    def revoke(self, params, tokens):
        from mamo_revenue.hooks.zoho_identity import revoke

        revoke(params, tokens.refresh_token, tokens.extra.get("accounts_server") or params.accounts_url)


CONNECTORS = {"xero": _XeroConnector(), "zoho_books": _ZohoBooksConnector()}


def _connector(company, platform: str | None = None) -> _Connector:
    platform = platform or company.ledger_platform
    try:
        return CONNECTORS[platform]
    except KeyError:
        raise errors.MamoRevenueError(f"connecting {platform} is not supported") from None


def _live_refresh_token(engine, company_id: str, platform: str | None = None) -> str | None:
    """The refresh token of a still-connected grant (a reconnect keeps it where the ledger mints none)."""
    with session_scope(engine) as session:
        row = repo.get_ledger_connection(session, company_id)
        if row is None or row.status != "connected" or not row.refresh_token_enc:
            return None
        if platform is not None and row.platform != platform:
            return None  # a grant of another ledger is no refresh token of this one
        return repo.read_tokens(row, load_cipher()).refresh_token


def _conn_id(company, platform: str, conn_id: str | None) -> str:
    if conn_id:
        return conn_id
    return company.ledger_conn_id if platform == company.ledger_platform else f"{platform}_default"


def start(engine, company_id: str, *, platform: str | None = None, conn_id: str | None = None,
          redirect_uri: str | None = None, default_redirect_uri: str | None = None) -> PendingConsent:
    """The consent URL for the company's ledger, with a fresh ``state`` (and PKCE pair where supported).

    ``platform`` connects another ledger than the company's (its connection ``<platform>_default``
    unless ``conn_id`` says); the company switches to it only once ``store`` saved the new grant.
    ``redirect_uri`` overrides the connection's; ``default_redirect_uri`` is used when it has none.
    """
    company = _company(engine, company_id)
    platform = platform or company.ledger_platform
    connector = _connector(company, platform)
    conn_id = _conn_id(company, platform, conn_id)
    state, pkce = secrets.token_urlsafe(24), pkce_pair()
    params = connector.params(company, conn_id, redirect_uri)
    if not params.redirect_uri and default_redirect_uri:
        redirect_uri = default_redirect_uri
        params = dataclasses.replace(params, redirect_uri=redirect_uri)
    url = connector.authorization_url(params, state, pkce.challenge if connector.pkce else None,
                                      first_connect=_live_refresh_token(engine, company_id, platform) is None)
    return PendingConsent(company_id, platform, url, state, pkce.verifier, conn_id, redirect_uri)


def exchange(engine, pending: PendingConsent, callback_url: str) -> Consent:
    """Check the callback's ``state`` and outcome, exchange its code: the tokens and organisations."""
    query = parse_qs(urlsplit(callback_url).query)
    if not secrets.compare_digest(query.get("state", [""])[0], pending.state):
        raise errors.LedgerAuthError("the consent callback's state does not match: refused",
                                     guidance="Start the connection again from the beginning.")
    if "error" in query:
        raise errors.LedgerAuthError(f"the ledger's consent was not given ({query['error'][0]})",
                                     guidance="Start the connection again and choose Allow.")
    if not query.get("code"):
        raise errors.LedgerAuthError("the consent callback carries no code",
                                     guidance="Start the connection again from the beginning.")
    company = _company(engine, pending.company_id)
    connector = _connector(company, pending.platform)
    params = connector.params(company, _conn_id(company, pending.platform, pending.conn_id), pending.redirect_uri)
    stored = _live_refresh_token(engine, company.id, pending.platform)
    exchanged, organisations = connector.complete(params, query, pending.code_verifier, stored_refresh=stored)
    return Consent(exchanged, organisations)


@dataclass(frozen=True)
class Stored:
    name: str  # the organisation's
    resumed: bool  # a disconnected company that is mapped: it syncs again (its DAG needs unpausing)


def store(engine, pending: PendingConsent, consent: Consent, organisation: dict, *, user: str = "cli") -> Stored:
    """Save the consent's grant for ``organisation`` (one of ``consent.organisations``), encrypted; the
    company now posts to that ledger.

    In the same transaction: when another organisation (or ledger) replaces the one connected before,
    the mapping, which names the old chart's accounts, is cleared and the company paused until it is
    mapped again; a disconnected company becomes active again if it is mapped, else paused."""
    if organisation not in consent.organisations:
        raise errors.MamoRevenueError("that organisation is not one this consent covers",
                                      guidance="Pick one of the organisations ticked on the consent page.")
    company = _company(engine, pending.company_id)
    connector = _connector(company, pending.platform)
    conn_id = _conn_id(company, pending.platform, pending.conn_id)
    params = connector.params(company, conn_id, pending.redirect_uri)
    stored = _live_refresh_token(engine, company.id, pending.platform)
    tokens = connector.token_set(params, consent.exchanged, organisation["id"], stored_refresh=stored)
    with session_scope(engine) as session:
        before = repo.get_ledger_connection(session, company.id)
        moved = before is not None and (before.platform, before.tenant_id) != (pending.platform, organisation["id"])
        if (company.ledger_platform, company.ledger_conn_id) != (pending.platform, conn_id):
            repo.upsert_company(session, company.id, ledger_platform=pending.platform, ledger_conn_id=conn_id)
        repo.connect_ledger(session, company.id, platform=pending.platform, cipher=load_cipher(),
                            tenant_name=organisation["name"], tokens=tokens)
        mapped = bool(repo.get_mappings(session, company.id))
        if moved and mapped:
            repo.set_mappings(session, company.id, {}, replace=True)
            mapped = False
            if company.status == "active":
                repo.set_company_status(session, company.id, "paused")
            repo.record_activity(session, company.id, user=user, action="settings",
                                 detail="Another organisation was connected: the mapping was cleared and syncing "
                                        "paused until the accounts are mapped again")
        resumed = company.status == "disconnected" and mapped
        if company.status == "disconnected":  # reconnected: sync again if it is mapped, else after mapping
            repo.set_company_status(session, company.id, "active" if resumed else "paused")
    return Stored(organisation["name"], resumed)


def finish(engine, pending: PendingConsent, callback_url: str, *, tenant_name: str | None = None) -> str:
    """Exchange the callback's code, choose the organisation, store the grant; returns its name."""
    consent = exchange(engine, pending, callback_url)
    return store(engine, pending, consent, choose_tenant(consent.organisations, tenant_name)).name


def disconnect(engine, company_id: str) -> tuple[bool, str | None]:
    """Revoke the company's grant at its ledger, erase the stored tokens, and mark the connection and the
    company disconnected (its DAG schedules nothing once the registry is exported). Mappings and history
    stay. Returns (whether the ledger confirmed the revocation, what went wrong if not)."""
    company = _company(engine, company_id)
    cipher = load_cipher()
    with session_scope(engine) as session:
        row = repo.get_ledger_connection(session, company_id)
        tokens = repo.read_tokens(row, cipher) if row is not None and row.refresh_token_enc else None
        platform = row.platform if row is not None else company.ledger_platform
        sharing = _sharing_the_organisation(session, row) if row is not None else []
    revoked, problem = tokens is None, None
    connector = _connector(company, platform)
    if tokens is not None and sharing and connector.revoke_cuts_organisation:
        # Xero keeps one connection per app and organisation: revoking would cut the others off too.
        problem = (f"not revoked at the ledger: company {', '.join(sharing)} posts to the same organisation "
                   "through this app; remove the app in the ledger once no company uses it")
    elif tokens is not None:
        try:
            connector.revoke(connector.params(company), tokens)
            revoked = True
        except Exception as exc:  # the ledger is down or already forgot the grant: disconnect anyway
            problem = exc.args[0] if isinstance(exc, errors.MamoRevenueError) else type(exc).__name__
    with session_scope(engine) as session:
        if row is not None:
            repo.erase_ledger_grant(session, company_id, reason="disconnected on the Revenue accounting page")
        repo.set_company_status(session, company_id, "disconnected")
    return revoked, problem


def _sharing_the_organisation(session, row) -> list[str]:
    """Other companies connected to the same organisation of the same ledger."""
    import sqlalchemy as sa

    from mamo_revenue.db.models import LedgerConnection

    return list(session.scalars(sa.select(LedgerConnection.company_id).where(
        LedgerConnection.platform == row.platform, LedgerConnection.tenant_id == row.tenant_id,
        LedgerConnection.company_id != row.company_id, LedgerConnection.status == "connected")))


def choose_tenant(organisations: list[dict], name: str | None) -> dict:
    """The organisation named ``name`` among those the consent covers (the only one when unnamed)."""
    if not organisations:
        raise errors.LedgerAuthError("the consent gave access to no organisation",
                                     guidance="Connect again and tick the organisation to connect.")
    if name is None:
        if len(organisations) == 1:
            return organisations[0]
        names = ", ".join(repr(o["name"]) for o in organisations)
        raise errors.MamoRevenueError(f"the consent covers several organisations ({names})",
                                      guidance="Say which one with --tenant NAME.")
    for organisation in organisations:
        if name in (organisation["name"], organisation["id"]):
            return organisation
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
