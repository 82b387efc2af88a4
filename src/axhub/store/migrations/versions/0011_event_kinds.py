"""events: an index for counts by kind over time (the fleet page's 24 h inspection counts)

Revision ID: 0011_event_kinds
Revises: 0007_edge
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011_event_kinds"
down_revision: str | None = "0007_edge"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Without it the fleet page scans every event of the organisation for each view: edge devices
    # report one inspection event per image, so the table grows by the thousands a day.
    op.create_index("ix_events_org_kind_start", "events", ["org_id", "kind", "start"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_events_org_kind_start", table_name="events")
