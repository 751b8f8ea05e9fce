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

from typing import Any
from urllib.parse import quote

from jsonpointer import JsonPointerException, resolve_pointer

from connectors.base import ConfigItem, HttpConnector, Refused


class RestCmdb(HttpConnector):
    def auth_headers(self) -> dict[str, str]:
        token = self.settings.token
        if not token:
            return {}
        return {self.settings.auth_header: f"{self.settings.auth_scheme} {token}".strip()}

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
