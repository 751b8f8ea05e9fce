"""Knowledge-base rows: write, edit, search and suggest, inside the caller's transaction.

Search ranks with bm25 over the FTS5 trigram table on SQLite and with pg_trgm's
word_similarity on PostgreSQL; see gateway/kb/text.py for how terms are cut.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Float, Integer, func, select, text
from sqlalchemy.orm import Session

from gateway.kb import text as kbtext
from gateway.storage.models import KbEntry, Ticket

log = logging.getLogger(__name__)

EDITABLE = ("title", "symptom", "steps", "solution", "prevention", "tags", "category")
CANDIDATES = 10  # entries per ticket ranked by the index before the overlap filter
# bm25 weights of kb_fts(title, body): a word in the title says more than one in the steps.
_BM25 = "bm25(kb_fts, 3.0, 1.0)"


@dataclass(frozen=True)
class Suggestion:
    id: int
    title: str
    solution: str
    ticket: str | None
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "solution": self.solution,
            "ticket": self.ticket,
            "score": round(self.score, 3),
        }


def refresh_search_text(entry: KbEntry) -> None:
    entry.search_text = kbtext.document(
        entry.title,
        entry.symptom,
        entry.steps,
        entry.solution,
        entry.prevention,
        entry.category,
        tags=entry.tags or (),
    )


def new_entry(fields: dict[str, Any], actor: str, now: datetime) -> KbEntry:
    entry = KbEntry(
        **{k: fields.get(k) for k in ("ticket_id", "category")},
        title=(fields.get("title") or "")[:998],
        symptom=fields.get("symptom") or "",
        steps=fields.get("steps") or "",
        solution=fields.get("solution") or "",
        prevention=fields.get("prevention") or "",
        tags=list(fields.get("tags") or ()),
        created_by=actor,
        created_at=now,
        updated_by=actor,
        updated_at=now,
    )
    refresh_search_text(entry)
    return entry


def update_entry(entry: KbEntry, changes: dict[str, Any], actor: str, now: datetime) -> dict:
    """Apply `changes` (EDITABLE keys only); returns {field: (before, after)} of real changes."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        names = ", ".join(sorted(unknown))
        raise ValueError(f"cannot change {names}; editable: {', '.join(EDITABLE)}")
    changed = {}
    for name, value in changes.items():
        value = list(value) if name == "tags" else value
        if getattr(entry, name) != value:
            changed[name] = (getattr(entry, name), value)
            setattr(entry, name, value)
    if changed:
        entry.updated_by, entry.updated_at = actor, now
        refresh_search_text(entry)
    return changed


def entry_to_dict(entry: KbEntry, ticket_key: str | None = None) -> dict[str, Any]:
    return {
        "id": entry.id,
        "ticket": ticket_key,
        "title": entry.title,
        "symptom": entry.symptom,
        "steps": entry.steps,
        "solution": entry.solution,
        "prevention": entry.prevention,
        "tags": list(entry.tags or []),
        "category": entry.category,
        "created_by": entry.created_by,
        "created_at": entry.created_at.isoformat(),
        "updated_by": entry.updated_by,
        "updated_at": entry.updated_at.isoformat(),
    }


def ticket_keys(session: Session, entries: Sequence[KbEntry]) -> dict[int, str]:
    """{ticket id: key} for the entries' tickets, in one query."""
    ids = {e.ticket_id for e in entries if e.ticket_id is not None}
    if not ids:
        return {}
    return dict(session.execute(select(Ticket.id, Ticket.key).where(Ticket.id.in_(ids))).all())


def search(session: Session, query: str, limit: int = 20) -> list[KbEntry]:
    """Entries containing every term of `query`, best first; newest first for no terms."""
    wanted = kbtext.terms(query)
    long = [t for t in wanted if not kbtext.is_short(t)]
    short = [t for t in wanted if kbtext.is_short(t)]
    # Short terms filter by substring on the normalised text: on the rows the indexed terms
    # found, or on the whole table when there are none (a KB is thousands of rows, not
    # millions; see gateway/kb/text.py).
    short_filters = [_contains(t) for t in short]
    dialect = session.get_bind().dialect.name
    stmt = select(KbEntry).where(*short_filters).limit(limit)
    if not wanted:
        newest = select(KbEntry).order_by(KbEntry.updated_at.desc()).limit(limit)
        return list(session.scalars(newest))
    if long and dialect == "sqlite":
        match = " AND ".join(kbtext.fts_phrase(t) for t in long)
        ranked = (
            text(f"SELECT rowid AS id, {_BM25} AS rank FROM kb_fts WHERE kb_fts MATCH :match")
            .bindparams(match=match)
            .columns(id=Integer, rank=Float)
            .subquery()
        )
        stmt = stmt.join(ranked, ranked.c.id == KbEntry.id).order_by(
            ranked.c.rank, KbEntry.updated_at.desc()
        )
        return list(session.scalars(stmt))
    stmt = stmt.where(*(_contains(t) for t in long))
    if dialect == "postgresql" and trigram_available(session):
        # Terms found in the title (the first line) first, then trigram similarity.
        title = func.split_part(KbEntry.search_text, "\n", 1)
        in_title = sum((func.strpos(title, t) > 0).cast(Integer) for t in wanted)
        stmt = stmt.order_by(
            in_title.desc(),
            func.public.word_similarity(" ".join(wanted), KbEntry.search_text).desc(),
            KbEntry.updated_at.desc(),
        )
    else:
        # Where the first term first occurs: the title is the first line of search_text.
        position = func.strpos if dialect == "postgresql" else func.instr
        stmt = stmt.order_by(position(KbEntry.search_text, wanted[0]), KbEntry.updated_at.desc())
    return list(session.scalars(stmt))


def _contains(term: str) -> Any:
    return KbEntry.search_text.like(kbtext.like_pattern(term), escape="\\")


def suggest_many(
    session: Session, texts: Sequence[str], *, limit: int = 3, min_score: float = 0.3
) -> list[list[Suggestion]]:
    """Up to `limit` similar entries for each text, for a whole intake batch in two queries.

    The index ranks CANDIDATES entries per text (one UNION ALL statement); an entry is
    suggested when it holds at least `min_score` of the text's terms.
    """
    wanted = [kbtext.suggestion_terms(t) for t in texts]
    if limit <= 0 or not any(wanted):
        return [[] for _ in texts]
    ranked = _candidates(session, wanted)
    ids = {entry_id for rows in ranked.values() for entry_id, _ in rows}
    if not ids:
        return [[] for _ in texts]
    rows = session.execute(
        select(KbEntry.id, KbEntry.title, KbEntry.solution, KbEntry.search_text, Ticket.key)
        .outerjoin(Ticket, Ticket.id == KbEntry.ticket_id)
        .where(KbEntry.id.in_(ids))
    ).all()
    by_id = {row.id: row for row in rows}
    out: list[list[Suggestion]] = []
    for i, terms in enumerate(wanted):
        found = []
        for order, (entry_id, _) in enumerate(ranked.get(i, [])):
            row = by_id[entry_id]
            score = kbtext.overlap(terms, row.search_text)
            if score >= min_score:
                found.append((-score, order, row))
        found.sort(key=lambda f: (f[0], f[1]))
        out.append(
            [
                Suggestion(row.id, row.title, _excerpt(row.solution), row.key, -neg)
                for neg, _, row in found[:limit]
            ]
        )
    return out


def _candidates(session: Session, wanted: Sequence[list[str]]) -> dict[int, list[tuple[int, Any]]]:
    """{text index: [(entry id, rank), ...]}, best first, from one statement."""
    params: dict[str, Any] = {}
    parts = []
    dialect = session.get_bind().dialect.name
    trigram = dialect == "postgresql" and trigram_available(session)
    for i, terms in enumerate(wanted):
        if not terms:
            continue
        if dialect == "sqlite":
            params[f"q{i}"] = " OR ".join(kbtext.fts_phrase(t) for t in terms)
            parts.append(
                f"SELECT * FROM (SELECT {i} AS i, rowid AS id, {_BM25} AS rank FROM kb_fts"
                f" WHERE kb_fts MATCH :q{i} ORDER BY rank LIMIT {CANDIDATES})"
            )
            continue
        likes = []
        for j, term in enumerate(terms):
            params[f"l{i}_{j}"] = kbtext.like_pattern(term)
            likes.append(f"search_text LIKE :l{i}_{j}")
        params[f"w{i}"] = " ".join(terms)
        rank = f"public.word_similarity(:w{i}, search_text)" if trigram else "0.0"
        parts.append(
            f"(SELECT {i} AS i, id, {rank} AS rank FROM kb_entries WHERE {' OR '.join(likes)}"
            f" ORDER BY rank DESC, updated_at DESC LIMIT {CANDIDATES})"
        )
    found: dict[int, list[tuple[int, Any]]] = {}
    if not parts:
        return found
    for i, entry_id, rank in session.execute(text(" UNION ALL ".join(parts)), params):
        found.setdefault(i, []).append((entry_id, rank))
    return found


def _excerpt(solution: str, size: int = 300) -> str:
    flat = " ".join(solution.split())
    return flat if len(flat) <= size else flat[: size - 1] + "…"


_TRIGRAM: weakref.WeakKeyDictionary[Engine, bool] = weakref.WeakKeyDictionary()


def trigram_available(session: Session) -> bool:
    """pg_trgm's functions in schema public (migration 0008 creates it when it may); once per
    engine, with one warning when it is missing."""
    engine = session.get_bind().engine
    if engine not in _TRIGRAM:
        _TRIGRAM[engine] = bool(
            session.scalar(
                text(
                    "SELECT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n"
                    " ON n.oid = p.pronamespace"
                    " WHERE p.proname = 'word_similarity' AND n.nspname = 'public')"
                )
            )
        )
        if not _TRIGRAM[engine]:
            log.warning("pg_trgm is not installed in schema public: KB search scans with LIKE")
    return _TRIGRAM[engine]
