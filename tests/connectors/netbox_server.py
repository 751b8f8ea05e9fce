"""A NetBox-shaped REST API on loopback: devices, VMs, IP addresses and sites, paged like
NetBox (`count`, `next`, `previous`, `results`, `limit`/`offset`), with token auth, 404s,
and scripted 429/500/503 answers. It can be stopped and started again on the same port."""

from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.outbound.servers import free_port

TOKEN = "0123456789abcdef0123456789abcdef01234567"


def _site(pk: int, slug: str, name: str) -> dict[str, Any]:
    return {
        "id": pk,
        "url": f"http://netbox.example/api/dcim/sites/{pk}/",
        "display": name,
        "name": name,
        "slug": slug,
        "description": "",
    }


def _status(value: str) -> dict[str, str]:
    return {"value": value, "label": value.title()}


def _device(pk: int, name: str, site: dict[str, Any], status: str, **cf: Any) -> dict[str, Any]:
    return {
        "id": pk,
        "url": f"http://netbox.example/api/dcim/devices/{pk}/",
        "display": name,
        "name": name,
        "device_type": {"id": 3, "model": "PowerEdge R740", "slug": "poweredge-r740"},
        "role": {"id": 2, "name": "Database Server", "slug": "database-server"},
        "tenant": {"id": 5, "name": "DBA Team", "slug": "dba"},
        "platform": None,
        "serial": f"SN{pk:05d}",
        "site": site,
        "location": None,
        "rack": {"id": 9, "name": "R-09"},
        "status": _status(status),
        "primary_ip": {"id": 100 + pk, "family": 4, "address": f"10.1.2.{pk}/24"},
        "primary_ip4": {"id": 100 + pk, "family": 4, "address": f"10.1.2.{pk}/24"},
        "primary_ip6": None,
        "custom_fields": {
            "service": None,
            "criticality": None,
            "environment": None,
            "owner": None,
            **cf,
        },
        "tags": [],
        "created": "2025-03-01T08:00:00.000000Z",
        "last_updated": "2026-10-01T08:00:00.000000Z",
    }


BJ, SH = _site(1, "bj", "Beijing DC"), _site(2, "sh", "Shanghai DC")
SITES = {
    1: {**BJ, "region": {"id": 11, "name": "North China", "slug": "north-china"}},
    2: {**SH, "region": {"id": 12, "name": "East China", "slug": "east-china"}},
}
DEVICES = [
    _device(
        3,
        "db-bj-03",
        BJ,
        "active",
        service="payments",
        criticality="critical",
        environment="production",
        owner="dba@example.com",
    ),
    _device(
        4, "web-sh-01", SH, "active", service="portal", criticality="low", environment="staging"
    ),
    # Two devices of one name (two tenants): the decommissioned one first.
    _device(5, "app-twin", SH, "decommissioning", service="old-billing"),
    _device(6, "app-twin", BJ, "active", service="billing"),
]
VMS = [
    {
        "id": 40,
        "url": "http://netbox.example/api/virtualization/virtual-machines/40/",
        "name": "vm-bj-07",
        "status": _status("active"),
        "site": None,
        "cluster": {"id": 2, "name": "bj-k8s", "site": BJ},
        "role": {"id": 7, "name": "App", "slug": "app"},
        "tenant": None,
        "custom_fields": {"service": "search", "environment": "production", "owner": None},
    }
]
IPS = [
    {
        "id": 203,
        "address": "10.1.2.3/24",
        "status": _status("active"),
        "assigned_object_type": "dcim.interface",
        "assigned_object_id": 77,
        "assigned_object": {
            "id": 77,
            "name": "eth0",
            "device": {"id": 3, "name": "db-bj-03", "display": "db-bj-03"},
        },
    },
    {
        "id": 240,
        "address": "10.7.0.40/24",
        "assigned_object_type": "virtualization.vminterface",
        "assigned_object": {"id": 81, "name": "ens3", "virtual_machine": {"id": 40, "name": "vm"}},
    },
    {  # assigned to a device that was deleted since: its URL answers 404
        "id": 299,
        "address": "10.9.9.9/24",
        "assigned_object_type": "dcim.interface",
        "assigned_object": {"id": 90, "name": "eth0", "device": {"id": 999, "name": "gone"}},
    },
]
LISTS = {
    "/api/dcim/devices/": (DEVICES, "name"),
    "/api/virtualization/virtual-machines/": (VMS, "name"),
    "/api/ipam/ip-addresses/": (IPS, "address"),
}


class NetBoxServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.requests: list[str] = []
        self.script: list[tuple[int, dict[str, str]]] = []  # answered first, in order
        self.down_status = 0  # e.g. 503: every request gets it
        self.max_page = 50  # NetBox's MAX_PAGE_SIZE
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> NetBoxServer:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        server.daemon_threads = True
        # A short poll interval: stop() returns quickly.
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def answer(self, path: str, query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        with self.lock:
            self.requests.append(path + ("?" + urllib.parse.urlencode(query) if query else ""))
            if self.script:
                status, headers = self.script.pop(0)
                return status, {"detail": "scripted"}, headers
        if self.down_status:
            return self.down_status, {"detail": "unavailable"}, {}
        if path in LISTS:
            objects, key = LISTS[path]
            wanted = query.get(key, "")
            hits = [o for o in objects if str(o[key]).split("/")[0] == wanted.split("/")[0]]
            return 200, self._page(path, query, hits), {}
        for prefix, objects in (
            ("/api/dcim/devices/", DEVICES),
            ("/api/virtualization/virtual-machines/", VMS),
            ("/api/dcim/sites/", list(SITES.values())),
        ):
            rest = path.removeprefix(prefix).strip("/")
            if path.startswith(prefix) and rest.isdigit():
                for obj in objects:
                    if obj["id"] == int(rest):
                        return 200, obj, {}
        return 404, {"detail": "Not found."}, {}

    def _page(self, path: str, query: dict[str, str], hits: list[Any]) -> dict[str, Any]:
        limit = min(int(query.get("limit", "50")), self.max_page)
        offset = int(query.get("offset", "0"))

        def link(at: int) -> str:
            return f"{self.url}{path}?" + urllib.parse.urlencode(
                {**query, "limit": limit, "offset": at}
            )

        return {
            "count": len(hits),
            "next": link(offset + limit) if offset + limit < len(hits) else None,
            "previous": link(max(0, offset - limit)) if offset else None,
            "results": hits[offset : offset + limit],
        }


def _handler(owner: NetBoxServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(parts.query))
            if self.headers.get("Authorization") != f"Token {TOKEN}":
                status, body, headers = 403, {"detail": "Invalid token"}, {}
                owner.requests.append(parts.path)
            else:
                status, body, headers = owner.answer(parts.path, query)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
