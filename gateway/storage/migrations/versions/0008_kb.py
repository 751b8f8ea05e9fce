"""kb: knowledge-base entries, with an FTS5 trigram index (SQLite) or pg_trgm (PostgreSQL)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 08:00:00
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("gateway.migrations")

# The FTS table mirrors kb_entries(title, search_text) by rowid; the triggers keep it in step
# in the writer's own transaction, whichever code writes the row.
SQLITE_FTS = [
    "CREATE VIRTUAL TABLE kb_fts USING fts5(title, body, tokenize='trigram')",
    """CREATE TRIGGER kb_entries_ai AFTER INSERT ON kb_entries BEGIN
         INSERT INTO kb_fts(rowid, title, body) VALUES (new.id, new.title, new.search_text);
       END""",
    """CREATE TRIGGER kb_entries_au AFTER UPDATE ON kb_entries BEGIN
         DELETE FROM kb_fts WHERE rowid = old.id;
         INSERT INTO kb_fts(rowid, title, body) VALUES (new.id, new.title, new.search_text);
       END""",
    """CREATE TRIGGER kb_entries_ad AFTER DELETE ON kb_entries BEGIN
         DELETE FROM kb_fts WHERE rowid = old.id;
       END""",
]


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "kb_entries",
        sa.Column("id", big_id, nullable=False),
        sa.Column("ticket_id", big_id, nullable=True),
        sa.Column("title", sa.String(length=998), nullable=False),
        sa.Column("symptom", sa.Text(), nullable=False),
        sa.Column("steps", sa.Text(), nullable=False),
        sa.Column("solution", sa.Text(), nullable=False),
        sa.Column("prevention", sa.Text(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=True),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=320), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=320), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name="fk_kb_entries_ticket_id_tickets"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_kb_entries"),
        sa.UniqueConstraint("ticket_id", name="uq_kb_entries_ticket_id"),
    )
    with op.batch_alter_table("kb_entries", schema=None) as batch_op:
        batch_op.create_index("ix_kb_entries_updated_at", ["updated_at"], unique=False)
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in SQLITE_FTS:
            op.execute(statement)
    elif bind.dialect.name == "postgresql":
        _pg_trigram_index(bind)


def _pg_trigram_index(bind: sa.Connection) -> None:
    # An extension exists once per database, whatever the schema on the search_path; it is
    # created in `public` and its operator class named there. Creating it needs a privilege
    # the gateway's role may lack: then search works without the index (ILIKE scans).
    try:
        with bind.begin_nested():
            bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
    except sa.exc.DBAPIError as exc:
        log.warning("pg_trgm not created (%s); KB search will not use an index", exc.orig)
    available = bind.exec_driver_sql(
        "SELECT EXISTS (SELECT 1 FROM pg_opclass c JOIN pg_namespace n"
        " ON n.oid = c.opcnamespace WHERE c.opcname = 'gin_trgm_ops' AND n.nspname = 'public')"
    ).scalar()
    if available:
        op.execute(
            "CREATE INDEX ix_kb_entries_search_trgm ON kb_entries"
            " USING gin (search_text public.gin_trgm_ops)"
        )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS kb_fts")
    op.drop_table("kb_entries")
