"""federated learning: collaborations, memberships (site policy), rounds

Revision ID: 0008_federated
Revises: 0002_oee
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import axhub.store.models

revision: str = "0008_federated"
down_revision: str | None = "0010_service2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fed_collaborations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("lead_org_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("family", sa.String(length=40), nullable=False),
        sa.Column("schema", sa.JSON(), nullable=False),
        sa.Column("share_consents", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", axhub.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["lead_org_id"], ["organizations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("fed_collaborations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fed_collaborations_lead_org_id"), ["lead_org_id"], unique=False)

    op.create_table(
        "fed_members",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("collaboration_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("signal_map", sa.JSON(), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
        sa.Column("epsilon_spent", sa.Float(), nullable=False),
        sa.Column("invited_at", axhub.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("joined_at", axhub.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("left_at", axhub.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["collaboration_id"], ["fed_collaborations.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["org_id"], ["organizations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("collaboration_id", "org_id"),
    )
    with op.batch_alter_table("fed_members", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_fed_members_collaboration_id"), ["collaboration_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_fed_members_org_id"), ["org_id"], unique=False)

    op.create_table(
        "fed_rounds",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("collaboration_id", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.Column("created_at", axhub.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["collaboration_id"], ["fed_collaborations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("collaboration_id", "run_id", "round"),
    )
    with op.batch_alter_table("fed_rounds", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_fed_rounds_collaboration_id"), ["collaboration_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("fed_rounds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fed_rounds_collaboration_id"))
    op.drop_table("fed_rounds")
    with op.batch_alter_table("fed_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fed_members_org_id"))
        batch_op.drop_index(batch_op.f("ix_fed_members_collaboration_id"))
    op.drop_table("fed_members")
    with op.batch_alter_table("fed_collaborations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fed_collaborations_lead_org_id"))
    op.drop_table("fed_collaborations")
