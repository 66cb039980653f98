"""Zoho's accounts server for the hook and the connect flow (CLI, UI): the connection's parameters, the
token endpoint, the authorize URL, code exchange, organisations and revocation (LEDGER_APIS.md §2.1–2.3).

Data centres: consent starts at ``accounts_url`` (``https://accounts.zoho.com``); the redirect back
names the user's data centre in ``location`` and ``accounts-server``, and the token answer carries
``api_domain``. Both are values of the grant: the connect flow stores them with it
(``TokenSet.extra``), the hook refreshes at that accounts server and calls that API domain, and
nothing assumes ``.com``.

Refresh tokens: Zoho issues one only with ``access_type=offline`` and only on a user's first consent
to the app, or when ``prompt=consent`` forces a new one; it never rotates; each user has at most 20
per app and the 21st silently kills the oldest. So ``authorization_url(first_connect=False)`` leaves
``prompt=consent`` out when the company's connection still holds a live refresh token: the answer then
carries no refresh token and the stored one is kept (``exchange_code`` returns ``refresh_token`` None).

Tokens and secrets are never logged here; callers log only outcomes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

import requests

from mamo_revenue.errors import LedgerAuthError, LedgerError, LedgerRateLimited, LedgerUnavailable
from mamo_revenue.hooks.oauth import expires_at
from mamo_revenue.hooks.oauth_ledger import (
    TRANSPORT_ERRORS,
    GrantRejected,
    TransientError,
    connection_extra,
    loads_json,
    require_redirect_uri,
    token_call,
)
from mamo_revenue.hooks.oauth_ledger import check_client_credentials as check_credentials
from mamo_revenue.hooks.tokens import TokenSet

ZOHO_ACCOUNTS_URL = "https://accounts.zoho.com"
DEFAULT_SCOPES = "ZohoBooks.accountants.CREATE,ZohoBooks.accountants.READ,ZohoBooks.settings.READ"
BOOKS_PATH = "/books/v3"
PUBLISH_MODES = ("published", "draft_then_publish")
RECONNECT = (
    "Reconnect Zoho Books for this company (Connect Zoho Books in the Revenue accounting page) and "
    "approve access again."
)
#: Zoho's accounts servers (LEDGER_APIS.md §2.1; ``uk`` and ``ae`` are newer data centres of the same form).
_REAL_ACCOUNTS_HOST = re.compile(r"^accounts\.(zoho\.(com|eu|in|com\.au|jp|com\.cn|sa|uk|ae)|zohocloud\.ca)$")
_REAL_API_HOST = re.compile(r"^www\.zohoapis\.(?P<tld>[a-z.]+)$")
LEDGER = "Zoho Books"


@dataclass(frozen=True)
class ZohoParams:
    """Everything a call needs from the Airflow connection; built by ``ZohoBooksHook.connection_params``."""

    client_id: str
    client_secret: str = field(repr=False)
    accounts_url: str = ZOHO_ACCOUNTS_URL  # where consent starts; the grant's own server comes back
    redirect_uri: str | None = None
    scopes: str = DEFAULT_SCOPES  # comma-separated, as Zoho wants them
    publish: str = "published"  # published | draft_then_publish
    journal_url: str | None = None  # link template ({organization_id}, {journal_id}); None: derived
    timeout: float = 30.0  # seconds, per request
    max_rate_limit_wait: float = 300.0  # longest single wait the hook sleeps through
    max_attempts: int = 5  # per call, for timeouts, 5xx and per-minute 429s
    backoff: float = 1.0  # first wait after a timeout or 5xx (exponential, with jitter)
    rate_limit_backoff: float = 60.0  # first wait after a 429 without Retry-After (§2.9)
    per_page: int = 200  # page size of lists (chart of accounts, journals)


def connection_params(conn) -> ZohoParams:
    """The Airflow connection as call parameters (pure: no I/O); extras plain or ``extra__zoho_books__``."""
    extra = connection_extra(conn, "zoho_books")
    accounts = str(extra("accounts_url") or (conn.host or "").strip() or ZOHO_ACCOUNTS_URL).rstrip("/")
    if "://" not in accounts:
        accounts = f"https://{accounts}"
    publish = str(extra("publish", "published"))
    if publish not in PUBLISH_MODES:
        raise LedgerError(
            f"the Zoho Books connection's publish is {publish!r}",
            guidance=f"Set the extra publish to one of {', '.join(PUBLISH_MODES)}.",
        )
    scopes = ",".join(
        s.strip() for s in str(extra("scopes", DEFAULT_SCOPES)).replace(" ", ",").split(",") if s.strip()
    )
    return ZohoParams(
        client_id=conn.login or "",
        client_secret=conn.password or "",
        accounts_url=accounts,
        redirect_uri=extra("redirect_uri"),
        scopes=scopes,
        publish=publish,
        journal_url=extra("journal_url"),
        timeout=float(extra("timeout", 30.0)),
        max_rate_limit_wait=float(extra("max_rate_limit_wait", 300.0)),
        max_attempts=int(extra("max_attempts", 5)),
        backoff=float(extra("backoff", 1.0)),
        rate_limit_backoff=float(extra("rate_limit_backoff", 60.0)),
        per_page=int(extra("per_page", 200)),
    )


def grant_extra(api_domain: str, accounts_server: str) -> dict[str, str]:
    """The per-grant values kept in ``TokenSet.extra`` (and the ``grant_extra`` column)."""
    return {"api_domain": api_domain.rstrip("/"), "accounts_server": accounts_server.rstrip("/")}


def trusted_accounts_server(params: ZohoParams, server: str | None) -> str:
    """The ``accounts-server`` of a redirect, if it is Zoho's (or, for a sandbox, the sandbox's own).

    The client secret goes to this server, and the redirect's query is whatever the browser brought
    back, so only Zoho's accounts hosts (https) are accepted, or the origin of ``accounts_url`` when it
    is not Zoho's (a sandbox).
    """
    if not server:
        return params.accounts_url
    parts, home = urlsplit(server.rstrip("/")), urlsplit(params.accounts_url)
    if _REAL_ACCOUNTS_HOST.match(home.netloc.lower()):
        if (
            parts.scheme == "https"
            and _REAL_ACCOUNTS_HOST.match(parts.netloc.lower())
            and parts.path in ("", "/")
        ):
            return server.rstrip("/")
    elif (parts.scheme, parts.netloc) == (home.scheme, home.netloc):
        return server.rstrip("/")
    raise LedgerAuthError(
        f"the consent came back naming an accounts server that is not Zoho's ({parts.netloc or server!r})",
        guidance="Start the Zoho Books connection again from the Revenue accounting page.",
    )


def post_token_endpoint(
    params: ZohoParams, accounts_server: str, data: dict, session: requests.Session | None = None
) -> dict:
    """One call to ``{accounts_server}/oauth/v2/token`` (client id and secret as form fields).

    Zoho can answer an error with HTTP 200, so the body's ``error`` is read whatever the status:
    ``invalid_code`` (a dead refresh token or code) raises ``GrantRejected``; ``Access Denied`` (more
    than 10 access tokens in 10 minutes) raises ``LedgerRateLimited``.
    """
    http = session or requests
    form = data | {"client_id": params.client_id, "client_secret": params.client_secret}
    try:
        response = http.post(
            f"{accounts_server.rstrip('/')}/oauth/v2/token",
            data=form,
            headers={"Accept": "application/json"},
            timeout=params.timeout,
        )
    except TRANSPORT_ERRORS as exc:
        raise TransientError(f"token endpoint: {type(exc).__name__}", ledger=LEDGER) from None
    if response.status_code == 429:
        raise TransientError("token endpoint: HTTP 429", problem="Token", ledger=LEDGER)
    if response.status_code >= 500:
        raise TransientError(f"token endpoint: HTTP {response.status_code}", ledger=LEDGER)
    body = loads_json(response)
    error = body.get("error") if isinstance(body, dict) else None
    if error in ("invalid_code", "invalid_grant"):
        raise GrantRejected(error)
    if error == "Access Denied":
        raise LedgerRateLimited(
            "Zoho Books refused a new access token: more than 10 were minted with this grant within "
            "10 minutes, and Zoho blocks new ones until that window ends",
            retry_after=600,
            problem="AccessTokens",
        )
    if error == "invalid_client":
        raise LedgerAuthError(
            "Zoho Books refused the app's credentials (invalid_client)",
            guidance="Correct the Client ID and Client secret of the Zoho Books connection in Airflow, and "
            "enable multi-DC for the client in Zoho's API console.",
        )
    if error or response.status_code != 200 or "access_token" not in body:
        raise LedgerAuthError(
            f"Zoho's token endpoint answered HTTP {response.status_code} ({error or 'no access token'})",
            guidance=RECONNECT,
        )
    return body


def _once(call):
    return token_call(call, ledger=LEDGER, reconnect=RECONNECT)


def authorization_url(params: ZohoParams, state: str, *, first_connect: bool = True) -> str:
    """Where to send the user to approve access (at ``accounts_url``; ``state`` comes back on the redirect).

    ``first_connect``: the company holds no live refresh token (never connected, or its grant is
    dead), so ``prompt=consent`` asks Zoho for a new one. A reconnect of a live grant leaves it out, so
    no new refresh token is minted and the user's 20-token cap is not pushed.
    """
    query = {
        "response_type": "code",
        "client_id": params.client_id,
        "scope": params.scopes,
        "redirect_uri": require_redirect_uri(params, LEDGER),
        "state": state,
        "access_type": "offline",
    }
    if first_connect:
        query["prompt"] = "consent"
    return f"{params.accounts_url}/oauth/v2/auth?{urlencode(query)}"


def exchange_code(
    params: ZohoParams, code: str, accounts_server: str | None, *, session: requests.Session | None = None
) -> dict:
    """The callback's ``code`` at the callback's ``accounts-server`` → ``access_token``, ``refresh_token``
    (None when Zoho issued none: a reconnect of a live grant), ``access_expires_at`` (aware UTC),
    ``api_domain``, ``accounts_server``, and ``extra`` (both, for ``TokenSet.extra``)."""
    server = trusted_accounts_server(params, accounts_server)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": params.redirect_uri or ""}
    answer = _once(lambda: post_token_endpoint(params, server, data, session))
    api_domain = answer.get("api_domain")
    if not api_domain:
        raise LedgerAuthError("Zoho's token answer carries no api_domain", guidance=RECONNECT)
    return {
        "access_token": answer["access_token"],
        "refresh_token": answer.get("refresh_token"),
        "expires_in": answer.get("expires_in", 3600),
        "access_expires_at": expires_at(answer.get("expires_in", 3600)),
        "api_domain": api_domain.rstrip("/"),
        "accounts_server": server,
        "extra": grant_extra(api_domain, server),
    }


def token_set(exchanged: dict, organization_id: str, *, refresh_token: str | None = None) -> TokenSet:
    """What the connect flow stores: the exchanged tokens for ``organization_id``, with the grant's data
    centre in ``extra``. ``refresh_token`` is the one the company already holds, for a reconnect that
    brought none."""
    refresh = exchanged.get("refresh_token") or refresh_token
    if not refresh:
        raise LedgerAuthError(
            "Zoho issued no refresh token for this consent",
            guidance="Connect Zoho Books again: the first connection of a company asks Zoho for offline access.",
        )
    return TokenSet(
        access_token=exchanged["access_token"],
        refresh_token=refresh,
        access_expires_at=exchanged["access_expires_at"],
        tenant_id=organization_id,
        extra=exchanged["extra"],
    )


def list_organizations(
    params: ZohoParams, access_token: str, api_domain: str, *, session: requests.Session | None = None
) -> list[dict]:
    """The organisations the user reaches in the grant's data centre (``GET /organizations``)."""
    http = session or requests
    try:
        response = http.get(
            f"{api_domain.rstrip('/')}{BOOKS_PATH}/organizations",
            timeout=params.timeout,
            headers={"Authorization": f"Zoho-oauthtoken {access_token}", "Accept": "application/json"},
        )
    except TRANSPORT_ERRORS as exc:
        raise LedgerUnavailable(
            f"Zoho Books did not answer listing organisations ({type(exc).__name__})"
        ) from None
    body = loads_json(response)
    if response.status_code == 401:
        raise LedgerAuthError("Zoho Books refused the access token listing organisations", guidance=RECONNECT)
    if response.status_code != 200 or body.get("code") != 0:
        raise LedgerUnavailable(
            f"Zoho Books answered HTTP {response.status_code} listing organisations: {body.get('message')}"
        )
    return list(body.get("organizations") or [])


def revoke(
    params: ZohoParams, refresh_token: str, accounts_server: str, *, session: requests.Session | None = None
) -> None:
    """Revoke the refresh token (its access tokens die with it): ``POST …/oauth/v2/token/revoke``."""
    http = session or requests
    response = http.post(
        f"{accounts_server.rstrip('/')}/oauth/v2/token/revoke",
        params={"token": refresh_token},
        timeout=params.timeout,
    )
    if response.status_code != 200:
        raise LedgerError(f"Zoho answered HTTP {response.status_code} to the revocation")


def check_client_credentials(
    params: ZohoParams, *, session: requests.Session | None = None
) -> tuple[bool, str]:
    """Whether the accounts server accepts the app's id and secret, without any grant: a refresh with a
    made-up token must fail with ``invalid_code`` (credentials fine), not ``invalid_client``."""
    return check_credentials(
        lambda data: post_token_endpoint(params, params.accounts_url, data, session),
        vendor="Zoho",
        endpoint="accounts server",
        url_setting="accounts_url",
    )


def journal_link(params: ZohoParams, api_domain: str, organization_id: str, journal_id: str) -> str:
    """A link a finance user can open: the journal in Zoho Books' web app of the grant's data centre
    (``https://books.zoho.eu/app/<org>#/journals/<id>``), or the sandbox's journal page."""
    if params.journal_url:
        return params.journal_url.format(organization_id=organization_id, journal_id=journal_id)
    parts = urlsplit(api_domain)
    real = _REAL_API_HOST.match(parts.netloc.lower())
    if real:
        return f"https://books.zoho.{real.group('tld')}/app/{organization_id}#/journals/{journal_id}"
    return f"{parts.scheme}://{parts.netloc}/_sandbox/journals/{journal_id}"
