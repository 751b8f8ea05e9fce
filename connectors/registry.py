"""`kind` in `[connectors.NAME]` -> the module that speaks to that system."""

from __future__ import annotations

import time
from collections.abc import Callable

from connectors.base import Cmdb, Monotonic
from connectors.dingtalk import DingTalk
from connectors.netbox import NetBox
from connectors.oa import OaConnector
from connectors.oa_rest import RestOa
from connectors.rest import RestCmdb
from connectors.settings import ConnectorSettings

# A new CMDB: one module with a class like these, and one line here.
KINDS: dict[str, type[NetBox] | type[RestCmdb]] = {"netbox": NetBox, "rest": RestCmdb}


def build_cmdb(
    name: str,
    settings: ConnectorSettings,
    *,
    now: Monotonic = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Cmdb:
    return KINDS[settings.kind](name, settings, now=now, sleep=sleep)


# A new OA: one module with a class that has the OaConnector methods, and one line here.
OA_KINDS: dict[str, type[RestOa] | type[DingTalk]] = {"oa_rest": RestOa, "dingtalk": DingTalk}


def build_oa(name: str, settings: ConnectorSettings) -> OaConnector:
    return OA_KINDS[settings.kind](name, settings)
