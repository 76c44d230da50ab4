"""VXLAN links, FDB entries, neighbour deletion and onlink routes, on both backends.

Two namespaces joined by a veth pair (the underlay) each get a VXLAN device
with learning off; the FDB entry, the permanent neighbour and the onlink
route each side programs are all a tunnel needs: a ping over VXLAN proves
the kernel took them as meant. Kernel state is read back with ``bridge -j``,
``ip -j`` and the backend's own readers; then everything is deleted, twice
(``missing_ok``).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

import pytest

from corecni.net import FdbEntry, Neighbour, NetBackend, NetError, Route, available_backends
from corecni.net import get_backend as _get_backend
from corecni.testing import ip_json, ns_name, ping

pytestmark = pytest.mark.root
NsFactory = Callable[..., str]
MACS = {1: "02:00:00:00:09:01", 2: "02:00:00:00:09:02"}


@pytest.fixture(params=available_backends())
def backend(request: pytest.FixtureRequest) -> NetBackend:
    return _get_backend(str(request.param))


def underlay(netns_factory: NsFactory) -> tuple[str, str]:
    a, b = netns_factory("vxa"), netns_factory("vxb")
    subprocess.run(["ip", "link", "add", "ua", "netns", ns_name(a), "type", "veth", "peer",
                    "name", "ub", "netns", ns_name(b)], check=True)
    for ns, dev, ip in ((a, "ua", "198.18.1.1/24"), (b, "ub", "198.18.1.2/24")):
        subprocess.run(["ip", "-n", ns_name(ns), "addr", "add", ip, "dev", dev], check=True)
        subprocess.run(["ip", "-n", ns_name(ns), "link", "set", dev, "up"], check=True)
    return a, b


def fdb_json(ns: str, dev: str) -> list[dict[str, object]]:
    out = subprocess.run(["bridge", "-n", ns_name(ns), "-j", "fdb", "show", "dev", dev],
                         check=True, capture_output=True, text=True).stdout
    return [e for e in json.loads(out or "[]") if e.get("dst")]


def test_vxlan_tunnel_from_fdb_neighbour_and_onlink_route(backend: NetBackend,
                                                          netns_factory: NsFactory) -> None:
    a, b = underlay(netns_factory)
    sides = {1: (a, "ua", "198.18.1.1"), 2: (b, "ub", "198.18.1.2")}
    for me, (ns, dev, ip) in sides.items():
        other = 3 - me
        batch = backend.batch(ns)
        batch.add_vxlan("vx0", 42, local=ip, port=8472, dev=dev, learning=False,
                        mac=MACS[me], mtu=1450)
        batch.add_address("vx0", f"10.9.{me}.0/32")
        batch.set_link("vx0", up=True)
        batch.add_fdb(FdbEntry("vx0", MACS[other], sides[other][2]))
        batch.add_neighbour(Neighbour("vx0", f"10.9.{other}.0", MACS[other]))
        batch.add_route(Route(dst=f"10.9.{other}.0/24", gateway=f"10.9.{other}.0",
                              ifname="vx0", onlink=True), replace=True)
        batch.commit()
    link = ip_json(a, "-d", "link", "show", "vx0")[0]
    info = link["linkinfo"]["info_data"]  # type: ignore[index]
    assert link["linkinfo"]["info_kind"] == "vxlan"  # type: ignore[index]
    assert info["id"] == 42 and info["port"] == 8472 and info["learning"] is False
    assert info["local"] == "198.18.1.1" and info["link"] == "ua"
    assert link["address"] == MACS[1] and link["mtu"] == 1450
    assert [(e["mac"], e["dst"]) for e in fdb_json(a, "vx0")] == [(MACS[2], "198.18.1.2")]
    assert backend.fdb("vx0", a) == [FdbEntry("vx0", MACS[2], "198.18.1.2")]
    routes = ip_json(a, "route", "show", "dev", "vx0")
    assert [(r["dst"], r.get("gateway"), "onlink" in r.get("flags", [])) for r in routes] == \
        [("10.9.2.0/24", "10.9.2.0", True)]
    assert ping(a, "10.9.2.0", deadline=5)  # over the tunnel

    # replacing is idempotent: programming the same peer again changes nothing
    batch = backend.batch(a)
    batch.add_fdb(FdbEntry("vx0", MACS[2], "198.18.1.2"))
    batch.add_neighbour(Neighbour("vx0", "10.9.2.0", MACS[2]))
    batch.add_route(Route(dst="10.9.2.0/24", gateway="10.9.2.0", ifname="vx0", onlink=True),
                    replace=True)
    batch.commit()
    assert len(fdb_json(a, "vx0")) == 1 and len(ip_json(a, "route", "show", "dev", "vx0")) == 1

    for _ in range(2):  # deletes, then deletes of nothing
        batch = backend.batch(a)
        batch.del_route(Route(dst="10.9.2.0/24", gateway="10.9.2.0", ifname="vx0"),
                        missing_ok=True)
        batch.del_neighbour(Neighbour("vx0", "10.9.2.0", MACS[2]), missing_ok=True)
        batch.del_fdb(FdbEntry("vx0", MACS[2], "198.18.1.2"), missing_ok=True)
        batch.commit()
    assert fdb_json(a, "vx0") == [] and backend.fdb("vx0", a) == []
    assert ip_json(a, "route", "show", "dev", "vx0") == []
    assert all(n.address != "10.9.2.0" for n in backend.neighbours(a, "vx0"))
    with pytest.raises(NetError) as info_err:
        backend.batch(a).del_fdb(FdbEntry("vx0", MACS[2], "198.18.1.2")).commit()
    assert info_err.value.op == "del_fdb"


def test_vxlan_on_a_missing_underlay_names_it(backend: NetBackend,
                                              netns_factory: NsFactory) -> None:
    ns = netns_factory("vxc")
    with pytest.raises(NetError) as info:
        backend.batch(ns).add_vxlan("vx0", 7, dev="nope0").commit()
    assert "nope0" in str(info.value)
    assert all(link["ifname"] != "vx0" for link in ip_json(ns, "link", "show"))
