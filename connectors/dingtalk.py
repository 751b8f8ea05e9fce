"""DingTalk (钉钉) approvals: a process instance per change, decisions from the encrypted HTTP
event callback (`bpms_task_change`).

- Access token: `POST {url}/v1.0/oauth2/accessToken` with `appKey`/`appSecret`; the answer's
  `accessToken` is kept until shortly before `expireIn` seconds have passed.
- Instance: `POST {url}/v1.0/workflow/processInstances` with header
  `x-acs-dingtalk-access-token`, `processCode`, `originatorUserId`, `formComponentValues`
  and `approvers` (one `{"actionType": "NONE", "userIds": [id]}` per step, in chain order, so
  DingTalk asks them one after another); the answer carries `instanceId`.
- Events: DingTalk POSTs `{"encrypt": "…"}` with `msg_signature` (or `signature`),
  `timestamp` (or `timeStamp`) and `nonce` in the query. The signature is the hex SHA-1 of
  token, timestamp, nonce and the ciphertext sorted and joined; the ciphertext is base64 of
  AES-256-CBC (key: base64 of the EncodingAESKey plus "=", IV: the key's first 16 bytes,
  PKCS#7 padding to 32-byte blocks) over 16 random bytes, the message length (4 bytes, big
  endian), the message and the owner key (the app key or corpId). The answer must be the
  word "success" encrypted the same way, with its own signature, timestamp and nonce.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import struct
import time
from collections.abc import Callable, Mapping
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from connectors.base import Monotonic, Refused, Unavailable
from connectors.oa import (
    ApprovalRequest,
    BadCallback,
    BadSignature,
    Callback,
    Decision,
    HttpRefused,
    OaHttp,
    StatusUpdate,
)
from connectors.settings import ConnectorSettings

# Renew the access token this long before DingTalk says it expires (it lives 7200 s).
TOKEN_MARGIN_SECONDS = 300
# DingTalk pads to 32-byte blocks, not AES's 16.
PAD_BITS = 256
VERDICTS = {"agree": "approve", "refuse": "reject"}


def event_signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    return hashlib.sha1("".join(sorted((token, timestamp, nonce, encrypt))).encode()).hexdigest()


def aes_key(encoding_aes_key: str) -> bytes:
    return base64.b64decode(encoding_aes_key + "=")


def encrypt_event(key: bytes, owner_key: str, text: str, random: bytes) -> str:
    """Ciphertext of `text` for `owner_key` (`random`: 16 bytes), base64."""
    message = text.encode()
    plain = random + struct.pack(">I", len(message)) + message + owner_key.encode()
    padder = padding.PKCS7(PAD_BITS).padder()
    padded = padder.update(plain) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode()


def decrypt_event(key: bytes, owner_key: str, encrypted: str) -> str:
    """The message inside `encrypted`; ValueError when it is not for `owner_key`."""
    try:
        data = base64.b64decode(encrypted, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"encrypt is not base64: {exc}") from exc
    if not data or len(data) % 16:
        raise ValueError("encrypt is not whole AES blocks")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    padded = decryptor.update(data) + decryptor.finalize()
    unpadder = padding.PKCS7(PAD_BITS).unpadder()
    plain = unpadder.update(padded) + unpadder.finalize()
    (length,) = struct.unpack(">I", plain[16:20])
    message, owner = plain[20 : 20 + length], plain[20 + length :]
    if owner != owner_key.encode():
        raise ValueError("the event is encrypted for another app (owner key differs)")
    return message.decode()


class DingTalk(OaHttp):
    wants_status = False  # DingTalk keeps its own instance state

    def __init__(
        self,
        name: str,
        settings: ConnectorSettings,
        *,
        now: Monotonic = time.monotonic,
        wall: Callable[[], float] = time.time,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        super().__init__(name, settings)
        self.now = now
        self.wall = wall
        self.random = random
        self.base = settings.url.rstrip("/")
        self.key = aes_key(settings.aes_key)
        self.emails = {uid: email for email, uid in settings.user_ids.items()}
        self._token: tuple[str, float] | None = None
        self.token_requests = 0  # for tests and logs: a cached token asks nothing

    # -- calls ---------------------------------------------------------------------------------

    def access_token(self) -> str:
        if self._token is not None and self._token[1] > self.now():
            return self._token[0]
        self.token_requests += 1
        answer = self.post_json(
            f"{self.base}/v1.0/oauth2/accessToken",
            {"appKey": self.settings.app_key, "appSecret": self.settings.app_secret},
        )
        token = (answer or {}).get("accessToken") if isinstance(answer, dict) else None
        if not token:
            raise Refused(f"{self.name}: the token answer has no accessToken")
        lifetime = float(answer.get("expireIn") or 7200)
        self._token = (str(token), self.now() + max(lifetime - TOKEN_MARGIN_SECONDS, 60.0))
        return self._token[0]

    def create_instance(self, request: ApprovalRequest, idempotency_key: str) -> str:
        # DingTalk takes no idempotency key: the outbox's lease keeps a second call to the
        # crash window between DingTalk's answer and the row being marked sent.
        ids = self._user_ids(request.approvers)
        originator = self.settings.user_ids.get(request.requester.lower()) or (
            self.settings.originator
        )
        if not originator:
            raise Refused(
                f"{self.name}: no DingTalk userId for the requester {request.requester!r} and "
                f"no originator; set [connectors.{self.name}] originator or user_ids"
            )
        body: dict[str, Any] = {
            "processCode": self.settings.process_code,
            "originatorUserId": originator,
            "approvers": [{"actionType": "NONE", "userIds": [uid]} for uid in ids],
            "formComponentValues": self._form(request),
        }
        if self.settings.dept_id is not None:
            body["deptId"] = self.settings.dept_id
        url = f"{self.base}/v1.0/workflow/processInstances"
        try:
            answer = self.post_json(url, body, {"x-acs-dingtalk-access-token": self.access_token()})
        except HttpRefused as exc:
            if exc.status in (401, 403):
                # An expired or revoked token: ask for a new one on the outbox's next try.
                self._token = None
                raise Unavailable(str(exc)) from exc
            raise
        answer = answer if isinstance(answer, dict) else {}
        instance = answer.get("instanceId") or (answer.get("result") or {}).get("instanceId")
        if not instance:
            raise Refused(f"{self.name}: the answer to processInstances has no instanceId")
        return str(instance)

    def push_status(self, update: StatusUpdate, idempotency_key: str) -> None:
        raise Refused(f"{self.name}: DingTalk takes no status pushes")

    def _user_ids(self, emails: tuple[str, ...]) -> list[str]:
        missing = [e for e in emails if e.lower() not in self.settings.user_ids]
        if missing:
            raise Refused(
                f"{self.name}: no DingTalk userId for {', '.join(missing)}; add them to "
                f"[connectors.{self.name}.user_ids]"
            )
        return [self.settings.user_ids[e.lower()] for e in emails]

    def _form(self, request: ApprovalRequest) -> list[dict[str, str]]:
        facts = {
            "key": request.key,
            "subject": request.subject,
            "description": request.description,
            "priority": request.priority,
            "requester": request.requester,
            "type": request.type,
        }
        values = []
        for name, template in self.settings.form.items():
            try:
                value = template.format_map(facts)
            except (KeyError, IndexError, ValueError) as exc:
                raise Refused(f"{self.name}: form field {name!r}: bad template ({exc})") from exc
            values.append({"name": name, "value": value})
        return values

    # -- the event callback --------------------------------------------------------------------

    def verify_callback(
        self, headers: Mapping[str, str], query: Mapping[str, str], body: bytes, now: float
    ) -> Callback:
        signature = query.get("msg_signature") or query.get("signature") or ""
        stamp = query.get("timestamp") or query.get("timeStamp") or ""
        nonce = query.get("nonce") or ""
        try:
            encrypt = json.loads(body).get("encrypt") or ""
        except (ValueError, AttributeError):
            encrypt = ""
        if not isinstance(encrypt, str):
            encrypt = ""
        expected = event_signature(self.settings.callback_token, stamp, nonce, encrypt)
        if not (encrypt and hmac.compare_digest(signature.encode(), expected.encode())):
            raise BadSignature("msg_signature does not match the encrypted body")
        try:
            event = json.loads(decrypt_event(self.key, self.settings.owner_key, encrypt))
        except ValueError as exc:
            raise BadCallback(f"cannot decrypt the event: {exc}") from exc
        if not isinstance(event, dict):
            raise BadCallback("the decrypted event is not a JSON object")
        return Callback(self._decisions(event), self.encrypted_reply("success", now))

    def encrypted_reply(self, text: str, now: float) -> dict[str, str]:
        """DingTalk's required answer: `text` encrypted, signed, with timestamp and nonce."""
        encrypt = encrypt_event(self.key, self.settings.owner_key, text, self.random(16))
        stamp = str(int(now * 1000))
        nonce = secrets.token_hex(4)
        return {
            "msg_signature": event_signature(self.settings.callback_token, stamp, nonce, encrypt),
            "timeStamp": stamp,
            "nonce": nonce,
            "encrypt": encrypt,
        }

    def _decisions(self, event: Mapping[str, Any]) -> tuple[Decision, ...]:
        # check_url (the subscription test), task start/redirect and instance start/finish
        # decide nothing: the chain moves on each approver's finished task.
        if event.get("EventType") != "bpms_task_change" or event.get("type") != "finish":
            return ()
        code = event.get("processCode")
        if code and code != self.settings.process_code:
            return ()  # another approval form of the same app
        verdict = VERDICTS.get(str(event.get("result") or ""))
        instance = str(event.get("processInstanceId") or "")
        staff = str(event.get("staffId") or "")
        if verdict is None or not instance or not staff:
            return ()
        task = event.get("taskId") or event.get("finishTime") or event.get("createTime") or ""
        return (
            Decision(
                instance_id=instance,
                event_id=f"{instance}:{task}:{staff}:{event.get('result')}",
                verdict=verdict,  # type: ignore[arg-type]
                # An unmapped userId matches no approver: the decision is refused (409).
                approver=self.emails.get(staff, f"dingtalk:{staff}"),
                comment=str(event.get("remark") or "")[:2000],
            ),
        )
