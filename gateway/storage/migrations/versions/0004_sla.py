"""sla: the scanner's index on tickets and the once-only ledger of fired escalation levels

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("sla_pinned", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("next_escalation_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.create_index("ix_tickets_next_escalation_at", ["next_escalation_at"], unique=False)
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "sla_escalations",
        sa.Column("id", big_id, nullable=False),
        sa.Column("ticket_id", big_id, nullable=False),
        sa.Column("level", sa.String(length=160), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name="fk_sla_escalations_ticket_id_tickets"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_sla_escalations"),
        sa.UniqueConstraint("ticket_id", "level", name="uq_sla_escalations_ticket_id_level"),
    )
    # Tickets open before this revision have no next_escalation_at: ask the scanner to
    # evaluate every open ticket with a policy once, so they get their due times and levels.
    op.execute(
        "UPDATE tickets SET next_escalation_at = updated_at WHERE sla_policy IS NOT NULL "
        "AND status NOT IN ('resolved', 'closed', 'rejected')"
    )


def downgrade() -> None:
    op.drop_table("sla_escalations")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_next_escalation_at")
        batch_op.drop_column("next_escalation_at")
        batch_op.drop_column("sla_pinned")
