"""Xero: the accounting API behind ``LedgerHook``, and the helpers of the connect flow.

Invariants (LEDGER_APIS.md §1, §5):

- A refresh happens under ``TokenStore.refreshing()``, re-checks freshness inside the lock (another
  worker may have refreshed), and saves the rotated refresh token before the new access token is used.
- ``invalid_grant``, a second 401 and any 403 mean a person must reconnect: the store is told, and
  ``LedgerAuthError`` is raised, never retried.
- Timeouts, broken connections and 5xx retry with the same ``Idempotency-Key``; a 429 waits
  ``Retry-After`` up to ``max_rate_limit_wait``, beyond that ``LedgerRateLimited``; other 4xx never retry.
- A journal counts as posted only as Xero returns it: an id, Status POSTED, no errors or warnings,
  and the same accounts and amounts line by line.
- Amounts cross the wire as two-decimal numbers made from ``Decimal``; tokens and secrets are never logged.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from functools import cached_property
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from airflow.sdk import BaseHook
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from mamo_revenue.errors import (
    LedgerAccountError,
    LedgerAuthError,
    LedgerConflict,
    LedgerError,
    LedgerLockedPeriod,
    LedgerRateLimited,
    LedgerUnavailable,
    LedgerValidationError,
)
from mamo_revenue.hooks.ledger import (
    JournalRequest,
    LedgerAccount,
    LedgerHook,
    LedgerLine,
    LedgerSettings,
    PostedJournal,
    Side,
)
from mamo_revenue.hooks.oauth import expires_at, is_fresh, token_set, unverified_jwt_claims, utcnow
from mamo_revenue.hooks.tokens import TokenStore
from mamo_revenue.money import to_decimal, to_minor

XERO_API_BASE = "https://api.xero.com/api.xro/2.0"
XERO_AUTHORIZE_URL = "https://login.xero.com/identity/connect/authorize"
XERO_TOKEN_URL = "https://identity.xero.com/connect/token"
XERO_REVOCATION_URL = "https://identity.xero.com/connect/revocation"
XERO_CONNECTIONS_URL = "https://api.xero.com/connections"
XERO_JOURNAL_URL = "https://go.xero.com/Journal/View.aspx?invoiceID={id}"
DEFAULT_SCOPES = "openid offline_access accounting.settings accounting.manualjournals"
_EXTRA_PREFIX = "extra__xero__"
_MS_DATE = re.compile(r"^/Date\((-?\d+)(?:([+-])(\d{2})(\d{2}))?\)/$")
_TRANSPORT_ERRORS = (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError)

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


class _Transient(Exception):
    """One attempt failed in a way that retrying may fix (timeouts, broken connections, 5xx, short 429)."""

    def __init__(self, reason: str, *, retry_after: float | None = None, problem: str | None = None):
        super().__init__(reason)
        self.reason, self.retry_after, self.problem = reason, retry_after, problem

    def final(self) -> LedgerError:
        if self.problem is not None:
            return LedgerRateLimited(
                f"Xero rate limit ({self.problem}) still exhausted after retries",
                retry_after=self.retry_after,
                problem=self.problem,
            )
        return LedgerUnavailable(f"Xero did not answer usefully after several attempts: {self.reason}")


class _GrantRejected(Exception):
    """The token endpoint answered ``invalid_grant``: the refresh token (or code) is dead."""


def is_retryable(exc: BaseException) -> bool:
    """The retry predicate: only what ``_Transient`` marks (timeouts, broken connections, 5xx, short 429)."""
    return isinstance(exc, _Transient)


def _wait(backoff: float):
    exponential = wait_exponential_jitter(initial=backoff, max=30, jitter=backoff)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            return exc.retry_after
        return exponential(state)

    return wait


def _loads(response: requests.Response) -> Any:
    """JSON with exact amounts (``Decimal``); ``{}`` for an empty body."""
    if not response.content:
        return {}
    try:
        return json.loads(response.content.decode("utf-8"), parse_float=Decimal)
    except ValueError:
        return {"Message": response.text[:300]}


_DECIMAL_MARK = "\u0000decimal:"
_DECIMAL_OUT = re.compile(r'"\\u0000decimal:([^"]*)"')


def _dumps(body: Any) -> bytes:
    """JSON where ``Decimal`` is written as an exact number (``184.91``), never through a float."""

    def prep(o: Any) -> Any:
        if isinstance(o, Decimal):
            return _DECIMAL_MARK + str(o)
        if isinstance(o, dict):
            return {k: prep(v) for k, v in o.items()}
        if isinstance(o, list | tuple):
            return [prep(v) for v in o]
        return o

    return _DECIMAL_OUT.sub(r"\1", json.dumps(prep(body), ensure_ascii=False)).encode("utf-8")


def parse_xero_date(value: str | None) -> date | None:
    """``/Date(1546214400000+0000)/`` (or ``YYYY-MM-DD…``) → the calendar date Xero means."""
    if not value:
        return None
    match = _MS_DATE.match(value)
    if match:
        moment = datetime.fromtimestamp(int(match.group(1)) / 1000, UTC)
        if match.group(2):
            offset = timedelta(hours=int(match.group(3)), minutes=int(match.group(4)))
            moment = moment.astimezone(timezone(offset if match.group(2) == "+" else -offset))
        return moment.date()
    return date.fromisoformat(value[:10])


# --- the connect flow (used by the CLI and the UI) -------------------------------------------------


def _post_token_endpoint(params: XeroParams, data: dict, session: requests.Session | None = None) -> dict:
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
    except _TRANSPORT_ERRORS as exc:
        raise _Transient(f"token endpoint: {type(exc).__name__}") from None
    if response.status_code == 200:
        return _loads(response)
    if response.status_code == 429:
        retry_after = float(response.headers.get("Retry-After") or 60)
        raise _Transient(
            "token endpoint: HTTP 429",
            retry_after=retry_after,
            problem=response.headers.get("X-Rate-Limit-Problem") or "Unknown",
        )
    if response.status_code >= 500:
        raise _Transient(f"token endpoint: HTTP {response.status_code}")
    error = _loads(response).get("error") if response.content else None
    if error in ("invalid_grant", "invalid_code"):
        raise _GrantRejected(error)
    if error in ("invalid_client", "unauthorized_client"):
        raise LedgerAuthError(
            f"Xero refused the app's credentials ({error})",
            guidance="Correct the Client ID and Client secret of the Xero connection in Airflow.",
        )
    raise LedgerAuthError(
        f"Xero's token endpoint answered HTTP {response.status_code} ({error or 'no error code'})"
    )


def _once(call):
    try:
        return call()
    except _Transient as exc:
        raise exc.final() from None
    except _GrantRejected as exc:
        raise LedgerAuthError(f"Xero refused the grant ({exc.args[0]})", guidance=RECONNECT) from None


def authorization_url(
    params: XeroParams, state: str, code_challenge: str | None = None, *, nonce: str | None = None
) -> str:
    """Where to send the user to approve access (``state`` comes back on the redirect; PKCE S256 if given)."""
    if not params.redirect_uri:
        raise LedgerError(
            "The Xero connection has no redirect_uri",
            guidance="Set redirect_uri in the Xero connection's extra.",
        )
    query = {
        "response_type": "code",
        "client_id": params.client_id,
        "redirect_uri": params.redirect_uri,
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
    return _token_dict(_once(lambda: _post_token_endpoint(params, data, session)))


def refresh_tokens(
    params: XeroParams, refresh_token: str, *, session: requests.Session | None = None
) -> dict:
    """One refresh, outside any token store (the hook uses its own locked path)."""
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return _token_dict(_once(lambda: _post_token_endpoint(params, data, session)))


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
    return list(_loads(response))


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
    try:
        _post_token_endpoint(
            params, {"grant_type": "refresh_token", "refresh_token": "connection-test"}, session
        )
    except _GrantRejected:
        return True, "Xero accepted the app's Client ID and secret; connect an organisation to post journals."
    except LedgerError as exc:
        return False, str(exc)
    except _Transient as exc:
        return False, f"Xero's token endpoint did not answer: {exc.reason}"
    return False, "Xero's token endpoint accepted a made-up refresh token; check token_url."


# --- the hook --------------------------------------------------------------------------------------


class XeroHook(BaseHook, LedgerHook):
    """Xero for one organisation (``tenant_id``), with tokens from ``token_store``.

    The Airflow connection holds the app: ``host`` is the API base (``https://api.xero.com/api.xro/2.0``
    or a sandbox's), ``login``/``password`` the client id and secret, and extra ``token_url``,
    ``authorize_url``, ``connections_url``, ``scopes``, ``redirect_uri`` (plain or ``extra__xero__``-prefixed).
    """

    conn_name_attr = "xero_conn_id"
    default_conn_name = "xero_default"
    conn_type = "xero"
    hook_name = "Xero"
    platform = "xero"

    def __init__(
        self,
        *,
        xero_conn_id: str = default_conn_name,
        token_store: TokenStore | None = None,
        tenant_id: str | None = None,
    ):
        super().__init__()
        self.xero_conn_id = xero_conn_id
        self.token_store = token_store
        self.tenant_id = tenant_id

    # --- connection ---------------------------------------------------------------------------------

    @staticmethod
    def connection_params(conn) -> XeroParams:
        """The Airflow connection as call parameters (pure: no I/O)."""
        extras = conn.extra_dejson or {}

        def extra(key: str, default: Any = None) -> Any:
            value = extras.get(key)
            if value in (None, ""):
                value = extras.get(_EXTRA_PREFIX + key)
            return default if value in (None, "") else value

        host = (conn.host or "").strip() or XERO_API_BASE
        if "://" not in host:
            host = f"{conn.schema if conn.schema in ('http', 'https') else 'https'}://{host}"
        parts = urlsplit(host)
        api_base = host.rstrip("/") if parts.path.strip("/") else f"{host.rstrip('/')}/api.xro/2.0"
        origin = f"{parts.scheme}://{parts.netloc}"
        real = parts.netloc.lower() == "api.xero.com"
        defaults = {
            "token_url": XERO_TOKEN_URL if real else f"{origin}/identity/connect/token",
            "authorize_url": XERO_AUTHORIZE_URL if real else f"{origin}/identity/connect/authorize",
            "connections_url": XERO_CONNECTIONS_URL if real else f"{origin}/connections",
            "revocation_url": XERO_REVOCATION_URL if real else f"{origin}/identity/connect/revocation",
            "journal_url": XERO_JOURNAL_URL if real else f"{origin}/_sandbox/journals/{{id}}",
        }
        return XeroParams(
            api_base=api_base,
            client_id=conn.login or "",
            client_secret=conn.password or "",
            **{key: extra(key, value) for key, value in defaults.items()},
            scopes=" ".join(str(extra("scopes", DEFAULT_SCOPES)).split()),
            redirect_uri=extra("redirect_uri"),
            timeout=float(extra("timeout", 30.0)),
            max_rate_limit_wait=float(extra("max_rate_limit_wait", 60.0)),
            max_attempts=int(extra("max_attempts", 5)),
            backoff=float(extra("backoff", 1.0)),
        )

    @cached_property
    def params(self) -> XeroParams:
        return self.connection_params(self.get_connection(self.xero_conn_id))

    @cached_property
    def session(self) -> requests.Session:
        session = requests.Session()
        session.headers.update(
            {"Accept": "application/json", "User-Agent": "mamo-revenue (Airflow XeroHook)"}
        )
        return session

    def get_conn(self) -> requests.Session:
        return self.session

    # --- tokens -------------------------------------------------------------------------------------

    def _store(self) -> TokenStore:
        if self.token_store is None or not self.tenant_id:
            raise LedgerError(
                "XeroHook needs a token_store and a tenant_id to call the accounting API",
                guidance="Connect Xero for this company first.",
            )
        return self.token_store

    def _now(self) -> datetime:
        return utcnow()

    def _access_token(self, *, stale: str | None = None) -> str:
        """A live access token; ``stale`` is one Xero just refused (401), which forces a refresh."""
        store = self._store()
        if stale is None:
            current = store.current()
            if is_fresh(current, now=self._now()):
                return current.access_token
        try:
            with store.refreshing() as latest:
                if is_fresh(latest, now=self._now()) and latest.access_token != stale:
                    return latest.access_token  # another worker refreshed while we waited for the lock
                answer = _post_token_endpoint(
                    self.params,
                    {"grant_type": "refresh_token", "refresh_token": latest.refresh_token},
                    self.session,
                )
                fresh = token_set(answer, tenant_id=latest.tenant_id, now=self._now())
                store.save(fresh)  # committed before the lock is released, and before the token is used
        except _GrantRejected as exc:
            # outside ``refreshing()``: a DB store must not wait on its own row lock
            store.mark_needs_reconnect(f"Xero answered {exc.args[0]} to a token refresh")
            raise LedgerAuthError(
                f"Xero refused the saved authorisation for tenant {self.tenant_id} ({exc.args[0]})",
                guidance=RECONNECT,
            ) from None
        self.log.info(
            "Refreshed the Xero access token for tenant %s (valid until %s)",
            self.tenant_id,
            fresh.access_expires_at.isoformat() if fresh.access_expires_at else "?",
        )
        return fresh.access_token

    def _needs_reconnect(self, reason: str) -> LedgerAuthError:
        self._store().mark_needs_reconnect(reason)
        return LedgerAuthError(f"Xero tenant {self.tenant_id}: {reason}", guidance=RECONNECT)

    # --- HTTP ---------------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        body: Any = None,
        idempotency_key: str | None = None,
    ) -> requests.Response:
        """One API call with the retry policy; returns any non-retryable answer for the caller to read."""
        retrying = Retrying(
            retry=retry_if_exception(is_retryable),
            stop=stop_after_attempt(max(self.params.max_attempts, 1)),
            wait=_wait(self.params.backoff),
            reraise=True,
            before_sleep=lambda state: self.log.warning(
                "Xero %s %s (tenant %s): %s; retrying in %.1f s",
                method,
                path,
                self.tenant_id,
                getattr(state.outcome.exception(), "reason", "error"),
                state.upcoming_sleep,
            ),
        )
        try:
            return retrying(self._attempt, method, path, params, body, idempotency_key)
        except _Transient as exc:
            raise exc.final() from None

    def _attempt(
        self, method: str, path: str, params: dict | None, body: Any, idempotency_key: str | None
    ) -> requests.Response:
        token = self._access_token()
        response = self._send(method, path, token, params, body, idempotency_key)
        if response.status_code == 401:
            detail = _loads(response).get("Detail") or "Unauthorized"
            response = self._send(
                method, path, self._access_token(stale=token), params, body, idempotency_key
            )
            if response.status_code == 401:
                raise self._needs_reconnect(f"Xero refused a freshly refreshed access token ({detail})")
        if response.status_code == 403:
            detail = _loads(response).get("Detail") or "Forbidden"
            raise self._needs_reconnect(
                f"Xero refused access to the organisation (HTTP 403: {detail}); "
                "it may have been disconnected from the app"
            )
        if response.status_code == 429:
            retry_after = float(response.headers.get("Retry-After") or 60)
            problem = response.headers.get("X-Rate-Limit-Problem") or "Unknown"
            if retry_after > self.params.max_rate_limit_wait:
                until = (self._now() + timedelta(seconds=retry_after)).strftime("%Y-%m-%d %H:%M UTC")
                raise LedgerRateLimited(
                    f"Xero rate limit ({problem}) reached for tenant {self.tenant_id}: rate limited until {until}",
                    retry_after=retry_after,
                    problem=problem,
                )
            raise _Transient(f"HTTP 429 ({problem})", retry_after=retry_after, problem=problem)
        if response.status_code >= 500:
            raise _Transient(f"HTTP {response.status_code}")
        return response

    def _send(
        self, method: str, path: str, token: str, params: dict | None, body: Any, idempotency_key: str | None
    ) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}", "xero-tenant-id": self.tenant_id}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        try:
            response = self.session.request(
                method,
                self.params.api_base + path,
                params=params,
                headers=headers,
                data=_dumps(body) if body is not None else None,
                timeout=self.params.timeout,
            )
        except _TRANSPORT_ERRORS as exc:
            self.log.warning("Xero %s %s (tenant %s): %s", method, path, self.tenant_id, type(exc).__name__)
            raise _Transient(type(exc).__name__) from None
        self.log.info("Xero %s %s -> %s (tenant %s)", method, path, response.status_code, self.tenant_id)
        return response

    def _get(self, path: str, params: dict | None = None) -> dict:
        response = self._call("GET", path, params=params)
        if response.status_code != 200:
            raise self._unexpected(response, f"GET {path}")
        return _loads(response)

    def _unexpected(self, response: requests.Response, what: str) -> LedgerError:
        data = _loads(response)
        message = data.get("Message") or data.get("Detail") or data.get("Title") or response.reason
        return LedgerValidationError(
            f"Xero answered HTTP {response.status_code} to {what} for tenant {self.tenant_id}: {message}"
        )

    # --- LedgerHook -----------------------------------------------------------------------------------

    def list_accounts(self) -> list[LedgerAccount]:
        return [
            LedgerAccount(
                id=a["AccountID"],
                code=a.get("Code") or None,
                name=a.get("Name", ""),
                type=a.get("Type", ""),
                active=a.get("Status") == "ACTIVE",
                status=a.get("Status", ""),
            )
            for a in self._get("/Accounts").get("Accounts", [])
        ]

    def get_settings(self) -> LedgerSettings:
        org = self._get("/Organisation")["Organisations"][0]
        locks = [
            d
            for d in (
                parse_xero_date(org.get("PeriodLockDate")),
                parse_xero_date(org.get("EndOfYearLockDate")),
            )
            if d is not None
        ]
        return LedgerSettings(
            organisation_name=org.get("Name", ""),
            base_currency=org.get("BaseCurrency", ""),
            lock_date=max(locks) if locks else None,
        )

    def find_journal(self, reference: str) -> PostedJournal | None:
        quoted = reference.replace("\\", "\\\\").replace('"', '\\"')
        found = self._get("/ManualJournals", {"where": f'Narration.StartsWith("{quoted}")'}).get(
            "ManualJournals", []
        )
        candidates = [j for j in found if (j.get("Narration") or "").split(maxsplit=1)[:1] == [reference]]
        if not candidates:
            return None
        posted = [j for j in candidates if j.get("Status") == "POSTED"]
        if len(posted) > 1:
            ids = ", ".join(j["ManualJournalID"] for j in posted)
            raise LedgerConflict(
                f"Xero holds {len(posted)} posted journals with reference {reference}: {ids}",
                guidance="Void all but one of them in Xero, then re-run the period.",
            )
        chosen = posted[0] if posted else candidates[-1]
        full = self._get(f"/ManualJournals/{chosen['ManualJournalID']}")["ManualJournals"][0]
        return self._posted(full, reference)

    def _posted(self, journal: dict, reference: str) -> PostedJournal:
        lines = []
        for line in journal.get("JournalLines") or []:
            amount = to_minor(line.get("LineAmount", 0))
            if amount:
                lines.append(
                    LedgerLine(
                        account_id=line.get("AccountID") or "",
                        account_code=line.get("AccountCode"),
                        side=Side.DEBIT if amount > 0 else Side.CREDIT,
                        amount_minor=abs(amount),
                        description=line.get("Description") or "",
                    )
                )
        return PostedJournal(
            ledger_id=journal["ManualJournalID"],
            reference=reference,
            status=journal.get("Status", ""),
            posted=journal.get("Status") == "POSTED",
            journal_date=parse_xero_date(journal.get("Date")),
            url=self.params.journal_url.format(id=journal["ManualJournalID"]),
            lines=tuple(lines),
        )

    @staticmethod
    def journal_body(request: JournalRequest) -> dict:
        """The ``PUT /ManualJournals`` body: one POSTED NoTax journal, debits positive, credits negative."""
        narration = request.narration.strip()
        if narration.split(maxsplit=1)[:1] != [request.reference]:
            narration = f"{request.reference} {narration}".strip()
        lines = []
        for line in request.lines:
            if line.amount_minor <= 0:
                raise LedgerValidationError(
                    f"journal {request.reference}: line {line.description!r} has a "
                    f"non-positive amount {line.amount_minor}"
                )
            amount = to_decimal(line.amount_minor)
            entry: dict[str, Any] = {"LineAmount": amount if line.side == Side.DEBIT else -amount}
            entry |= (
                {"AccountCode": line.account_code} if line.account_code else {"AccountID": line.account_id}
            )
            entry["Description"] = line.description
            lines.append(entry)
        journal = {
            "Narration": narration,
            "Date": request.journal_date.isoformat(),
            "Status": "POSTED",
            "LineAmountTypes": "NoTax",
            "JournalLines": lines,
        }
        if request.source_url:
            journal["Url"] = request.source_url
        return {"ManualJournals": [journal]}

    def post_journal(self, request: JournalRequest, *, idempotency_key: str | None = None) -> PostedJournal:
        """PUT one journal with ``Idempotency-Key`` = the reference (or ``idempotency_key`` for a deliberate
        re-post after a void), and accept it only as Xero confirms it."""
        key = idempotency_key or request.reference
        if len(key) > 128:
            raise LedgerValidationError(f"idempotency key {key!r} is longer than Xero's 128 characters")
        body = self.journal_body(request)
        response = self._call(
            "PUT", "/ManualJournals", params={"summarizeErrors": "false"}, body=body, idempotency_key=key
        )
        data = _loads(response)
        if response.status_code == 400:
            elements = data.get("Elements") or []
            messages = [e["Message"] for el in elements for e in el.get("ValidationErrors") or []]
            raise self._refusal(request, messages or [data.get("Message") or "HTTP 400"])
        if response.status_code != 200:
            raise self._unexpected(response, f"PUT /ManualJournals ({request.reference})")
        journal = (data.get("ManualJournals") or [{}])[0]
        self._confirm(request, journal)
        return PostedJournal(
            ledger_id=journal["ManualJournalID"],
            reference=request.reference,
            status="POSTED",
            posted=True,
            journal_date=request.journal_date,
            url=self.params.journal_url.format(id=journal["ManualJournalID"]),
            lines=request.lines,
        )

    def _confirm(self, request: JournalRequest, journal: dict) -> None:
        journal_id = journal.get("ManualJournalID")
        errors = [m.get("Message", "") for m in journal.get("ValidationErrors") or []]
        if errors:
            raise self._refusal(request, errors)
        warnings = [m.get("Message", "") for m in journal.get("Warnings") or []]
        if warnings:
            raise self._refusal(request, warnings, saved_id=journal_id)
        if not journal_id:
            raise LedgerValidationError(
                f"Xero answered journal {request.reference} without a ManualJournalID"
            )
        if journal.get("Status") != "POSTED":
            raise LedgerValidationError(
                f"Xero saved journal {request.reference} ({journal_id}) as {journal.get('Status')}, not POSTED",
                guidance="Open the journal in Xero and post or delete it, then re-run the period.",
            )
        sent = self.journal_body(request)["ManualJournals"][0]["JournalLines"]
        got = journal.get("JournalLines") or []
        problems = [] if len(sent) == len(got) else [f"{len(got)} lines came back for {len(sent)} sent"]
        for number, (want, line, have) in enumerate(zip(sent, request.lines, got, strict=False), start=1):
            if line.account_code and have.get("AccountCode") != line.account_code:
                problems.append(
                    f"line {number}: account {have.get('AccountCode')!r} instead of {line.account_code!r}"
                )
            elif line.account_id and have.get("AccountID") and have["AccountID"] != line.account_id:
                problems.append(
                    f"line {number}: account code {line.account_code} now belongs to account "
                    f"{have['AccountID']}, not the mapped {line.account_id}"
                )
            if Decimal(str(have.get("LineAmount"))) != want["LineAmount"]:
                problems.append(
                    f"line {number}: amount {have.get('LineAmount')} instead of {want['LineAmount']}"
                )
        if problems:
            error = LedgerValidationError(
                f"Xero posted journal {request.reference} ({journal_id}) differently from the request: "
                + "; ".join(problems),
                guidance=f"Void journal {journal_id} in Xero, check the company's account mapping, then re-run the period.",
            )
            error.ledger_id = journal_id
            raise error

    def _refusal(
        self, request: JournalRequest, messages: list[str], saved_id: str | None = None
    ) -> LedgerError:
        """Xero's messages as the exception a finance user can act on."""
        text = "; ".join(messages)
        ref, day = request.reference, request.journal_date.isoformat()
        saved = (f"Xero saved the journal anyway ({saved_id}): void it in Xero first. ") if saved_id else ""
        codes = sorted(set(re.findall(r"Account code '([^']*)'", text)))
        if any("lock date" in m for m in messages):
            error: LedgerError = LedgerLockedPeriod(
                f"Xero refused journal {ref} dated {day}: {text}",
                guidance=f"{saved}{day} is on or before the lock date in Xero. Ask the Xero adviser to move the "
                "lock date (Settings > Advanced > Financial settings), or post the period by hand.",
            )
        elif any("archived" in m for m in messages):
            error = LedgerAccountError(
                f"Xero refused journal {ref}: {text}",
                guidance=f"{saved}Account {', '.join(codes)} is archived in Xero. Restore it in Xero's chart of "
                "accounts, or map the category to an active account, then re-run the period.",
            )
        elif codes or any("recognised account" in m or "AccountID" in m for m in messages):
            error = LedgerAccountError(
                f"Xero did not recognise an account of journal {ref}: {text}",
                guidance=f"{saved}Account {', '.join(codes) or '(by id)'} does not exist in this Xero organisation. "
                "Map the category to an account of the chart, then re-run the period.",
            )
        elif any("must equal total credits" in m for m in messages):
            error = LedgerValidationError(
                f"Xero refused journal {ref} as unbalanced: {text}",
                guidance=f"{saved}The journal's debits and credits differ, which the project's own checks should "
                "have caught: send the run's log to the data team.",
            )
        else:
            error = LedgerValidationError(
                f"Xero refused journal {ref}: {text}",
                guidance=f"{saved}Read Xero's message, correct the mapping or the organisation's settings, "
                "then re-run the period.",
            )
        error.ledger_messages, error.ledger_id = messages, saved_id
        return error

    def test_connection(self) -> tuple[bool, str]:
        """With a tenant: read the organisation. Without (the UI's Test button): check the app's credentials."""
        try:
            if self.token_store is None or not self.tenant_id:
                return check_client_credentials(self.params, session=self.session)
            settings = self.get_settings()
            return True, f"Connected to {settings.organisation_name} (base currency {settings.base_currency})"
        except Exception as exc:  # the UI shows the message; a test must not raise
            return False, str(exc)
