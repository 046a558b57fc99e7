"""an index in claim-next's order over the open items

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

Claim-next picks the highest-priority, oldest open item it may take. With only
``ix_items_claimable (status, priority, created_at)`` the database collected every claimable row and
sorted it on each claim; this partial index lists the open items in exactly that order, so the pick
reads a few index entries and stops.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

OPEN = sa.text("status IN ('pending', 'claimed', 'escalated')")


def upgrade() -> None:
    op.create_index(
        "ix_items_claim_order",
        "items",
        [sa.text("priority DESC"), "created_at", "id"],
        unique=False,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )


def downgrade() -> None:
    op.drop_index("ix_items_claim_order", table_name="items")
