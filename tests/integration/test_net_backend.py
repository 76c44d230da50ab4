"""Every net backend against the real kernel, inside throwaway namespaces.

Each test runs once per backend that loads here (``available_backends()``), so
the native backend inherits the whole suite. Kernel state is checked with
``ip -j`` (independently of the backend under test) and connectivity with ping.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from corecni import netns
from corecni.net import Neighbour, NetBackend, NetError, Route, available_backends
from corecni.net import get_backend as _get_backend
from corecni.testing import ip_json as _ip_json
from corecni.testing import ns_name, ping

pytestmark = pytest.mark.root

NsFactory = Callable[..., str]


@pytest.fixture(params=available_backends())
def backend(request: pytest.FixtureRequest) -> NetBackend:
    return _get_backend(str(request.param))


@pytest.fixture(autouse=True)
def _thread_netns_unchanged() -> Iterator[None]:
    """No backend call may leave the test thread in another namespace."""
    before = netns.current_inode()
    yield None
    assert netns.current_inode() == before


# --- helpers -----------------------------------------------------------------

def ip_json(path: str, *args: str) -> list[dict[str, Any]]:
    """``ip -j`` output, typed loosely: tests index into it freely."""
    return [dict(item) for item in _ip_json(path, *args)]


def link_json(path: str, name: str) -> dict[str, Any]:
    [item] = ip_json(path, "-d", "link", "show", "dev", name)
    return item


def link_names(path: str) -> set[str]:
    return {str(item["ifname"]) for item in ip_json(path, "link", "show")}


def addrs_json(path: str, ifname: str) -> set[str]:
    out = set()
    for item in ip_json(path, "addr", "show", "dev", ifname):
        for info in item["addr_info"]:
            out.add(f"{info['local']}/{info['prefixlen']}")
    return out


def attach(backend: NetBackend, node: str, ctr: str, host_if: str, ip4: str, ip6: str,
           bridge: str = "cni0") -> None:
    """What a bridge plugin does: veth into the container, port on the bridge, IPs, routes."""
    (backend.batch(node)
     .add_veth(host_if, "eth0", peer_netns=ctr, mtu=1450)
     .set_link(host_if, master=bridge, up=True)
     .commit())
    (backend.batch(ctr)
     .set_link("eth0", up=True)
     .add_address("eth0", ip4)
     .add_address("eth0", ip6, nodad=True)
     .add_route(Route(dst="0.0.0.0/0", gateway="10.88.0.1"))
     .add_route(Route(dst="::/0", gateway="fd88::1"))
     .commit())


@pytest.fixture
def node_with_bridge(backend: NetBackend, node_netns: str) -> str:
    (backend.batch(node_netns)
     .add_bridge("cni0", mtu=1450)
     .add_address("cni0", "10.88.0.1/24")
     .add_address("cni0", "fd88::1/64", nodad=True)
     .set_link("cni0", up=True)
     .commit())
    return node_netns


# --- the container attach, end to end -------------------------------------------

def test_two_containers_on_a_bridge_reach_each_other_and_the_bridge(
        backend: NetBackend, node_with_bridge: str, netns_factory: NsFactory) -> None:
    node = node_with_bridge
    ctr1, ctr2 = netns_factory("ctr"), netns_factory("ctr")
    attach(backend, node, ctr1, "veth1", "10.88.0.2/24", "fd88::2/64")
    attach(backend, node, ctr2, "veth2", "10.88.0.3/24", "fd88::3/64")

    # the peer was created in the container, never in the node
    assert "eth0" not in link_names(node)
    host = link_json(node, "veth1")
    assert host["master"] == "cni0" and host["mtu"] == 1450
    eth0 = link_json(ctr1, "eth0")
    assert eth0["mtu"] == 1450 and "UP" in eth0["flags"]
    assert {"10.88.0.2/24", "fd88::2/64"} <= addrs_json(ctr1, "eth0")
    assert {"10.88.0.1/24", "fd88::1/64"} <= addrs_json(node, "cni0")
    v6 = [a for a in ip_json(ctr1, "-6", "addr", "show", "dev", "eth0")[0]["addr_info"]
          if a["local"] == "fd88::2"]
    assert "tentative" not in v6[0]  # nodad: usable at once
    default4 = ip_json(ctr1, "-4", "route", "show", "default")
    assert default4[0]["gateway"] == "10.88.0.1" and default4[0]["dev"] == "eth0"
    default6 = ip_json(ctr1, "-6", "route", "show", "default")
    assert default6[0]["gateway"] == "fd88::1"

    assert ping(ctr1, "10.88.0.3")
    assert ping(ctr2, "10.88.0.2")
    assert ping(ctr1, "10.88.0.1")
    assert ping(ctr1, "fd88::3", count=3)
    assert ping(ctr2, "fd88::1", count=3)
    # and the negative control: an address nobody holds does not answer
    assert not ping(ctr1, "10.88.0.99", deadline=1)


def test_reads_match_the_kernel(backend: NetBackend, node_with_bridge: str,
                                container_netns: str) -> None:
    node, ctr = node_with_bridge, container_netns
    attach(backend, node, ctr, "veth1", "10.88.0.2/24", "fd88::2/64")

    host = backend.link("veth1", node)
    eth0 = backend.link("eth0", ctr)
    bridge = backend.link("cni0", node)
    assert host is not None and eth0 is not None and bridge is not None
    assert backend.link("nosuch0", node) is None
    assert (host.kind, host.master, host.up, host.mtu) == ("veth", "cni0", True, 1450)
    assert host.hairpin is False and host.vlan_filtering is None
    assert eth0.peer_index == host.index and host.peer_index == eth0.index
    assert eth0.link_netnsid is not None and eth0.master is None and eth0.hairpin is None
    assert bridge.kind == "bridge" and bridge.vlan_filtering is False
    assert bridge.mac == str(link_json(node, "cni0")["address"])
    lo = backend.link("lo", ctr)
    assert lo is not None and lo.kind == "" and lo.up
    assert {link.name for link in backend.links(ctr)} == link_names(ctr)

    addrs = {a.address: a for a in backend.addresses(ctr, ifname="eth0")}
    assert addrs["10.88.0.2/24"].family == socket.AF_INET
    assert addrs["fd88::2/64"].family == socket.AF_INET6
    only6 = backend.addresses(ctr, family=socket.AF_INET6)
    assert only6 and all(a.family == socket.AF_INET6 for a in only6)
    assert "127.0.0.1/8" in {a.address for a in backend.addresses(ctr, ifname="lo")}

    routes = backend.routes(ctr)
    default4 = [r for r in routes if r.dst == "0.0.0.0/0"]
    default6 = [r for r in routes if r.dst == "::/0"]
    assert [(r.gateway, r.ifname, r.table) for r in default4] == [("10.88.0.1", "eth0", 254)]
    assert [(r.gateway, r.ifname) for r in default6] == [("fd88::1", "eth0")]
    connected = [r for r in routes if r.dst == "10.88.0.0/24"]
    assert connected[0].ifname == "eth0" and connected[0].src == "10.88.0.2"
    assert connected[0].scope == 253  # link
    assert all(r.table == 254 for r in routes)
    all_tables = backend.routes(ctr, family=socket.AF_INET, table=None)
    assert any(r.table == 255 and r.dst == "10.88.0.2/32" for r in all_tables)  # local table


def test_link_attributes_readback(backend: NetBackend, node_netns: str,
                                  container_netns: str) -> None:
    node, ctr = node_netns, container_netns
    (backend.batch(node)
     .add_bridge("br0", mac="02:00:00:00:0b:01")
     .add_veth("vh0", "tmp0", peer_netns=ctr, mtu=1400, mac="02:00:00:00:00:a1",
               peer_mac="02:00:00:00:00:b1")
     .set_link("vh0", master="br0", hairpin=True, promisc=True, alias="pod xyz", up=True)
     .set_link("br0", mtu=1300, up=True)
     .commit())
    backend.batch(ctr).set_link("tmp0", rename="eth0", mtu=1280, mac="02:00:00:00:00:c1").commit()

    host = link_json(node, "vh0")
    assert (host["mtu"], host["address"], host["ifalias"]) == (1400, "02:00:00:00:00:a1",
                                                               "pod xyz")
    assert "PROMISC" in host["flags"]
    assert host["linkinfo"]["info_slave_data"]["hairpin"] is True
    assert link_json(node, "br0")["address"] == "02:00:00:00:0b:01"
    peer = link_json(ctr, "eth0")
    assert "tmp0" not in link_names(ctr)
    assert (peer["mtu"], peer["address"]) == (1280, "02:00:00:00:00:c1")

    link = backend.link("vh0", node)
    assert link is not None
    assert (link.mtu, link.mac, link.promisc, link.hairpin, link.alias, link.master) == (
        1400, "02:00:00:00:00:a1", True, True, "pod xyz", "br0")
    eth0 = backend.link("eth0", ctr)
    assert eth0 is not None and (eth0.mtu, eth0.mac, eth0.promisc) == (
        1280, "02:00:00:00:00:c1", False)

    # and back off again: hairpin/promisc cleared, released from the bridge, down
    (backend.batch(node)
     .set_link("vh0", hairpin=False, promisc=False)
     .set_link("vh0", nomaster=True, up=False)
     .commit())
    host = link_json(node, "vh0")
    assert "master" not in host
    assert "PROMISC" not in host["flags"] and "UP" not in host["flags"]
    link = backend.link("vh0", node)
    assert link is not None and (link.promisc, link.hairpin, link.master, link.up) == (
        False, None, None, False)


def test_bridge_vlan_filtering(backend: NetBackend, node_netns: str) -> None:
    try:
        backend.batch(node_netns).add_bridge("vf0", vlan_filtering=True).commit()
    except NetError as exc:
        if exc.errno == errno.EOPNOTSUPP:
            pytest.skip(f"kernel has no bridge VLAN filtering: {exc}")
        raise
    info = link_json(node_netns, "vf0")["linkinfo"]["info_data"]
    assert info["vlan_filtering"] == 1
    link = backend.link("vf0", node_netns)
    assert link is not None and link.vlan_filtering is True


def test_peers_are_created_in_the_target_namespace_not_moved(
        backend: NetBackend, node_netns: str, container_netns: str) -> None:
    """Create-then-move would collide with the node's own ``eth0`` and ``mvl0``."""
    node, ctr = node_netns, container_netns
    for name in ("eth0", "mvl0"):
        subprocess.run(["ip", "-n", ns_name(node), "link", "add", name, "type", "bridge"],
                       check=True)
    (backend.batch(node)
     .add_veth("vx0", "eth0", peer_netns=ctr)
     .add_macvlan("mvl0", "vx0", netns=ctr)
     .commit())
    assert {"eth0", "mvl0"} <= link_names(ctr)
    assert link_json(node, "eth0")["linkinfo"]["info_kind"] == "bridge"
    assert link_json(ctr, "eth0")["linkinfo"]["info_kind"] == "veth"


def test_move_link_into_namespace(backend: NetBackend, node_netns: str,
                                  container_netns: str) -> None:
    node, ctr = node_netns, container_netns
    backend.batch(node).add_veth("mv0", "mv0p").set_link("mv0p", netns=ctr,
                                                         rename="eth1").commit()
    assert "mv0p" not in link_names(node) and "eth1" not in link_names(node)
    assert "eth1" in link_names(ctr)
    peer = backend.link("eth1", ctr)
    host = backend.link("mv0", node)
    assert peer is not None and host is not None and peer.peer_index == host.index


def test_macvlan_created_inside_the_container(backend: NetBackend, node_netns: str,
                                              container_netns: str) -> None:
    node, ctr = node_netns, container_netns
    # a veth stands in for the node's physical NIC
    backend.batch(node).add_veth("phys0", "phys0p").set_link("phys0", up=True).commit()
    (backend.batch(node)
     .add_macvlan("mvl0", "phys0", mode="bridge", netns=ctr, mtu=1400)
     .commit())
    assert "mvl0" not in link_names(node)
    item = link_json(ctr, "mvl0")
    assert item["mtu"] == 1400
    assert item["linkinfo"]["info_kind"] == "macvlan"
    assert item["linkinfo"]["info_data"]["mode"] == "bridge"
    link = backend.link("mvl0", ctr)
    assert link is not None and link.kind == "macvlan"


def test_macvlan_modes_read_back(backend: NetBackend, node_netns: str,
                                 container_netns: str) -> None:
    """``Link.mode`` names the kernel's mode in every mode this kernel creates on a veth
    (passthru takes a master of its own: it allows no other macvlan beside it)."""
    node, ctr = node_netns, container_netns
    (backend.batch(node)
     .add_veth("phys0", "phys0p").set_link("phys0", up=True)
     .add_veth("phys1", "phys1p").set_link("phys1", up=True)
     .add_macvlan("mvbridge", "phys0", mode="bridge", netns=ctr)
     .add_macvlan("mvprivate", "phys0", mode="private", netns=ctr)
     .add_macvlan("mvvepa", "phys0", mode="vepa")
     .add_macvlan("mvpassthru", "phys1", mode="passthru")
     .commit())
    where = {"bridge": ctr, "private": ctr, "vepa": node, "passthru": node}
    for mode, path in where.items():
        name = f"mv{mode}"
        assert link_json(path, name)["linkinfo"]["info_data"]["mode"] == mode
        link = backend.link(name, path)
        assert link is not None and (link.kind, link.mode, link.vlan_id) == (
            "macvlan", mode, None)
        assert [x for x in backend.links(path) if x.name == name] == [link]
    # other kinds report neither
    for link in backend.links(node):
        if link.kind != "macvlan":
            assert (link.mode, link.vlan_id) == (None, None), link


@pytest.mark.parametrize("kind", ["ipvlan", "vlan"])
def test_ipvlan_and_vlan(backend: NetBackend, node_netns: str, container_netns: str,
                         kind: str) -> None:
    node, ctr = node_netns, container_netns
    backend.batch(node).add_veth("phys0", "phys0p").commit()
    batch = backend.batch(node)
    if kind == "ipvlan":
        batch.add_ipvlan("sub0", "phys0", mode="l3", flag="private", netns=ctr, mtu=1400)
    else:
        batch.add_vlan("sub0", "phys0", 42, netns=ctr, mtu=1400)
    try:
        batch.commit()
    except NetError as exc:
        if exc.errno == errno.EOPNOTSUPP:
            pytest.skip(f"kernel has no {kind} support: {exc}")
        raise
    item = link_json(ctr, "sub0")
    assert item["mtu"] == 1400 and item["linkinfo"]["info_kind"] == kind
    data = item["linkinfo"]["info_data"]
    link = backend.link("sub0", ctr)
    assert link is not None
    if kind == "vlan":
        assert data["id"] == 42
        assert (link.mode, link.vlan_id) == (None, 42)
    else:
        assert data["mode"] == "l3"
        assert "private" in json.dumps(data)  # iproute2 prints the flag by name
        assert (link.mode, link.vlan_id) == ("l3", None)
    assert "sub0" not in link_names(node)


# --- routes and neighbours ------------------------------------------------------------

def test_route_options(backend: NetBackend, node_with_bridge: str,
                       container_netns: str) -> None:
    ctr = container_netns
    attach(backend, node_with_bridge, ctr, "veth1", "10.88.0.2/24", "fd88::2/64")
    (backend.batch(ctr)
     .add_route(Route(dst="10.99.0.0/16", gateway="10.88.0.1", table=100, priority=100,
                      mtu=1300, advmss=1260, src="10.88.0.2"))
     .add_route(Route(dst="10.98.0.0/16", ifname="eth0"))
     .add_route(Route(dst="fd99::/64", gateway="fd88::1", priority=50, mtu=1280))
     .commit())
    r = ip_json(ctr, "route", "show", "table", "100")[0]
    assert (r["dst"], r["gateway"], r["metric"], r["prefsrc"]) == (
        "10.99.0.0/16", "10.88.0.1", 100, "10.88.0.2")
    assert r["metrics"] == [{"mtu": 1300, "advmss": 1260}]
    onlink = ip_json(ctr, "route", "show", "10.98.0.0/16")[0]
    assert onlink["scope"] == "link" and "gateway" not in onlink
    r6 = ip_json(ctr, "-6", "route", "show", "fd99::/64")[0]
    assert (r6["gateway"], r6["metric"]) == ("fd88::1", 50)

    [t100] = backend.routes(ctr, table=100)
    assert t100 == Route(dst="10.99.0.0/16", gateway="10.88.0.1", ifname="eth0", table=100,
                         priority=100, scope=0, mtu=1300, advmss=1260, src="10.88.0.2",
                         proto=t100.proto)
    assert next(r for r in backend.routes(ctr) if r.dst == "10.98.0.0/16").scope == 253
    [v6] = [r for r in backend.routes(ctr, family=socket.AF_INET6) if r.dst == "fd99::/64"]
    assert (v6.gateway, v6.priority, v6.mtu, v6.ifname) == ("fd88::1", 50, 1280, "eth0")

    # replace rewrites in place; add of the same route is EEXIST
    backend.batch(ctr).add_route(Route(dst="10.98.0.0/16", gateway="10.88.0.3"),
                                 replace=True).commit()
    replaced = ip_json(ctr, "route", "show", "10.98.0.0/16")
    assert [x["gateway"] for x in replaced] == ["10.88.0.3"]
    with pytest.raises(NetError) as info:
        backend.batch(ctr).add_route(Route(dst="10.98.0.0/16", gateway="10.88.0.3")).commit()
    assert info.value.errno == errno.EEXIST and info.value.op == "add_route"

    # delete by the fields given
    (backend.batch(ctr)
     .del_route(Route(dst="10.99.0.0/16", table=100))
     .del_route(Route(dst="fd99::/64", gateway="fd88::1"))
     .commit())
    assert ip_json(ctr, "route", "show", "table", "100") == []
    assert ip_json(ctr, "-6", "route", "show", "fd99::/64") == []


def test_neighbours(backend: NetBackend, node_netns: str) -> None:
    node = node_netns
    # both ends up: with the peer down, the carrier-down event the kernel delivers late
    # (linkwatch, up to a second) flushes the non-permanent entry under the test's feet
    (backend.batch(node).add_veth("nb0", "nb0p").set_link("nb0", up=True)
     .set_link("nb0p", up=True).commit())
    (backend.batch(node)
     .add_neighbour(Neighbour("nb0", "10.77.0.5", "02:AA:BB:CC:DD:01"))
     .add_neighbour(Neighbour("nb0", "fd77::5", "02:aa:bb:cc:dd:02"))
     .add_neighbour(Neighbour("nb0", "10.77.0.6", "02:aa:bb:cc:dd:03", permanent=False))
     .commit())
    kernel = {n["dst"]: n for n in ip_json(node, "neigh", "show", "dev", "nb0")}
    assert kernel["10.77.0.5"]["lladdr"] == "02:aa:bb:cc:dd:01"
    assert kernel["10.77.0.5"]["state"] == ["PERMANENT"]
    assert kernel["fd77::5"]["state"] == ["PERMANENT"]
    assert kernel["10.77.0.6"]["state"] != ["PERMANENT"]

    mine = {n.address: n for n in backend.neighbours(node, ifname="nb0")}
    assert mine["10.77.0.5"] == Neighbour("nb0", "10.77.0.5", "02:aa:bb:cc:dd:01", True)
    assert mine["fd77::5"].permanent and mine["10.77.0.6"].permanent is False
    assert backend.neighbours(node, ifname="lo") == []

    # replace (the default) updates the MAC of an existing entry
    backend.batch(node).add_neighbour(Neighbour("nb0", "10.77.0.5", "02:aa:bb:cc:dd:99")).commit()
    assert ip_json(node, "neigh", "show", "10.77.0.5")[0]["lladdr"] == "02:aa:bb:cc:dd:99"


# --- failures and rollback ---------------------------------------------------

@pytest.mark.parametrize(("failing", "op", "obj", "err"), [
    ("add_address", "add_address", "nosuch0 10.0.0.2/24", errno.ENODEV),
    ("add_bridge", "add_bridge", "pre0", errno.EEXIST),
], ids=["enodev", "eexist"])
def test_failed_batch_removes_every_link_it_created(
        backend: NetBackend, node_netns: str, container_netns: str,
        failing: str, op: str, obj: str, err: int) -> None:
    node, ctr = node_netns, container_netns
    subprocess.run(["ip", "-n", ns_name(node), "link", "add", "pre0", "type", "bridge"],
                   check=True)
    before_node, before_ctr = link_names(node), link_names(ctr)

    batch = (backend.batch(node)
             .add_bridge("rb0")                                          # 1
             .add_veth("rv0", "reth0", peer_netns=ctr)                   # 2
             .add_macvlan("rmv0", "rv0", netns=ctr))                     # 3
    if failing == "add_address":
        batch.add_address("nosuch0", "10.0.0.2/24")                      # 4
    else:
        batch.add_bridge("pre0")                                         # 4
    (batch.set_link("rv0", master="rb0", up=True)                        # 5
     .add_bridge("late0")                                                # 6
     .add_address("rb0", "10.0.0.1/24"))                                 # 7

    with pytest.raises(NetError) as info:
        batch.commit()
    assert (info.value.op, info.value.obj, info.value.errno) == (op, obj, err)
    assert errno.errorcode[err] in str(info.value)
    # nothing the batch created survives, in either namespace; pre-existing links do
    assert link_names(node) == before_node
    assert link_names(ctr) == before_ctr
    assert "pre0" in link_names(node)


def test_rollback_follows_renamed_and_moved_links(backend: NetBackend, node_netns: str,
                                                  container_netns: str) -> None:
    node, ctr = node_netns, container_netns
    with pytest.raises(NetError) as info:
        (backend.batch(node)
         .add_veth("tv0", "tp0")
         .set_link("tv0", rename="tv1", netns=ctr)
         .set_link("nosuch0", up=True)
         .commit())
    assert (info.value.op, info.value.obj, info.value.errno) == (
        "set_link", "nosuch0", errno.ENODEV)
    assert link_names(ctr) == {"lo"}
    assert link_names(node) == {"lo"}


def test_errors_carry_the_kernel_errno(backend: NetBackend, node_netns: str) -> None:
    node = node_netns
    backend.batch(node).add_veth("e0", "e0p").add_address("e0", "10.5.0.1/24").commit()
    cases: list[tuple[Callable[[], None], str, int]] = [
        (lambda: backend.batch(node).add_veth("e0", "other0").commit(), "add_veth", errno.EEXIST),
        (lambda: backend.batch(node).add_address("e0", "10.5.0.1/24").commit(),
         "add_address", errno.EEXIST),
        (lambda: backend.batch(node).set_link("ghost0", mtu=1400).commit(), "set_link",
         errno.ENODEV),
        (lambda: backend.batch(node).del_link("ghost0").commit(), "del_link", errno.ENODEV),
        (lambda: backend.batch(node).add_route(Route(dst="10.6.0.0/16", ifname="ghost0")).commit(),
         "add_route", errno.ENODEV),
        (lambda: backend.batch(node).del_address("e0", "10.5.0.9/24").commit(), "del_address",
         errno.EADDRNOTAVAIL),
        (lambda: backend.batch(node).del_route(Route(dst="10.6.0.0/16")).commit(), "del_route",
         errno.ESRCH),
    ]
    for call, op, err in cases:
        with pytest.raises(NetError) as info:
            call()
        assert (info.value.op, info.value.errno) == (op, err), str(info.value)
    # the failures left the existing link alone
    assert addrs_json(node, "e0") == {"10.5.0.1/24"}


def test_missing_batch_namespace_is_a_net_error(backend: NetBackend) -> None:
    with pytest.raises(NetError) as info:
        backend.batch("/run/netns/ccni-does-not-exist").add_bridge("x0").commit()
    assert info.value.errno == errno.ENOENT
    assert not os.path.exists("/run/netns/ccni-does-not-exist")  # and was not created


def test_deletes(backend: NetBackend, node_netns: str) -> None:
    node = node_netns
    (backend.batch(node)
     .add_veth("d0", "d0p")
     .set_link("d0", up=True)
     .add_address("d0", "10.7.0.1/24")
     .add_address("d0", "fd07::1/64", nodad=True)
     .add_route(Route(dst="10.8.0.0/16", gateway="10.7.0.254"))
     .commit())
    (backend.batch(node)
     .del_route(Route(dst="10.8.0.0/16", gateway="10.7.0.254"))
     .del_address("d0", "fd07::1/64")
     .commit())
    assert ip_json(node, "route", "show", "10.8.0.0/16") == []
    assert addrs_json(node, "d0") == {"10.7.0.1/24"} | {
        a for a in addrs_json(node, "d0") if a.startswith("fe80:")}

    # missing_ok: gone already is success, for every kind of object
    (backend.batch(node)
     .del_route(Route(dst="10.8.0.0/16", gateway="10.7.0.254"), missing_ok=True)
     .del_route(Route(dst="10.9.0.0/16", ifname="ghost0"), missing_ok=True)
     .del_address("d0", "fd07::1/64", missing_ok=True)
     .del_address("ghost0", "10.0.0.1/24", missing_ok=True)
     .del_link("ghost0", missing_ok=True)
     .del_link("d0", missing_ok=True)
     .del_link("d0", missing_ok=True)
     .commit())
    assert link_names(node) == {"lo"}  # deleting d0 took its peer with it


# --- sysctls ----------------------------------------------------------------

def _root_sysctl(key: str) -> str:
    with open(f"/proc/sys/net/{key}") as fh:
        return fh.read().strip()


def test_sysctl_inside_a_namespace_only(backend: NetBackend, node_netns: str) -> None:
    node = node_netns
    root_forward = _root_sysctl("ipv4/ip_forward")
    root_rp = _root_sysctl("ipv4/conf/all/rp_filter")
    target = "0" if root_forward == "1" else "1"
    backend.batch(node).add_veth("s0", "s0p").commit()

    backend.sysctl_set("ipv4/ip_forward", target, node)
    backend.sysctl_set("ipv4/conf/all/rp_filter", "2", node)
    backend.sysctl_set("ipv6/conf/s0/accept_dad", "0", node)

    assert backend.sysctl_get("ipv4/ip_forward", node) == target
    seen = subprocess.run(["ip", "netns", "exec", ns_name(node), "cat",
                           "/proc/sys/net/ipv4/ip_forward",
                           "/proc/sys/net/ipv6/conf/s0/accept_dad"],
                          check=True, capture_output=True, text=True).stdout.split()
    assert seen == [target, "0"]
    assert backend.sysctl_get("ipv4/conf/all/rp_filter", node) == "2"
    # the machine's own namespace is untouched
    assert _root_sysctl("ipv4/ip_forward") == root_forward
    assert _root_sysctl("ipv4/conf/all/rp_filter") == root_rp
    assert backend.sysctl_get("ipv4/ip_forward") == root_forward

    with pytest.raises(NetError) as info:
        backend.sysctl_get("ipv6/conf/ghost0/accept_dad", node)
    assert info.value.errno == errno.ENOENT
    with pytest.raises(NetError):
        backend.sysctl_get("../../kernel/hostname", node)



def test_per_device_settings_read_as_the_files_show_them(backend: NetBackend,
                                                         node_netns: str) -> None:
    """Per-device IP settings are read as /proc shows them, whichever way the backend
    reads them (the native one asks netlink, which reports them with the link): every
    setting it knows, on a link some of which were changed, then on a link that is
    gone (the file's ENOENT)."""
    from corecni.net._common import DEVCONF_INDEX

    node = node_netns
    backend.batch(node).add_veth("d0", "d0p").commit()
    changed = {"ipv4/conf/d0/route_localnet": "1", "ipv4/conf/d0/arp_notify": "1",
               "ipv4/conf/d0/rp_filter": "2", "ipv6/conf/d0/accept_dad": "0",
               "ipv6/conf/d0/accept_ra": "2", "ipv6/conf/d0/addr_gen_mode": "1"}
    for key, value in changed.items():
        backend.sysctl_set(key, value, node)
    keys = [f"{family}/conf/d0/{name}" for family, names in DEVCONF_INDEX.items()
            for name in names]
    files = subprocess.run(["ip", "netns", "exec", ns_name(node), "cat",
                            *(f"/proc/sys/net/{key}" for key in keys)],
                           check=True, capture_output=True, text=True).stdout.split()
    assert [backend.sysctl_get(key, node) for key in keys] == files
    assert all(backend.sysctl_get(key, node) == value for key, value in changed.items())
    backend.batch(node).del_link("d0").commit()
    for key in ("ipv4/conf/d0/route_localnet", "ipv6/conf/d0/accept_ra"):
        with pytest.raises(NetError) as info:
            backend.sysctl_get(key, node)
        assert info.value.errno == errno.ENOENT


def test_none_means_the_calling_threads_namespace(backend: NetBackend, in_node: str) -> None:
    backend.batch().add_bridge("cur0").set_link("cur0", up=True).commit()
    assert "cur0" in link_names(in_node)
    assert backend.link("cur0") is not None
    backend.sysctl_set("ipv4/conf/cur0/forwarding", "1")
    assert backend.sysctl_get("ipv4/conf/cur0/forwarding", in_node) == "1"


def test_a_bug_mid_batch_still_rolls_back(node_netns: str) -> None:
    """Not a kernel answer but a bug: links are removed, the exception is kept."""
    from corecni.net.pyroute2_backend import Pyroute2Batch, _Session

    def boom(session: _Session) -> None:
        raise KeyError("bug")

    batch = Pyroute2Batch(node_netns).add_bridge("bug0")
    batch._queue("boom", "x", boom)
    with pytest.raises(KeyError):
        batch.commit()
    assert link_names(node_netns) == {"lo"}
