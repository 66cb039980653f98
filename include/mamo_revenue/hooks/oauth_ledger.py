"""What every OAuth 2.0 ledger hook shares, written once: ``OAuthLedgerHook`` and its wire helpers.

A ledger hook (Xero, Zoho Books, later QuickBooks Online or Business Central) subclasses
``OAuthLedgerHook`` and adds only what is its ledger's own: the connection's parameters, the token
refresh call, the request's URL and headers, and the ``LedgerHook`` methods with their encoding.

Invariants (LEDGER_APIS.md §5):

- An access token is used only while it lives ``EXPIRY_MARGIN`` longer. Otherwise the hook refreshes
  under ``TokenStore.refreshing()``, re-checks freshness inside the lock (another worker may have
  refreshed: the token is shared, which also keeps Zoho under 10 refreshes per 10 minutes), and saves
  the new tokens before it uses them.
- A dead grant (``GrantRejected``: ``invalid_grant``, ``invalid_code``), a second 401 after one forced
  refresh, and any 403 mean a person must reconnect: the store is told and ``LedgerAuthError`` raised
  with the ledger's reconnect guidance. Never retried.
- ``is_retryable`` is the one retry predicate: only ``TransientError`` (timeouts, broken connections,
  5xx, a 429 whose wait is short). A 429 whose wait is too long raises ``LedgerRateLimited``; other 4xx
  come back to the caller, which never retries them.
- A write that creates something is retried only with an idempotency key (Xero) or after ``landed()``,
  a look-up, proved that the attempt whose answer was lost did not land (Zoho Books).
- Amounts cross the wire as exact JSON numbers made from ``Decimal``; no token, secret or
  ``Authorization`` header is ever logged.
"""

from __future__ import annotations

import abc
import json
import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cached_property
from typing import Any

import requests
from airflow.sdk import BaseHook
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from mamo_revenue.errors import LedgerAuthError, LedgerError, LedgerRateLimited, LedgerUnavailable
from mamo_revenue.hooks.ledger import LedgerHook
from mamo_revenue.hooks.oauth import is_fresh, utcnow
from mamo_revenue.hooks.tokens import TokenSet, TokenStore


def pause_for(seconds: float) -> None:
    """The hooks' one deliberate sleep between calls (rate pacing); a module function tests can watch."""
    time.sleep(seconds)


TRANSPORT_ERRORS = (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError)


class TransientError(Exception):
    """One attempt failed in a way that retrying may fix (timeouts, broken connections, 5xx, short 429).

    ``problem`` is set for a 429 only (the limit that was hit), so a rate limit is never mistaken for
    an answer that may have been lost.
    """

    def __init__(
        self,
        reason: str,
        *,
        retry_after: float | None = None,
        problem: str | None = None,
        ledger: str = "The ledger",
    ):
        super().__init__(reason)
        self.reason, self.retry_after, self.problem, self.ledger = reason, retry_after, problem, ledger

    def final(self, ledger: str | None = None) -> LedgerError:
        """The error to raise once the retries are used up."""
        name = ledger or self.ledger
        if self.problem is not None:
            return LedgerRateLimited(
                f"{name} rate limit ({self.problem}) still exhausted after retries",
                retry_after=self.retry_after,
                problem=self.problem,
            )
        return LedgerUnavailable(f"{name} did not answer usefully after several attempts: {self.reason}")


class GrantRejected(Exception):
    """The token endpoint called the refresh token (or code) dead: ``invalid_grant``, ``invalid_code``."""


def is_retryable(exc: BaseException) -> bool:
    """The retry predicate: only what ``TransientError`` marks (timeouts, broken connections, 5xx, short 429)."""
    return isinstance(exc, TransientError)


def retry_wait(params: Any) -> Callable[[RetryCallState], float]:
    """How long to wait before the next attempt.

    A wait the ledger asked for (``Retry-After``) is honoured as is; a 429 without one backs off
    exponentially with jitter from ``params.rate_limit_backoff``; anything else from ``params.backoff``.
    """
    backoff = float(params.backoff)
    general = wait_exponential_jitter(initial=backoff, max=30, jitter=backoff)
    limited = float(getattr(params, "rate_limit_backoff", None) or backoff)
    rate_limit = wait_exponential_jitter(
        initial=limited, max=max(float(params.max_rate_limit_wait), limited), jitter=limited
    )

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            return exc.retry_after
        if isinstance(exc, TransientError) and exc.problem is not None:
            return rate_limit(state)
        return general(state)

    return wait


def loads_json(response: requests.Response) -> Any:
    """JSON with exact amounts (``Decimal``); ``{}`` for an empty body; the text for a body that is not JSON."""
    if not response.content:
        return {}
    try:
        return json.loads(response.content.decode("utf-8"), parse_float=Decimal)
    except ValueError:
        text = response.text[:300]
        return {"Message": text, "message": text}


_DECIMAL_MARK = "\u0000decimal:"
_DECIMAL_OUT = re.compile(r'"\\u0000decimal:([^"]*)"')


def dumps_json(body: Any) -> bytes:
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


# --- the connect flow's helpers (``<ledger>_identity`` modules) -----------------------------------------


def connection_extra(conn, conn_type: str) -> Callable[..., Any]:
    """``extra(key, default=None)``: the Airflow connection's extra ``key``, plain or as the UI saves it
    (``extra__<conn_type>__<key>``); empty values count as absent."""
    extras = conn.extra_dejson or {}

    def extra(key: str, default: Any = None) -> Any:
        value = extras.get(key)
        if value in (None, ""):
            value = extras.get(f"extra__{conn_type}__{key}")
        return default if value in (None, "") else value

    return extra


def require_redirect_uri(params: Any, ledger: str) -> str:
    """The connection's ``redirect_uri``, which the consent needs."""
    if not params.redirect_uri:
        raise LedgerError(
            f"The {ledger} connection has no redirect_uri",
            guidance=f"Set redirect_uri in the {ledger} connection's extra.",
        )
    return params.redirect_uri


def token_call(call: Callable[[], Any], *, ledger: str, reconnect: str) -> Any:
    """One token-endpoint call outside the hook (the connect flow): no retries; what would be retried
    becomes its final error, and a dead grant ``LedgerAuthError`` with the ledger's ``reconnect`` guidance."""
    try:
        return call()
    except TransientError as exc:
        raise exc.final() from None
    except GrantRejected as exc:
        raise LedgerAuthError(f"{ledger} refused the grant ({exc.args[0]})", guidance=reconnect) from None


def check_client_credentials(
    post: Callable[[dict], Any], *, vendor: str, endpoint: str, url_setting: str
) -> tuple[bool, str]:
    """Whether the token endpoint accepts the app's id and secret, without any grant: ``post`` sends a
    refresh with a made-up token, which must fail as a dead grant (credentials fine), not as a bad client."""
    try:
        post({"grant_type": "refresh_token", "refresh_token": "connection-test"})
    except GrantRejected:
        return (
            True,
            f"{vendor} accepted the app's Client ID and secret; connect an organisation to post journals.",
        )
    except LedgerError as exc:
        return False, str(exc)
    except TransientError as exc:
        return False, f"{vendor}'s {endpoint} did not answer: {exc.reason}"
    return False, f"{vendor}'s {endpoint} accepted a made-up refresh token; check {url_setting}."


class OAuthLedgerHook(BaseHook, LedgerHook):
    """A ``LedgerHook`` reached with OAuth 2.0 tokens from a ``TokenStore``, for one organisation.

    Subclasses set ``conn_name_attr``, ``default_conn_name``, ``conn_type``, ``hook_name``, ``platform``
    and ``reconnect_guidance``, store their connection id under ``conn_name_attr``, and implement
    ``connection_params`` (pure), ``_refresh``, ``_prepare`` and ``_check_app``. ``params`` must carry
    ``timeout``, ``max_attempts``, ``backoff``, ``max_rate_limit_wait`` (and may carry
    ``rate_limit_backoff``).
    """

    #: How logs and messages name the organisation the hook works for.
    tenant_label = "tenant"
    #: What a finance user does when the grant is dead.
    reconnect_guidance = "Reconnect the ledger for this company and approve access again."

    def __init__(self, *, token_store: TokenStore | None = None, tenant_id: str | None = None):
        super().__init__()
        self.token_store = token_store
        self.tenant_id = tenant_id

    # --- connection ---------------------------------------------------------------------------------

    @staticmethod
    @abc.abstractmethod
    def connection_params(conn) -> Any:
        """The Airflow connection as call parameters (pure: no I/O)."""

    @property
    def conn_id(self) -> str:
        return getattr(self, self.conn_name_attr)

    @cached_property
    def params(self) -> Any:
        return self.connection_params(self.get_connection(self.conn_id))

    @cached_property
    def session(self) -> requests.Session:
        session = requests.Session()
        session.headers.update(
            {"Accept": "application/json", "User-Agent": f"mamo-revenue (Airflow {type(self).__name__})"}
        )
        return session

    def get_conn(self) -> requests.Session:
        return self.session

    # --- tokens -------------------------------------------------------------------------------------

    def _store(self) -> TokenStore:
        if self.token_store is None or not self.tenant_id:
            raise LedgerError(
                f"{type(self).__name__} needs a token_store and a tenant_id to call the {self.hook_name} API",
                guidance=f"Connect {self.hook_name} for this company first.",
            )
        return self.token_store

    def _now(self) -> datetime:
        return utcnow()

    @abc.abstractmethod
    def _refresh(self, latest: TokenSet) -> TokenSet:
        """One refresh with ``latest``'s refresh token; raises ``GrantRejected`` for a dead grant and
        ``TransientError`` for what retrying may fix. Called inside ``refreshing()``."""

    def _tokens(self, *, stale: str | None = None) -> TokenSet:
        """Live tokens; ``stale`` is an access token the ledger just refused (401), which forces a refresh."""
        store = self._store()
        if stale is None:
            current = store.current()
            if is_fresh(current, now=self._now()):
                return current
        try:
            with store.refreshing() as latest:
                if is_fresh(latest, now=self._now()) and latest.access_token != stale:
                    return latest  # another worker refreshed while we waited for the lock
                try:
                    fresh = self._refresh(latest)
                except TransientError as exc:  # retried by the caller, unless the wait is too long
                    if exc.retry_after is not None and exc.retry_after > self.params.max_rate_limit_wait:
                        raise exc.final(self.hook_name) from None
                    raise
                store.save(fresh)  # committed before the lock is released, and before the token is used
        except GrantRejected as exc:
            # outside ``refreshing()``: a DB store must not wait on its own row lock
            store.mark_needs_reconnect(f"{self.hook_name} refused the token refresh ({exc.args[0]})")
            raise LedgerAuthError(
                f"{self.hook_name} refused the saved authorisation for {self.tenant_label} "
                f"{self.tenant_id} ({exc.args[0]})",
                guidance=self.reconnect_guidance,
            ) from None
        self.log.info(
            "Refreshed the %s access token for %s %s (valid until %s)",
            self.hook_name,
            self.tenant_label,
            self.tenant_id,
            fresh.access_expires_at.isoformat() if fresh.access_expires_at else "?",
        )
        return fresh

    def _access_token(self, *, stale: str | None = None) -> str:
        return self._tokens(stale=stale).access_token

    def _needs_reconnect(self, reason: str) -> LedgerAuthError:
        self._store().mark_needs_reconnect(reason)
        return LedgerAuthError(
            f"{self.hook_name} {self.tenant_label} {self.tenant_id}: {reason}",
            guidance=self.reconnect_guidance,
        )

    # --- HTTP ---------------------------------------------------------------------------------------

    @abc.abstractmethod
    def _prepare(
        self, method: str, path: str, tokens: TokenSet, params: dict | None, idempotency_key: str | None
    ) -> tuple[str, dict, dict | None]:
        """The request's URL, headers (with the ``Authorization``) and query for ``path``."""

    def _error_detail(self, response: requests.Response) -> str:
        """The ledger's own words in an error answer (for messages; never a token)."""
        data = loads_json(response)
        if not isinstance(data, dict):
            return ""
        for key in ("Detail", "Message", "message", "Title", "error_description", "error"):
            if data.get(key):
                return str(data[key])
        return ""

    def _retry_after(self, response: requests.Response) -> float | None:
        value = response.headers.get("Retry-After")
        try:
            return float(value) if value else None
        except ValueError:
            return None

    def _rate_limit_problem(self, response: requests.Response) -> str:
        return "Unknown"

    def _rate_limited(self, response: requests.Response) -> TransientError:
        """A 429: a short wait is retried (``TransientError``); a long one raises ``LedgerRateLimited``."""
        retry_after, problem = self._retry_after(response), self._rate_limit_problem(response)
        if retry_after is not None and retry_after > self.params.max_rate_limit_wait:
            until = (self._now() + timedelta(seconds=retry_after)).strftime("%Y-%m-%d %H:%M UTC")
            raise LedgerRateLimited(
                f"{self.hook_name} rate limit ({problem}) reached for {self.tenant_label} {self.tenant_id}: "
                f"rate limited until {until}",
                retry_after=retry_after,
                problem=problem,
            )
        return TransientError(
            f"HTTP 429 ({problem})", retry_after=retry_after, problem=problem, ledger=self.hook_name
        )

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        body: Any = None,
        idempotency_key: str | None = None,
        landed: Callable[[], Any] | None = None,
    ) -> Any:
        """One API call with the retry policy; returns any non-retryable answer for the caller to read.

        ``landed`` guards a create that has no idempotency key: before each retry that follows an
        attempt whose answer may have been lost (timeout, broken connection, 5xx), it looks the write
        up; whatever non-None it finds is returned instead of sending the write again.
        """
        uncertain = False

        def attempt() -> Any:
            nonlocal uncertain
            if uncertain and landed is not None:
                found = landed()
                if found is not None:
                    return found
            try:
                return self._attempt(method, path, params, body, idempotency_key)
            except TransientError as exc:
                uncertain = uncertain or exc.problem is None  # a 429 was refused, not processed
                raise

        retrying = Retrying(
            retry=retry_if_exception(is_retryable),
            stop=stop_after_attempt(max(int(self.params.max_attempts), 1)),
            wait=retry_wait(self.params),
            reraise=True,
            before_sleep=lambda state: self.log.warning(
                "%s %s %s (%s %s): %s; retrying in %.1f s",
                self.hook_name,
                method,
                path,
                self.tenant_label,
                self.tenant_id,
                getattr(state.outcome.exception(), "reason", "error"),
                state.upcoming_sleep,
            ),
        )
        try:
            return retrying(attempt)
        except TransientError as exc:
            raise exc.final(self.hook_name) from None

    def _attempt(
        self, method: str, path: str, params: dict | None, body: Any, idempotency_key: str | None
    ) -> requests.Response:
        tokens = self._tokens()
        response = self._send(method, path, tokens, params, body, idempotency_key)
        if response.status_code == 401:  # one forced refresh, then the person must reconnect
            detail = self._error_detail(response) or "Unauthorized"
            fresh = self._tokens(stale=tokens.access_token)
            response = self._send(method, path, fresh, params, body, idempotency_key)
            if response.status_code == 401:
                raise self._needs_reconnect(
                    f"{self.hook_name} refused a freshly refreshed access token ({detail})"
                )
        if response.status_code == 403:
            detail = self._error_detail(response) or "Forbidden"
            raise self._needs_reconnect(
                f"{self.hook_name} refused access to the organisation (HTTP 403: {detail}); "
                "it may have been disconnected from the app"
            )
        if response.status_code == 429:
            raise self._rate_limited(response)
        if response.status_code >= 500:
            raise TransientError(f"HTTP {response.status_code}", ledger=self.hook_name)
        pause = self._pace(response)
        if pause > 0:
            self.log.info("%s: the minute allowance is nearly used (%s %s); pausing %.0f s before the next call",
                          self.hook_name, self.tenant_label, self.tenant_id, pause)
            pause_for(pause)
        return response

    def _pace(self, response: requests.Response) -> float:
        """Seconds to wait after a successful answer before the next call (0: none). A ledger that
        reports what is left of its rate allowance overrides this."""
        return 0.0

    def _send(
        self,
        method: str,
        path: str,
        tokens: TokenSet,
        params: dict | None,
        body: Any,
        idempotency_key: str | None,
    ) -> requests.Response:
        url, headers, query = self._prepare(method, path, tokens, params, idempotency_key)
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = self.session.request(
                method,
                url,
                params=query,
                headers=headers,
                data=dumps_json(body) if body is not None else None,
                timeout=self.params.timeout,
            )
        except TRANSPORT_ERRORS as exc:
            self.log.warning(
                "%s %s %s (%s %s): %s",
                self.hook_name,
                method,
                path,
                self.tenant_label,
                self.tenant_id,
                type(exc).__name__,
            )
            raise TransientError(type(exc).__name__, ledger=self.hook_name) from None
        self.log.info(
            "%s %s %s -> %s (%s %s)",
            self.hook_name,
            method,
            path,
            response.status_code,
            self.tenant_label,
            self.tenant_id,
        )
        return response

    # --- the UI's Test button -------------------------------------------------------------------------

    @abc.abstractmethod
    def _check_app(self) -> tuple[bool, str]:
        """Without a grant: whether the ledger accepts the app's client id and secret."""

    def test_connection(self) -> tuple[bool, str]:
        """With a tenant: read the organisation. Without (the UI's Test button): check the app's credentials."""
        try:
            if self.token_store is None or not self.tenant_id:
                return self._check_app()
            settings = self.get_settings()
            return True, f"Connected to {settings.organisation_name} (base currency {settings.base_currency})"
        except Exception as exc:  # the UI shows the message; a test must not raise
            return False, str(exc)
