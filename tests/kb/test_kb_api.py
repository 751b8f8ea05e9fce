"""Knowledge base over the real app and database (SQLite FTS5 trigram, PostgreSQL pg_trgm)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from gateway.api.app import create_app
from gateway.config import ApiSettings, OutboundSettings, Settings
from gateway.intake import Intake, Source
from gateway.kb import store
from gateway.kb.settings import KbSettings
from gateway.pipeline import Created, Pipeline
from gateway.rules.holder import RulesHolder
from gateway.storage.db import Database
from gateway.storage.models import OutboxMessage, TicketEvent
from tests.api.test_api import DEFAULT_RULES, TOKENS, act, auth, new_ticket

MYSQL = {
    "symptom": "应用报 MySQL 连接超时，连接池耗尽",
    "steps": "检查 max_connections；查看慢查询",
    "solution": "调大 max_connections 并修复泄漏连接的任务",
    "prevention": "为连接数加告警",
}
VPN = {
    "symptom": "VPN login fails with token error",
    "steps": "checked the RADIUS log",
    "solution": "Reset the user's OTP token in the RADIUS console",
    "prevention": "document the token reset",
}


def make_client(settings: Settings, db: Database, clock, **kb: object) -> TestClient:
    settings = settings.model_copy(
        update={
            "api": ApiSettings(tokens=TOKENS),
            "kb": KbSettings(**kb),  # type: ignore[arg-type]
            "outbound": OutboundSettings(enabled=True),
        }
    )
    pipeline = Pipeline(db, settings, RulesHolder(DEFAULT_RULES).classify, clock)
    return TestClient(create_app(settings, db, pipeline, clock=clock))


@pytest.fixture
def client(settings: Settings, db: Database, clock) -> Iterator[TestClient]:
    with make_client(settings, db, clock) as c:
        yield c


def resolved(client: TestClient, subject: str, resolution: dict, **extra) -> dict:
    key = new_ticket(client, "olga", subject=subject, type="incident", **extra)["key"]
    assert act(client, "olga", key, action="start").status_code == 200
    r = act(client, "olga", key, action="resolve", resolution=resolution)
    assert r.status_code == 200, r.text
    return r.json()


def search(client: TestClient, q: str, who: str = "olga") -> list[dict]:
    r = client.get("/api/v1/kb", params={"q": q}, headers=auth(who))
    assert r.status_code == 200, r.text
    return r.json()["entries"]


def events(client: TestClient, key: str) -> list[dict]:
    return client.get(f"/api/v1/tickets/{key}/events", headers=auth("root")).json()["events"]


def test_resolving_with_a_solution_writes_a_journalled_kb_entry(client: TestClient) -> None:
    ticket = resolved(client, "MySQL 连接超时", MYSQL, category="database")
    assert ticket["status"] == "resolved"
    journal = events(client, ticket["key"])
    resolution = next(e for e in journal if e["kind"] == "resolution")
    assert resolution["after"]["solution"] == MYSQL["solution"] and resolution["public"]
    entry = client.get(f"/api/v1/kb/{resolution['after']['kb_entry']}", headers=auth("olga"))
    assert entry.status_code == 200
    body = entry.json()
    assert body["ticket"] == ticket["key"] and body["title"] == "MySQL 连接超时"
    assert body["steps"] == MYSQL["steps"] and body["prevention"] == MYSQL["prevention"]
    assert body["category"] == "database" and body["created_by"] == "olga@example.com"


def test_resolving_again_after_a_reopen_updates_the_same_entry(client: TestClient) -> None:
    key = resolved(client, "MySQL 连接超时", MYSQL)["key"]
    assert act(client, "olga", key, action="reopen", reason="again").status_code == 200
    assert act(client, "olga", key, action="start").status_code == 200
    fix = MYSQL | {"solution": "升级连接池组件"}
    assert act(client, "olga", key, action="resolve", resolution=fix).status_code == 200
    entries = search(client, "")
    assert len(entries) == 1 and entries[0]["solution"] == "升级连接池组件"
    assert search(client, "升级连接池")[0]["ticket"] == key
    assert search(client, "泄漏连接") == []  # the old solution is no longer indexed


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("连接", ["MySQL 连接超时"]),  # two CJK characters: below a trigram
        ("超时", ["MySQL 连接超时"]),
        ("连", ["MySQL 连接超时"]),
        ("连接超时", ["MySQL 连接超时"]),
        ("mysql 连接池", ["MySQL 连接超时"]),  # an indexed term and a short one together
        ("ＭｙＳＱＬ", ["MySQL 连接超时"]),  # full-width, any case
        ("token", ["VPN login fails"]),
        ("otp RADIUS", ["VPN login fails"]),
        ("vpn 连接", []),  # every term must match
        ("宕机", []),
    ],
)
def test_search_in_chinese_and_english(client: TestClient, query: str, found: list) -> None:
    resolved(client, "MySQL 连接超时", MYSQL)
    resolved(client, "VPN login fails", VPN)
    assert [e["title"] for e in search(client, query)] == found


def test_ranking_prefers_the_title(client: TestClient) -> None:
    resolved(client, "磁盘空间不足", {"solution": "清理日志；顺带处理了 nginx 配置"})
    resolved(client, "nginx 配置错误", {"solution": "回滚 nginx 配置"})
    assert [e["title"] for e in search(client, "nginx")] == ["nginx 配置错误", "磁盘空间不足"]


def test_agents_edit_entries_and_the_ticket_journal_says_so(client: TestClient) -> None:
    key = resolved(client, "VPN login fails", VPN)["key"]
    entry_id = search(client, "vpn")[0]["id"]
    r = client.patch(
        f"/api/v1/kb/{entry_id}", json={"solution": "重置动态口令", "tags": ["vpn"]},
        headers=auth("olga"),
    )  # fmt: skip
    assert r.status_code == 200 and r.json()["solution"] == "重置动态口令"
    assert search(client, "动态口令")[0]["id"] == entry_id
    edited = [e for e in events(client, key) if e["kind"] == "kb_edited"]
    assert edited and edited[0]["before"]["solution"] == VPN["solution"]
    for who, status in (("alice", 403), ("mgr", 403)):
        r = client.patch(f"/api/v1/kb/{entry_id}", json={"title": "x"}, headers=auth(who))
        assert r.status_code == status
    r = client.patch(f"/api/v1/kb/{entry_id}", json={"colour": "red"}, headers=auth("olga"))
    assert r.status_code == 400
    assert client.get("/api/v1/kb/999", headers=auth("olga")).status_code == 404


def test_who_may_read(client: TestClient, settings: Settings, db: Database, clock) -> None:
    resolved(client, "VPN login fails", VPN)
    assert client.get("/api/v1/kb?q=vpn").status_code == 401
    r = client.get("/api/v1/kb?q=vpn", headers=auth("alice"))
    assert r.status_code == 403 and "requesters_may_read" in r.json()["message"]
    assert len(search(client, "vpn", "mgr")) == 1
    with make_client(settings, db, clock, requesters_may_read=True) as open_kb:
        assert len(search(open_kb, "vpn", "alice")) == 1


def test_a_resolution_without_solution_makes_no_entry(client: TestClient) -> None:
    ticket = resolved(client, "printer jam", {"symptom": "paper jam", "steps": "opened tray"})
    assert search(client, "") == []
    assert any(e["kind"] == "resolution" for e in events(client, ticket["key"]))
    key = new_ticket(client, "olga", subject="x")["key"]
    r = act(client, "olga", key, action="start", resolution={"solution": "x"})
    assert r.status_code == 422 and "resolve" in r.json()["message"]


def test_require_solution(settings: Settings, db: Database, clock) -> None:
    with make_client(settings, db, clock, require_solution=True) as strict:
        key = new_ticket(strict, "olga", subject="disk full")["key"]
        act(strict, "olga", key, action="start")
        r = act(strict, "olga", key, action="resolve")
        assert r.status_code == 422 and "solution" in r.json()["message"]
        ok = act(strict, "olga", key, action="resolve", resolution={"solution": "cleaned /var"})
        assert ok.status_code == 200


def suggested(db: Database, key: str) -> list[dict]:
    with db.unit(readonly=True) as session:
        rows = session.scalars(
            select(TicketEvent).where(TicketEvent.kind == "kb_suggested").order_by(TicketEvent.id)
        ).all()
        return [e.after for e in rows if e.ticket.key == key]


def test_a_new_ticket_gets_similar_solved_entries(client: TestClient, db: Database) -> None:
    resolved(client, "MySQL 连接超时", MYSQL)
    resolved(client, "VPN login fails", VPN)
    key = new_ticket(client, "alice", subject="订单服务 MySQL 连接超时", description="连接池满了")[
        "key"
    ]
    (found,) = suggested(db, key)
    assert [e["title"] for e in found["entries"]] == ["MySQL 连接超时"]
    assert found["entries"][0]["solution"] == MYSQL["solution"]
    journal = events(client, key)
    assert any(e["kind"] == "kb_suggested" and not e["public"] for e in journal)
    # The requester does not see internal suggestions.
    mine = client.get(f"/api/v1/tickets/{key}/events", headers=auth("alice")).json()["events"]
    assert all(e["kind"] != "kb_suggested" for e in mine)
    # Staff see them on the ticket itself; the requester's view has no such field.
    staff = client.get(f"/api/v1/tickets/{key}", headers=auth("olga")).json()
    assert [e["title"] for e in staff["suggestions"]] == ["MySQL 连接超时"]
    assert "suggestions" not in client.get(f"/api/v1/tickets/{key}", headers=auth("alice")).json()
    # Nothing similar: no journal row at all.
    other = new_ticket(client, "alice", subject="打印机卡纸")["key"]
    assert suggested(db, other) == []

    # The assignee's notification lists the suggestion.
    assert act(client, "olga", key, action="assign", assignee="li@example.com").status_code == 200
    with db.unit(readonly=True) as session:
        mail = session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.event == "assigned", OutboxMessage.recipient == "li@example.com"
            )
        ).one()
    assert "知识库中的相似已解决问题" in mail.payload["text"]
    assert MYSQL["solution"] in mail.payload["text"]


def test_the_group_commit_path_suggests_in_one_go(
    client: TestClient, settings: Settings, db: Database, clock
) -> None:
    resolved(client, "MySQL 连接超时", MYSQL)
    resolved(client, "VPN login fails", VPN)
    pipeline = Pipeline(db, settings, RulesHolder(DEFAULT_RULES).classify, clock)
    batch = [
        (Intake(source=Source.SMTP, sender="a@example.com", subject=s, body=b), None)
        for s, b in (
            ("VPN token rejected", "my OTP token is not accepted"),
            ("报表慢", "无"),
            ("MySQL 连接超时", "again"),
        )
    ]
    outcomes = pipeline.process_batch(batch)
    assert all(isinstance(o, Created) for o in outcomes)
    titles = [[e["title"] for s in suggested(db, o.key) for e in s["entries"]] for o in outcomes]
    assert titles == [["VPN login fails"], [], ["MySQL 连接超时"]]


def test_cli_search(client: TestClient, settings: Settings, tmp_path: Path) -> None:
    resolved(client, "MySQL 连接超时", MYSQL)
    config = tmp_path / "cli.toml"
    config.write_text(f'[database]\nurl = "{settings.database.url}"\n', encoding="utf-8")
    cli = [sys.executable, "-m", "gateway.cli", "kb", "search"]
    out = subprocess.run(
        [*cli, "连接", "--json", "--config", str(config)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert [e["title"] for e in json.loads(out.stdout)] == ["MySQL 连接超时"]
    out = subprocess.run([*cli, "宕机", "--config", str(config)], capture_output=True, text=True)
    assert out.returncode == 0 and "nothing found" in out.stdout
    # Resolving from the command line with a solution writes an entry too.
    key = new_ticket(client, "olga", subject="磁盘满")["key"]
    act(client, "olga", key, action="start")
    act_cli = [sys.executable, "-m", "gateway.cli", "tickets", "act", key, "resolve"]
    out = subprocess.run(
        [*act_cli, "--solution", "清理 /var/log", "--config", str(config)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0 and "knowledge base entry" in out.stdout, out.stderr
    assert [e["ticket"] for e in search(client, "磁盘")] == [key]


def test_the_search_index_exists(db: Database) -> None:
    with db.engine.connect() as conn:
        if db.dialect == "sqlite":
            name = "SELECT name FROM sqlite_master WHERE name = 'kb_fts'"
        else:
            name = (
                "SELECT indexname FROM pg_indexes WHERE indexname = 'ix_kb_entries_search_trgm'"
                " AND schemaname = current_schema()"
            )
        assert conn.exec_driver_sql(name).scalar() is not None
        if db.dialect == "postgresql":
            # A substring of three or more characters is looked up through the index.
            conn.exec_driver_sql("SET enable_seqscan = off")
            plan = conn.exec_driver_sql(
                "EXPLAIN SELECT id FROM kb_entries WHERE search_text LIKE '%%连接超时%%'"
            ).all()
            assert "ix_kb_entries_search_trgm" in str(plan)


def test_without_pg_trgm_search_falls_back_to_like(
    client: TestClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A role that may not create the extension: search and suggestions still work (on SQLite
    # the FTS5 path does not consult this).
    monkeypatch.setattr(store, "trigram_available", lambda session: False)
    resolved(client, "MySQL 连接超时", MYSQL)
    resolved(client, "VPN login fails", VPN)
    assert [e["title"] for e in search(client, "连接超时")] == ["MySQL 连接超时"]
    assert [e["title"] for e in search(client, "login 令牌")] == []
    key = new_ticket(client, "alice", subject="MySQL 连接超时 again")["key"]
    assert [e["title"] for e in suggested(db, key)[0]["entries"]] == ["MySQL 连接超时"]


def test_a_failing_suggestion_lookup_never_fails_intake(
    client: TestClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolved(client, "MySQL 连接超时", MYSQL)

    def broken(session, *args):  # a statement the database refuses (PostgreSQL: aborts it)
        session.execute(text("SELECT no_such_column FROM kb_entries"))

    monkeypatch.setattr(store, "_candidates", broken)
    key = new_ticket(client, "alice", subject="MySQL 连接超时 again")["key"]
    assert suggested(db, key) == []
    assert client.get(f"/api/v1/tickets/{key}", headers=auth("olga")).status_code == 200


def test_the_requester_reads_the_solution_in_the_resolved_mail(
    client: TestClient, db: Database
) -> None:
    key = new_ticket(client, "alice", subject="MySQL 连接超时")["key"]
    act(client, "olga", key, action="start")
    assert act(client, "olga", key, action="resolve", resolution=MYSQL).status_code == 200
    assert act(client, "alice", key, action="reopen", reason="仍然超时").status_code == 200
    act(client, "olga", key, action="start")
    assert act(client, "olga", key, action="resolve").status_code == 200
    with db.unit(readonly=True) as session:
        mails = session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.event == "resolved", OutboxMessage.recipient == "alice@example.com"
            )
            .order_by(OutboxMessage.id)
        ).all()
    first, second = (m.payload["text"] for m in mails)
    assert f"解决方案：{MYSQL['solution']}" in first and MYSQL["prevention"] in first
    assert "解决方案" not in second  # the earlier fix did not hold: not shown again
