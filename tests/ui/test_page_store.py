"""The page's product-DB functions, on PostgreSQL and SQLite: OAuth states used once, parked grants,
webhook events stored once, re-sync reopening a period, latest outcomes, secrets encrypted."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from mamo_revenue.db import oauth_states
from mamo_revenue.db import repository as repo
from mamo_revenue.db.company_secrets import (
    erase_ledger_grant,
    mamo_api_key,
    set_mamo_api_key,
    set_webhook_secret,
    webhook_secret,
)
from mamo_revenue.db.crypto import TokenCipher
from mamo_revenue.db.models import OAuthState
from mamo_revenue.db.session import engine_for_url, session_scope, upgrade
from mamo_revenue.errors import PeriodBusy
from mamo_revenue.hooks.tokens import TokenSet
from mamo_revenue.periods import Period

CIPHER = TokenCipher("page store tests only")
T0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request, tmp_path):
    if request.param == "postgresql":
        return request.getfixturevalue("product_db")  # the session's PostgreSQL product DB (worldkit)
    engine = engine_for_url(f"sqlite:///{tmp_path / 'product.db'}")
    upgrade(engine)
    return engine


@pytest.fixture
def company(engine) -> str:
    company_id = "s" + uuid.uuid4().hex[:10]
    with session_scope(engine) as session:
        repo.upsert_company(session, company_id, name="Store Test LLC", first_period=date(2026, 11, 1))
    return company_id


def test_a_state_is_consumed_once_by_the_user_who_started_it(engine, company):
    with session_scope(engine) as session:
        oauth_states.create_state(session, company_id=company, platform="xero", state="the-state", started_by="ana",
                                  cipher=CIPHER, code_verifier="v" * 60, redirect_uri="http://x/cb", now=T0)
        stored = session.get(OAuthState, oauth_states.digest("the-state"))
        assert "the-state" not in repr(stored) and stored.code_verifier_enc and "v" * 60 not in stored.code_verifier_enc
    with session_scope(engine) as session:
        assert oauth_states.consume_state(session, "the-state", user="bob", cipher=CIPHER, now=T0) is None
        assert oauth_states.consume_state(session, "forged", user="ana", cipher=CIPHER, now=T0) is None
        started = oauth_states.consume_state(session, "the-state", user="ana", cipher=CIPHER, now=T0)
    assert (started.company_id, started.platform, started.code_verifier) == (company, "xero", "v" * 60)
    with session_scope(engine) as session:  # replayed
        assert oauth_states.consume_state(session, "the-state", user="ana", cipher=CIPHER, now=T0) is None


def test_an_expired_state_is_refused(engine, company):
    with session_scope(engine) as session:
        oauth_states.create_state(session, company_id=company, platform="xero", state="old", started_by="ana",
                                  cipher=CIPHER, now=T0)
    with session_scope(engine) as session:
        later = T0 + oauth_states.STATE_TTL + timedelta(seconds=1)
        assert oauth_states.consume_state(session, "old", user="ana", cipher=CIPHER, now=later) is None


def test_a_parked_grant_is_taken_once_and_erased(engine, company):
    grant = {"exchanged": {"access_token": "secret-access"}, "organisations": [{"id": "1", "name": "One"}]}
    with session_scope(engine) as session:
        oauth_states.create_state(session, company_id=company, platform="zoho_books", state="st", started_by="ana",
                                  cipher=CIPHER, now=T0)
        oauth_states.consume_state(session, "st", user="ana", cipher=CIPHER, now=T0)
        choice = oauth_states.park_grant(session, "st", grant, CIPHER, now=T0)
        row = session.get(OAuthState, oauth_states.digest("st"), populate_existing=True)
        assert "secret-access" not in row.grant_enc
    with session_scope(engine) as session:
        assert oauth_states.take_parked_grant(session, choice, user="bob", cipher=CIPHER, now=T0) is None
        assert oauth_states.peek_parked_grant(session, choice, user="ana", cipher=CIPHER, now=T0).grant == grant
        taken = oauth_states.take_parked_grant(session, choice, user="ana", cipher=CIPHER, now=T0)
    assert taken.grant == grant and taken.platform == "zoho_books"
    with session_scope(engine) as session:
        assert oauth_states.take_parked_grant(session, choice, user="ana", cipher=CIPHER, now=T0) is None
        assert session.get(OAuthState, oauth_states.digest("st"), populate_existing=True).grant_enc is None


def test_a_webhook_event_is_stored_once_and_counts_its_deliveries(engine, company):
    with session_scope(engine) as session:
        first = repo.record_webhook_event(session, company, event_key="charge.refunded:c1:500", event_type="charge.refunded",
                                          charge_id="c1", cumulative_refund_minor=500, now=T0)
        again = repo.record_webhook_event(session, company, event_key="charge.refunded:c1:500",
                                          event_type="payment.refunded", charge_id="c1", cumulative_refund_minor=500,
                                          now=T0 + timedelta(minutes=5))
        later = repo.record_webhook_event(session, company, event_key="charge.refunded:c1:900", event_type="charge.refunded",
                                          charge_id="c1", cumulative_refund_minor=900, now=T0 + timedelta(days=1))
    assert (first, again, later) == (True, False, True)
    with session_scope(engine) as session:
        rows = repo.list_webhook_events(session, company)
        assert [(r.cumulative_refund_minor, r.deliveries) for r in rows] == [(900, 1), (500, 2)]
        assert rows[1].received_at == T0 and rows[1].last_received_at == T0 + timedelta(minutes=5)
        assert repo.refund_announcements(session, company) == {("c1", 500): T0, ("c1", 900): T0 + timedelta(days=1)}


def test_a_re_sync_reopens_a_posted_period_unless_a_run_holds_it(engine, company):
    period = Period.parse("2026-11-20")
    with session_scope(engine) as session:
        repo.claim_period(session, company, period, f"MAMO-{company}-20261120", "run-1", now=T0)
        repo.mark_posted(session, company, period.key, run_id="run-1", ledger_journal_id="J1", now=T0)
    with session_scope(engine) as session:
        record = repo.reopen_period(session, company, period.key, now=T0 + timedelta(hours=1))
        assert (record.status, record.ledger_journal_id, record.claimed_by) == ("pending", "J1", None)
    with session_scope(engine) as session:  # the next run claims and posts it again under the same reference
        assert repo.claim_period(session, company, period, f"MAMO-{company}-20261120", "run-2",
                                 now=T0 + timedelta(hours=2)).claimed
        with pytest.raises(PeriodBusy):
            repo.reopen_period(session, company, period.key, now=T0 + timedelta(hours=2))
        repo.mark_posted(session, company, period.key, run_id="run-2", ledger_journal_id="J2", now=T0 + timedelta(hours=2))
        assert repo.get_sync_record(session, company, period.key).ledger_journal_id == "J2"


def test_the_latest_outcome_is_the_last_finished_period(engine, company):
    with session_scope(engine) as session:
        for day, run, outcome in (("2026-11-19", "r1", "posted"), ("2026-11-20", "r2", "failed"),
                                  ("2026-11-21", "r3", None)):
            period = Period.parse(day)
            at = T0 + timedelta(hours=int(run[1:]))
            repo.claim_period(session, company, period, f"MAMO-{company}-{period.key}", run, now=at)
            if outcome == "posted":
                repo.mark_posted(session, company, period.key, run_id=run, ledger_journal_id="J", now=at)
            elif outcome == "failed":
                repo.mark_failed(session, company, period, error_class="LedgerAuthError", message="post: refused",
                                 run_id=run, now=at)
    with session_scope(engine) as session:
        latest = repo.latest_sync_records(session)[company]
    assert (latest.period_label, latest.status) == ("2026-11-20", "failed")  # the running 11-21 is no outcome yet


def test_company_secrets_are_encrypted_and_a_disconnect_erases_the_grant(engine, company):
    with session_scope(engine) as session:
        set_mamo_api_key(session, company, "sk-live-123", CIPHER, business_name="Store Test")
        set_webhook_secret(session, company, "w" * 20, CIPHER)
        with pytest.raises(ValueError):
            set_webhook_secret(session, company, "short", CIPHER)
        repo.connect_ledger(session, company, platform="xero", cipher=CIPHER, tenant_name="Org",
                            tokens=TokenSet("access", "refresh", T0, tenant_id="t1"))
    with session_scope(engine) as session:
        row = repo.get_company(session, company)
        assert "sk-live-123" not in row.mamo_api_key_enc and mamo_api_key(row, CIPHER) == "sk-live-123"
        assert webhook_secret(row, CIPHER) == "w" * 20
        erase_ledger_grant(session, company, reason="disconnected")
    with session_scope(engine) as session:
        grant = repo.get_ledger_connection(session, company)
        assert (grant.status, grant.refresh_token_enc, grant.access_token_enc, grant.tenant_name) == (
            "disconnected", None, None, "Org")
