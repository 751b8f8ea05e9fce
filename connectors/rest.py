"""A generic REST CMDB: one GET per host from a URL template, mapped by JSON pointers.

```toml
[connectors.cmdb]
kind = "rest"
url = "https://cmdb.example.com/api/ci?host={host}"
results = "/data"                    # the item, or a list whose first element is the item
fields = { name = "/hostname", site = "/location/code", owner = "/owner/email" }
```
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from jsonpointer import JsonPointerException, resolve_pointer

from connectors.base import ConfigItem, HttpConnector, Monotonic, Refused
from connectors.settings import CI_FIELDS, ConnectorSettings


class RestCmdb(HttpConnector):
    def __init__(
        self,
        name: str,
        settings: ConnectorSettings,
        *,
        now: Monotonic = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        headers = {}
        if settings.token:
            value = f"{settings.auth_scheme} {settings.token}".strip()
            headers[settings.auth_header] = value
        super().__init__(name, settings, headers=headers, now=now, sleep=sleep)
        unknown = set(settings.fields) - set(CI_FIELDS)
        if unknown or "{host}" not in settings.url:
            raise ValueError(
                f"connectors.{name}: url needs {{host}}; fields may name {', '.join(CI_FIELDS)}"
                + (f" (unknown: {', '.join(sorted(unknown))})" if unknown else "")
            )

    def find(self, host: str, deadline: float | None = None) -> ConfigItem | None:
        url = self.settings.url.replace("{host}", quote(host.strip(), safe=""))
        body = self.get_json(url, deadline=deadline)
        if body is None:
            return None
        item = _pointer(body, self.settings.results) if self.settings.results else body
        if isinstance(item, list):
            item = item[0] if item else None
        if not isinstance(item, dict):
            if item is None:
                return None
            raise Refused(f"{self.name}: {self.settings.results or '/'} is not an object")
        values = {attr: _pointer(item, ptr) for attr, ptr in self.settings.fields.items()}
        values = {k: "" if v is None else str(v) for k, v in values.items()}
        values.setdefault("name", host)
        return ConfigItem(**values) if values.get("name") else ConfigItem(name=host)


def _pointer(doc: Any, pointer: str) -> Any:
    try:
        return resolve_pointer(doc, pointer)
    except JsonPointerException:
        return None  # an item without that attribute: leave the field empty
