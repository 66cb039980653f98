"""Token encryption at rest and the DB token store's refresh lock."""

from __future__ import annotations

import base64
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from mamo_revenue.db.companies import connect_ledger
from mamo_revenue.db.crypto import (
    SECRET_ENV,
    TokenCipher,
    TokenDecryptionError,
    TokenSecretMissing,
    cipher_for_connection,
    cipher_from_secret,
    fernet_key,
)
from mamo_revenue.db.session import session_scope
from mamo_revenue.db.tokens import DbTokenStore
from mamo_revenue.errors import LedgerAuthError
from mamo_revenue.hooks.tokens import TokenSet

SECRET = "correct horse battery staple, rotated yearly"
EXPIRES = datetime(2026, 11, 21, 3, 0, tzinfo=UTC)


@pytest.fixture
def cipher() -> TokenCipher:
    return TokenCipher(SECRET)


@pytest.fixture
def store(engine, company, cipher) -> DbTokenStore:
    with session_scope(engine) as session:
        connect_ledger(
            session,
            company,
            platform="xero",
            tokens=TokenSet("access-token-0", "refresh-token-0", EXPIRES, tenant_id="tenant-1"),
            cipher=cipher,
        )
    return DbTokenStore(engine, company, cipher)


def _stored_columns(engine) -> dict:
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM ledger_connections")).mappings().one()
    return dict(row)


# --- crypto ------------------------------------------------------------------------------------------------


def test_round_trip_and_fresh_ciphertexts(cipher):
    first, second = cipher.encrypt("refresh-token-0"), cipher.encrypt("refresh-token-0")
    assert first != second  # random IV: equal tokens do not look equal at rest
    assert cipher.decrypt(first) == cipher.decrypt(second) == "refresh-token-0"


def test_a_real_fernet_key_is_used_as_is():
    key = Fernet.generate_key()
    token = TokenCipher(key.decode()).encrypt("t")
    assert Fernet(key).decrypt(token.encode()) == b"t"
    assert fernet_key(key.decode()) == key
    assert len(base64.urlsafe_b64decode(fernet_key("any passphrase at all"))) == 32


def test_the_wrong_secret_fails_clearly_without_leaking(cipher):
    token = cipher.encrypt("refresh-token-0")
    with pytest.raises(TokenDecryptionError) as caught:
        TokenCipher("another secret").decrypt(token)
    message = str(caught.value)
    assert "could not be decrypted" in message and "'new,old'" in message
    assert "another secret" not in message and SECRET not in message and "refresh-token-0" not in message


def test_rotation_with_new_and_old_secrets(cipher):
    old_token = cipher.encrypt("refresh-token-0")
    rotated = TokenCipher(f"a brand new secret, {SECRET}")
    assert rotated.decrypt(old_token) == "refresh-token-0"
    new_token = rotated.rotate(old_token)
    with pytest.raises(TokenDecryptionError):
        cipher.decrypt(new_token)
    assert TokenCipher("a brand new secret").decrypt(new_token) == "refresh-token-0"


def test_secret_from_connection_extra_then_environment(monkeypatch):
    token = TokenCipher("from the extra").encrypt("x")
    conn = SimpleNamespace(extra_dejson={"token_encryption_secret": "from the extra"})
    assert cipher_for_connection(conn).decrypt(token) == "x"

    monkeypatch.setenv(SECRET_ENV, "from the environment")
    env_token = TokenCipher("from the environment").encrypt("y")
    assert cipher_for_connection(SimpleNamespace(extra_dejson={})).decrypt(env_token) == "y"

    monkeypatch.delenv(SECRET_ENV)
    with pytest.raises(TokenSecretMissing):
        cipher_from_secret()
    with pytest.raises(TokenSecretMissing):
        TokenCipher(" , ")
    assert "from the extra" not in repr(cipher_for_connection(conn))


# --- the store ----------------------------------------------------------------------------------------------


def test_tokens_are_encrypted_at_rest(engine, store, cipher):
    row = _stored_columns(engine)
    at_rest = " ".join(str(v) for v in row.values())
    assert "refresh-token-0" not in at_rest and "access-token-0" not in at_rest
    assert cipher.decrypt(row["refresh_token_enc"]) == "refresh-token-0"

    tokens = store.current()
    assert (tokens.access_token, tokens.refresh_token, tokens.access_expires_at, tokens.tenant_id) == (
        "access-token-0",
        "refresh-token-0",
        EXPIRES,
        "tenant-1",
    )


def test_nothing_prints_a_token(store):
    assert "token-0" not in repr(store) and "token-0" not in repr(store.current())
    assert "acme" in repr(store)


def test_save_inside_refreshing_commits_new_tokens(engine, store):
    later = EXPIRES + timedelta(minutes=30)
    with store.refreshing() as tokens:
        assert tokens.refresh_token == "refresh-token-0"
        store.save(TokenSet("access-token-1", "refresh-token-1", later))
    assert store.current() == TokenSet("access-token-1", "refresh-token-1", later, tenant_id="tenant-1")
    assert "refresh-token-1" not in str(_stored_columns(engine))


def test_saved_tokens_survive_an_error_later_in_the_block(store):
    """The old refresh token is spent once new ones are issued: never roll the new ones back."""
    with pytest.raises(RuntimeError), store.refreshing():
        store.save(TokenSet("access-token-1", "refresh-token-1", EXPIRES))
        raise RuntimeError("the ledger call after the refresh failed")
    assert store.current().refresh_token == "refresh-token-1"


def test_two_refreshes_are_serialised(store):
    """Each thread reads the tokens the other saved: no refresh token is ever used twice."""
    spans: list[tuple[float, float]] = []
    seen: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def refresh():
        try:
            barrier.wait(5)
            with store.refreshing() as tokens:
                entered = time.monotonic()
                seen.append(tokens.refresh_token)
                time.sleep(0.3)  # the HTTP call to the ledger's token endpoint
                store.save(TokenSet("access", tokens.refresh_token + "+", EXPIRES))
                left = time.monotonic()
            spans.append((entered, left))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=refresh) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert sorted(seen) == ["refresh-token-0", "refresh-token-0+"]
    assert store.current().refresh_token == "refresh-token-0++"
    (a_in, a_out), (b_in, b_out) = sorted(spans)
    assert b_in >= a_out - 0.01  # the second block began after the first committed


def test_a_dead_grant_needs_a_person(engine, store, cipher, company):
    with store.refreshing():
        store.mark_needs_reconnect("invalid_grant")
    with pytest.raises(LedgerAuthError, match="needs_reconnect"):
        store.current()
    with pytest.raises(LedgerAuthError), store.refreshing():
        pass

    with session_scope(engine) as session:
        connect_ledger(session, company, platform="xero", tokens=TokenSet("a2", "r2", EXPIRES), cipher=cipher)
    assert store.current().refresh_token == "r2"


def test_mark_needs_reconnect_outside_refreshing(store):
    store.mark_needs_reconnect("revoked in Xero")
    with pytest.raises(LedgerAuthError, match="revoked in Xero"):
        store.current()


def test_no_connection_yet(engine, company, cipher):
    with pytest.raises(LedgerAuthError, match="not connected"):
        DbTokenStore(engine, company, cipher).current()


def test_reading_with_the_wrong_secret_fails_clearly(engine, store):
    with pytest.raises(TokenDecryptionError):
        DbTokenStore(engine, "acme", TokenCipher("not the secret")).current()


# --- per-grant values (Zoho's data centre) -----------------------------------------------------------------


ZOHO_EXTRA = {"api_domain": "https://www.zohoapis.eu", "accounts_server": "https://accounts.zoho.eu"}


def test_grant_extra_is_stored_with_the_grant_and_survives_refreshes(engine, company, cipher):
    with session_scope(engine) as session:
        connect_ledger(
            session,
            company,
            platform="zoho_books",
            tokens=TokenSet("a0", "r0", EXPIRES, tenant_id="20026112001", extra=ZOHO_EXTRA),
            cipher=cipher,
        )
    store = DbTokenStore(engine, company, cipher)
    assert store.current().extra == ZOHO_EXTRA
    stored = _stored_columns(engine)["grant_extra"]  # plain JSON (a str through the SQLite text query)
    assert (json.loads(stored) if isinstance(stored, str) else stored) == ZOHO_EXTRA

    with store.refreshing() as latest:  # a refresh answer without the values keeps the grant's
        store.save(TokenSet("a1", latest.refresh_token, EXPIRES + timedelta(hours=1), latest.tenant_id))
    assert store.current().extra == ZOHO_EXTRA and store.current().access_token == "a1"
    assert "zohoapis" not in repr(store.current())


def test_a_new_grant_replaces_the_old_grants_extra(engine, store, cipher, company):
    with session_scope(engine) as session:
        connect_ledger(
            session, company, platform="zoho_books", tokens=TokenSet("a", "r", EXPIRES, extra=ZOHO_EXTRA),
            cipher=cipher,
        )
    with session_scope(engine) as session:
        connect_ledger(session, company, platform="xero", tokens=TokenSet("a", "r", EXPIRES), cipher=cipher)
    assert store.current().extra == {}
