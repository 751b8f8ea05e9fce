"""schemathesis against the real app's /openapi.json: every operation, each API role's token,
no 5xx and every response as the schema says (status codes, content type, body)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.api.app import create_app
from gateway.config import ApiToken, DatabaseSettings, load_settings
from gateway.pipeline import Pipeline
from gateway.rules.holder import RulesHolder
from gateway.storage import migrate
from gateway.storage.db import Database
from tests.fuzz.conftest import examples
from tests.ingest.alerting import RULES, TOKEN, webhook_settings

ROLES = ("requester", "agent", "approver", "admin")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def app(fast_dir: Path) -> Iterator[FastAPI]:
    base = load_settings(None, require_file=False)
    url = f"sqlite:///{fast_dir / 'api.db'}"
    tokens = {
        role: ApiToken(token=f"{role}-token-0123456789", role=role, email=f"{role}@example.com")
        for role in ROLES
    }
    config = base.model_copy(
        update={
            "database": DatabaseSettings(url=url),
            "config_dir": fast_dir,
            "api": base.api.model_copy(update={"tokens": tokens}),
        }
    )
    config = webhook_settings(config)
    db = Database(config.database)
    migrate.upgrade(db.engine)
    rules = RulesHolder(RULES)
    yield create_app(config, db, Pipeline(db, config, rules.classify, groups=rules.ruleset.group))
    db.dispose()


@pytest.mark.timeout(900)
def test_openapi_operations_never_fail_with_5xx(app: FastAPI, tally: Counter[str]) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    # Tickets first, so that lists and journals have rows to conform to the schema.
    admin = {"Authorization": "Bearer admin-token-0123456789"}
    with TestClient(app) as client:
        for subject in ("服务器宕机 db-01", "申请新账号"):
            body = {"subject": subject, "description": "fuzz", "requester": "r@example.com"}
            created = client.post("/api/v1/tickets", json=body, headers=admin)
            assert created.status_code == 201, created.text
    failures: list[str] = []
    for operation in operations:
        strategy = operation.as_strategy()
        name = f"{operation.method.upper()} {operation.path}"

        @settings(settings.get_profile("fuzz"), max_examples=examples(60))
        @given(case=strategy, role=st.sampled_from([*ROLES, "webhook", "none"]))
        def call(case: schemathesis.Case, role: str) -> None:
            headers = {}
            if role == "webhook":
                headers["Authorization"] = f"Bearer {TOKEN}"
            elif role != "none":
                headers["Authorization"] = f"Bearer {role}-token-0123456789"
            tally["inputs"] += 1
            response = case.call_and_validate(headers=headers, checks=CHECKS)
            tally[f"{response.status_code // 100}xx"] += 1

        try:
            call()
        except (Exception, BaseExceptionGroup) as exc:  # collect all: every problem in one run
            failures.append(f"{name}: {exc}"[:3000])
    tally["operations"] = len(operations)
    tally["failed_operations"] = len(failures)
    assert not failures, "\n\n".join(failures)
