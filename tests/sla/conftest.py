"""Fixtures for the SLA tests: outbound on (rows only, nothing is sent), the default rules."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.config import ChatRobot, OutboundSettings, Settings
from gateway.pipeline import Pipeline
from gateway.rules.holder import RulesHolder
from gateway.storage.db import Database

RULES = Path(__file__).resolve().parents[2] / "gateway" / "defaults" / "rules.yaml"
T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)  # Wednesday 17:00 in Shanghai


@pytest.fixture
def sla_settings(settings: Settings) -> Settings:
    outbound = OutboundSettings(
        enabled=True,
        group_addresses={"ops": "ops@example.com"},
        chat={
            "ops-robot": ChatRobot(
                kind="wecom", url="http://127.0.0.1:9/robot", events=["sla_breach"]
            )
        },
    )
    return settings.model_copy(update={"outbound": outbound})


@pytest.fixture
def pipeline(db: Database, sla_settings: Settings, clock) -> Pipeline:
    clock.now = T0
    return Pipeline(db, sla_settings, RulesHolder(RULES).classify, clock)
