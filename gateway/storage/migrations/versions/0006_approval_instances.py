"""approval instances: a change's approval instance in an OA system, found by the OA's id

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "approval_instances",
        sa.Column("id", big_id, nullable=False),
        sa.Column("ticket_id", big_id, nullable=False),
        sa.Column("connector", sa.String(length=100), nullable=False),
        sa.Column("instance_id", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name="fk_approval_instances_ticket_id_tickets"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_approval_instances"),
        sa.UniqueConstraint(
            "connector", "instance_id", name="uq_approval_instances_connector_instance_id"
        ),
    )
    with op.batch_alter_table("approval_instances", schema=None) as batch_op:
        batch_op.create_index("ix_approval_instances_ticket_id", ["ticket_id"], unique=False)


def downgrade() -> None:
    op.drop_table("approval_instances")
