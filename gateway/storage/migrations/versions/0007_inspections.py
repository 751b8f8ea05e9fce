"""inspections: API-defined schedules, the once-per-fire-time ledger, ticket checklists

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "checklist_items",
        sa.Column("id", big_id, nullable=False),
        sa.Column("ticket_id", big_id, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("text", sa.String(length=500), nullable=False),
        sa.Column("mandatory", sa.Boolean(), nullable=False),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.Column("done_by", sa.String(length=320), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name="fk_checklist_items_ticket_id_tickets"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_checklist_items"),
        sa.UniqueConstraint("ticket_id", "position", name="uq_checklist_items_ticket_id_position"),
    )
    op.create_table(
        "inspection_schedules",
        sa.Column("id", big_id, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=320), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_inspection_schedules"),
        sa.UniqueConstraint("name", name="uq_inspection_schedules_name"),
    )
    op.create_table(
        "inspection_runs",
        sa.Column("id", big_id, nullable=False),
        sa.Column("schedule", sa.String(length=100), nullable=False),
        sa.Column("fire_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("ticket_id", big_id, nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name="fk_inspection_runs_ticket_id_tickets"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_inspection_runs"),
        sa.UniqueConstraint("schedule", "fire_at", name="uq_inspection_runs_schedule_fire_at"),
    )


def downgrade() -> None:
    op.drop_table("inspection_runs")
    op.drop_table("inspection_schedules")
    op.drop_table("checklist_items")
