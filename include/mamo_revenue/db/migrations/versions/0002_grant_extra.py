"""Per-grant values of a ledger connection: ``ledger_connections.grant_extra`` (JSON).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24

Zoho Books ties each grant to a data centre: the accounts server the consent came back from and the
``api_domain`` of its token answer. They are stored with the grant and used for every refresh and
API call (LEDGER_APIS.md §2.1). Xero grants have none (NULL). Standalone, like 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("ledger_connections", sa.Column("grant_extra", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ledger_connections") as batch:
        batch.drop_column("grant_extra")
