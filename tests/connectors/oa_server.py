"""OA systems on loopback: the generic REST OA the README documents, and a DingTalk-shaped API
(access token, process instance create). Each checks the requests it receives against the
documented shape and answers 400/401 like the real one when they are wrong; answers can be
scripted (503, 429, 400) to exercise retries and dead letters.

The DingTalk event encryption here is written from the vendor's description on purpose, not
imported from connectors/dingtalk.py: a mistake shared by both sides would go unnoticed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

OA_TOKEN = "oa-api-token-0123456789"
OA_SECRET = "oa-callback-secret-abcdef"
APP_KEY, APP_SECRET = "dingappkey0001", "ding-app-secret-xyz"
PROCESS_CODE = "PROC-CHANGE-0001"
DING_TOKEN = "ding-callback-token"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters


@dataclass
class OaState:
    """What the servers saw, and what they will answer next."""

    requests: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)
    instances: dict[str, str] = field(default_factory=dict)  # Idempotency-Key -> instance id
    status_pushes: list[dict[str, Any]] = field(default_factory=list)
    script: list[int] = field(default_factory=list)  # statuses to answer before the real ones
    tokens: list[str] = field(default_factory=list)  # DingTalk access tokens issued (valid)
    ding_instances: list[dict[str, Any]] = field(default_factory=list)

    def paths(self) -> list[str]:
        return [p for p, _, _ in self.requests]


class OaServer:
    def __init__(self) -> None:
        self.state = OaState()
        state = self.state

        class Handler(_Handler):
            pass

        Handler.state = state
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    state: OaState

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return self._answer(400, {"error": "body is not JSON"})
        self.state.requests.append((self.path, headers, body))
        if self.state.script:
            return self._answer(self.state.script.pop(0), {"error": "scripted"})
        routes = {
            "/api/instances": self._oa_instance,
            "/api/status": self._oa_status,
            "/v1.0/oauth2/accessToken": self._ding_token,
            "/v1.0/workflow/processInstances": self._ding_instance,
        }
        route = routes.get(self.path.split("?")[0])
        if route is None:
            return self._answer(404, {"error": "no such path"})
        route(headers, body, raw)

    # -- the generic REST OA (README "OA approvals") ------------------------------------------

    def _oa_instance(self, headers: dict[str, str], body: Any, raw: bytes) -> None:
        if headers.get("authorization") != f"Bearer {OA_TOKEN}":
            return self._answer(401, {"error": "bad token"})
        key = headers.get("idempotency-key")
        if not key:
            return self._answer(400, {"error": "Idempotency-Key header missing"})
        ticket = (body or {}).get("ticket") or {}
        approvers = (body or {}).get("approvers")
        wanted = ("key", "subject", "description", "type", "priority", "requester")
        if any(k not in ticket for k in wanted) or not isinstance(approvers, list):
            return self._answer(400, {"error": "ticket and approvers are required"})
        steps = [a.get("step") for a in approvers]
        emails = all(a.get("email") for a in approvers)
        if steps != list(range(1, len(approvers) + 1)) or not emails:
            return self._answer(400, {"error": "approvers must be steps 1..n with emails"})
        # The same key is the same instance: what makes the gateway's retries safe.
        instance = self.state.instances.setdefault(key, f"OA-{len(self.state.instances) + 1}")
        self._answer(201, {"instance_id": instance})

    def _oa_status(self, headers: dict[str, str], body: Any, raw: bytes) -> None:
        stamp = headers.get("x-oa-timestamp", "")
        mac = hmac.new(OA_SECRET.encode(), stamp.encode() + b"." + raw, hashlib.sha256)
        if not hmac.compare_digest(headers.get("x-oa-signature", ""), f"sha256={mac.hexdigest()}"):
            return self._answer(401, {"error": "bad signature"})
        if not headers.get("idempotency-key"):
            return self._answer(400, {"error": "Idempotency-Key header missing"})
        self.state.status_pushes.append(body)
        self._answer(204, None)

    # -- DingTalk ------------------------------------------------------------------------------

    def _ding_token(self, headers: dict[str, str], body: Any, raw: bytes) -> None:
        if (body or {}).get("appKey") != APP_KEY or body.get("appSecret") != APP_SECRET:
            return self._answer(400, {"code": "invalidClientIdOrSecret", "message": "无效的appKey"})
        token = f"ding-access-{len(self.state.tokens) + 1}"
        self.state.tokens.append(token)
        self._answer(200, {"accessToken": token, "expireIn": 7200})

    def _ding_instance(self, headers: dict[str, str], body: Any, raw: bytes) -> None:
        token = headers.get("x-acs-dingtalk-access-token")
        if not token or token not in self.state.tokens:
            return self._answer(
                401, {"code": "InvalidAuthentication", "message": "不合法的access_token"}
            )
        body = body or {}
        approvers = body.get("approvers") or []
        form = body.get("formComponentValues") or []
        problems = [
            body.get("processCode") != PROCESS_CODE and "processCode",
            not body.get("originatorUserId") and "originatorUserId",
            not all(
                a.get("actionType") in ("AND", "OR", "NONE") and a.get("userIds") for a in approvers
            )
            and "approvers",
            not (form and all(f.get("name") and "value" in f for f in form))
            and "formComponentValues",
        ]
        problems = [p for p in problems if p]
        if problems:
            return self._answer(400, {"code": "invalidParameter", "message": ", ".join(problems)})
        self.state.ding_instances.append(body)
        self._answer(200, {"instanceId": f"ding-proc-{len(self.state.ding_instances)}"})

    def _answer(self, status: int, body: Any) -> None:
        data = b"" if body is None else json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


# -- what the OA sends us ------------------------------------------------------------------------


def oa_callback(
    body: dict[str, Any], timestamp: int, secret: str = OA_SECRET
) -> tuple[bytes, dict[str, str]]:
    """A generic OA callback: the body and its signature headers."""
    raw = json.dumps(body, ensure_ascii=False).encode()
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + raw, hashlib.sha256)
    headers = {
        "Content-Type": "application/json",
        "X-OA-Timestamp": str(timestamp),
        "X-OA-Signature": f"sha256={mac.hexdigest()}",
    }
    return raw, headers


def ding_sign(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypt])).encode()).hexdigest()


def ding_encrypt(event: dict[str, Any], owner: str = APP_KEY, aes_key: str = AES_KEY) -> str:
    key = base64.b64decode(aes_key + "=")
    message = json.dumps(event, ensure_ascii=False).encode()
    plain = os.urandom(16) + struct.pack(">I", len(message)) + message + owner.encode()
    pad = 32 - len(plain) % 32  # PKCS#7 to DingTalk's 32-byte blocks
    plain += bytes([pad]) * pad
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(enc.update(plain) + enc.finalize()).decode()


def ding_decrypt(encrypt: str, aes_key: str = AES_KEY) -> tuple[str, str]:
    """(message, owner key) of a DingTalk ciphertext."""
    key = base64.b64decode(aes_key + "=")
    dec = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = dec.update(base64.b64decode(encrypt)) + dec.finalize()
    unpadder = padding.PKCS7(256).unpadder()
    plain = unpadder.update(plain) + unpadder.finalize()
    (length,) = struct.unpack(">I", plain[16:20])
    return plain[20 : 20 + length].decode(), plain[20 + length :].decode()


def ding_callback(
    event: dict[str, Any], timestamp: str = "1764400000000", nonce: str = "nOnCe123"
) -> tuple[bytes, dict[str, str]]:
    """DingTalk's HTTP event push: the JSON body and the query parameters."""
    encrypt = ding_encrypt(event)
    query = {
        "msg_signature": ding_sign(DING_TOKEN, timestamp, nonce, encrypt),
        "timestamp": timestamp,
        "nonce": nonce,
    }
    return json.dumps({"encrypt": encrypt}).encode(), query


def task_finished(
    instance: str, staff: str, result: str, task: int, remark: str = ""
) -> dict[str, Any]:
    """A `bpms_task_change` event for a finished approval task, as DingTalk pushes it."""
    return {
        "EventType": "bpms_task_change",
        "processInstanceId": instance,
        "corpId": "ding0123456789",
        "createTime": 1764399000000,
        "finishTime": 1764400000000 + task,
        "title": "张三提交的变更审批",
        "type": "finish",
        "result": result,
        "remark": remark,
        "staffId": staff,
        "taskId": task,
        "processCode": PROCESS_CODE,
        "bizCategoryId": "",
    }
