"""The Zoho accounts server of the sandbox: apps, users in their data centres, consent, codes, tokens.

Written from LEDGER_APIS.md §2.1–2.2 and the §6 defaults: one-hour access tokens; refresh tokens
that never rotate; a refresh token only with ``access_type=offline``, and only on a user's first
consent to the app or with ``prompt=consent``; at most 20 refresh tokens per user and app (the 21st
evicts the oldest, and its access tokens die with it); at most 10 access tokens minted per refresh
token in any 10 minutes (HTTP 400 ``{"error": "Access Denied"}``), 30 alive at once, and 5 refresh
tokens created per user a minute. A code or refresh token the data centre does not know answers
``{"error": "invalid_code"}`` with HTTP 200 (``settings.oauth_error_status``).

Everything here is plain Python guarded by one lock; ``zoho.py`` maps it to HTTP.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mamo_sandboxes.common import Clock
from mamo_sandboxes.oauth_server import AuthorizeError, ConsentDesk, with_query
from mamo_sandboxes.oauth_server import OAuthError as BaseOAuthError
from mamo_sandboxes.zoho_data import HOME_LOCATION, KNOWN_SCOPES

if TYPE_CHECKING:
    from mamo_sandboxes.zoho_settings import ZohoSettings

NOT_AUTHORISED = {"code": 57, "message": "You are not authorized to perform this operation"}
TOO_MANY = "You have made too many requests continuously. Please try again after some time."


class OAuthError(BaseOAuthError):
    """An answer of the token endpoint; without a ``status``, the §6 setting's (``oauth_error_status``)."""

    default_status = None


class NotAuthorised(Exception):
    """A refused ``Zoho-oauthtoken`` (missing, unknown, expired, another data centre's, or lacking scope)."""


@dataclass
class App:
    client_id: str
    client_secret: str
    name: str
    redirect_uris: list[str]
    multi_dc: bool = True  # False: the client exists only in its home data centre
    home: str = HOME_LOCATION

    def public(self) -> dict:
        return {
            "client_id": self.client_id,
            "name": self.name,
            "redirect_uris": list(self.redirect_uris),
            "multi_dc": self.multi_dc,
            "home": self.home,
        }


@dataclass
class User:
    email: str
    zuid: str
    location: str
    name: str

    def public(self) -> dict:
        return {"email": self.email, "zuid": self.zuid, "location": self.location, "name": self.name}


@dataclass
class RefreshRecord:
    client_id: str
    user: str
    location: str
    scopes: tuple[str, ...]
    issued_at: float
    mints: list[float] = field(default_factory=list)  # when access tokens were minted with it
    access: list[str] = field(default_factory=list)  # its live access tokens, oldest first


@dataclass
class AccessRecord:
    client_id: str
    user: str
    location: str
    scopes: tuple[str, ...]
    expires_at: float
    refresh_token: str | None


@dataclass
class CodeRecord:
    client_id: str
    redirect_uri: str
    user: str
    location: str
    scopes: tuple[str, ...]
    new_refresh: bool  # whether the exchange hands out a (new) refresh token
    expires_at: float
    used: bool = False


@dataclass
class PendingConsent:
    app: App
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    offline: bool
    prompt_consent: bool
    expires_at: float


@dataclass
class Identity(ConsentDesk):
    settings: ZohoSettings
    clock: Clock
    apps: dict[str, App] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshRecord] = field(default_factory=dict)
    access_tokens: dict[str, AccessRecord] = field(default_factory=dict)
    codes: dict[str, CodeRecord] = field(default_factory=dict)
    pending: dict[str, PendingConsent] = field(default_factory=dict)
    refresh_created: dict[str, deque] = field(default_factory=dict)  # user → creation times
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # --- apps and users -----------------------------------------------------------------------------

    def register_app(
        self, client_id: str, client_secret: str, redirect_uris: list[str], name: str = "Sandbox app", **more
    ) -> App:
        if not client_id or not client_secret or not redirect_uris:
            raise ValueError("client_id, client_secret and at least one redirect_uri are required")
        return self._add_app(App(client_id, client_secret, name, list(redirect_uris), **more))

    def add_user(
        self, email: str, location: str, name: str = "Sandbox user", zuid: str | None = None
    ) -> User:
        if location not in self.settings.locations:
            raise ValueError(f"location must be one of {self.settings.locations}")
        user = User(email, zuid or str(70000000000 + len(self.users)), location, name)
        with self._lock:
            self.users[email] = user
        return user

    def _client(self, form: dict, location: str) -> App:
        app = self.apps.get(form.get("client_id", ""))
        if app is None or not hmac.compare_digest(app.client_secret, form.get("client_secret") or ""):
            raise OAuthError("invalid_client")
        if not app.multi_dc and location != app.home:
            raise OAuthError("invalid_client")  # the client is not enabled in this data centre
        return app

    # --- authorize and consent ----------------------------------------------------------------------

    def start_authorization(self, query: dict) -> tuple[str, PendingConsent]:
        app, redirect_uri, back = self._authorize_target(
            query,
            unknown_client="Invalid Client: the client_id is not registered",
            unregistered="Invalid Redirect Uri: it is not registered for this client",
        )
        state = query.get("state")

        if query.get("response_type") != "code":
            raise back("unsupported_response_type")
        scopes = tuple(s.strip() for s in query.get("scope", "").split(",") if s.strip())
        if not scopes or any(s not in KNOWN_SCOPES for s in scopes):
            raise back("invalid_scope")
        pending = PendingConsent(
            app,
            redirect_uri,
            scopes,
            state,
            offline=query.get("access_type") == "offline",
            prompt_consent=query.get("prompt") == "consent",
            expires_at=self._consent_expiry(),
        )
        return self._park(pending), pending

    def decide(self, txn: str, allow: bool, user_email: str | None, base: str) -> str:
        """The user's answer on the consent page; returns where to redirect the browser.

        The redirect carries ``code``, ``location`` and ``accounts-server`` (the user's data centre:
        the code is valid only there) and ``state``.
        """
        pending = self._answered(txn)
        if not allow:
            return self._denied(pending)
        state = {"state": pending.state} if pending.state else {}
        user = self.users.get(user_email or self.settings.signed_in_user)
        if user is None:
            raise AuthorizeError(f"No sandbox user {user_email!r}")
        with self._lock:
            has_token = any(
                r.user == user.email and r.client_id == pending.app.client_id
                for r in self.refresh_tokens.values()
            )
            code = secrets.token_urlsafe(32)
            self.codes[code] = CodeRecord(
                pending.app.client_id,
                pending.redirect_uri,
                user.email,
                user.location,
                pending.scopes,
                new_refresh=pending.offline and (pending.prompt_consent or not has_token),
                expires_at=self.clock.time() + self.settings.authorization_code_seconds,
            )
        params = {
            "code": code,
            "location": user.location,
            "accounts-server": accounts_server(base, user.location),
        }
        return with_query(pending.redirect_uri, params | state)

    # --- token endpoint -----------------------------------------------------------------------------

    def token(self, form: dict, location: str, base: str) -> dict:
        app = self._client(form, location)
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._exchange_code(app, form, location, base)
        if grant_type == "refresh_token":
            return self._refresh(app, form.get("refresh_token", ""), location, base)
        raise OAuthError("unsupported_grant_type")

    def _exchange_code(self, app: App, form: dict, location: str, base: str) -> dict:
        with self._lock:
            record = self.codes.get(form.get("code", ""))
            if (
                record is None
                or record.used
                or record.client_id != app.client_id
                or record.location != location
            ):
                raise OAuthError("invalid_code")
            record.used = True  # single use, whatever happens next
            if record.expires_at < self.clock.time() or record.redirect_uri != form.get("redirect_uri"):
                raise OAuthError("invalid_code")
            refresh = (
                self._new_refresh(app.client_id, record.user, location, record.scopes)
                if record.new_refresh
                else None
            )
            access = self._mint(app.client_id, record.user, location, record.scopes, refresh)
        body = self._answer(access, record.scopes, location, base)
        return body | ({"refresh_token": refresh} if refresh else {})

    def _refresh(self, app: App, token: str, location: str, base: str) -> dict:
        with self._lock:
            record = self.refresh_tokens.get(token)
            if record is None or record.client_id != app.client_id or record.location != location:
                raise OAuthError("invalid_code")
            access = self._mint(app.client_id, record.user, location, record.scopes, token)
        return self._answer(access, record.scopes, location, base)  # no refresh_token: it never rotates

    def _answer(self, access: str, scopes: tuple[str, ...], location: str, base: str) -> dict:
        return {
            "access_token": access,
            "scope": " ".join(scopes),
            "api_domain": api_domain(base, location),
            "token_type": "Bearer",
            "expires_in": self.settings.access_token_seconds,
        }

    def _new_refresh(self, client_id: str, user: str, location: str, scopes: tuple[str, ...]) -> str:
        """A new refresh token: at most 5 a minute per user; the 21st of a user and app evicts the oldest."""
        s, now = self.settings, self.clock.time()
        created = self.refresh_created.setdefault(user, deque())
        while created and created[0] <= now - 60:
            created.popleft()
        if len(created) >= s.refresh_tokens_per_minute:
            raise OAuthError("Access Denied", 400, TOO_MANY)
        created.append(now)
        mine = sorted(
            (r for r in self.refresh_tokens.items() if r[1].user == user and r[1].client_id == client_id),
            key=lambda item: item[1].issued_at,
        )
        while mine and len(mine) >= s.refresh_tokens_per_user:
            self._drop_refresh(mine.pop(0)[0])
        token = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
        self.refresh_tokens[token] = RefreshRecord(client_id, user, location, scopes, now)
        return token

    def _mint(
        self, client_id: str, user: str, location: str, scopes: tuple[str, ...], refresh: str | None
    ) -> str:
        """A new access token; one minted with a refresh token counts against its 10-minute window."""
        s, now = self.settings, self.clock.time()
        record = self.refresh_tokens.get(refresh) if refresh else None
        if record is not None:
            record.mints = [t for t in record.mints if t > now - s.access_token_window_seconds]
            if len(record.mints) >= s.access_tokens_per_window:
                raise OAuthError("Access Denied", 400, TOO_MANY)
            record.mints.append(now)
        token = f"1000.{secrets.token_hex(32)}"
        self.access_tokens[token] = AccessRecord(
            client_id, user, location, scopes, now + s.access_token_seconds, refresh
        )
        if record is not None:
            record.access.append(token)
            while len(record.access) > s.active_access_tokens_per_refresh_token:
                self.access_tokens.pop(record.access.pop(0), None)
        return token

    def _drop_refresh(self, token: str) -> None:
        record = self.refresh_tokens.pop(token, None)
        for access in record.access if record else ():
            self.access_tokens.pop(access, None)

    def revoke(self, token: str, location: str) -> bool:
        """``POST /oauth/v2/token/revoke?token=…``: a refresh token dies with its access tokens."""
        with self._lock:
            record = self.refresh_tokens.get(token)
            if record is None or record.location != location:
                return False
            self._drop_refresh(token)
            return True

    def issue_grant(self, client_id: str, user_email: str, scopes: tuple[str, ...], base: str) -> dict:
        """Admin short-cut: a first consent without the browser; the token answer plus its data centre."""
        if client_id not in self.apps:
            raise ValueError(f"unknown client_id {client_id!r}")
        user = self.users.get(user_email)
        if user is None:
            raise ValueError(f"unknown user {user_email!r}")
        with self._lock:
            refresh = self._new_refresh(client_id, user.email, user.location, scopes)
            access = self._mint(client_id, user.email, user.location, scopes, refresh)
        return self._answer(access, scopes, user.location, base) | {
            "refresh_token": refresh,
            "location": user.location,
            "accounts_server": accounts_server(base, user.location),
            "user": user.email,
        }

    # --- API calls ----------------------------------------------------------------------------------

    def authenticate(self, authorization: str | None, location: str) -> AccessRecord:
        prefix = "Zoho-oauthtoken "
        if not authorization or not authorization.startswith(prefix):
            raise NotAuthorised("no Zoho-oauthtoken")
        with self._lock:
            record = self.access_tokens.get(authorization[len(prefix) :].strip())
        if record is None or record.location != location or self.clock.time() >= record.expires_at:
            raise NotAuthorised("unknown, expired or another data centre's token")
        return record

    def tokens_of(self, user: str, client_id: str | None = None) -> list[dict]:
        """The user's refresh tokens (admin view: issued time and live access tokens, never the tokens)."""
        with self._lock:
            return [
                {"issued_at": r.issued_at, "client_id": r.client_id, "live_access_tokens": len(r.access)}
                for r in sorted(self.refresh_tokens.values(), key=lambda r: r.issued_at)
                if r.user == user and (client_id is None or r.client_id == client_id)
            ]


def has_scope(scopes: tuple[str, ...], module: str, operation: str) -> bool:
    """Whether a token's scopes allow ``operation`` (CREATE, READ, UPDATE, DELETE) on ``module``."""
    return bool(
        {"ZohoBooks.fullaccess.all", f"ZohoBooks.{module}.ALL", f"ZohoBooks.{module}.{operation}"}
        & set(scopes)
    )


def accounts_server(base: str, location: str) -> str:
    return f"{base.rstrip('/')}/{location}/accounts"


def api_domain(base: str, location: str) -> str:
    return f"{base.rstrip('/')}/{location}/api"
