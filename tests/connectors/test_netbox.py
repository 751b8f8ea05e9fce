"""The NetBox connector against a NetBox-shaped server on loopback (real HTTP, no mocks)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from connectors.base import BreakerOpen, ConfigItem, Refused, Unavailable
from connectors.netbox import NetBox
from connectors.settings import ConnectorSettings
from tests.connectors.netbox_server import TOKEN, NetBoxServer


class Tick:
    """A monotonic clock tests move by hand; `sleep` moves it too and records the waits."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


@pytest.fixture
def server() -> Iterator[NetBoxServer]:
    srv = NetBoxServer().start()
    yield srv
    srv.stop()


def netbox(server: NetBoxServer, tick: Tick | None = None, **kw) -> NetBox:
    tick = tick or Tick()
    conf = ConnectorSettings(kind="netbox", url=server.url, token=TOKEN, **kw)
    return NetBox("nb", conf, now=tick, sleep=tick.sleep)


def test_device_by_name_maps_site_region_tenant_role_and_custom_fields(server) -> None:
    item = netbox(server).find("db-bj-03")
    assert item == ConfigItem(
        name="db-bj-03",
        kind="device",
        owner="dba@example.com",
        site="bj",
        region="north-china",
        tenant="dba",
        role="database-server",
        status="active",
        service="payments",
        environment="production",
        criticality="critical",
        url="http://netbox.example/dcim/devices/3/",
    )
    assert item.labels()["cmdb.site"] == "bj" and "cmdb.group" not in item.labels()


def test_owner_falls_back_to_the_tenant_and_fqdn_to_the_short_name(server) -> None:
    item = netbox(server).find("web-sh-01.prod.example.com")
    assert (item.name, item.owner, item.site, item.region) == (
        "web-sh-01",
        "DBA Team",
        "sh",
        "east-china",
    )


def test_virtual_machine_takes_its_site_from_the_cluster(server) -> None:
    item = netbox(server).find("vm-bj-07")
    assert (item.kind, item.site, item.service, item.owner) == ("vm", "bj", "search", "")


def test_ip_address_leads_to_the_device_or_vm_that_holds_it(server) -> None:
    nb = netbox(server)
    assert nb.find("10.1.2.3").name == "db-bj-03"
    assert nb.find("10.7.0.40").name == "vm-bj-07"
    assert "/api/dcim/devices/3/" in server.requests


def test_unknown_host_and_a_deleted_assigned_object_are_none(server) -> None:
    nb = netbox(server)
    assert nb.find("nosuch-host") is None
    assert nb.find("10.9.9.9") is None  # the device URL answers 404
    assert "/api/dcim/devices/999/" in server.requests


def test_pages_are_followed_and_the_live_object_wins(server) -> None:
    server.max_page = 1
    item = netbox(server).find("app-twin")
    assert (item.status, item.service, item.site) == ("active", "billing", "bj")
    pages = [r for r in server.requests if r.startswith("/api/dcim/devices/?")]
    assert len(pages) == 2 and "offset=1" in pages[1]


def test_500_is_retried_then_succeeds(server) -> None:
    server.script = [(500, {}), (502, {})]
    nb = netbox(server, retries=2)
    assert nb.find("db-bj-03").site == "bj"
    assert nb.attempts == 2 + 2  # two failures, the device list, then its site


def test_429_waits_for_retry_after(server) -> None:
    server.script = [(429, {"Retry-After": "3"})]
    tick = Tick()
    assert netbox(server, tick).find("db-bj-03") is not None
    assert tick.slept == [3.0]


def test_retry_after_longer_than_the_budget_gives_up_without_waiting(server) -> None:
    server.script = [(429, {"Retry-After": "30"})]
    tick = Tick()
    with pytest.raises(Unavailable):
        netbox(server, tick).find("db-bj-03", deadline=tick() + 0.2)
    assert tick.slept == []


def test_4xx_is_not_retried(server) -> None:
    conf = ConnectorSettings(kind="netbox", url=server.url, token="wrong", retries=3)
    nb = NetBox("nb", conf)
    with pytest.raises(Refused, match="403"):
        nb.find("db-bj-03")
    assert nb.attempts == 1
    assert nb.breaker.failures == 0  # a bad token is not an outage


def test_breaker_opens_after_consecutive_failures_and_half_opens(server) -> None:
    server.down_status = 503
    tick = Tick()
    nb = netbox(server, tick, retries=1, breaker_failures=2, breaker_seconds=30)
    for _ in range(2):
        with pytest.raises(Unavailable):
            nb.find("db-bj-03")
    assert nb.attempts == 4
    with pytest.raises(BreakerOpen):
        nb.find("db-bj-03")
    assert nb.attempts == 4  # failed fast: no request
    assert breaker_gauge(nb.name) == 1
    server.down_status = 0
    tick.t += 31
    assert nb.find("db-bj-03") is not None  # the trial call closes it again
    assert not nb.breaker.is_open and nb.breaker.failures == 0
    assert breaker_gauge(nb.name) == 0


def breaker_gauge(name: str) -> float | None:
    return REGISTRY.get_sample_value("gateway_connector_breaker_open", {"connector": name})
