"""Knowledge-base rows: write, edit, search and suggest, inside the caller's transaction.

Search ranks with bm25 over the FTS5 trigram table on SQLite and with pg_trgm's
word_similarity on PostgreSQL; see gateway/kb/text.py for how terms are cut.
"""

from __future__ import annotations

import logging
import math
import weakref
from collections import Counter
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
PER_TERM = 50  # entries one suggestion term may count for (its newest)
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


_ANY_ENTRY = select(KbEntry.id).limit(1)


def has_entries(session: Session) -> bool:
    return session.connection().execute(_ANY_ENTRY).first() is not None


def suggest_many(
    session: Session, texts: Sequence[str], *, limit: int = 3, min_score: float = 0.3
) -> list[list[Suggestion]]:
    """Up to `limit` similar entries for each text, for a whole intake batch in two queries.

    The score of an entry is the share of the text's terms it contains; an entry is
    suggested from `min_score` on, best score first, newer first among equals.
    """
    wanted = [kbtext.suggestion_terms(t) for t in texts]
    if limit <= 0 or not any(wanted):
        return [[] for _ in texts]
    ranked = _candidates(session, wanted, limit, min_score)
    ids = {entry_id for rows in ranked.values() for entry_id, _ in rows}
    if not ids:
        return [[] for _ in texts]
    rows = session.execute(
        select(KbEntry.id, KbEntry.title, KbEntry.solution, Ticket.key)
        .outerjoin(Ticket, Ticket.id == KbEntry.ticket_id)
        .where(KbEntry.id.in_(ids))
    ).all()
    by_id = {row.id: row for row in rows}
    return [
        [
            Suggestion(
                entry_id,
                by_id[entry_id].title,
                _excerpt(by_id[entry_id].solution),
                by_id[entry_id].key,
                hits / len(terms),
            )
            for entry_id, hits in ranked.get(i, [])
        ]
        for i, terms in enumerate(wanted)
    ]


def _candidates(
    session: Session, wanted: Sequence[list[str]], limit: int, min_score: float
) -> dict[int, list[tuple[int, int]]]:
    """{text index: [(entry id, terms it contains), ...]}, best first.

    One statement for the batch: each distinct term is one index lookup (FTS5 phrase /
    pg_trgm LIKE), and the hits are counted per entry here. bm25 over an OR of all terms cost
    several times more: it scores every entry that holds any common term (服务器, failed).
    """
    distinct = sorted({term for terms in wanted for term in terms})
    if not distinct or not has_entries(session):
        return {}
    sqlite = session.get_bind().dialect.name == "sqlite"
    params: dict[str, Any] = {}
    lookups = []
    for j, term in enumerate(distinct):
        if sqlite:
            params[f"t{j}"] = kbtext.fts_phrase(term)
            lookup = f"SELECT rowid AS id FROM kb_fts WHERE kb_fts MATCH :t{j}"
        else:
            params[f"t{j}"] = kbtext.like_pattern(term)
            lookup = f"SELECT id FROM kb_entries WHERE search_text LIKE :t{j}"
        # A term in thousands of entries says little about any of them: only its newest
        # PER_TERM entries count, which bounds the work per term.
        lookups.append(f"SELECT {j} AS t, id FROM ({lookup} ORDER BY 1 DESC LIMIT {PER_TERM}) AS l")
    holders: dict[str, list[int]] = {}
    for j, entry_id in session.execute(text(" UNION ALL ".join(lookups)), params):
        holders.setdefault(distinct[j], []).append(entry_id)
    found: dict[int, list[tuple[int, int]]] = {}
    for i, terms in enumerate(wanted):
        hits = Counter(entry_id for term in terms for entry_id in holders.get(term, ()))
        # The least number of terms that reaches min_score (the epsilon absorbs 0.3 * 10).
        least = max(1, math.ceil(min_score * len(terms) - 1e-9))
        best = sorted(((-n, -e) for e, n in hits.items() if n >= least))[:limit]
        if best:
            found[i] = [(-e, -n) for n, e in best]
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
