"""finding marks recorded with decisions, and actions on sellers

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

``finding_marks``: a reviewer's "not a violation" mark on one finding of the item they decided, with
the finding's rule and span (training data and rule precision). ``seller_actions``: hold, release and
warn on a seller as a whole (issue 17).
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "finding_marks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("decision_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("finding_index", sa.Integer(), nullable=False),
        sa.Column("rule", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("family", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("field_name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("start", sa.Integer(), nullable=False),
        sa.Column("end", sa.Integer(), nullable=False),
        sa.Column("text", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("mark", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("marked_by", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["decision_id"], ["decisions.id"]),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("decision_id", "finding_index", name="uq_finding_marks_decision_index"),
    )
    with op.batch_alter_table("finding_marks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_finding_marks_decision_id"), ["decision_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_finding_marks_item_id"), ["item_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_finding_marks_rule"), ["rule"], unique=False)
    op.create_table(
        "seller_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seller_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("actor", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("seller_actions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_seller_actions_seller_id"), ["seller_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_seller_actions_created_at"), ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("seller_actions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_seller_actions_created_at"))
        batch_op.drop_index(batch_op.f("ix_seller_actions_seller_id"))
    op.drop_table("seller_actions")
    with op.batch_alter_table("finding_marks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_finding_marks_rule"))
        batch_op.drop_index(batch_op.f("ix_finding_marks_item_id"))
        batch_op.drop_index(batch_op.f("ix_finding_marks_decision_id"))
    op.drop_table("finding_marks")
