"""Initial schema: companies, ledger connections, mappings, charge snapshots, events, sync records.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Standalone on purpose: it names plain SQLAlchemy types (not the package's TypeDecorators), so it
replays the same way whatever later versions of ``models.py`` look like. Aware timestamps are
``DateTime(timezone=True)``; the VAT rate is NUMERIC on PostgreSQL and text on SQLite (exact).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
AWARE = sa.DateTime(timezone=True)
RATE = sa.Numeric(precision=7, scale=4).with_variant(sa.String(length=24), "sqlite")


def _company_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["company_id"], ["companies.id"], name=op.f(f"fk_{table}_company_id_companies")
    )


def upgrade() -> None:
    op.create_table(
        "companies",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("frequency", sa.String(length=16), nullable=False),
        sa.Column("base_currency", sa.String(length=3), nullable=False),
        sa.Column("sales_vat_rate", RATE, nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("first_period", sa.Date(), nullable=True),
        sa.Column("mamo_conn_id", sa.String(length=250), nullable=False),
        sa.Column("ledger_platform", sa.String(length=40), nullable=False),
        sa.Column("ledger_conn_id", sa.String(length=250), nullable=False),
        sa.Column("last_scan_at", AWARE, nullable=True),
        sa.Column("created_at", AWARE, nullable=False),
        sa.Column("updated_at", AWARE, nullable=False),
        sa.CheckConstraint("frequency IN ('daily', 'weekly')", name=op.f("ck_companies_frequency")),
        sa.CheckConstraint(
            "status IN ('active', 'paused', 'disconnected')", name=op.f("ck_companies_status")
        ),
        sa.CheckConstraint(
            "sales_vat_rate IS NULL OR (CAST(sales_vat_rate AS NUMERIC) >= 0 AND CAST(sales_vat_rate AS NUMERIC) < 1)",
            name=op.f("ck_companies_sales_vat_rate"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_companies")),
    )
    op.create_table(
        "ledger_connections",
        sa.Column("company_id", sa.String(length=40), nullable=False),
        sa.Column("platform", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=100), nullable=True),
        sa.Column("tenant_name", sa.String(length=200), nullable=True),
        sa.Column("access_token_enc", sa.Text(), nullable=True),
        sa.Column("refresh_token_enc", sa.Text(), nullable=True),
        sa.Column("access_expires_at", AWARE, nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("connected_at", AWARE, nullable=True),
        sa.Column("refreshed_at", AWARE, nullable=True),
        sa.CheckConstraint(
            "status IN ('connected', 'needs_reconnect', 'disconnected')",
            name=op.f("ck_ledger_connections_status"),
        ),
        _company_fk("ledger_connections"),
        sa.PrimaryKeyConstraint("company_id", name=op.f("pk_ledger_connections")),
    )
    op.create_table(
        "gl_mappings",
        sa.Column("company_id", sa.String(length=40), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=100), nullable=False),
        sa.Column("account_code", sa.String(length=50), nullable=True),
        sa.Column("account_name", sa.String(length=200), nullable=True),
        sa.Column("updated_at", AWARE, nullable=False),
        sa.CheckConstraint(
            "category IN ('clearing', 'sales', 'refunds', 'fees', 'vat_payable', 'vat_refunds', 'vat_recoverable')",
            name=op.f("ck_gl_mappings_category"),
        ),
        _company_fk("gl_mappings"),
        sa.PrimaryKeyConstraint("company_id", "category", name=op.f("pk_gl_mappings")),
    )
    op.create_table(
        "charge_snapshots",
        sa.Column("company_id", sa.String(length=40), nullable=False),
        sa.Column("charge_id", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("refund_minor", sa.BigInteger(), nullable=False),
        sa.Column("created_local", sa.DateTime(), nullable=False),
        sa.Column("settlement_currency", sa.String(length=3), nullable=True),
        sa.Column("settlement_minor", sa.BigInteger(), nullable=True),
        sa.Column("settlement_date", sa.Date(), nullable=True),
        sa.Column("fee_currency", sa.String(length=3), nullable=True),
        sa.Column("fee_minor", sa.BigInteger(), nullable=True),
        sa.Column("fee_vat_minor", sa.BigInteger(), nullable=True),
        sa.Column("problems", sa.Text(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=True),
        sa.Column("first_seen_at", AWARE, nullable=False),
        sa.Column("last_seen_at", AWARE, nullable=False),
        _company_fk("charge_snapshots"),
        sa.PrimaryKeyConstraint("company_id", "charge_id", name=op.f("pk_charge_snapshots")),
    )
    op.create_index(
        op.f("ix_charge_snapshots_company_id_created_local"),
        "charge_snapshots",
        ["company_id", "created_local"],
    )
    op.create_table(
        "revenue_events",
        sa.Column("id", BIGINT_ID, autoincrement=True, nullable=False),
        sa.Column("company_id", sa.String(length=40), nullable=False),
        sa.Column("event_key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("charge_id", sa.String(length=100), nullable=False),
        sa.Column("period_key", sa.String(length=16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("cumulative_refund_minor", sa.BigInteger(), nullable=True),
        sa.Column("recorded_at", AWARE, nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=True),
        sa.CheckConstraint(
            "kind IN ('sale', 'fee', 'fee_vat', 'refund')", name=op.f("ck_revenue_events_kind")
        ),
        _company_fk("revenue_events"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_revenue_events")),
        sa.UniqueConstraint("company_id", "event_key", name=op.f("uq_revenue_events_company_id_event_key")),
    )
    op.create_index(
        op.f("ix_revenue_events_company_id_period_key"), "revenue_events", ["company_id", "period_key"]
    )
    op.create_table(
        "sync_records",
        sa.Column("id", BIGINT_ID, autoincrement=True, nullable=False),
        sa.Column("company_id", sa.String(length=40), nullable=False),
        sa.Column("period_key", sa.String(length=16), nullable=False),
        sa.Column("period_label", sa.String(length=16), nullable=False),
        sa.Column("period_first_day", sa.Date(), nullable=False),
        sa.Column("period_last_day", sa.Date(), nullable=False),
        sa.Column("reference", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("claimed_by", sa.String(length=250), nullable=True),
        sa.Column("claimed_at", AWARE, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("ledger_journal_id", sa.String(length=100), nullable=True),
        sa.Column("ledger_url", sa.Text(), nullable=True),
        sa.Column("totals", sa.JSON(), nullable=True),
        sa.Column("line_count", sa.Integer(), nullable=True),
        sa.Column("error_class", sa.String(length=200), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("guidance", sa.Text(), nullable=True),
        sa.Column("run_id", sa.String(length=250), nullable=True),
        sa.Column("created_at", AWARE, nullable=False),
        sa.Column("updated_at", AWARE, nullable=False),
        sa.Column("posted_at", AWARE, nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'posted', 'nothing_to_post', 'failed')",
            name=op.f("ck_sync_records_status"),
        ),
        _company_fk("sync_records"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_records")),
        sa.UniqueConstraint("company_id", "period_key", name=op.f("uq_sync_records_company_id_period_key")),
    )


def downgrade() -> None:
    op.drop_table("sync_records")
    op.drop_index(op.f("ix_revenue_events_company_id_period_key"), table_name="revenue_events")
    op.drop_table("revenue_events")
    op.drop_index(op.f("ix_charge_snapshots_company_id_created_local"), table_name="charge_snapshots")
    op.drop_table("charge_snapshots")
    op.drop_table("gl_mappings")
    op.drop_table("ledger_connections")
    op.drop_table("companies")
