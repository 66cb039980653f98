"""A company's own secrets: its Mamo API key and its Mamo webhook secret, Fernet-encrypted at rest.

They are kept like the ledger tokens (``db/crypto.py``): encrypted with the product DB's token secret,
decrypted only in memory, never logged, never sent to a browser. The Mamo base URL is not a secret of
the company: it stays on the Airflow connection ``company.mamo_conn_id`` (the sandbox locally).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from mamo_revenue.db.companies import require_company
from mamo_revenue.db.crypto import TokenCipher

#: Mamo accepts an ``auth_header`` of 1 to 50 characters (MAMO_API.md §8.1); shorter ones are guessable.
WEBHOOK_SECRET_MIN, WEBHOOK_SECRET_MAX = 16, 50


def set_mamo_api_key(
    session: Session, company_id: str, api_key: str, cipher: TokenCipher, *, business_name: str | None = None
) -> None:
    """Store the company's own Mamo API key (checked by the caller with ``GET /me``)."""
    if not api_key or not api_key.strip():
        raise ValueError("an empty Mamo API key cannot be stored")
    company = require_company(session, company_id)
    company.mamo_api_key_enc = cipher.encrypt(api_key.strip())
    company.mamo_business_name = (business_name or "")[:200] or None
    session.flush()


def mamo_api_key(company: Any, cipher: TokenCipher) -> str | None:
    """The company's own key in clear text, or None when it uses its connection's key."""
    token = getattr(company, "mamo_api_key_enc", None)
    return cipher.decrypt(token) if token else None


def set_webhook_secret(session: Session, company_id: str, secret: str | None, cipher: TokenCipher) -> None:
    """Store (or, with None, remove) the static ``Authorization`` header Mamo sends with each webhook."""
    company = require_company(session, company_id)
    if secret is None:
        company.webhook_secret_enc = None
    else:
        if not WEBHOOK_SECRET_MIN <= len(secret) <= WEBHOOK_SECRET_MAX or secret != secret.strip():
            raise ValueError(
                f"the webhook secret must be {WEBHOOK_SECRET_MIN}-{WEBHOOK_SECRET_MAX} characters without "
                "leading or trailing spaces"
            )
        company.webhook_secret_enc = cipher.encrypt(secret)
    session.flush()


def webhook_secret(company: Any, cipher: TokenCipher) -> str | None:
    token = getattr(company, "webhook_secret_enc", None)
    return cipher.decrypt(token) if token else None


def mamo_hook_for(company: Any, *, cipher: TokenCipher | None = None, **hook_kwargs: Any):
    """The company's ``MamoHook``: the URL of its Mamo connection, with its own key when it has one."""
    from mamo_revenue.hooks.mamo import MamoHook

    key = None
    if getattr(company, "mamo_api_key_enc", None):
        from mamo_revenue.db.crypto import load_cipher

        key = mamo_api_key(company, cipher or load_cipher())
        from airflow.sdk.log import mask_secret

        mask_secret(key)  # Airflow's log masker now hides it wherever it would appear
    return MamoHook(mamo_conn_id=company.mamo_conn_id, api_key=key, **hook_kwargs)


def erase_ledger_grant(session: Session, company_id: str, *, reason: str) -> None:
    """Forget the company's ledger tokens and mark the connection disconnected (its organisation and
    platform stay on the row, for the history); the next connect stores a fresh grant."""
    from mamo_revenue.db.models import ConnectionStatus, LedgerConnection

    row = session.get(LedgerConnection, company_id)
    if row is None:
        return
    row.access_token_enc = None
    row.refresh_token_enc = None
    row.access_expires_at = None
    row.status = ConnectionStatus.DISCONNECTED.value
    row.status_reason = reason[:2000]
    session.flush()
