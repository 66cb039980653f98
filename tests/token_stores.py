"""Ledger hook tests keep their tokens where the product keeps them: ``DbTokenStore`` on PostgreSQL.

Fixtures for ``conftest.py`` files to import (tests/hooks, tests/ledgers): ``make_store(tokens)``
creates a company (a fresh id, so tests never share a row) with a ledger connection holding
``tokens``, and returns its store, which also records what tests assert on. ``expired(tokens)``: the
same tokens with a dead access token.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest

from mamo_revenue.db.companies import connect_ledger, get_ledger_connection, store_tokens, upsert_company
from mamo_revenue.db.crypto import TokenCipher
from mamo_revenue.db.models import ConnectionStatus
from mamo_revenue.db.session import engine_for_url, session_scope, upgrade
from mamo_revenue.db.tokens import DbTokenStore
from mamo_revenue.hooks.tokens import TokenSet

CIPHER = TokenCipher("hook tests only, never a real secret")


def expired(tokens: TokenSet) -> TokenSet:
    """``tokens`` with an access token that died a minute ago (the refresh token and extra kept)."""
    return TokenSet(
        tokens.access_token,
        tokens.refresh_token,
        datetime.now(UTC) - timedelta(minutes=1),
        tokens.tenant_id,
        tokens.extra,
    )


class RecordingTokenStore(DbTokenStore):
    """The product's ``DbTokenStore``, counting refresh blocks and keeping every token set saved."""

    def __init__(self, engine, company_id: str, cipher: TokenCipher):
        super().__init__(engine, company_id, cipher)
        self.saved: list[TokenSet] = []  # every save, in order
        self.refresh_blocks = 0  # how many refreshing() blocks were entered
        self._counts = threading.Lock()

    @contextmanager
    def refreshing(self) -> Iterator[TokenSet]:
        with self._counts:
            self.refresh_blocks += 1
        with super().refreshing() as tokens:
            yield tokens

    def save(self, tokens: TokenSet) -> None:
        super().save(tokens)
        with self._counts:
            self.saved.append(tokens)

    def replace(self, tokens: TokenSet) -> None:
        """What another process (or time) left in the row."""
        with session_scope(self.engine) as session:
            store_tokens(get_ledger_connection(session, self.company_id), tokens, CIPHER)

    @property
    def needs_reconnect(self) -> str | None:
        """The reason the connection needs a person, or None while it is connected."""
        with session_scope(self.engine) as session:
            row = get_ledger_connection(session, self.company_id)
            return row.status_reason if row.status == ConnectionStatus.NEEDS_RECONNECT else None


@pytest.fixture(scope="session")
def product_engine(pg_url):
    """The migrated product DB of this test session (PostgreSQL)."""
    upgrade(pg_url)
    return engine_for_url(pg_url)


@pytest.fixture
def make_store(product_engine):
    def make(
        tokens: TokenSet, *, platform: str = "xero", tenant_name: str | None = None
    ) -> RecordingTokenStore:
        company_id = f"hook-{uuid.uuid4().hex[:12]}"
        with session_scope(product_engine) as session:
            upsert_company(session, company_id, name=f"Hook test {company_id}", ledger_platform=platform)
            connect_ledger(
                session, company_id, platform=platform, tokens=tokens, cipher=CIPHER, tenant_name=tenant_name
            )
        return RecordingTokenStore(product_engine, company_id, CIPHER)

    return make
