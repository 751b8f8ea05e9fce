"""What people see of the clocks: the ticket JSON's `sla` block and `gateway sla explain`."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import cli
from gateway.config import ConfigError, load_settings
from gateway.sla.scanner import scan
from gateway.tickets.serialize import ticket_to_dict
from tests.sla.test_escalation import T0, H, M, act, create, ticket


def test_json_shows_due_times_and_remaining_business_minutes(db, sla_settings, pipeline) -> None:
    key = create(pipeline, "应用报错 500")  # P1 incident, business hours
    t = ticket(db, key)
    with db.unit(readonly=True) as s:
        t = s.merge(t)
        data = ticket_to_dict(t, book=sla_settings.sla_book(), now=T0 + 30 * M)
    sla = data["sla"]
    assert sla["policy"] == "incident" and sla["breached"] is False
    assert sla["response_due"] == "2026-11-26T02:00:00+00:00"
    assert sla["response"]["remaining_minutes"] == 90.0
    assert sla["response"]["running"] is True
    assert sla["resolution"]["elapsed_minutes"] == 30.0


def test_explain_prints_segments_due_times_and_fired_levels(
    db, sla_settings, pipeline, tmp_path: Path, capsys
) -> None:
    key = create(pipeline, "服务器宕机")
    scan(db, sla_settings, T0 + 61 * M)
    act(db, key, "start", T0 + 2 * H)
    act(db, key, "pend", T0 + 3 * H)
    config = tmp_path / "gateway.toml"
    config.write_text(f'[database]\nurl = "{sla_settings.database.url}"\n', encoding="utf-8")
    assert cli.main(["sla", "explain", key, "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "policy incident-p0 (chosen by a rule)" in out
    assert "running new" in out and "paused  pending" in out
    assert "response   due 2026-11-25 18:00 CST" in out and "BREACHED" in out
    assert "response-breach" in out and "fired 2026-11-25 18:01 CST" in out
    assert "resolution-breach" in out and "not fired" in out
    assert cli.main(["sla", "explain", "INC-NOPE", "--config", str(config)]) == 1


def test_default_config_file_spells_out_the_built_in_sla(tmp_path: Path) -> None:
    from gateway.config import load_settings
    from gateway.sla.settings import SlaSettings

    assert cli.main(["init", "--dir", str(tmp_path)]) == 0
    written = load_settings(tmp_path / "gateway.toml")
    assert written.sla == SlaSettings()
    assert written.sla_book().policies["incident-p0"].levels[1].notify == (
        "ops-manager@example.com",
    )


def test_a_broken_holiday_file_stops_start_up_with_its_file_and_line(tmp_path) -> None:
    folder = tmp_path / "holidays"
    folder.mkdir()
    (folder / "cn-2027.yaml").write_text("year: 2027\nholidays:\n  - date: [2027-01-01\n")
    config = tmp_path / "gateway.toml"
    config.write_text('[sla]\nholidays_dir = "holidays"\n')
    with pytest.raises(ConfigError, match=r"cn-2027\.yaml:\d+: not a valid YAML holiday file"):
        load_settings(config)


@pytest.mark.parametrize(
    ("toml", "where"),
    [
        ('[daemon]\ntimezone = "Mars/Olympus"\n', "daemon.timezone"),
        ('[sla.calendars.office]\ntimezone = "Mars/Olympus"\n', "sla.calendars.office.timezone"),
    ],
)
def test_unknown_timezones_are_refused_by_name(tmp_path, toml: str, where: str) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(toml)
    with pytest.raises(ConfigError, match=rf"{where}: .*unknown timezone 'Mars/Olympus'"):
        load_settings(config)
