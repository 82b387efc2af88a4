"""data-center metering: compute quotas per company and usage per job attempt

Revision ID: 0002_datacenter
Revises: 0002_service
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import axhub.store.models

revision: str = "0002_datacenter"
down_revision: str | None = "0002_owndata_web"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "compute_quotas",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("cpu_hours_per_month", sa.Float(), nullable=True),
        sa.Column("gpu_hours_per_month", sa.Float(), nullable=True),
        sa.Column("updated_at", axhub.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organizations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("org_id"),
    )
    op.create_table(
        "job_usage",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("resource_class", sa.String(length=20), nullable=False),
        sa.Column("worker", sa.String(length=100), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("queued_at", axhub.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", axhub.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", axhub.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("run_seconds", sa.Float(), nullable=False),
        sa.Column("wait_seconds", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["org_id"], ["organizations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("job_usage", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_usage_finished_at"), ["finished_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_job_usage_job_id"), ["job_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_job_usage_org_id"), ["org_id"], unique=False)
        batch_op.create_index("ix_job_usage_org_finished", ["org_id", "finished_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("job_usage", schema=None) as batch_op:
        batch_op.drop_index("ix_job_usage_org_finished")
        batch_op.drop_index(batch_op.f("ix_job_usage_org_id"))
        batch_op.drop_index(batch_op.f("ix_job_usage_job_id"))
        batch_op.drop_index(batch_op.f("ix_job_usage_finished_at"))
    op.drop_table("job_usage")
    op.drop_table("compute_quotas")
