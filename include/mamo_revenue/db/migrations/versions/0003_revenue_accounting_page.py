"""What the Revenue accounting page needs: a company's own Mamo key and webhook secret, OAuth states,
Mamo webhook events and the companies' activity log.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

- ``companies``: ``mamo_api_key_enc`` and ``webhook_secret_enc`` (Fernet tokens, like the ledger
  tokens) and ``mamo_business_name`` (what ``GET /me`` answered, shown instead of the key).
- ``oauth_states``: one row per consent started from the page; only the SHA-256 of ``state`` is
  kept, consumed once (``consumed_at``); a grant waiting for the user's choice of organisation is
  parked encrypted under a second single-use secret (``choice_hash``).
- ``mamo_webhook_events``: one row per distinct event, unique per ``(company_id, event_key)``.
- ``company_activity``: who did what on the page, for the company's audit trail.

Standalone, like 0001: plain SQLAlchemy types only.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
AWARE = sa.DateTime(timezone=True)


def _company_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["company_id"], ["companies.id"], name=op.f(f"fk_{table}_company_id_companies")
    )


def upgrade() -> None:
    op.add_column("companies", sa.Column("mamo_api_key_enc", sa.Text(), nullable=True))
    op.add_column("companies", sa.Column("mamo_business_name", sa.String(length=200), nullable=True))
    op.add_column("companies", sa.Column("webhook_secret_enc", sa.Text(), nullable=True))
    op.create_table(
        "oauth_states",
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("company_id", sa.String(length=40), nullable=False),
        sa.Column("platform", sa.String(length=40), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=True),
        sa.Column("code_verifier_enc", sa.Text(), nullable=True),
        sa.Column("started_by", sa.String(length=250), nullable=False),
        sa.Column("created_at", AWARE, nullable=False),
        sa.Column("expires_at", AWARE, nullable=False),
        sa.Column("consumed_at", AWARE, nullable=True),
        sa.Column("choice_hash", sa.String(length=64), nullable=True),
        sa.Column("grant_enc", sa.Text(), nullable=True),
        sa.Column("completed_at", AWARE, nullable=True),
        _company_fk("oauth_states"),
        sa.PrimaryKeyConstraint("state_hash", name=op.f("pk_oauth_states")),
    )
    op.create_index(op.f("ix_oauth_states_choice_hash"), "oauth_states", ["choice_hash"])
    op.create_table(
        "mamo_webhook_events",
        sa.Column("id", BIGINT_ID, autoincrement=True, nullable=False),
        sa.Column("company_id", sa.String(length=40), nullable=False),
        sa.Column("event_key", sa.String(length=250), nullable=False),
        sa.Column("event_type", sa.String(length=60), nullable=False),
        sa.Column("charge_id", sa.String(length=100), nullable=False),
        sa.Column("charge_status", sa.String(length=40), nullable=True),
        sa.Column("cumulative_refund_minor", sa.BigInteger(), nullable=True),
        sa.Column("received_at", AWARE, nullable=False),
        sa.Column("last_received_at", AWARE, nullable=False),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        _company_fk("mamo_webhook_events"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mamo_webhook_events")),
        sa.UniqueConstraint(
            "company_id", "event_key", name=op.f("uq_mamo_webhook_events_company_id_event_key")
        ),
    )
    op.create_index(
        op.f("ix_mamo_webhook_events_company_id_charge_id"), "mamo_webhook_events", ["company_id", "charge_id"]
    )
    op.create_table(
        "company_activity",
        sa.Column("id", BIGINT_ID, autoincrement=True, nullable=False),
        sa.Column("company_id", sa.String(length=40), nullable=False),
        sa.Column("at", AWARE, nullable=False),
        sa.Column("user_name", sa.String(length=250), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("period_label", sa.String(length=32), nullable=True),
        sa.Column("run_id", sa.String(length=250), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        _company_fk("company_activity"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_company_activity")),
    )
    op.create_index(op.f("ix_company_activity_company_id_at"), "company_activity", ["company_id", "at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_company_activity_company_id_at"), table_name="company_activity")
    op.drop_table("company_activity")
    op.drop_index(op.f("ix_mamo_webhook_events_company_id_charge_id"), table_name="mamo_webhook_events")
    op.drop_table("mamo_webhook_events")
    op.drop_index(op.f("ix_oauth_states_choice_hash"), table_name="oauth_states")
    op.drop_table("oauth_states")
    with op.batch_alter_table("companies") as batch:
        batch.drop_column("webhook_secret_enc")
        batch.drop_column("mamo_business_name")
        batch.drop_column("mamo_api_key_enc")
