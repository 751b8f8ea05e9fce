"""Chat robots against a loopback webhook server that checks payloads and signatures."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select

from gateway.config import ChatRobot, Settings
from gateway.intake import Intake, Source
from gateway.outbound.chat import post_chat
from gateway.outbound.policy import Failed, Sent
from gateway.outbound.worker import OutboxWorker
from gateway.storage.models import OutboxMessage
from tests.outbound.servers import ChatServer

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
SECRET = "SEC0123456789abcdef"


@pytest.fixture
def server() -> Iterator[ChatServer]:
    s = ChatServer(secret=SECRET).start()
    yield s
    s.stop()


def robot(server: ChatServer, kind: str, path: str = "", **kw) -> ChatRobot:
    return ChatRobot(kind=kind, url=f"{server.url}/{path or kind}?access_token=t", **kw)


def send(server: ChatServer, bot: ChatRobot) -> Sent | Failed:
    with httpx.Client() as client:
        return post_chat(client, bot, "[INC-000001] 数据库宕机", "**数据库宕机**\n> P1", NOW)


def test_dingtalk_signed_markdown(server) -> None:
    assert send(server, robot(server, "dingtalk", secret=SECRET)) == Sent()
    (post,) = server.posts
    assert post["query"]["access_token"] == "t"
    assert post["query"]["timestamp"] == str(int(NOW.timestamp() * 1000))  # milliseconds
    assert post["body"] == {
        "msgtype": "markdown",
        "markdown": {"title": "[INC-000001] 数据库宕机", "text": "**数据库宕机**\n> P1"},
    }


def test_dingtalk_wrong_secret_is_a_permanent_failure(server) -> None:
    out = send(server, robot(server, "dingtalk", secret="SECwrong"))
    assert isinstance(out, Failed) and out.permanent and "310000" in out.error


def test_feishu_signed_text(server) -> None:
    server.answer = {"code": 0, "msg": "success"}
    assert send(server, robot(server, "feishu", secret=SECRET)) == Sent()
    (post,) = server.posts
    body = post["body"]
    assert body["timestamp"] == str(int(NOW.timestamp()))  # seconds, as a string
    assert body["msg_type"] == "text" and body["content"] == {"text": "**数据库宕机**\n> P1"}


def test_feishu_answers_with_its_own_code(server) -> None:
    server.answer = {"code": 0, "msg": "success"}
    assert send(server, robot(server, "feishu", secret=SECRET)) == Sent()
    out = send(server, robot(server, "feishu", secret="other"))
    assert isinstance(out, Failed) and out.permanent and "19021" in out.error


def test_wecom_markdown_and_error_codes(server) -> None:
    assert send(server, robot(server, "wecom")) == Sent()
    assert server.posts[0]["body"] == {
        "msgtype": "markdown",
        "markdown": {"content": "**数据库宕机**\n> P1"},
    }
    server.answer = {"errcode": 45009, "errmsg": "api freq out of limit"}
    out = send(server, robot(server, "wecom"))
    assert isinstance(out, Failed) and not out.permanent  # rate limited: retried later
    server.answer = {"errcode": 93000, "errmsg": "invalid webhook url"}
    out = send(server, robot(server, "wecom"))
    assert isinstance(out, Failed) and out.permanent


def test_slack_text_and_http_errors(server) -> None:
    assert send(server, robot(server, "slack")) == Sent()
    assert server.posts[0]["body"] == {"text": "**数据库宕机**\n> P1"}
    server.status, server.answer = 500, {"error": "boom"}
    out = send(server, robot(server, "slack"))
    assert isinstance(out, Failed) and not out.permanent
    server.status = 404
    out = send(server, robot(server, "slack"))
    assert isinstance(out, Failed) and out.permanent


def test_unreachable_webhook_is_retried() -> None:
    bot = ChatRobot(kind="slack", url="http://127.0.0.1:1/hook")
    with httpx.Client() as client:
        out = post_chat(client, bot, "t", "x", NOW)
    assert isinstance(out, Failed) and not out.permanent


def test_p1_ticket_goes_to_the_robot_through_the_outbox(
    db, out_settings: Settings, pipeline, server, clock
) -> None:
    bots = {
        "oncall": robot(server, "dingtalk", secret=SECRET, events=["received"], min_priority="P1"),
    }
    cfg = out_settings.outbound.model_copy(update={"chat": bots})
    settings = out_settings.model_copy(update={"outbound": cfg})
    pipeline.settings = settings
    pipeline.process(
        Intake(source=Source.API, sender="", subject="core switch down", priority="P1")
    )
    pipeline.process(Intake(source=Source.API, sender="", subject="toner low", priority="P3"))
    with db.unit(readonly=True) as s:
        chat = s.scalars(select(OutboxMessage).where(OutboxMessage.channel == "chat")).all()
    assert [(r.recipient, r.event) for r in chat] == [("oncall", "received")]
    OutboxWorker(db, settings, clock=clock, name="w").run_once()
    (post,) = server.posts
    assert "core switch down" in post["body"]["markdown"]["text"]
    assert "P1" in post["body"]["markdown"]["text"]
    with db.unit(readonly=True) as s:
        assert s.get(OutboxMessage, chat[0].id).state == "sent"
