"""display names in Korean and English for sites, assets and signals

Revision ID: 0002_owndata_web
Revises: 0002_owndata_api
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_owndata_web"
down_revision: str | None = "0002_owndata_api"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("sites", "assets", "signals")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("name_ko", sa.String(length=200), nullable=False, server_default=""))
            batch_op.add_column(sa.Column("name_en", sa.String(length=200), nullable=False, server_default=""))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("name_en")
            batch_op.drop_column("name_ko")
