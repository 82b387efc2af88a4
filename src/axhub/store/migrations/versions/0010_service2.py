"""service gaps: sign-in names per company, share codes (no cross-company enumeration)

Revision ID: 0010_service2
Revises: 0002_oee
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_service2"
down_revision: str | None = "0009_process"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite names nothing; this lets batch mode find the old unnamed UNIQUE(email) to drop it.
_NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _drop_email_unique() -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("users", naming_convention=_NAMING, recreate="always") as batch_op:
            batch_op.drop_constraint("uq_users_email", type_="unique")
            batch_op.create_unique_constraint("uq_users_org_email", ["org_id", "email"])
            batch_op.create_index("ix_users_email", ["email"], unique=False)
        return
    inspector = sa.inspect(op.get_bind())
    for uc in inspector.get_unique_constraints("users"):
        if uc["column_names"] == ["email"] and uc["name"]:
            op.drop_constraint(uc["name"], "users", type_="unique")
    op.create_unique_constraint("uq_users_org_email", "users", ["org_id", "email"])
    op.create_index("ix_users_email", "users", ["email"], unique=False)


def upgrade() -> None:
    _drop_email_unique()
    op.create_table(
        "login_throttle",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_at", sa.Float(), nullable=False),
        sa.Column("until_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_login_throttle_until_at", "login_throttle", ["until_at"], unique=False)
    op.add_column("organizations", sa.Column("share_code", sa.String(length=40), nullable=True))
    op.create_index("ix_organizations_share_code", "organizations", ["share_code"], unique=True)
    orgs = sa.table("organizations", sa.column("id", sa.String), sa.column("share_code", sa.String))
    bind = op.get_bind()
    for (org_id,) in bind.execute(sa.select(orgs.c.id)).all():
        code = "sh_" + secrets.token_urlsafe(18)
        bind.execute(orgs.update().where(orgs.c.id == org_id).values(share_code=code))


def downgrade() -> None:
    op.drop_index("ix_login_throttle_until_at", table_name="login_throttle")
    op.drop_table("login_throttle")
    op.drop_index("ix_organizations_share_code", table_name="organizations")
    with op.batch_alter_table("organizations") as batch_op:
        batch_op.drop_column("share_code")
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_index("ix_users_email")
        batch_op.drop_constraint("uq_users_org_email", type_="unique")
        batch_op.create_unique_constraint("uq_users_email", ["email"])
