"""alert intake: unique alert identities, tickets.last_seen

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The ledger had a plain index; the batch lookup and the "one row per identity" rule
    # want it unique. Nothing wrote alerts before this revision, so no duplicates exist.
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_alerts_source_fingerprint")
        batch_op.create_index(
            "ix_alerts_source_fingerprint", ["source", "fingerprint"], unique=True
        )
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_seen", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_column("last_seen")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_alerts_source_fingerprint")
        batch_op.create_index(
            "ix_alerts_source_fingerprint", ["source", "fingerprint"], unique=False
        )
