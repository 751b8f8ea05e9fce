"""Hot reload: a valid file replaces the rules, an invalid one is refused and the old rules stay."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from gateway.intake import Intake, Source
from gateway.rules.holder import RulesHolder
from gateway.rules.model import RulesError

V1 = """
rules:
  - name: down-is-p0
    when: {any: [宕机]}
    then: {type: incident, priority: P0}
"""
V2 = """
rules:
  - name: down-is-p1
    when: {any: [宕机]}
    then: {type: incident, priority: P1}
"""
BROKEN = """
rules:
  - name: down-is-p2
    when: {any: [宕机]}
    then: {type: incident, priority: P2, grop: ops}
"""
INTAKE = Intake(source=Source.SMTP, sender="u@example.com", subject="服务器宕机")


def write(path: Path, text: str) -> None:
    """Write and move mtime forward, so the change is visible even on coarse-mtime filesystems."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    write(path, V1)
    return path


def test_valid_reload_replaces_rules(rules_file: Path) -> None:
    holder = RulesHolder(rules_file)
    assert holder.version == 1
    assert holder.classify(INTAKE).priority == "P0"
    ok_before = sample("gateway_rules_reloads_total", outcome="ok")
    write(rules_file, V2)
    assert holder.reload() is True
    assert holder.version == 2
    assert holder.classify(INTAKE).rule == "down-is-p1"
    assert sample("gateway_rules_version") == 2
    assert sample("gateway_rules_reloads_total", outcome="ok") == ok_before + 1


def test_invalid_reload_keeps_old_rules_and_logs_one_line(
    rules_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    holder = RulesHolder(rules_file)
    refused_before = sample("gateway_rules_reloads_total", outcome="refused")
    write(rules_file, BROKEN)
    with caplog.at_level(logging.ERROR, logger="gateway.rules.holder"):
        assert holder.reload() is False
    assert holder.version == 1
    assert holder.classify(INTAKE).rule == "down-is-p0"
    assert sample("gateway_rules_reloads_total", outcome="refused") == refused_before + 1
    [record] = caplog.records
    message = record.getMessage()
    assert "\n" not in message
    assert "keeping version 1" in message
    assert f"{rules_file}:5: unknown key 'grop'" in message
    assert "did you mean 'group'?" in message


def test_reload_if_changed(rules_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    holder = RulesHolder(rules_file)
    assert holder.reload_if_changed() is False  # nothing happened

    os.utime(rules_file, ns=(1, 1))  # touched, same content
    assert holder.reload_if_changed() is False
    assert holder.version == 1

    write(rules_file, V2)
    assert holder.reload_if_changed() is True
    assert holder.version == 2
    assert holder.reload_if_changed() is False

    write(rules_file, BROKEN)
    with caplog.at_level(logging.ERROR, logger="gateway.rules.holder"):
        assert holder.reload_if_changed() is False
        os.utime(rules_file, ns=(2, 2))
        assert holder.reload_if_changed() is False  # same broken content: not refused again
    assert len(caplog.records) == 1
    assert holder.classify(INTAKE).rule == "down-is-p1"

    write(rules_file, V1)  # fixed
    assert holder.reload_if_changed() is True
    assert (holder.version, holder.classify(INTAKE).rule) == (3, "down-is-p0")


def test_deleted_file_keeps_rules(rules_file: Path) -> None:
    holder = RulesHolder(rules_file)
    rules_file.unlink()
    assert holder.reload_if_changed() is False
    assert holder.reload() is False
    assert holder.classify(INTAKE).rule == "down-is-p0"


def test_start_up_refuses_a_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    write(path, BROKEN)
    with pytest.raises(RulesError, match=r"rules\.yaml:5: unknown key 'grop'"):
        RulesHolder(path)


def test_matches_are_counted_per_rule(rules_file: Path) -> None:
    holder = RulesHolder(rules_file)
    before = sample("gateway_rule_matches_total", rule="down-is-p0")
    default_before = sample("gateway_rule_matches_total", rule="default")
    holder.classify(INTAKE)
    holder.classify(Intake(source=Source.SMTP, sender="u@example.com", subject="hello"))
    assert sample("gateway_rule_matches_total", rule="down-is-p0") == before + 1
    assert sample("gateway_rule_matches_total", rule="default") == default_before + 1
