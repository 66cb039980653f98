"""The Mamo webhook registered for each company from the Revenue accounting page.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27

- ``companies.mamo_webhook_id``: the id Mamo gave the webhook (``MPB-WH-…``) that points at the
  company's receiver, so the page shows whether one is registered and replaces it on a new
  registration. Not a secret (the ``auth_header`` stays in ``webhook_secret_enc``).

Standalone, like 0001: plain SQLAlchemy types only.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("companies", sa.Column("mamo_webhook_id", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("companies") as batch:
        batch.drop_column("mamo_webhook_id")
