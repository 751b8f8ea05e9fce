"""`kind` in `[connectors.NAME]` -> the module that speaks to that system."""

from __future__ import annotations

import time
from collections.abc import Callable

from connectors.base import Cmdb, Monotonic
from connectors.netbox import NetBox
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
