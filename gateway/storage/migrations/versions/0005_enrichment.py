"""enrichment: tickets whose CMDB lookup is still to be done (retried by a scheduler job)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "pending_enrichments",
        sa.Column("id", big_id, nullable=False),
        sa.Column("ticket_id", big_id, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name="fk_pending_enrichments_ticket_id_tickets"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_pending_enrichments"),
        sa.UniqueConstraint("ticket_id", name="uq_pending_enrichments_ticket_id"),
    )
    with op.batch_alter_table("pending_enrichments", schema=None) as batch_op:
        batch_op.create_index("ix_pending_enrichments_next_at", ["next_at"], unique=False)


def downgrade() -> None:
    op.drop_table("pending_enrichments")
