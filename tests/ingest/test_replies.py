"""strip_reply on the reply fixtures of six reply-parser projects, and on Chinese clients."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.ingest.mailparse import html_to_text, parse_message
from gateway.ingest.replies import strip_reply
from tests.conftest import SHARED

CORPUS = SHARED / "corpus"
REPLIES = CORPUS / "email" / "replies"  # presence is checked by test_mailparse
CHECKED = ("reply_text", "reply_contains", "reply_not_contains", "max_seconds")


def cases() -> list[Any]:
    found = []
    for path in sorted(REPLIES.glob("*.expected.json")):
        stated = json.loads(path.read_text("utf-8"))
        stem = path.name.removesuffix(".expected.json")
        samples = [p for p in REPLIES.glob(f"{stem}.*") if p != path]
        if samples and set(CHECKED) & set(stated):
            found.append(pytest.param(samples[0], stated, id=stem))
    return found


def body_of(sample: Path) -> str:
    """Bodies as the intake sees them: .eml parsed, HTML reduced to text, text as is."""
    if sample.name.endswith(".eml"):
        return parse_message(sample.read_bytes()).text
    text = sample.read_bytes().decode("utf-8")
    return html_to_text(text) if sample.name.endswith(".html") else text


def exact_stripped(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").split("\n")).strip()


@pytest.mark.parametrize(("sample", "stated"), cases())
def test_corpus_replies(sample: Path, stated: dict[str, Any]) -> None:
    body = body_of(sample)
    # talon strips the quotation only, so its expected texts keep the signature.
    keep_signature = sample.name.startswith("talon")
    start = time.perf_counter()
    reply = strip_reply(body, keep_signature=keep_signature)
    elapsed = time.perf_counter() - start
    if "max_seconds" in stated:  # a declared limit of the corpus (regex-backtracking traps)
        assert elapsed <= stated["max_seconds"]
    if "reply_text" in stated:
        if stated.get("reply_compare") == "ignore-whitespace":
            assert re.sub(r"\s", "", reply) == re.sub(r"\s", "", stated["reply_text"])
        else:
            assert exact_stripped(reply) == exact_stripped(stated["reply_text"])
    for snippet in stated.get("reply_contains", ()):
        assert snippet in reply
    for snippet in stated.get("reply_not_contains", ()):
        assert snippet not in reply
    assert reply.strip()


CHINESE = {
    "foxmail": (
        "已经重启了，请再试一下。\n\n------------------ 原始邮件 ------------------\n"
        '发件人: "运维服务台"<ops@corp.example>;\n发送时间: 2024年5月1日(星期三) 上午10:00\n'
        '收件人: "张三"<zhang@corp.example>;\n主题: [OPS-12] 打印机无法连接\n\n您的工单已受理。'
    ),
    "foxmail-html": (
        "已经重启了，请再试一下。\n\n------------------\xa0原始邮件\xa0------------------\n"
        '发件人:\xa0"ops"<ops@corp.example>;\n发送时间:\xa02024年5月1日\n'
    ),
    "outlook-cn": (
        "已经重启了，请再试一下。\n\n发件人：运维服务台 <ops@corp.example>\n"
        "发送时间：2024年5月1日 10:00\n收件人：张三\n主题：回复: [OPS-12]\n\n请确认。"
    ),
    "netease": (
        "已经重启了，请再试一下。\n\n"
        '在 2024-05-01 10:00:00，"运维服务台" <ops@corp.example> 写道：\n> 请确认问题是否解决。\n>'
    ),
    "gmail-cn": (
        "已经重启了，请再试一下。\n\n"
        "运维服务台 <ops@corp.example> 于2024年5月1日周三 10:00写道：\n\n> 请确认问题是否解决。"
    ),
    "apple-cn": (
        "已经重启了，请再试一下。\n\n发自我的iPhone\n\n"
        "在 2024年5月1日，10:00，运维服务台 <ops@corp.example> 写道：\n\n> 请确认。"
    ),
    "qq-mobile": (
        "已经重启了，请再试一下。\n\n------------------ Original ------------------\n"
        "From: 运维服务台 <ops@corp.example>\nDate: Wed,May 1,2024 10:00 AM\nTo: 张三\n"
    ),
    "mail-master": (
        "已经重启了，请再试一下。\n\n发自网易邮箱大师\n---- 回复的原邮件 ----\n| 发件人 | x |"
    ),
}


@pytest.mark.parametrize("client", CHINESE)
def test_chinese_clients(client: str) -> None:
    assert strip_reply(CHINESE[client]) == "已经重启了，请再试一下。"


@pytest.mark.parametrize(
    "body",
    [
        "Fixed now.\n\nOn Wed, May 1, 2024 at 10:00 AM Ops <ops@corp.example> wrote:\n> Is it?",
        "Fixed now.\n\n-----Original Message-----\nFrom: Ops\nSent: Wed\nSubject: x\n\nIs it?",
        "Fixed now.\n________________________________\nFrom: Ops <ops@corp.example>\n"
        "Sent: Wednesday, May 1, 2024 10:00 AM\nTo: Zhang\nSubject: [OPS-12]\n\nIs it?",
        "Fixed now.\n\n-- \nZhang San\nIT, 3rd floor",
        "Fixed now.\n\nSent from my iPhone",
        "> Is it fixed?\n\nFixed now.",
    ],
)
def test_english_clients(body: str) -> None:
    assert strip_reply(body) == "Fixed now."


def test_inline_answers_keep_their_context() -> None:
    body = "On Mon, Ops <ops@corp.example> wrote:\n> Which host?\n\nweb-03\n\n> Since when?\n\n9:55"
    assert strip_reply(body) == "web-03\n\n> Since when?\n\n9:55"


def test_text_that_only_looks_like_a_header_stays() -> None:
    body = "On the surface it works.\nSent from my desk, where it is easier than the phone.\n"
    assert strip_reply(body) == body.strip()
    assert strip_reply("Log:\n  - disk full\n  - retry") == "Log:\n  - disk full\n  - retry"


def test_signature_can_be_kept() -> None:
    assert strip_reply("Hi\n\n-- \nZhang", keep_signature=True) == "Hi\n\n--\nZhang"


def test_long_quotes_are_linear() -> None:
    body = "Hi\n" + "> " + ">" * 200_000 + "\n" + ("> quoted line\n" * 50_000)
    start = time.perf_counter()
    assert strip_reply(body) == "Hi"
    assert time.perf_counter() - start < 1.0
