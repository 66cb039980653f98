"""Xero's identity service for the hook and the connect flow (CLI, UI): the connection's parameters,
the token endpoint, the authorize URL, code exchange, connections, disconnect and revocation.

Tokens and secrets are never logged here; callers log only outcomes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

import requests

from mamo_revenue.errors import LedgerAuthError, LedgerError, LedgerUnavailable
from mamo_revenue.hooks.oauth import expires_at, unverified_jwt_claims
from mamo_revenue.hooks.oauth_ledger import (  # noqa: F401 (re-exported: the connect flow imports them here)
    TRANSPORT_ERRORS,
    GrantRejected,
    TransientError,
    dumps_json,
    loads_json,
    require_redirect_uri,
    token_call,
)
from mamo_revenue.hooks.oauth_ledger import check_client_credentials as check_credentials

XERO_API_BASE = "https://api.xero.com/api.xro/2.0"
XERO_AUTHORIZE_URL = "https://login.xero.com/identity/connect/authorize"
XERO_TOKEN_URL = "https://identity.xero.com/connect/token"
XERO_REVOCATION_URL = "https://identity.xero.com/connect/revocation"
XERO_CONNECTIONS_URL = "https://api.xero.com/connections"
XERO_JOURNAL_URL = "https://go.xero.com/Journal/View.aspx?invoiceID={id}"
DEFAULT_SCOPES = "openid offline_access accounting.settings accounting.manualjournals"
RECONNECT = (
    "Reconnect Xero for this company (Connect Xero in the Revenue accounting page) and approve access again."
)


@dataclass(frozen=True)
class XeroParams:
    """Everything a call needs from the Airflow connection; built by ``XeroHook.connection_params``."""

    api_base: str
    client_id: str
    client_secret: str = field(repr=False)
    token_url: str = XERO_TOKEN_URL
    authorize_url: str = XERO_AUTHORIZE_URL
    connections_url: str = XERO_CONNECTIONS_URL
    revocation_url: str = XERO_REVOCATION_URL
    journal_url: str = XERO_JOURNAL_URL  # a link a finance user can open; ``{id}`` is the ManualJournalID
    scopes: str = DEFAULT_SCOPES
    redirect_uri: str | None = None
    timeout: float = 30.0  # seconds, per request (connect and read)
    max_rate_limit_wait: float = 60.0  # longest Retry-After the hook sleeps through
    max_attempts: int = 5  # per call, for timeouts, 5xx and short 429s
    backoff: float = 1.0  # first wait between attempts (exponential, with jitter)
    #: Pace calls when Xero's minute allowance for the tenant runs low: with ``X-MinLimit-Remaining``
    #: below this, wait (this − remaining) seconds before the next call instead of meeting a 429.
    minute_reserve: int = 5


def post_token_endpoint(params: XeroParams, data: dict, session: requests.Session | None = None) -> dict:
    """One call to the token endpoint, client authenticated with HTTP Basic."""
    http = session or requests
    try:
        response = http.post(
            params.token_url,
            data=data,
            auth=(params.client_id, params.client_secret),
            headers={"Accept": "application/json"},
            timeout=params.timeout,
        )
    except TRANSPORT_ERRORS as exc:
        raise TransientError(f"token endpoint: {type(exc).__name__}", ledger="Xero") from None
    if response.status_code == 200:
        return loads_json(response)
    if response.status_code == 429:
        retry_after = float(response.headers.get("Retry-After") or 60)
        raise TransientError(
            "token endpoint: HTTP 429",
            retry_after=retry_after,
            problem=response.headers.get("X-Rate-Limit-Problem") or "Unknown",
            ledger="Xero",
        )
    if response.status_code >= 500:
        raise TransientError(f"token endpoint: HTTP {response.status_code}", ledger="Xero")
    error = loads_json(response).get("error") if response.content else None
    if error in ("invalid_grant", "invalid_code"):
        raise GrantRejected(error)
    if error in ("invalid_client", "unauthorized_client"):
        raise LedgerAuthError(
            f"Xero refused the app's credentials ({error})",
            guidance="Correct the Client ID and Client secret of the Xero connection in Airflow.",
        )
    raise LedgerAuthError(
        f"Xero's token endpoint answered HTTP {response.status_code} ({error or 'no error code'})"
    )


def _once(call):
    return token_call(call, ledger="Xero", reconnect=RECONNECT)


def authorization_url(
    params: XeroParams, state: str, code_challenge: str | None = None, *, nonce: str | None = None
) -> str:
    """Where to send the user to approve access (``state`` comes back on the redirect; PKCE S256 if given)."""
    query = {
        "response_type": "code",
        "client_id": params.client_id,
        "redirect_uri": require_redirect_uri(params, "Xero"),
        "scope": params.scopes,
        "state": state,
    }
    if code_challenge:
        query |= {"code_challenge": code_challenge, "code_challenge_method": "S256"}
    if nonce:
        query["nonce"] = nonce
    return f"{params.authorize_url}?{urlencode(query)}"


def _token_dict(answer: dict) -> dict:
    claims = unverified_jwt_claims(answer.get("access_token", ""))
    return answer | {
        "access_expires_at": expires_at(answer.get("expires_in", 0)),
        "auth_event_id": claims.get("authentication_event_id"),
    }


def exchange_code(
    params: XeroParams,
    code: str,
    code_verifier: str | None = None,
    *,
    session: requests.Session | None = None,
) -> dict:
    """The callback's ``code`` → ``access_token``, ``refresh_token``, ``expires_in``, ``id_token``,
    ``access_expires_at`` (aware UTC) and ``auth_event_id`` (to list only this consent's tenants)."""
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": params.redirect_uri or ""}
    if code_verifier:
        data["code_verifier"] = code_verifier
    return _token_dict(_once(lambda: post_token_endpoint(params, data, session)))


def refresh_tokens(
    params: XeroParams, refresh_token: str, *, session: requests.Session | None = None
) -> dict:
    """One refresh, outside any token store (the hook uses its own locked path)."""
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return _token_dict(_once(lambda: post_token_endpoint(params, data, session)))


def list_tenants(
    params: XeroParams,
    access_token: str,
    auth_event_id: str | None = None,
    *,
    session: requests.Session | None = None,
) -> list[dict]:
    """The organisations connected to the app (``GET /connections``), optionally of one consent only."""
    http = session or requests
    query = {"authEventId": auth_event_id} if auth_event_id else None
    response = http.get(
        params.connections_url,
        params=query,
        timeout=params.timeout,
        headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
    )
    if response.status_code in (401, 403):
        raise LedgerAuthError(
            f"Xero refused the access token listing connections (HTTP {response.status_code})",
            guidance=RECONNECT,
        )
    if response.status_code != 200:
        raise LedgerUnavailable(f"Xero answered HTTP {response.status_code} listing connections")
    return list(loads_json(response))


def disconnect(
    params: XeroParams, access_token: str, connection_id: str, *, session: requests.Session | None = None
) -> bool:
    """``DELETE /connections/{id}``: the organisation leaves the app. False if it was already gone."""
    http = session or requests
    response = http.delete(
        f"{params.connections_url}/{connection_id}",
        timeout=params.timeout,
        headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
    )
    if response.status_code in (401, 403):
        raise LedgerAuthError(
            f"Xero refused the access token disconnecting (HTTP {response.status_code})", guidance=RECONNECT
        )
    if response.status_code not in (200, 204, 404):
        raise LedgerUnavailable(f"Xero answered HTTP {response.status_code} to the disconnect")
    return response.status_code != 404


def revoke(params: XeroParams, refresh_token: str, *, session: requests.Session | None = None) -> None:
    """Revoke the whole grant (every token of the consent; its connections go too)."""
    http = session or requests
    response = http.post(
        params.revocation_url,
        data={"token": refresh_token},
        timeout=params.timeout,
        auth=(params.client_id, params.client_secret),
    )
    if response.status_code != 200:
        raise LedgerError(f"Xero answered HTTP {response.status_code} to the revocation")


def check_client_credentials(
    params: XeroParams, *, session: requests.Session | None = None
) -> tuple[bool, str]:
    """Whether the token endpoint accepts the app's id and secret, without any grant: a refresh with a
    made-up token must fail with ``invalid_grant`` (credentials fine), not ``invalid_client``."""
    return check_credentials(
        lambda data: post_token_endpoint(params, data, session),
        vendor="Xero",
        endpoint="token endpoint",
        url_setting="token_url",
    )
