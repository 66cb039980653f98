"""Server-side OAuth ``state`` for consents started from the Revenue accounting page.

Invariants:
- only the SHA-256 of a ``state`` (or of a choice secret) is stored; the PKCE verifier and a parked
  grant are Fernet-encrypted;
- a state is consumed at most once, by the user who started it, before it expires: the consume is one
  conditional ``UPDATE … WHERE consumed_at IS NULL`` whose row count says who won, so a replayed
  callback (or two racing ones) is refused;
- a grant parked for the choice of organisation is taken at most once, by the same user, likewise.

Functions take an open ``Session``; the caller commits.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from mamo_revenue.db.crypto import TokenCipher
from mamo_revenue.db.models import OAuthState, utcnow

#: How long a person has to answer the ledger's consent page (and then to pick an organisation).
STATE_TTL = timedelta(minutes=15)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class StartedConsent:
    """What the callback needs back from the server side (never sent to the browser)."""

    company_id: str
    platform: str
    redirect_uri: str | None
    started_by: str
    code_verifier: str | None = field(default=None, repr=False)


def create_state(
    session: Session,
    *,
    company_id: str,
    platform: str,
    state: str,
    started_by: str,
    cipher: TokenCipher,
    code_verifier: str | None = None,
    redirect_uri: str | None = None,
    now: datetime | None = None,
    ttl: timedelta = STATE_TTL,
) -> None:
    """Remember a consent just started; purges this company's expired states on the way."""
    now = now or utcnow()
    session.execute(sa.delete(OAuthState).where(OAuthState.expires_at < now - ttl))
    session.add(
        OAuthState(
            state_hash=digest(state),
            company_id=company_id,
            platform=platform,
            redirect_uri=redirect_uri,
            code_verifier_enc=cipher.encrypt(code_verifier) if code_verifier else None,
            started_by=started_by,
            created_at=now,
            expires_at=now + ttl,
        )
    )
    session.flush()


def consume_state(
    session: Session, state: str | None, *, user: str, cipher: TokenCipher, now: datetime | None = None
) -> StartedConsent | None:
    """The consent ``state`` belongs to, consumed now; None when it is unknown (forged), already used
    (replayed), expired, or was started by someone else."""
    if not state:
        return None
    now = now or utcnow()
    key = digest(state)
    won = session.execute(
        sa.update(OAuthState)
        .where(
            OAuthState.state_hash == key,
            OAuthState.consumed_at.is_(None),
            OAuthState.expires_at > now,
            OAuthState.started_by == user,
        )
        .values(consumed_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if won != 1:
        return None
    row = session.get(OAuthState, key, populate_existing=True)
    assert row is not None
    return StartedConsent(
        company_id=row.company_id,
        platform=row.platform,
        redirect_uri=row.redirect_uri,
        started_by=row.started_by,
        code_verifier=cipher.decrypt(row.code_verifier_enc) if row.code_verifier_enc else None,
    )


def park_grant(
    session: Session, state: str, grant: dict[str, Any], cipher: TokenCipher, *, now: datetime | None = None,
    ttl: timedelta = STATE_TTL,
) -> str:
    """Keep an exchanged grant (encrypted) while the user picks an organisation; returns the one-time
    choice secret the choice form carries back."""
    choice = secrets.token_urlsafe(24)
    now = now or utcnow()
    session.execute(
        sa.update(OAuthState)
        .where(OAuthState.state_hash == digest(state))
        .values(choice_hash=digest(choice), grant_enc=cipher.encrypt(json.dumps(grant, default=str)),
                expires_at=now + ttl)
        .execution_options(synchronize_session=False)
    )
    return choice


@dataclass(frozen=True)
class ParkedGrant:
    company_id: str
    platform: str
    redirect_uri: str | None
    grant: dict[str, Any] = field(repr=False)


def peek_parked_grant(session: Session, choice: str | None, *, user: str, cipher: TokenCipher,
                      now: datetime | None = None) -> ParkedGrant | None:
    """The parked grant of ``choice`` without taking it (to show the choice page), or None."""
    row = _parked_row(session, choice, user=user, now=now)
    if row is None:
        return None
    return ParkedGrant(row.company_id, row.platform, row.redirect_uri, json.loads(cipher.decrypt(row.grant_enc)))


def take_parked_grant(session: Session, choice: str | None, *, user: str, cipher: TokenCipher,
                      now: datetime | None = None) -> ParkedGrant | None:
    """The parked grant of ``choice``, taken once: its encrypted tokens are erased in the same UPDATE."""
    now = now or utcnow()
    row = _parked_row(session, choice, user=user, now=now)
    if row is None:
        return None
    parked = ParkedGrant(row.company_id, row.platform, row.redirect_uri, json.loads(cipher.decrypt(row.grant_enc)))
    won = session.execute(
        sa.update(OAuthState)
        .where(OAuthState.state_hash == row.state_hash, OAuthState.completed_at.is_(None),
               OAuthState.grant_enc.is_not(None))
        .values(completed_at=now, grant_enc=None, choice_hash=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    return parked if won == 1 else None


def _parked_row(session: Session, choice: str | None, *, user: str, now: datetime | None) -> OAuthState | None:
    if not choice:
        return None
    now = now or utcnow()
    return session.scalars(
        sa.select(OAuthState)
        .where(
            OAuthState.choice_hash == digest(choice),
            OAuthState.completed_at.is_(None),
            OAuthState.grant_enc.is_not(None),
            OAuthState.expires_at > now,
            OAuthState.started_by == user,
        )
        .execution_options(populate_existing=True)
    ).one_or_none()
