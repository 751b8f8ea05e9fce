"""Group robot webhooks: 企业微信 (WeCom), 钉钉 (DingTalk), 飞书 (Feishu/Lark), Slack.

`chat_request` builds the vendor's documented request (pure; signatures included);
`post_chat` sends it with httpx and reads the answer, which for the Chinese vendors is HTTP 200
with an error code in the body.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from gateway.config import ChatRobot
from gateway.outbound.policy import Failed, Outcome, Sent

TIMEOUT_SECONDS = 10.0
# Vendor codes that mean "too many messages, try later"; any other non-zero code is a refusal
# (bad signature, keyword filter, malformed body) that retrying cannot fix.
_RATE_LIMITED = {130101, 45009, 9499, 11232}
# WeCom markdown content is limited to 4096 bytes, DingTalk/Feishu to about 20000.
_MAX_CHARS = 3500


@dataclass(frozen=True)
class ChatRequest:
    url: str
    json: dict[str, Any]


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk: HMAC-SHA256 keyed by the secret over "timestamp\\nsecret", base64, URL-quoted."""
    digest = hmac.new(
        secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256
    ).digest()
    return urllib.parse.quote_plus(base64.b64encode(digest).decode())


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """Feishu/Lark: HMAC-SHA256 keyed by "timestamp\\nsecret" over an empty message, base64."""
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def chat_request(robot: ChatRobot, title: str, text: str, now: datetime) -> ChatRequest:
    """The vendor's documented request for a markdown-ish message."""
    text = text[:_MAX_CHARS]
    if robot.kind == "wecom":
        return ChatRequest(robot.url, {"msgtype": "markdown", "markdown": {"content": text}})
    if robot.kind == "dingtalk":
        url = robot.url
        if robot.secret:
            ts = int(now.timestamp() * 1000)
            sep = "&" if "?" in url else "?"
            url = f"{url}{sep}timestamp={ts}&sign={dingtalk_sign(robot.secret, ts)}"
        body = {"msgtype": "markdown", "markdown": {"title": title, "text": text}}
        return ChatRequest(url, body)
    if robot.kind == "feishu":
        body: dict[str, Any] = {"msg_type": "text", "content": {"text": text}}
        if robot.secret:
            ts = int(now.timestamp())
            body = {"timestamp": str(ts), "sign": feishu_sign(robot.secret, ts), **body}
        return ChatRequest(robot.url, body)
    return ChatRequest(robot.url, {"text": text})  # Slack incoming webhook


def read_answer(kind: str, response: httpx.Response) -> Outcome:
    """Vendor answer -> outcome: 5xx/429 retried, other 4xx refused, body codes checked."""
    status = response.status_code
    if status == 429 or status >= 500:
        return Failed(f"HTTP {status}: {response.text[:300]}")
    if status >= 400:
        return Failed(f"HTTP {status}: {response.text[:300]}", permanent=True)
    if kind == "slack":
        return Sent()  # Slack answers 200 "ok"; its errors come as 4xx
    try:
        body = response.json()
    except ValueError:
        return Failed(f"HTTP {status} with a body that is not JSON: {response.text[:300]}")
    code = body.get("errcode", body.get("code", body.get("StatusCode", 0)))
    if code in (0, None):
        return Sent()
    message = body.get("errmsg") or body.get("msg") or body.get("StatusMessage") or ""
    return Failed(f"{kind} error {code}: {message}", permanent=code not in _RATE_LIMITED)


def post_chat(
    client: httpx.Client, robot: ChatRobot, title: str, text: str, now: datetime
) -> Outcome:
    request = chat_request(robot, title, text, now)
    try:
        response = client.post(request.url, json=request.json, timeout=TIMEOUT_SECONDS)
    except httpx.HTTPError as exc:
        return Failed(f"{robot.kind} webhook unreachable: {exc!r}")
    return read_answer(robot.kind, response)
