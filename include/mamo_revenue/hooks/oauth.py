"""OAuth 2.0 pieces every ledger hook shares (Xero now, Zoho Books next): PKCE, state, token expiry.

Pure functions and small types; no HTTP here, so each ledger keeps its own token-endpoint quirks.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mamo_revenue.hooks.tokens import TokenSet

#: Refresh this long before the access token's expiry, so a call never starts with a dying token.
EXPIRY_MARGIN = timedelta(seconds=60)


@dataclass(frozen=True)
class PkcePair:
    verifier: str  # kept by the client until the code exchange
    challenge: str  # sent in the authorize URL (method S256)

    def __repr__(self) -> str:
        return "PkcePair(…)"


def pkce_pair() -> PkcePair:
    """A fresh RFC 7636 verifier (86 characters) and its S256 challenge."""
    verifier = secrets.token_urlsafe(64)
    return PkcePair(verifier, pkce_challenge(verifier))


def pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def new_state() -> str:
    """An unguessable ``state`` for one authorize round trip (checked on the callback)."""
    return secrets.token_urlsafe(24)


def utcnow() -> datetime:
    return datetime.now(UTC)


def expires_at(expires_in: int | float | str, *, now: datetime | None = None) -> datetime:
    """When an access token granted ``now`` with ``expires_in`` seconds dies (aware UTC)."""
    return (now or utcnow()) + timedelta(seconds=float(expires_in))


def is_fresh(tokens: TokenSet, *, now: datetime | None = None, margin: timedelta = EXPIRY_MARGIN) -> bool:
    """True when ``tokens`` hold an access token that lives at least ``margin`` longer."""
    if not tokens.access_token or tokens.access_expires_at is None:
        return False
    return tokens.access_expires_at - margin > (now or utcnow())


def token_set(
    response: dict,
    *,
    tenant_id: str | None = None,
    previous_refresh_token: str | None = None,
    now: datetime | None = None,
) -> TokenSet:
    """A token-endpoint answer as a ``TokenSet``.

    Ledgers whose refresh tokens never rotate (Zoho) omit ``refresh_token`` on refresh; the previous
    one is kept then.
    """
    refresh = response.get("refresh_token") or previous_refresh_token
    if not refresh:
        raise ValueError("the token response holds no refresh token (was offline_access granted?)")
    return TokenSet(
        access_token=response["access_token"],
        refresh_token=refresh,
        access_expires_at=expires_at(response.get("expires_in", 0), now=now),
        tenant_id=tenant_id,
    )


def unverified_jwt_claims(token: str) -> dict:
    """The claims of a JWT, NOT verified: only for routing hints such as ``authentication_event_id``."""
    try:
        payload = token.split(".")[1]
        padded = payload + "=" * (-len(payload) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (IndexError, ValueError, binascii.Error):
        return {}
    return claims if isinstance(claims, dict) else {}
