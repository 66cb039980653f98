"""Encryption at rest for ledger OAuth tokens: Fernet (AES-128-CBC + HMAC-SHA256), with rotation.

The secret comes from the Airflow connection ``mamo_revenue_db`` (extra
``token_encryption_secret``), or from the environment variable ``MAMO_REVENUE_TOKEN_SECRET``.
It may be a real Fernet key or any string (hashed with SHA-256 into one). Several secrets,
comma-separated ``"new,old"``, allow rotation: the first encrypts, all of them decrypt.

Invariants: a token is never written in clear text; a wrong secret fails with
``TokenDecryptionError`` (naming neither the secret nor the token), never with garbage.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from mamo_revenue.errors import MamoRevenueError

SECRET_EXTRA = "token_encryption_secret"
SECRET_ENV = "MAMO_REVENUE_TOKEN_SECRET"


class TokenSecretMissing(MamoRevenueError):
    """No token encryption secret is configured."""

    guidance = (
        f"Set the extra '{SECRET_EXTRA}' on the Airflow connection mamo_revenue_db "
        f"(or the environment variable {SECRET_ENV}) to a long random string."
    )


class TokenDecryptionError(MamoRevenueError):
    """A stored token cannot be decrypted with the configured secret(s)."""

    guidance = (
        "The token encryption secret changed. Configure it as 'new,old' so the old secret still decrypts, "
        "or reconnect the ledger to store new tokens."
    )


def fernet_key(secret: str) -> bytes:
    """A Fernet key from ``secret``: used as is if it already is one, else SHA-256 of the string."""
    secret = secret.strip()
    if not secret:
        raise TokenSecretMissing("the token encryption secret is empty")
    try:
        if len(base64.urlsafe_b64decode(secret.encode("ascii"))) == 32 and len(secret) == 44:
            return secret.encode("ascii")
    except (binascii.Error, ValueError, UnicodeEncodeError):
        pass
    return base64.urlsafe_b64encode(hashlib.sha256(secret.encode("utf-8")).digest())


def _split(secrets: str | Iterable[str]) -> list[str]:
    items = secrets.split(",") if isinstance(secrets, str) else list(secrets)
    return [s.strip() for s in items if s and s.strip()]


class TokenCipher:
    """Encrypts with the first secret; decrypts with any of them (rotation)."""

    def __init__(self, secrets: str | Iterable[str]):
        keys = [fernet_key(s) for s in _split(secrets)]
        if not keys:
            raise TokenSecretMissing("no token encryption secret was given")
        self._fernet = MultiFernet([Fernet(k) for k in keys])
        self._count = len(keys)

    def encrypt(self, text: str) -> str:
        """A Fernet token (URL-safe text) for ``text``."""
        if not isinstance(text, str):
            raise TypeError("only text is encrypted")
        return self._fernet.encrypt(text.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """The text inside ``token``; ``TokenDecryptionError`` if no configured secret opens it."""
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError, AttributeError) as exc:
            raise TokenDecryptionError(
                f"a stored ledger token could not be decrypted with the {self._count} configured secret(s)"
            ) from exc

    def rotate(self, token: str) -> str:
        """``token`` re-encrypted under the first (newest) secret."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError) as exc:
            raise TokenDecryptionError("a stored ledger token could not be re-encrypted") from exc

    def __repr__(self) -> str:
        return f"TokenCipher(<{self._count} secret(s)>)"


def cipher_from_secret(secret: str | None = None) -> TokenCipher:
    """A cipher from ``secret``, else from ``MAMO_REVENUE_TOKEN_SECRET``."""
    secret = secret or os.environ.get(SECRET_ENV)
    if not secret:
        raise TokenSecretMissing("no token encryption secret is configured")
    return TokenCipher(secret)


def cipher_for_connection(conn: Any | None) -> TokenCipher:
    """The cipher configured on an Airflow Connection's extra, falling back to the environment."""
    extra = getattr(conn, "extra_dejson", None) if conn is not None else None
    secret = extra.get(SECRET_EXTRA) if isinstance(extra, dict) else None
    return cipher_from_secret(secret)


def load_cipher(conn_id: str = "mamo_revenue_db") -> TokenCipher:
    """The cipher of the product DB connection ``conn_id`` (extra first, then the environment)."""
    from airflow.sdk import BaseHook  # imported here: keep the package cheap to import

    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception as exc:  # AirflowNotFoundException, or no Airflow context at all
        if os.environ.get(SECRET_ENV):
            return cipher_from_secret()
        raise TokenSecretMissing(
            f"connection {conn_id!r} is not available and {SECRET_ENV} is not set"
        ) from exc
    return cipher_for_connection(conn)


def encrypt(text: str, cipher: TokenCipher | None = None) -> str:
    """Encrypt with ``cipher`` (default: the environment's secret)."""
    return (cipher or cipher_from_secret()).encrypt(text)


def decrypt(token: str, cipher: TokenCipher | None = None) -> str:
    """Decrypt with ``cipher`` (default: the environment's secret)."""
    return (cipher or cipher_from_secret()).decrypt(token)
