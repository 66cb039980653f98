"""The Xero identity service of the sandbox: apps, consent, codes, tokens and connections.

Written from LEDGER_APIS.md §1.1–1.2 and ``specs/xero/xero-identity.yaml``: 30-minute access tokens,
refresh tokens that rotate on every use, the old one working again for a grace window after its
first use, 60 days of idleness killing a refresh token, and ``{"error": "invalid_grant"}`` for any
dead grant. Everything here is plain Python guarded by one lock; ``xero.py`` maps it to HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from mamo_sandboxes.common import Clock
from mamo_sandboxes.oauth_server import AuthorizeError, ConsentDesk, OAuthError, with_query
from mamo_sandboxes.xero_data import SANDBOX_USER

if TYPE_CHECKING:
    from mamo_sandboxes.xero_settings import XeroSettings

#: Scopes the identity service knows; apps created on or after 2026-03-02 may not ask for
#: ``accounting.transactions`` (LEDGER_APIS.md §1.1), which ``App.legacy_scopes`` allows.
KNOWN_SCOPES = frozenset(
    {
        "openid",
        "profile",
        "email",
        "offline_access",
        "accounting.settings",
        "accounting.settings.read",
        "accounting.manualjournals",
        "accounting.manualjournals.read",
        "accounting.transactions",
        "accounting.transactions.read",
        "accounting.contacts",
        "accounting.contacts.read",
        "accounting.attachments",
        "accounting.attachments.read",
        "accounting.journals.read",
        "accounting.reports.read",
        "accounting.budgets.read",
    }
)
LEGACY_ONLY_SCOPES = frozenset({"accounting.transactions", "accounting.transactions.read"})
_PKCE_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


class BearerError(Exception):
    """A refused bearer token: HTTP 401 with Xero's problem-details body (LEDGER_APIS.md §1.8)."""

    def __init__(self, detail: str, status: int = 401):
        super().__init__(detail)
        self.detail, self.status = detail, status

    def body(self) -> dict:
        title = "Unauthorized" if self.status == 401 else "Forbidden"
        return {
            "Type": None,
            "Title": title,
            "Status": self.status,
            "Detail": self.detail,
            "Instance": str(uuid.uuid4()),
            "Extensions": {},
        }


@dataclass
class App:
    client_id: str
    client_secret: str | None  # None: a PKCE-only public app
    name: str
    redirect_uris: list[str]
    legacy_scopes: bool = False

    def public(self) -> dict:
        return {
            "client_id": self.client_id,
            "name": self.name,
            "redirect_uris": list(self.redirect_uris),
            "legacy_scopes": self.legacy_scopes,
            "pkce_only": self.client_secret is None,
        }


@dataclass
class Grant:
    """One consent (an ``authEventId``) and every token descended from it."""

    id: str
    client_id: str
    scopes: tuple[str, ...]
    created: float
    nonce: str | None = None
    revoked: bool = False


@dataclass
class RefreshRecord:
    grant_id: str
    client_id: str
    issued_at: float
    used_at: float | None = None


@dataclass
class AccessRecord:
    grant_id: str
    client_id: str
    scopes: tuple[str, ...]
    expires_at: float


@dataclass
class CodeRecord:
    client_id: str
    redirect_uri: str
    grant_id: str
    expires_at: float
    code_challenge: str | None
    used: bool = False


@dataclass
class Connection:
    id: str
    tenant_id: str
    client_id: str
    auth_event_id: str
    created: float
    updated: float


@dataclass
class PendingConsent:
    """An authorize request waiting for the user's answer on the consent page."""

    app: App
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    code_challenge: str | None
    nonce: str | None
    expires_at: float


@dataclass
class Identity(ConsentDesk):
    settings: XeroSettings
    clock: Clock
    tenant_names: dict[str, str]  # shared with the ledger: tenantId -> organisation name
    issuer: str = "http://sandbox/identity"
    apps: dict[str, App] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshRecord] = field(default_factory=dict)
    access_tokens: dict[str, AccessRecord] = field(default_factory=dict)
    codes: dict[str, CodeRecord] = field(default_factory=dict)
    pending: dict[str, PendingConsent] = field(default_factory=dict)
    connections: dict[str, Connection] = field(default_factory=dict)
    _signing_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # --- apps ---------------------------------------------------------------------------------------

    def register_app(
        self,
        client_id: str,
        client_secret: str | None,
        redirect_uris: list[str],
        name: str = "Sandbox app",
        legacy_scopes: bool = False,
    ) -> App:
        if not client_id or not redirect_uris:
            raise ValueError("client_id and at least one redirect_uri are required")
        return self._add_app(App(client_id, client_secret, name, list(redirect_uris), legacy_scopes))

    def _client(self, basic: tuple[str, str] | None, form: dict) -> App:
        """Client authentication: HTTP Basic (confidential apps) or ``client_id`` alone (PKCE apps)."""
        if basic:
            client_id, secret = basic
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret")
        app = self.apps.get(client_id)
        if app is None:
            raise OAuthError("invalid_client")
        if app.client_secret is not None and not hmac.compare_digest(app.client_secret, secret or ""):
            raise OAuthError("invalid_client")
        return app

    # --- authorize and consent ----------------------------------------------------------------------

    def start_authorization(self, query: dict) -> tuple[str, PendingConsent]:
        """Validate an authorize request; returns the pending consent's id for the consent page."""
        app, redirect_uri, back = self._authorize_target(
            query,
            unknown_client="unauthorized_client: unknown client_id",
            unregistered="invalid_request: redirect_uri is not registered for this app",
        )
        state = query.get("state")

        if query.get("response_type") != "code":
            raise back("unsupported_response_type", "response_type must be code")
        scopes = tuple(query.get("scope", "").split())
        if not scopes:
            raise back("invalid_scope", "scope is required")
        unknown = [s for s in scopes if s not in KNOWN_SCOPES]
        if unknown:
            raise back("invalid_scope", f"unknown scope {unknown[0]}")
        if not app.legacy_scopes and LEGACY_ONLY_SCOPES.intersection(scopes):
            raise back(
                "invalid_scope",
                "apps created on or after 2026-03-02 must use granular scopes "
                "such as accounting.manualjournals",
            )
        challenge = query.get("code_challenge")
        if challenge and query.get("code_challenge_method") != "S256":
            raise back("invalid_request", "code_challenge_method must be S256")
        if app.client_secret is None and not challenge:
            raise back("invalid_request", "a PKCE app must send code_challenge")
        pending = PendingConsent(
            app, redirect_uri, scopes, state, challenge, query.get("nonce"), self._consent_expiry()
        )
        return self._park(pending), pending

    def decide(self, txn: str, allow: bool, tenant_ids: list[str]) -> str:
        """The user's answer on the consent page; returns where to redirect the browser."""
        pending = self._answered(txn)
        if not allow:
            return self._denied(pending)
        state = {"state": pending.state} if pending.state else {}
        unknown = [t for t in tenant_ids if t not in self.tenant_names]
        if not tenant_ids or unknown:
            raise AuthorizeError("choose at least one organisation you can access")
        grant = self._new_grant(pending.app.client_id, pending.scopes, pending.nonce)
        self._connect(grant, tenant_ids)
        code = secrets.token_urlsafe(32)
        with self._lock:
            self.codes[code] = CodeRecord(
                pending.app.client_id,
                pending.redirect_uri,
                grant.id,
                self.clock.time() + self.settings.authorization_code_seconds,
                pending.code_challenge,
            )
        params = {"code": code, "scope": " ".join(pending.scopes)} | state
        return with_query(pending.redirect_uri, params | {"session_state": secrets.token_urlsafe(12)})

    def _new_grant(self, client_id: str, scopes: tuple[str, ...], nonce: str | None = None) -> Grant:
        grant = Grant(str(uuid.uuid4()), client_id, scopes, self.clock.time(), nonce)
        with self._lock:
            self.grants[grant.id] = grant
        return grant

    def _connect(self, grant: Grant, tenant_ids: list[str]) -> None:
        """Connect (or reconnect) each tenant to the app; the connection joins this auth event."""
        now = self.clock.time()
        with self._lock:
            for tenant_id in tenant_ids:
                existing = next(
                    (
                        c
                        for c in self.connections.values()
                        if c.client_id == grant.client_id and c.tenant_id == tenant_id
                    ),
                    None,
                )
                if existing:
                    existing.auth_event_id, existing.updated = grant.id, now
                else:
                    conn = Connection(str(uuid.uuid4()), tenant_id, grant.client_id, grant.id, now, now)
                    self.connections[conn.id] = conn

    # --- token endpoint -----------------------------------------------------------------------------

    def token(self, form: dict, basic: tuple[str, str] | None) -> dict:
        app = self._client(basic, form)
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._exchange_code(app, form)
        if grant_type == "refresh_token":
            return self._refresh(app, form.get("refresh_token", ""))
        raise OAuthError("unsupported_grant_type")

    def _exchange_code(self, app: App, form: dict) -> dict:
        with self._lock:
            record = self.codes.get(form.get("code", ""))
            if record is None or record.used or record.client_id != app.client_id:
                raise OAuthError("invalid_grant")
            record.used = True  # single use, whatever happens next
        if record.expires_at < self.clock.time() or record.redirect_uri != form.get("redirect_uri"):
            raise OAuthError("invalid_grant")
        if record.code_challenge is not None:
            verifier = form.get("code_verifier", "")
            if not _PKCE_VERIFIER.match(verifier) or not hmac.compare_digest(
                pkce_challenge(verifier), record.code_challenge
            ):
                raise OAuthError("invalid_grant")
        return self._issue(self.grants[record.grant_id])

    def _refresh(self, app: App, token: str) -> dict:
        s, now = self.settings, self.clock.time()
        with self._lock:
            record = self.refresh_tokens.get(token)
            grant = self.grants.get(record.grant_id) if record else None
            if record is None or grant is None or grant.revoked or record.client_id != app.client_id:
                raise OAuthError("invalid_grant")
            if record.used_at is None:
                if now - record.issued_at > s.refresh_idle_seconds:
                    raise OAuthError("invalid_grant")  # unused for too long (60 days)
                record.used_at = now
            elif s.refresh_reuse == "single_use" or now - record.used_at > s.refresh_grace_seconds:
                raise OAuthError("invalid_grant")  # replaced, and the grace window is over
            return self._issue(grant)

    def _issue(self, grant: Grant) -> dict:
        now = self.clock.time()
        access = self._jwt(
            {
                "nbf": int(now),
                "exp": int(now + self.settings.access_token_seconds),
                "iss": self.issuer,
                "aud": f"{self.issuer}/resources",
                "client_id": grant.client_id,
                "sub": SANDBOX_USER["xero_userid"].replace("-", ""),
                "auth_time": int(grant.created),
                "xero_userid": SANDBOX_USER["xero_userid"],
                "global_session_id": grant.id.replace("-", ""),
                "jti": uuid.uuid4().hex,
                "authentication_event_id": grant.id,
                "scope": list(grant.scopes),
            },
            self._signing_key,
        )
        body = {
            "access_token": access,
            "expires_in": self.settings.access_token_seconds,
            "token_type": "Bearer",
            "scope": " ".join(grant.scopes),
        }
        with self._lock:
            self.access_tokens[access] = AccessRecord(
                grant.id, grant.client_id, grant.scopes, now + self.settings.access_token_seconds
            )
            if "offline_access" in grant.scopes:
                refresh = secrets.token_hex(32)
                self.refresh_tokens[refresh] = RefreshRecord(grant.id, grant.client_id, now)
                body["refresh_token"] = refresh
        if "openid" in grant.scopes:
            body["id_token"] = self._id_token(grant, now)
        return body

    def _id_token(self, grant: Grant, now: float) -> str:
        app = self.apps.get(grant.client_id)
        claims = {
            "nbf": int(now),
            "exp": int(now + 300),
            "iss": self.issuer,
            "aud": grant.client_id,
            "iat": int(now),
            "auth_time": int(grant.created),
            "sub": SANDBOX_USER["xero_userid"].replace("-", ""),
            "sid": grant.id.replace("-", ""),
            "xero_userid": SANDBOX_USER["xero_userid"],
            "global_session_id": grant.id.replace("-", ""),
            "preferred_username": SANDBOX_USER["email"],
            "email": SANDBOX_USER["email"],
            "given_name": SANDBOX_USER["given_name"],
            "family_name": SANDBOX_USER["family_name"],
        } | ({"nonce": grant.nonce} if grant.nonce else {})
        key = (app.client_secret if app and app.client_secret else app.client_id if app else "x").encode()
        return self._jwt(claims, key)

    def revoke(self, form: dict, basic: tuple[str, str] | None) -> None:
        """``POST /identity/connect/revocation``: the whole grant dies and its connections go."""
        app = self._client(basic, form)
        with self._lock:
            record = self.refresh_tokens.get(form.get("token", ""))
            if record is None or record.client_id != app.client_id:
                return  # RFC 7009: unknown tokens are not an error
            grant = self.grants[record.grant_id]
            grant.revoked = True
            for conn_id in [c.id for c in self.connections.values() if c.auth_event_id == grant.id]:
                del self.connections[conn_id]

    def issue_grant(self, client_id: str, tenant_ids: list[str], scopes: tuple[str, ...]) -> dict:
        """Admin short-cut: a consent given without the browser; returns the token response."""
        if client_id not in self.apps:
            raise ValueError(f"unknown client_id {client_id!r}")
        unknown = [t for t in tenant_ids if t not in self.tenant_names]
        if unknown or not tenant_ids:
            raise ValueError(f"unknown or no tenants: {unknown}")
        grant = self._new_grant(client_id, scopes)
        self._connect(grant, tenant_ids)
        return self._issue(grant) | {"auth_event_id": grant.id, "tenant_ids": list(tenant_ids)}

    # --- bearer tokens and connections --------------------------------------------------------------

    def authenticate(self, authorization: str | None) -> AccessRecord:
        if not authorization or not authorization.startswith("Bearer "):
            raise BearerError("AuthenticationUnsuccessful")
        token = authorization[len("Bearer ") :].strip()
        with self._lock:
            record = self.access_tokens.get(token)
            grant = self.grants.get(record.grant_id) if record else None
        if record is None or grant is None or grant.revoked:
            raise BearerError("AuthenticationUnsuccessful")
        if self.clock.time() >= record.expires_at:
            stamp = datetime.fromtimestamp(record.expires_at, UTC).strftime("%m/%d/%Y %H:%M:%S")
            raise BearerError(f"TokenExpired: token expired at {stamp}")
        return record

    def can_access(self, access: AccessRecord, tenant_id: str) -> bool:
        """A token reaches every organisation its user has connected to its app."""
        with self._lock:
            return any(
                c.client_id == access.client_id and c.tenant_id == tenant_id
                for c in self.connections.values()
            )

    def list_connections(self, access: AccessRecord, auth_event_id: str | None = None) -> list[dict]:
        with self._lock:
            conns = [
                c
                for c in self.connections.values()
                if c.client_id == access.client_id
                and (auth_event_id is None or c.auth_event_id == auth_event_id)
            ]
        return [
            {
                "id": c.id,
                "authEventId": c.auth_event_id,
                "tenantId": c.tenant_id,
                "tenantType": "ORGANISATION",
                "tenantName": self.tenant_names.get(c.tenant_id, ""),
                "createdDateUtc": _iso(c.created),
                "updatedDateUtc": _iso(c.updated),
            }
            for c in sorted(conns, key=lambda c: c.created)
        ]

    def delete_connection(self, access: AccessRecord, connection_id: str) -> bool:
        with self._lock:
            conn = self.connections.get(connection_id)
            if conn is None or conn.client_id != access.client_id:
                return False
            del self.connections[connection_id]
            return True

    @staticmethod
    def _jwt(claims: dict, key: bytes) -> str:
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64(signature)}"


def pkce_challenge(verifier: str) -> str:
    return _b64(hashlib.sha256(verifier.encode("ascii")).digest())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _iso(epoch: float) -> str:
    # RFC 3339 (the spec's ``format: date-time``); real Xero omits the zone, always UTC.
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
