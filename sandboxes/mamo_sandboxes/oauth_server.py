"""What the ledger sandboxes' OAuth servers share (Xero's identity service, Zoho's accounts servers):
the errors they answer, redirects that carry a query, and the consent round trip (an authorize request
kept, for an hour, until the user answers on the consent page).

Token lifetimes, rotation, limits and scopes are each vendor's own and stay in its identity module.
"""

from __future__ import annotations

import secrets
from typing import Any, ClassVar
from urllib.parse import urlencode

#: How long a consent page may stay open before its answer is refused.
CONSENT_SECONDS = 3600


class OAuthError(Exception):
    """An answer of the token endpoint: ``{"error": code}`` with ``status`` (``default_status`` when not given)."""

    default_status: ClassVar[int | None] = 400

    def __init__(self, error: str, status: int | None = None, description: str | None = None):
        super().__init__(error)
        self.error, self.description = error, description
        self.status = status if status is not None else self.default_status

    def body(self) -> dict:
        # Vendors answer only the code; the description helps a developer.
        return {"error": self.error} | ({"error_description": self.description} if self.description else {})


class AuthorizeError(Exception):
    """A bad authorize request. ``redirect`` is set when the error may be sent back to the client."""

    def __init__(self, message: str, *, redirect: str | None = None):
        super().__init__(message)
        self.redirect = redirect


def with_query(url: str, params: dict) -> str:
    return f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"


class ConsentDesk:
    """The consent round trip of an identity dataclass with ``apps`` (client id → app with
    ``redirect_uris``), ``pending`` (txn → consent with ``redirect_uri``, ``state``, ``expires_at``),
    ``clock`` and ``_lock``."""

    apps: dict[str, Any]
    pending: dict[str, Any]

    def _add_app(self, app: Any) -> Any:
        with self._lock:
            self.apps[app.client_id] = app
        return app

    def _authorize_target(self, query: dict, *, unknown_client: str, unregistered: str):
        """The app and redirect URI of an authorize request, and ``back(error, description=None)``: the
        ``AuthorizeError`` that sends a later error back to the client with its ``state``. An unknown
        client or redirect URI is shown to the user, never redirected."""
        app = self.apps.get(query.get("client_id", ""))
        if app is None:
            raise AuthorizeError(unknown_client)
        redirect_uri = query.get("redirect_uri", "")
        if redirect_uri not in app.redirect_uris:
            raise AuthorizeError(unregistered)
        state = query.get("state")

        def back(error: str, description: str | None = None) -> AuthorizeError:
            params = {"error": error} | ({"error_description": description} if description else {})
            params |= {"state": state} if state else {}
            return AuthorizeError(description or error, redirect=with_query(redirect_uri, params))

        return app, redirect_uri, back

    def _consent_expiry(self) -> float:
        return self.clock.time() + CONSENT_SECONDS

    def _park(self, pending: Any) -> str:
        """Keep an authorize request for the consent page; returns its id (``txn``)."""
        txn = secrets.token_urlsafe(16)
        with self._lock:
            self.pending[txn] = pending
        return txn

    def _answered(self, txn: str) -> Any:
        """The request the consent page answers, once: an expired or answered one is refused."""
        with self._lock:
            pending = self.pending.pop(txn, None)
        if pending is None or pending.expires_at < self.clock.time():
            raise AuthorizeError("The authorisation request expired or was already answered; start again")
        return pending

    @staticmethod
    def _denied(pending: Any) -> str:
        """Where the browser goes when the user refuses: ``error=access_denied`` (and ``state``)."""
        state = {"state": pending.state} if pending.state else {}
        return with_query(pending.redirect_uri, {"error": "access_denied"} | state)
