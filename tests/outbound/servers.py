"""Real peers for outbound tests: an SMTP sink (the relay) and a chat webhook server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import urllib.parse
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)  # type: ignore[return-value]


class _Collect:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.sink.lock:
            if self.sink.refuse:
                return self.sink.refuse
            self.sink.received.append(
                Received(str(envelope.mail_from), list(envelope.rcpt_tos), bytes(envelope.content))
            )
        return "250 OK"


class SmtpSink:
    """An aiosmtpd relay on a fixed loopback port that can be started late and stopped."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.refuse = ""  # e.g. "550 5.1.1 no such user": answer DATA with this
        self._controller: Controller | None = None

    def start(self) -> SmtpSink:
        self._controller = Controller(_Collect(self), hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def messages(self) -> list[EmailMessage]:
        with self.lock:
            return [r.message for r in self.received]


@dataclass
class ChatServer:
    """Records webhook posts; verifies DingTalk/Feishu signatures as the vendors do."""

    secret: str = ""
    answer: dict[str, Any] = field(default_factory=lambda: {"errcode": 0, "errmsg": "ok"})
    status: int = 200
    posts: list[dict[str, Any]] = field(default_factory=list)

    def start(self) -> ChatServer:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                outer.posts.append({"path": url.path, "query": query, "body": body})
                status, answer = outer.status, outer.answer
                if url.path.startswith("/dingtalk") and not outer.dingtalk_ok(query):
                    status, answer = 200, {"errcode": 310000, "errmsg": "sign not match"}
                if url.path.startswith("/feishu") and not outer.feishu_ok(body):
                    status, answer = 200, {"code": 19021, "msg": "sign match fail"}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # The checks below follow the vendors' documentation, written independently of
    # gateway/outbound/chat.py so that a mistake there fails here.
    def dingtalk_ok(self, query: dict[str, str]) -> bool:
        # parse_qsl has already URL-decoded the sign parameter.
        string_to_sign = f"{query.get('timestamp', '')}\n{self.secret}"
        mac = hmac.new(self.secret.encode("utf-8"), string_to_sign.encode("utf-8"), "sha256")
        return hmac.compare_digest(base64.b64encode(mac.digest()).decode(), query.get("sign", ""))

    def feishu_ok(self, body: dict[str, Any]) -> bool:
        key = f"{body.get('timestamp', '')}\n{self.secret}".encode()
        expected = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
        return hmac.compare_digest(expected, str(body.get("sign", "")))
