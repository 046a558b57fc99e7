"""outbox delivery (leases, acknowledgements, undo-window hold) and API token metadata

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

Outbox rows written before this revision were never delivered (there was no consumer). They become
deliverable at once, except the notification of a decision that was undone or reverted and its
withdrawal: both are cancelled, because the seller never heard of that decision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UNDELIVERED = sa.text("sent_at IS NULL AND cancelled_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prefix", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("listing_id", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("available_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("leased_by", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("leased_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True))

    op.execute(
        "UPDATE outbox SET listing_id = (SELECT items.listing_id FROM items WHERE items.id = outbox.item_id), "
        "available_at = created_at"
    )
    # A withdrawal whose notification was not delivered retracts nothing; then the notification.
    op.execute(
        "UPDATE outbox SET cancelled_at = created_at WHERE kind = 'decision_withdrawn' AND sent_at IS NULL "
        "AND NOT EXISTS (SELECT 1 FROM outbox n WHERE n.decision_id = outbox.decision_id "
        "AND n.kind = 'seller_notification' AND n.sent_at IS NOT NULL)"
    )
    op.execute(
        "UPDATE outbox SET cancelled_at = created_at WHERE kind = 'seller_notification' AND sent_at IS NULL "
        "AND decision_id IN (SELECT decisions.id FROM decisions WHERE decisions.undone_at IS NOT NULL)"
    )

    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.alter_column("listing_id", existing_type=sa.String(length=200), nullable=False)
        batch_op.alter_column("available_at", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch_op.alter_column("attempts", existing_type=sa.Integer(), server_default=None)
        batch_op.create_index(batch_op.f("ix_outbox_decision_id"), ["decision_id"], unique=False)
        batch_op.create_index(
            "ix_outbox_listing_undelivered",
            ["listing_id", "id"],
            unique=False,
            sqlite_where=UNDELIVERED,
            postgresql_where=UNDELIVERED,
        )
        batch_op.create_index(
            "ix_outbox_undelivered",
            ["id"],
            unique=False,
            sqlite_where=UNDELIVERED,
            postgresql_where=UNDELIVERED,
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_undelivered", sqlite_where=UNDELIVERED, postgresql_where=UNDELIVERED)
        batch_op.drop_index(
            "ix_outbox_listing_undelivered", sqlite_where=UNDELIVERED, postgresql_where=UNDELIVERED
        )
        batch_op.drop_index(batch_op.f("ix_outbox_decision_id"))
        batch_op.drop_column("cancelled_at")
        batch_op.drop_column("lease_expires_at")
        batch_op.drop_column("leased_at")
        batch_op.drop_column("leased_by")
        batch_op.drop_column("attempts")
        batch_op.drop_column("available_at")
        batch_op.drop_column("listing_id")

    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("last_used_at")
        batch_op.drop_column("prefix")
