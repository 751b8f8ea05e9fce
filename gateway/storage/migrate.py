"""Schema upgrades through alembic, run from code so an installed package needs no alembic.ini."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(engine: Engine | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


# Schema objects only the migrations know (SQLite FTS5 tables and their shadow tables, a
# pg_trgm index with an operator class): model comparisons leave them out.
MIGRATION_ONLY_TABLES = ("kb_fts",)
MIGRATION_ONLY_INDEXES = frozenset({"ix_kb_entries_search_trgm"})


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """alembic `include_object`: skip what MIGRATION_ONLY_* names."""
    if type_ == "table" and name and name.startswith(MIGRATION_ONLY_TABLES):
        return False
    return not (type_ == "index" and name in MIGRATION_ONLY_INDEXES)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision`; safe to run on every start (a no-op when current)."""
    cfg = alembic_config()
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # Several daemons starting together on one PostgreSQL: only one migrates at a
            # time; the others then find the schema current.
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7270011)")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def revision(engine: Engine, message: str) -> None:
    """Autogenerate a new migration (developer use)."""
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.revision(cfg, message=message, autogenerate=True)
