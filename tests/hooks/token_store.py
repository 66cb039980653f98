"""A thread-safe in-memory ``TokenStore`` for hook tests (the product uses ``db.tokens.DbTokenStore``).

It keeps the protocol's promise: ``refreshing()`` is an exclusive lock per store (one store = one
ledger connection row), and what ``save()`` writes inside it is visible to every reader at once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from mamo_revenue.errors import LedgerAuthError
from mamo_revenue.hooks.tokens import TokenSet


class MemoryTokenStore:
    def __init__(self, tokens: TokenSet):
        self._tokens = tokens
        self._row_lock = threading.Lock()  # the "row lock" held by refreshing()
        self._data_lock = threading.Lock()  # guards the fields below
        self.saved: list[TokenSet] = []  # every save, in order
        self.refresh_blocks = 0  # how many refreshing() blocks were entered
        self.needs_reconnect: str | None = None

    def current(self) -> TokenSet:
        with self._data_lock:
            if self.needs_reconnect:
                raise LedgerAuthError(f"the ledger connection needs a reconnect ({self.needs_reconnect})")
            return self._tokens

    @contextmanager
    def refreshing(self) -> Iterator[TokenSet]:
        with self._row_lock:
            with self._data_lock:
                self.refresh_blocks += 1
                tokens = self._tokens
            yield tokens

    def save(self, tokens: TokenSet) -> None:
        with self._data_lock:
            self._tokens = tokens
            self.saved.append(tokens)

    def replace(self, tokens: TokenSet) -> None:
        """Test helper: what another process (or time) left in the store."""
        with self._data_lock:
            self._tokens = tokens

    def mark_needs_reconnect(self, reason: str) -> None:
        with self._data_lock:
            self.needs_reconnect = reason
