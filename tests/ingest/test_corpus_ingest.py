"""Every real-world message in the shared corpus goes through the full mail path unharmed."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.config import Settings
from gateway.ingest.mail import mail_to_intake
from gateway.intake import Source
from gateway.pipeline import Created, Duplicate, Pipeline, Quarantined, Updated
from gateway.rules.holder import RulesHolder
from gateway.storage.db import Database
from gateway.storage.models import Attachment, RawMessage
from tests.conftest import IN_CI, SHARED

RULES = Path(__file__).resolve().parents[2] / "gateway" / "defaults" / "rules.yaml"
CORPUS = SHARED / "corpus" / "email"


def corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        if IN_CI:
            pytest.fail(f"corpus missing at {CORPUS} (CI=true)")
        return []
    return sorted(CORPUS.rglob("*.eml"))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_whole_corpus_is_ingested_without_an_exception(
    db: Database, settings: Settings, clock
) -> None:
    files = corpus_files()
    if not files:
        pytest.skip("corpus not present")
    pipeline = Pipeline(db, settings, RulesHolder(RULES).classify, clock)
    outcomes: dict[str, int] = {}
    for path in files:
        mail = mail_to_intake(
            path.read_bytes(), Source.SMTP, settings, envelope_to=("support@example.com",)
        )
        outcome = pipeline.process(mail.intake, mail.raw)
        # Some corpus files share a Message-ID with another: those are (correctly) duplicates.
        assert isinstance(outcome, Created | Updated | Quarantined | Duplicate), path.name
        if isinstance(outcome, Quarantined):
            assert outcome.reason, path.name
        name = type(outcome).__name__
        outcomes[name] = outcomes.get(name, 0) + 1
        if mail.intake.auto:
            # Automatic mail never opens a ticket.
            assert not isinstance(outcome, Created), (path.name, mail.intake.auto)
    print(f"\n{len(files)} corpus messages: {outcomes}")
    with db.unit(readonly=True) as s:
        stored = s.scalar(select(func.count()).select_from(RawMessage))
        attachments = s.scalar(select(func.count()).select_from(Attachment))
    # The multipart samples carry files; they land on their tickets.
    assert attachments >= 20
    # Every message that was not a duplicate is kept byte for byte.
    assert stored == len(files) - outcomes.get("Duplicate", 0)
    assert outcomes.get("Created", 0) > len(files) // 2
