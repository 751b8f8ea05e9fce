"""The OA connectors against loopback servers with the vendors' documented shapes, and their
callback checks (HMAC for the generic OA, DingTalk's signed AES events)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.base import Refused, Unavailable
from connectors.dingtalk import DingTalk, aes_key, decrypt_event, event_signature
from connectors.oa import ApprovalRequest, BadCallback, BadSignature, StatusUpdate
from connectors.oa_rest import RestOa
from connectors.registry import build_oa
from connectors.settings import ConnectorSettings
from gateway.config import ConfigError, load_settings
from tests.connectors.oa_server import (
    AES_KEY,
    APP_KEY,
    APP_SECRET,
    DING_TOKEN,
    OA_SECRET,
    OA_TOKEN,
    PROCESS_CODE,
    OaServer,
    ding_callback,
    ding_decrypt,
    ding_sign,
    oa_callback,
    task_finished,
)

MANAGER, SECURITY = "ops-manager@example.com", "security-lead@example.com"
REQUEST = ApprovalRequest(
    key="CHG-000001",
    subject="扩容 db-bj-03 内存",
    description="从 64G 扩到 128G，周六 22:00 窗口",
    type="change",
    priority="P2",
    requester="alice@example.com",
    approvers=(MANAGER, SECURITY),
)
NOW = 1_764_400_000.0


@pytest.fixture
def server() -> Iterator[OaServer]:
    s = OaServer()
    yield s
    s.stop()


def rest_settings(url: str, **over: object) -> ConnectorSettings:
    fields: dict[str, object] = {
        "kind": "oa_rest",
        "url": f"{url}/api",
        "token": OA_TOKEN,
        "callback_secret": OA_SECRET,
        "status_url": f"{url}/api/status",
    }
    return ConnectorSettings(**(fields | over))  # type: ignore[arg-type]


def ding_settings(url: str, **over: object) -> ConnectorSettings:
    fields: dict[str, object] = {
        "kind": "dingtalk",
        "url": url,
        "app_key": APP_KEY,
        "app_secret": APP_SECRET,
        "process_code": PROCESS_CODE,
        "callback_token": DING_TOKEN,
        "aes_key": AES_KEY,
        "user_ids": {MANAGER: "manager01", SECURITY: "sec02", "Alice@example.com": "alice03"},
    }
    return ConnectorSettings(**(fields | over))  # type: ignore[arg-type]


# -- generic REST OA ---------------------------------------------------------------------------


def test_rest_oa_creates_one_instance_per_idempotency_key(server: OaServer) -> None:
    oa = build_oa("oa", rest_settings(server.url))
    first = oa.create_instance(REQUEST, "oa:oa:CHG-000001:7")
    again = oa.create_instance(REQUEST, "oa:oa:CHG-000001:7")
    other = oa.create_instance(REQUEST, "oa:oa:CHG-000002:9")
    assert first == again == "OA-1" and other == "OA-2"
    path, headers, body = server.state.requests[0]
    assert path == "/api/instances" and headers["idempotency-key"] == "oa:oa:CHG-000001:7"
    assert body["ticket"]["subject"] == "扩容 db-bj-03 内存"
    assert body["approvers"] == [{"step": 1, "email": MANAGER}, {"step": 2, "email": SECURITY}]


def test_rest_oa_errors_by_class(server: OaServer) -> None:
    oa = build_oa("oa", rest_settings(server.url))
    server.state.script = [503]
    with pytest.raises(Unavailable, match="503"):
        oa.create_instance(REQUEST, "k1")
    server.state.script = [429]
    with pytest.raises(Unavailable, match="429"):
        oa.create_instance(REQUEST, "k1")
    wrong = build_oa("oa", rest_settings(server.url, token="wrong-token"))
    with pytest.raises(Refused, match="401"):
        wrong.create_instance(REQUEST, "k1")
    server.stop()
    with pytest.raises(Unavailable):
        oa.create_instance(REQUEST, "k1")


def test_rest_oa_callback_signature_and_replay_window() -> None:
    oa = RestOa("oa", rest_settings("http://127.0.0.1:9"))
    event = {
        "event_id": "evt-1",
        "instance_id": "OA-1",
        "step": 1,
        "approver": "Ops-Manager@example.com",
        "decision": "approve",
        "comment": "同意，周六执行",
    }
    body, headers = oa_callback(event, int(NOW))
    (decision,) = oa.verify_callback(headers, {}, body, NOW + 10).decisions
    assert (decision.instance_id, decision.event_id, decision.step) == ("OA-1", "evt-1", 1)
    assert (decision.verdict, decision.approver) == ("approve", MANAGER)
    assert decision.comment == "同意，周六执行"

    forged_body, forged = oa_callback(event, int(NOW), secret="guessed-secret")
    with pytest.raises(BadSignature):
        oa.verify_callback(forged, {}, forged_body, NOW)
    tampered = body.replace(b"approve", b"reject!")
    with pytest.raises(BadSignature):
        oa.verify_callback(headers, {}, tampered, NOW)
    with pytest.raises(BadSignature, match="allowed"):
        oa.verify_callback(headers, {}, body, NOW + 3600)  # a replay an hour later
    with pytest.raises(BadSignature):
        oa.verify_callback({}, {}, body, NOW)

    for bad in ({**event, "decision": "maybe"}, {**event, "step": 0}, {"event_id": "x"}):
        signed, signed_headers = oa_callback(bad, int(NOW))
        with pytest.raises(BadCallback):
            oa.verify_callback(signed_headers, {}, signed, NOW)


def test_rest_oa_pushes_signed_status(server: OaServer) -> None:
    oa = build_oa("oa", rest_settings(server.url))
    assert oa.wants_status
    update = StatusUpdate(
        event_id="CHG-000001:42",
        key="CHG-000001",
        type="change",
        status="in_progress",
        previous="approved",
        actor="olga@example.com",
        channel="api",
        at="2026-11-25T09:00:00+00:00",
        instance_ids=("OA-1",),
    )
    oa.push_status(update, "status:oa:CHG-000001:42")
    assert server.state.status_pushes == [update.to_json()]
    no_push = build_oa("oa", rest_settings(server.url, status_url=""))
    assert not no_push.wants_status


# -- DingTalk ------------------------------------------------------------------------------------


def test_dingtalk_token_is_cached_and_instances_have_the_documented_shape(
    server: OaServer,
) -> None:
    ding = DingTalk("ding", ding_settings(server.url))
    assert ding.create_instance(REQUEST, "k1") == "ding-proc-1"
    assert ding.create_instance(REQUEST, "k2") == "ding-proc-2"
    assert ding.token_requests == 1
    body = server.state.ding_instances[0]
    assert body["processCode"] == PROCESS_CODE
    assert body["originatorUserId"] == "alice03"
    # One single-person node per step, in chain order: DingTalk asks them one after another.
    assert body["approvers"] == [
        {"actionType": "NONE", "userIds": ["manager01"]},
        {"actionType": "NONE", "userIds": ["sec02"]},
    ]
    assert {"name": "标题", "value": "[CHG-000001] 扩容 db-bj-03 内存"} in body[
        "formComponentValues"
    ]
    token_call = server.state.requests[0]
    assert token_call[0] == "/v1.0/oauth2/accessToken"
    assert token_call[2] == {"appKey": APP_KEY, "appSecret": APP_SECRET}


def test_dingtalk_revoked_token_is_renewed_on_the_next_try(server: OaServer) -> None:
    ding = DingTalk("ding", ding_settings(server.url))
    ding.create_instance(REQUEST, "k1")
    server.state.tokens.clear()  # DingTalk forgot the token (expired early, app reset)
    with pytest.raises(Unavailable, match="401"):
        ding.create_instance(REQUEST, "k2")
    assert ding.create_instance(REQUEST, "k2") == "ding-proc-2"
    assert ding.token_requests == 2


def test_dingtalk_refusals(server: OaServer) -> None:
    unmapped = ApprovalRequest(**{**REQUEST.__dict__, "approvers": (MANAGER, "cto@example.com")})
    ding = DingTalk("ding", ding_settings(server.url))
    with pytest.raises(Refused, match=r"cto@example\.com"):
        ding.create_instance(unmapped, "k1")
    wrong_code = DingTalk("ding", ding_settings(server.url, process_code="PROC-OTHER"))
    with pytest.raises(Refused, match="processCode"):
        wrong_code.create_instance(REQUEST, "k1")
    stranger = ApprovalRequest(**{**REQUEST.__dict__, "requester": "bob@example.com"})
    with pytest.raises(Refused, match="originator"):
        ding.create_instance(stranger, "k1")
    with_default = DingTalk("ding", ding_settings(server.url, originator="itops00"))
    with_default.create_instance(stranger, "k1")
    assert server.state.ding_instances[-1]["originatorUserId"] == "itops00"


def test_dingtalk_vendor_sample_decrypts() -> None:
    # The sample in DingTalk's callback-crypto demo: token "mryue", its EncodingAESKey and
    # corpId, and a check_url event with the signature DingTalk computed.
    key = "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7"
    encrypt = (
        "0vJiX6vliEpwG3U45CtXqi+m8PXbQRARJ8p8BbDuD1EMTDf0jKpQ79QS93qEk7XHpP6u+oTTrd15NRPvNvmBKy"
        "DCYxxOK+HZeKju4yhELOFchzNukR+t8SB/qk4ROMu3"
    )
    signature = event_signature("mryue", "1608001896814", "WL4PK6yA", encrypt)
    assert signature == "03044561471240d4a14bb09372dfcfd4fd0e40cb"
    text = decrypt_event(aes_key(key), "ding6ccabc44d2c8d38b", encrypt)
    assert json.loads(text) == {"EventType": "check_url"}
    with pytest.raises(ValueError, match="owner key"):
        decrypt_event(aes_key(key), "someone-else", encrypt)


def test_dingtalk_callback_decisions_and_reply() -> None:
    ding = DingTalk("ding", ding_settings("http://127.0.0.1:9"))
    event = task_finished("ding-proc-1", "manager01", "agree", 1, remark="同意，注意回滚预案")
    body, query = ding_callback(event)
    callback = ding.verify_callback({}, query, body, NOW)
    (decision,) = callback.decisions
    assert (decision.instance_id, decision.verdict, decision.approver) == (
        "ding-proc-1",
        "approve",
        MANAGER,
    )
    assert decision.comment == "同意，注意回滚预案" and decision.step is None
    # The answer DingTalk requires: "success", encrypted for our app, signed with our token.
    reply = callback.reply
    assert reply is not None
    assert ding_decrypt(reply["encrypt"]) == ("success", APP_KEY)
    expected = ding_sign(DING_TOKEN, reply["timeStamp"], reply["nonce"], reply["encrypt"])
    assert reply["msg_signature"] == expected

    refuse, refuse_query = ding_callback(task_finished("ding-proc-1", "sec02", "refuse", 2))
    assert ding.verify_callback({}, refuse_query, refuse, NOW).decisions[0].verdict == "reject"
    for quiet in (
        {"EventType": "check_url"},
        {**event, "type": "start"},
        {**event, "result": "redirect"},
        {**event, "EventType": "bpms_instance_change"},
        {**event, "processCode": "PROC-SOMETHING-ELSE"},
    ):
        quiet_body, quiet_query = ding_callback(quiet)
        assert ding.verify_callback({}, quiet_query, quiet_body, NOW).decisions == ()


def test_dingtalk_bad_signature_is_refused() -> None:
    ding = DingTalk("ding", ding_settings("http://127.0.0.1:9"))
    body, query = ding_callback(task_finished("ding-proc-1", "manager01", "agree", 1))
    with pytest.raises(BadSignature):
        ding.verify_callback({}, {**query, "msg_signature": "0" * 40}, body, NOW)
    with pytest.raises(BadSignature):
        ding.verify_callback({}, {**query, "nonce": "other"}, body, NOW)
    with pytest.raises(BadSignature):
        ding.verify_callback({}, query, b"not json", NOW)
    # Signed with our token but encrypted for another app: readable by nobody here.
    other = DingTalk("ding", ding_settings("http://127.0.0.1:9", owner_key="another-app"))
    with pytest.raises(BadCallback, match="owner key"):
        other.verify_callback({}, query, body, NOW)


def test_dingtalk_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="app_secret"):
        ding_settings("", app_secret="")
    with pytest.raises(ValueError, match="43"):
        ding_settings("", aes_key="short")
    default = ding_settings("")
    assert default.url == "https://api.dingtalk.com" and default.owner_key == APP_KEY
    with pytest.raises(ValueError, match="callback_secret"):
        rest_settings("http://oa", callback_secret="")


def test_approvals_and_enrichment_name_connectors_of_their_kind(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    oa = '[connectors.oa]\nkind = "oa_rest"\nurl = "https://oa"\ncallback_secret = "s"\n'
    cmdb = '[connectors.nb]\nkind = "netbox"\nurl = "https://netbox"\n'
    cases = {
        '[approvals]\noa = "nope"\n': "approvals.oa = 'nope' names no [connectors.nope]",
        f'[approvals]\noa = "nb"\n{cmdb}': "oa = 'nb' is a connector of kind 'netbox'; it needs",
        f'[enrichment]\ncmdb = "oa"\n{oa}': "cmdb = 'oa' is a connector of kind 'oa_rest'",
    }
    for text, message in cases.items():
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_settings(path)
    path.write_text(f'[approvals]\noa = "oa"\n{oa}', encoding="utf-8")
    assert load_settings(path).approvals.oa == "oa"
