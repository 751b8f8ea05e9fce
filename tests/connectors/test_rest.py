"""The generic REST CMDB: URL template, JSON-pointer mapping, bearer token; real loopback HTTP."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from connectors.base import ConfigItem, Refused
from connectors.registry import build_cmdb
from connectors.settings import ConnectorSettings

INVENTORY = {
    "db-bj-03": {
        "hostname": "db-bj-03",
        "location": {"code": "bj", "region": "north"},
        "biz": {"system": "payments", "level": "P1-critical"},
        "contacts": [{"email": "dba@example.com"}],
        "env": "prod",
    }
}


class Handler(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str]]] = []

    def do_GET(self) -> None:
        parts = urllib.parse.urlsplit(self.path)
        host = dict(urllib.parse.parse_qsl(parts.query)).get("host", "")
        Handler.seen.append((self.path, self.headers.get("X-Api-Key", "")))
        if parts.path == "/broken":
            status, body = 200, {"data": "not an object"}
        elif host in INVENTORY:
            status, body = 200, {"total": 1, "data": [INVENTORY[host]]}
        else:
            status, body = 404, {"error": "no such ci"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def base_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def cmdb(base_url: str, path: str = "/ci?host={host}"):
    return build_cmdb(
        "inv",
        ConnectorSettings(
            kind="rest",
            url=base_url + path,
            token="k3y",
            auth_header="X-Api-Key",
            auth_scheme="",
            results="/data",
            fields={
                "name": "/hostname",
                "site": "/location/code",
                "region": "/location/region",
                "service": "/biz/system",
                "criticality": "/biz/level",
                "owner": "/contacts/0/email",
                "environment": "/env",
                "group": "/support/team",  # absent in the answer: left empty
            },
        ),
    )


def test_mapping_by_json_pointers(base_url: str) -> None:
    item = cmdb(base_url).find("db-bj-03")
    assert item == ConfigItem(
        name="db-bj-03",
        site="bj",
        region="north",
        service="payments",
        criticality="P1-critical",
        owner="dba@example.com",
        environment="prod",
    )
    assert Handler.seen[-1] == ("/ci?host=db-bj-03", "k3y")


def test_404_is_none_and_a_wrong_shape_is_refused(base_url: str) -> None:
    assert cmdb(base_url).find("nosuch") is None
    with pytest.raises(Refused, match="not an object"):
        cmdb(base_url, "/broken?host={host}").find("db-bj-03")


def test_a_template_without_host_or_an_unknown_field_stops_start_up() -> None:
    with pytest.raises(ValueError, match=r"\{host\}"):
        build_cmdb("x", ConnectorSettings(kind="rest", url="http://127.0.0.1/ci"))
    with pytest.raises(ValueError, match="unknown CI attribute sitee"):
        build_cmdb(
            "x",
            ConnectorSettings(kind="rest", url="http://h/{host}", fields={"sitee": "/a"}),
        )
