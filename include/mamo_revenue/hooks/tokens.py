"""What a ledger hook needs from wherever OAuth tokens are kept (the product DB in production).

A refresh must be serialised per ledger connection: Xero refresh tokens are single-use, so two
workers refreshing the same token set at once leave one of them with a dead token; Zoho's never
rotate, but every refresh counts against its 10-access-tokens-per-10-minutes limit, so the access
token is shared through the store rather than minted per worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class TokenSet:
    access_token: str | None
    refresh_token: str
    access_expires_at: datetime | None  # aware UTC
    tenant_id: str | None = None  # Xero tenantId / Zoho organization_id
    #: Values the ledger tied to this grant, kept with it and reused on every refresh and call
    #: (Zoho: ``api_domain`` and ``accounts_server``, the grant's data centre). Empty for Xero.
    extra: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra", {str(k): str(v) for k, v in (self.extra or {}).items()})

    def __repr__(self) -> str:  # never print a token (nor the grant's extra values)
        return f"TokenSet(tenant_id={self.tenant_id!r}, access_expires_at={self.access_expires_at!r})"


class TokenStore(Protocol):
    def current(self) -> TokenSet:
        """The stored tokens, read without a lock."""

    def refreshing(self) -> AbstractContextManager[TokenSet]:
        """Hold the connection's exclusive lock; yield the freshest stored tokens.

        Inside the block the caller refreshes if still needed and calls ``save``; the new tokens are
        committed before the lock is released.
        """

    def save(self, tokens: TokenSet) -> None:
        """Persist new tokens (inside ``refreshing``)."""

    def mark_needs_reconnect(self, reason: str) -> None:
        """The grant is dead (``invalid_grant``): a person must reconnect the ledger."""
