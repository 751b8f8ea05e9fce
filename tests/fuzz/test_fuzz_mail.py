"""Fuzzing the mail intake path: damaged messages through parse -> pipeline -> store.

The path is the SMTP listener's: `mail_to_intake` for each delivery, then the group-commit
writer's `Pipeline.process_batch` for a few deliveries at once. Every input must come out as a
stored outcome (ticket created or updated, duplicate, quarantined with a reason) or a refusal
with a reason; any exception is a bug (the SMTP client would get a 451 and retry forever).
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from gateway.config import DatabaseSettings, Settings, load_settings
from gateway.ingest.mail import mail_to_intake
from gateway.intake import Source
from gateway.pipeline import Created, Duplicate, Pipeline, Quarantined, Refused, Updated
from gateway.rules.holder import RulesHolder
from gateway.storage import migrate
from gateway.storage.db import Database
from gateway.storage.models import RawMessage
from tests.fuzz.conftest import examples
from tests.fuzz.mime_strategies import batches
from tests.ingest.alerting import RULES

SENDERS = ["alice@example.com", "", "MAILER-DAEMON@example.com", "support@example.com"]


def store(url: str, folder: Path) -> tuple[Settings, Database, Pipeline]:
    base = load_settings(None, require_file=False)
    config = base.model_copy(update={"database": DatabaseSettings(url=url), "config_dir": folder})
    db = Database(config.database)
    migrate.upgrade(db.engine)
    rules = RulesHolder(RULES)
    pipeline = Pipeline(db, config, rules.classify, groups=rules.ruleset.group)
    return config, db, pipeline


def campaign(
    url: str, folder: Path, n: int, tally: Counter[str], caplog: pytest.LogCaptureFixture
) -> None:
    config, db, pipeline = store(url, folder)
    caplog.set_level(logging.INFO, logger="gateway.pipeline")

    @settings(settings.get_profile("fuzz"), max_examples=n)
    @given(batch=batches(), sender=st.sampled_from(SENDERS))
    def deliver(batch: list[bytes], sender: str) -> None:
        prepared = []
        for data in batch:
            tally["inputs"] += 1
            if tally["inputs"] % 4:
                # Most real mail has a unique Message-ID; without one, the many equal
                # Message-IDs hypothesis draws would make most inputs duplicates.
                data = b"Message-ID: <fuzz-%d@fuzz.invalid>\r\n" % tally["inputs"] + data
            tally["bytes"] += len(data)
            try:
                mail = mail_to_intake(
                    data, Source.SMTP, config, envelope_from=sender,
                    envelope_to=("support@example.com",),
                )  # fmt: skip
            except Exception:
                tally["exceptions"] += 1
                raise
            prepared.append((mail.intake, mail.raw))
        results = pipeline.process_batch(prepared)
        stored_now = {raw.sha256 for (_, raw), r in zip(prepared, results, strict=True)}
        with db.unit(readonly=True) as session:
            kept = set(
                session.scalars(select(RawMessage.sha256).where(RawMessage.sha256.in_(stored_now)))
            )
        for (_, raw), result in zip(prepared, results, strict=True):
            match result:
                case Created(key) | Updated(key):
                    assert key
                    tally["stored"] += 1
                    tally[type(result).__name__.lower()] += 1
                case Duplicate():
                    tally["stored"] += 1
                    tally["duplicate"] += 1
                    continue  # the first delivery's bytes are the ones kept
                case Quarantined(reason):
                    assert reason.strip()
                    tally["stored"] += 1
                    tally["quarantined"] += 1
                case Refused(reason):
                    assert reason.strip()
                    tally["refused"] += 1
                case Exception():
                    tally["exceptions"] += 1
                    raise result
                case _:
                    raise AssertionError(f"not an outcome: {result!r}")
            assert raw.sha256 in kept, f"{result} but the raw message was not stored"

    try:
        deliver()
    finally:
        fallbacks = [r.getMessage() for r in caplog.records if "fell back" in r.getMessage()]
        tally["batch_fallbacks"] = len(fallbacks)
        print(*sorted(set(fallbacks))[:20], sep="\n")
        db.dispose()
    assert tally["exceptions"] == 0


@pytest.mark.timeout(900)
def test_fuzz_mail_sqlite(
    fast_dir: Path, tally: Counter[str], caplog: pytest.LogCaptureFixture
) -> None:
    campaign(f"sqlite:///{fast_dir / 'fuzz.db'}", fast_dir, examples(1000), tally, caplog)
    assert tally["inputs"] >= examples(3300)  # its share of the 10,000 (webhooks: 6,700)


@pytest.mark.postgres
@pytest.mark.timeout(900)
def test_fuzz_mail_postgresql(
    pg_schema_url: str, tmp_path: Path, tally: Counter[str], caplog: pytest.LogCaptureFixture
) -> None:
    # A smaller run on PostgreSQL, which enforces column lengths and NUL-free text.
    campaign(pg_schema_url, tmp_path, examples(150), tally, caplog)
