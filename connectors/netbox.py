"""NetBox (REST API, `Authorization: Token …`): devices, virtual machines and IP addresses.

A hostname is looked up as a device, then as a virtual machine (an FQDN also by its short
name, since NetBox names are often short); an IP address through `ipam/ip-addresses`, whose
`assigned_object` names the device or VM interface that holds it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from connectors.base import ConfigItem, HttpConnector, TtlCache

# Lists are paged (`count`, `next`, `previous`, `results`); a name matching more pages than
# this is a query problem, not a CI.
MAX_PAGES = 5
# Statuses that describe a CI in service: preferred when a name matches several objects.
LIVE = ("active", "staged")


class NetBox(HttpConnector):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.base = self.settings.url.rstrip("/")
        # Regions live on the site object, not on the nested site of a device.
        self._sites = TtlCache(self.settings.cache_seconds, self.now)

    def auth_headers(self) -> dict[str, str]:
        # NetBox's own scheme (not Bearer) for v1 tokens.
        return {"Authorization": f"Token {self.settings.token}"} if self.settings.token else {}

    def find(self, host: str, deadline: float | None = None) -> ConfigItem | None:
        host = host.strip().rstrip(".").lower()
        if _is_ip(host):
            return self._by_ip(host, deadline)
        names = [host, host.split(".", 1)[0]] if "." in host else [host]
        for candidate in names:
            for path, kind in (
                ("/api/dcim/devices/", "device"),
                ("/api/virtualization/virtual-machines/", "vm"),
            ):
                found = _best(self._list(path, {"name": candidate}, deadline))
                if found is not None:
                    return self._item(found, kind, deadline)
        return None

    def _by_ip(self, ip: str, deadline: float | None) -> ConfigItem | None:
        for address in self._list("/api/ipam/ip-addresses/", {"address": ip}, deadline):
            holder = address.get("assigned_object") or {}
            if holder.get("device"):
                path, kind = f"/api/dcim/devices/{holder['device']['id']}/", "device"
            elif holder.get("virtual_machine"):
                vm_id = holder["virtual_machine"]["id"]
                path, kind = f"/api/virtualization/virtual-machines/{vm_id}/", "vm"
            else:
                continue  # an unassigned address names no CI
            obj = self.get_json(self.base + path, deadline=deadline)
            if obj:
                return self._item(obj, kind, deadline)
        return None

    def _list(
        self, path: str, params: Mapping[str, str], deadline: float | None
    ) -> Iterator[dict[str, Any]]:
        page = self.get_json(self.base + path, {**params, "limit": "50"}, deadline)
        for _ in range(MAX_PAGES):
            if not page:
                return
            yield from page.get("results") or ()
            following = page.get("next")
            if not following:
                return
            page = self.get_json(self._same_origin(following), deadline=deadline)

    def _same_origin(self, url: str) -> str:
        # Behind a proxy NetBox may write its own host name into `next`: keep ours, and its
        # path and query.
        parts = urlsplit(url)
        return f"{self.base}{parts.path.removeprefix(urlsplit(self.base).path)}?{parts.query}"

    def _item(self, obj: dict[str, Any], kind: str, deadline: float | None) -> ConfigItem:
        custom = obj.get("custom_fields") or {}
        wanted = self.settings.custom_fields

        def cf(attr: str) -> str:
            return _text(custom.get(wanted[attr])) if attr in wanted else ""

        site = obj.get("site") or (obj.get("cluster") or {}).get("site") or {}
        tenant = obj.get("tenant") or {}
        # NetBox 4 says `role`; 3.x devices said `device_role`.
        role = obj.get("role") or obj.get("device_role") or {}
        return ConfigItem(
            name=obj.get("name") or "",
            kind=kind,
            owner=cf("owner") or _text(tenant.get("name")),
            group=cf("group"),
            site=_text(site.get("slug") or site.get("name")),
            region=self._region(site, deadline),
            tenant=_text(tenant.get("slug") or tenant.get("name")),
            role=_text(role.get("slug") or role.get("name")),
            status=_text((obj.get("status") or {}).get("value")),
            service=cf("service"),
            environment=cf("environment"),
            criticality=cf("criticality"),
            url=_ui_url(obj.get("url") or ""),
        )

    def _region(self, site: Mapping[str, Any], deadline: float | None) -> str:
        if not site.get("id"):
            return ""
        key = str(site["id"])
        hit, region = self._sites.get(key)
        if not hit:
            full = self.get_json(f"{self.base}/api/dcim/sites/{key}/", deadline=deadline) or {}
            found = full.get("region") or {}
            region = _text(found.get("slug") or found.get("name"))
            self._sites.put(key, region)
        return region


def _best(objects: Iterator[dict[str, Any]]) -> dict[str, Any] | None:
    """The first live object (active/staged), else the first one."""
    first = None
    for obj in objects:
        if (obj.get("status") or {}).get("value") in LIVE:
            return obj
        first = first or obj
    return first


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _text(value: Any) -> str:
    # Select custom fields come back as strings; a choice object carries `value`/`label`.
    if isinstance(value, dict):
        value = value.get("value") or value.get("label") or value.get("name")
    return "" if value is None else str(value)


def _ui_url(api_url: str) -> str:
    # The API URL of an object is its web page with /api in front.
    return api_url.replace("/api/", "/", 1)
