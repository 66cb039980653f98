"""Companies, mappings and ledger connections."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa

from mamo_revenue.db.companies import (
    MappedAccount,
    UnknownCompany,
    connect_ledger,
    get_company,
    get_ledger_connection,
    get_mappings,
    list_companies,
    set_company_status,
    set_mapping,
    set_mappings,
    touch_last_scan,
    update_ledger_connection,
    upsert_company,
)
from mamo_revenue.db.crypto import TokenCipher
from mamo_revenue.db.session import session_scope
from mamo_revenue.hooks.tokens import TokenSet


def test_new_company_gets_the_documented_defaults(engine):
    with session_scope(engine) as session:
        upsert_company(session, "acme", name="Acme Trading LLC", first_period=date(2026, 11, 1))
    with session_scope(engine) as session:
        company = get_company(session, "acme")

    assert company is not None
    assert (company.timezone, company.frequency, company.base_currency) == ("Asia/Dubai", "daily", "AED")
    assert company.sales_vat_rate == Decimal("0.05") and isinstance(company.sales_vat_rate, Decimal)
    assert (company.status, company.mamo_conn_id, company.ledger_platform, company.ledger_conn_id) == (
        "active",
        "mamo_default",
        "xero",
        "xero_default",
    )
    assert company.first_period == date(2026, 11, 1)
    assert company.created_at.tzinfo is not None and company.updated_at.tzinfo is not None


def test_upsert_changes_only_the_settings_given(engine, company):
    with session_scope(engine) as session:
        upsert_company(session, company, frequency="weekly", sales_vat_rate=None)
    with session_scope(engine) as session:
        upsert_company(session, company, ledger_platform="zoho_books", ledger_conn_id="zoho_acme")
    with session_scope(engine) as session:
        stored = get_company(session, company)

    assert stored.name == "Acme Trading LLC"
    assert stored.frequency == "weekly"
    assert stored.sales_vat_rate is None  # charges no sales VAT: stays None, not back to 5%
    assert (stored.ledger_platform, stored.ledger_conn_id) == ("zoho_books", "zoho_acme")


def test_vat_rate_is_exact(engine, company):
    with session_scope(engine) as session:
        upsert_company(session, company, sales_vat_rate="0.0725")
    with session_scope(engine) as session:
        rate = get_company(session, company).sales_vat_rate
    assert rate == Decimal("0.0725") and isinstance(rate, Decimal)


@pytest.mark.parametrize(
    ("company_id", "settings", "error"),
    [
        ("Acme", {"name": "A"}, ValueError),
        ("-acme", {"name": "A"}, ValueError),
        ("a" * 41, {"name": "A"}, ValueError),
        ("acme", {}, ValueError),
        ("acme", {"name": "A", "timezone": "Mars/Olympus"}, ValueError),
        ("acme", {"name": "A", "frequency": "monthly"}, ValueError),
        ("acme", {"name": "A", "sales_vat_rate": 0.05}, TypeError),
        ("acme", {"name": "A", "sales_vat_rate": "1.5"}, ValueError),
        ("acme", {"name": "A", "base_currency": "aed"}, ValueError),
        ("acme", {"name": "A", "status": "deleted"}, ValueError),
        ("acme", {"name": "A", "colour": "red"}, TypeError),
    ],
    ids=[
        "upper-case-id",
        "leading-dash",
        "id-too-long",
        "no-name",
        "unknown-zone",
        "monthly",
        "float-rate",
        "rate-above-one",
        "lower-case-currency",
        "unknown-status",
        "unknown-setting",
    ],
)
def test_invalid_settings_are_refused(engine, company_id, settings, error):
    with pytest.raises(error), session_scope(engine) as session:
        upsert_company(session, company_id, **settings)
    with session_scope(engine) as session:
        assert list_companies(session) == []


def test_list_is_sorted_by_id_and_filters_by_status(engine):
    with session_scope(engine) as session:
        for company_id in ["zeta", "acme", "m-co", "beta_1"]:
            upsert_company(session, company_id, name=company_id.title())
        set_company_status(session, "m-co", "paused")
    with session_scope(engine) as session:
        assert [c.id for c in list_companies(session)] == ["acme", "beta_1", "m-co", "zeta"]
        assert [c.id for c in list_companies(session, status="paused")] == ["m-co"]
        with pytest.raises(UnknownCompany):
            set_company_status(session, "nobody", "paused")


def test_touch_last_scan(engine, company):
    at = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
    with session_scope(engine) as session:
        touch_last_scan(session, company, at)
    with session_scope(engine) as session:
        assert get_company(session, company).last_scan_at == at


def test_mappings_set_get_replace_and_remove(engine, company):
    sales = MappedAccount("acc-200", "200", "Sales")
    with session_scope(engine) as session:
        set_mappings(
            session, company, {"sales": sales, "clearing": MappedAccount("acc-610", "610", "Mamo clearing")}
        )
        set_mapping(session, company, "sales", MappedAccount("acc-201", "201", "Sales – online"))
    with session_scope(engine) as session:
        mapped = get_mappings(session, company)
    assert mapped == {
        "sales": MappedAccount("acc-201", "201", "Sales – online"),
        "clearing": MappedAccount("acc-610", "610", "Mamo clearing"),
    }

    with session_scope(engine) as session:
        assert set_mappings(session, company, {"fees": MappedAccount("acc-404")}, replace=True) == {
            "fees": MappedAccount("acc-404", None, None)
        }
        set_mapping(session, company, "fees", None)
    with session_scope(engine) as session:
        assert get_mappings(session, company) == {}


def test_unknown_mapping_category_is_refused(engine, company):
    with pytest.raises(ValueError, match="category"), session_scope(engine) as session:
        set_mapping(session, company, "revenue", MappedAccount("acc-1"))


def test_ledger_connection_lifecycle(engine, company):
    cipher = TokenCipher("a secret long enough to be a passphrase")
    expires = datetime(2026, 11, 21, 3, 0, tzinfo=UTC)
    with session_scope(engine) as session:
        assert get_ledger_connection(session, company) is None
        connect_ledger(
            session,
            company,
            platform="xero",
            tenant_name="Acme (Demo)",
            tokens=TokenSet("access-1", "refresh-1", expires, tenant_id="tenant-9"),
            cipher=cipher,
        )
    with session_scope(engine) as session:
        update_ledger_connection(session, company, status="needs_reconnect", status_reason="invalid_grant")
    with session_scope(engine) as session:
        row = get_ledger_connection(session, company)
    assert (row.platform, row.tenant_id, row.tenant_name) == ("xero", "tenant-9", "Acme (Demo)")
    assert (row.status, row.status_reason) == ("needs_reconnect", "invalid_grant")
    assert row.access_expires_at == expires
    assert cipher.decrypt(row.refresh_token_enc) == "refresh-1"
    assert "refresh-1" not in repr(row) and "enc" not in repr(row)

    with pytest.raises(TypeError), session_scope(engine) as session:
        update_ledger_connection(session, company, refresh_token_enc="plain text")


def test_a_ledger_connection_needs_a_known_company(engine):
    with pytest.raises(UnknownCompany), session_scope(engine) as session:
        connect_ledger(
            session, "ghost", platform="xero", tokens=TokenSet(None, "r", None), cipher=TokenCipher("s")
        )


def test_database_enforces_the_company_foreign_key(engine):
    with pytest.raises(sa.exc.IntegrityError), session_scope(engine) as session:
        set_mapping(session, "ghost", "sales", MappedAccount("acc-1"))
