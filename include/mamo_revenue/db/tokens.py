"""``DbTokenStore``: a company's ledger OAuth tokens in the product DB, encrypted, refreshed one at a time.

Xero refresh tokens are single-use: two workers refreshing the same grant at once leave one
with a dead token. ``refreshing()`` therefore holds an exclusive lock on the company's
``ledger_connections`` row for the whole refresh (PostgreSQL: ``SELECT … FOR UPDATE`` in its
own transaction; SQLite: the engine's ``BEGIN IMMEDIATE``), yields the freshest stored tokens,
and commits what ``save()`` wrote before releasing the lock. Once new tokens are saved they are
committed even if the block raises afterwards: the old refresh token is already spent.

Tokens exist in clear text only in memory; the row holds Fernet tokens.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from mamo_revenue.db.companies import read_tokens, store_tokens
from mamo_revenue.db.crypto import TokenCipher
from mamo_revenue.db.models import ConnectionStatus, LedgerConnection, utcnow
from mamo_revenue.db.session import reader
from mamo_revenue.errors import LedgerAuthError
from mamo_revenue.hooks.tokens import TokenSet

#: How long ``refreshing()`` waits for another worker's refresh on PostgreSQL before giving up.
LOCK_TIMEOUT = timedelta(seconds=60)


class DbTokenStore:
    """The ``TokenStore`` of one company's ledger connection (``hooks/tokens.py``)."""

    def __init__(self, engine: Engine, company_id: str, cipher: TokenCipher):
        self.engine = engine
        self.company_id = company_id
        self._cipher = cipher
        self._local = threading.local()  # the session of an open refreshing() block, per thread

    def __repr__(self) -> str:
        return f"DbTokenStore(company_id={self.company_id!r}, backend={self.engine.dialect.name!r})"

    # --- TokenStore ------------------------------------------------------------------------------

    def current(self) -> TokenSet:
        """The stored tokens, read without a lock; ``LedgerAuthError`` if the grant is not usable."""
        with Session(reader(self.engine)) as session:
            row = session.get(LedgerConnection, self.company_id)
            return self._usable(row)

    @contextmanager
    def refreshing(self) -> Iterator[TokenSet]:
        """Hold the connection's exclusive lock; yield the freshest stored tokens."""
        if getattr(self._local, "session", None) is not None:
            raise RuntimeError("refreshing() is not re-entrant")
        session = Session(self.engine, expire_on_commit=False)
        self._local.session, self._local.dirty = session, False
        try:
            session.begin()  # SQLite: BEGIN IMMEDIATE, the writer lock for the whole block
            if session.get_bind().dialect.name == "postgresql":
                millis = int(LOCK_TIMEOUT.total_seconds() * 1000)
                session.execute(sa.text(f"SET LOCAL lock_timeout = {millis}"))
            row = session.scalars(
                sa.select(LedgerConnection)
                .where(LedgerConnection.company_id == self.company_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            ).one_or_none()
            tokens = self._usable(row)
            try:
                yield tokens
            except BaseException:
                # New tokens were issued and the old refresh token is spent: keep them regardless.
                if self._local.dirty:
                    session.commit()
                else:
                    session.rollback()
                raise
            session.commit()
        finally:
            self._local.session = None
            session.close()

    def save(self, tokens: TokenSet) -> None:
        """Persist new tokens, encrypted. Inside ``refreshing()`` they commit when it ends."""
        with self._writing() as session:
            row = session.get(LedgerConnection, self.company_id)
            if row is None:
                raise LedgerAuthError(f"company {self.company_id}: no ledger connection to save tokens into")
            store_tokens(row, tokens, self._cipher)

    def mark_needs_reconnect(self, reason: str) -> None:
        """The grant is dead (``invalid_grant``): a person must reconnect the ledger."""
        with self._writing() as session:
            session.execute(
                sa.update(LedgerConnection)
                .where(LedgerConnection.company_id == self.company_id)
                .values(status=ConnectionStatus.NEEDS_RECONNECT.value, status_reason=reason[:2000])
            )

    # --- internals -------------------------------------------------------------------------------

    @contextmanager
    def _writing(self) -> Iterator[Session]:
        """The open ``refreshing()`` session of this thread, else a short transaction of its own."""
        session = getattr(self._local, "session", None)
        if session is not None:
            yield session
            session.flush()
            self._local.dirty = True
            return
        with Session(self.engine, expire_on_commit=False) as own, own.begin():
            yield own

    def _usable(self, row: LedgerConnection | None) -> TokenSet:
        if row is None or not row.refresh_token_enc:
            raise LedgerAuthError(
                f"company {self.company_id}: the ledger is not connected",
                guidance="Connect the ledger for this company (mamo-revenue connect) and re-run.",
            )
        if row.status != ConnectionStatus.CONNECTED:
            raise LedgerAuthError(
                f"company {self.company_id}: the ledger connection is {row.status}"
                + (f" ({row.status_reason})" if row.status_reason else "")
            )
        return read_tokens(row, self._cipher)


def refresh_due(tokens: TokenSet, margin: timedelta = timedelta(minutes=2)) -> bool:
    """True when the access token is missing or expires within ``margin``."""
    return (
        tokens.access_token is None
        or tokens.access_expires_at is None
        or tokens.access_expires_at <= utcnow() + margin
    )
