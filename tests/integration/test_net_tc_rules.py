"""The link layer's newer requests against the real kernel, on every backend:
ifb, tap, dummy and vrf links; promisc/allmulti/txqlen; tbf, ingress and clsact
qdiscs; a redirect filter to an ifb device; policy rules; routes in other tables.

Kernel state is read back twice: through the backend under test and with
``tc -j`` / ``ip -j`` (independent of both backends). The kernel here has no
dummy or vrf module: those tests skip with the kernel's answer printed (their
requests are checked byte by byte in tests/unit/test_native_messages.py).
"""

from __future__ import annotations

import errno
import json
import socket
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from corecni.net import (
    TC_H_INGRESS,
    TC_H_INGRESS_HANDLE,
    Filter,
    NetBackend,
    NetError,
    Qdisc,
    Route,
    Rule,
    available_backends,
    get_backend,
    tbf_buffer,
    tc_handle,
)
from corecni.testing import ip_json, ns_name

pytestmark = pytest.mark.root

NsFactory = Callable[..., str]


@pytest.fixture(params=available_backends())
def backend(request: pytest.FixtureRequest) -> NetBackend:
    return get_backend(str(request.param))


@pytest.fixture
def ns(netns_factory: NsFactory) -> str:
    return netns_factory("tc")


def tc_json(path: str, *args: str) -> list[dict[str, Any]]:
    out = subprocess.run(["tc", "-n", ns_name(path), "-j", *args], check=True,
                         capture_output=True, text=True).stdout
    return list(json.loads(out or "[]"))


def skip_unless_kernel_has(backend: NetBackend, ns: str, kind: str,
                           make: Callable[[Any], Any]) -> None:
    """Skip (printing the kernel's answer) when this kernel cannot create ``kind`` links."""
    try:
        make(backend.batch(ns)).commit()
    except NetError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.ENOTSUP):
            pytest.skip(f"kernel cannot create {kind} links here: {exc}")
        raise


# --- links ---------------------------------------------------------------------------

def test_ifb_and_link_tuning(backend: NetBackend, ns: str) -> None:
    (backend.batch(ns).add_veth("v0", "v1").add_ifb("ifb0", mtu=1400)
     .set_link("v0", promisc=True, allmulti=True, txqlen=321, up=True).commit())
    v0, ifb = backend.link("v0", ns), backend.link("ifb0", ns)
    assert v0 is not None and ifb is not None
    assert (v0.promisc, v0.allmulti, v0.txqlen, v0.up) == (True, True, 321, True)
    assert (ifb.kind, ifb.mtu) == ("ifb", 1400)
    [raw] = ip_json(ns, "-d", "link", "show", "dev", "v0")
    assert {"PROMISC", "ALLMULTI"} <= set(raw["flags"]) and raw["txqlen"] == 321
    backend.batch(ns).set_link("v0", promisc=False, allmulti=False).commit()
    v0 = backend.link("v0", ns)
    assert v0 is not None and (v0.promisc, v0.allmulti) == (False, False)
    [raw] = ip_json(ns, "-d", "link", "show", "dev", "ifb0")
    assert raw["linkinfo"]["info_kind"] == "ifb"


def test_tap_is_persistent_and_configured(backend: NetBackend, ns: str) -> None:
    backend.batch(ns).add_tap("tap0", mtu=1300, mac="02:00:00:00:00:07",
                              multi_queue=True, owner=0, group=0).commit()
    tap = backend.link("tap0", ns)
    assert tap is not None and (tap.kind, tap.mtu, tap.mac) == ("tun", 1300, "02:00:00:00:00:07")
    [raw] = ip_json(ns, "-d", "link", "show", "dev", "tap0")
    info = raw["linkinfo"]["info_data"]
    assert info["type"] == "tap" and info["multi_queue"] is True and info["pi"] is False
    with pytest.raises(NetError) as exc:  # TUNSETIFF would attach to it: refused instead
        backend.batch(ns).add_tap("tap0").commit()
    assert exc.value.errno == errno.EEXIST
    backend.batch(ns).del_link("tap0").commit()
    assert backend.link("tap0", ns) is None


def test_tap_created_in_a_failed_batch_is_rolled_back(backend: NetBackend, ns: str) -> None:
    with pytest.raises(NetError) as exc:
        backend.batch(ns).add_tap("tap1").set_link("ghost0", up=True).commit()
    assert exc.value.op == "set_link"
    assert backend.link("tap1", ns) is None


def test_dummy_in_another_namespace(backend: NetBackend, ns: str,
                                    netns_factory: NsFactory) -> None:
    other = netns_factory("dum")
    skip_unless_kernel_has(backend, ns, "dummy",
                           lambda b: b.add_dummy("dum0", netns=other, mtu=1400))
    link = backend.link("dum0", other)
    assert link is not None and (link.kind, link.mtu) == ("dummy", 1400)


def test_vrf_with_its_table(backend: NetBackend, ns: str) -> None:
    skip_unless_kernel_has(backend, ns, "vrf", lambda b: b.add_vrf("vrf0", 1001))
    link = backend.link("vrf0", ns)
    assert link is not None and (link.kind, link.vrf_table) == ("vrf", 1001)


# --- traffic control -----------------------------------------------------------------

def bandwidth_like(backend: NetBackend, ns: str) -> None:
    """What Go's bandwidth plugin builds: tbf on the host veth, ingress + a u32 redirect
    to an ifb device that carries a tbf of its own."""
    (backend.batch(ns).add_veth("v0", "v1").add_ifb("ifb0").set_link("ifb0", up=True)
     .set_link("v0", up=True).commit())
    (backend.batch(ns)
     .add_qdisc(Qdisc("v0", "tbf", handle=tc_handle(1), rate=125_000, burst=15_625,
                      limit=128_125))
     .add_qdisc(Qdisc("v0", "ingress", handle=TC_H_INGRESS_HANDLE, parent=TC_H_INGRESS))
     .add_filter(Filter("v0", TC_H_INGRESS_HANDLE, classid=tc_handle(1, 1), redirect="ifb0"))
     .add_qdisc(Qdisc("ifb0", "tbf", handle=tc_handle(1), rate=1_250_000, burst=31_250,
                      limit=62_500))
     .commit())


def test_tbf_ingress_and_redirect(backend: NetBackend, ns: str) -> None:
    bandwidth_like(backend, ns)
    by_dev = {(q["dev"], q["kind"]): q for q in tc_json(ns, "qdisc", "show")}
    tbf = by_dev["v0", "tbf"]
    assert tbf["handle"] == "1:" and tbf["root"] is True
    assert (tbf["options"]["rate"], tbf["options"]["burst"]) == (125_000, 15_625)
    assert by_dev["v0", "ingress"]["parent"] == "ffff:fff1"
    assert by_dev["ifb0", "tbf"]["options"]["rate"] == 1_250_000
    [flt] = [f for f in tc_json(ns, "filter", "show", "dev", "v0", "ingress")
             if "actions" in f.get("options", {})]
    assert (flt["kind"], flt["protocol"], flt["pref"], flt["options"]["flowid"]) == (
        "u32", "all", 1, "1:1")
    [act] = flt["options"]["actions"]
    assert (act["kind"], act["mirred_action"], act["direction"], act["to_dev"]) == (
        "mirred", "redirect", "egress", "ifb0")
    # read back through the backend
    mine = {q.kind: q for q in backend.qdiscs(ns, "v0")}
    assert mine["tbf"].rate == 125_000 and mine["tbf"].limit == 128_125
    assert mine["tbf"].buffer == tbf_buffer(125_000, 15_625)
    assert mine["tbf"].burst == 15_625
    assert (mine["ingress"].handle, mine["ingress"].parent) == (TC_H_INGRESS_HANDLE,
                                                                 TC_H_INGRESS)
    [f] = backend.filters("v0", TC_H_INGRESS_HANDLE, ns)
    assert (f.kind, f.priority, f.protocol, f.classid, f.redirect) == (
        "u32", 1, 0x0003, tc_handle(1, 1), "ifb0")


def test_traffic_is_redirected_to_the_ifb(backend: NetBackend, ns: str,
                                          netns_factory: NsFactory) -> None:
    """Packets arriving on v0 leave through ifb0 (its counters move), not only rules."""
    peer = netns_factory("tcp")
    (backend.batch(ns).add_veth("v0", "v1", peer_netns=peer).add_ifb("ifb0")
     .set_link("ifb0", up=True).set_link("v0", up=True).add_address("v0", "10.77.0.1/24")
     .commit())
    backend.batch(peer).set_link("v1", up=True).add_address("v1", "10.77.0.2/24").commit()
    (backend.batch(ns)
     .add_qdisc(Qdisc("v0", "ingress", handle=TC_H_INGRESS_HANDLE, parent=TC_H_INGRESS))
     .add_filter(Filter("v0", TC_H_INGRESS_HANDLE, redirect="ifb0")).commit())
    subprocess.run(["ip", "netns", "exec", ns_name(peer), "ping", "-c", "3", "-i", "0.2", "-W",
                    "1", "10.77.0.1"], capture_output=True, check=False)
    [ifb] = ip_json(ns, "-s", "link", "show", "dev", "ifb0")
    assert ifb["stats64"]["tx"]["packets"] >= 3


def test_matchall_filter(backend: NetBackend, ns: str) -> None:
    backend.batch(ns).add_veth("v0", "v1").add_ifb("ifb0").commit()
    (backend.batch(ns)
     .add_qdisc(Qdisc("v0", "clsact", handle=TC_H_INGRESS_HANDLE, parent=TC_H_INGRESS))
     .commit())
    try:
        backend.batch(ns).add_filter(Filter("v0", 0xFFFFFFF2, kind="matchall", priority=5,
                                            redirect="ifb0")).commit()
    except NetError as exc:
        if exc.errno == errno.ENOENT:  # "TC classifier not found": CONFIG_NET_CLS_MATCHALL off
            pytest.skip(f"kernel has no matchall classifier: {exc}")
        raise
    [flt] = [f for f in tc_json(ns, "filter", "show", "dev", "v0", "ingress") if "options" in f]
    assert (flt["kind"], flt["pref"]) == ("matchall", 5)
    [f] = backend.filters("v0", 0xFFFFFFF2, ns)
    assert (f.kind, f.redirect) == ("matchall", "ifb0")


def test_tc_deletes(backend: NetBackend, ns: str) -> None:
    bandwidth_like(backend, ns)
    backend.batch(ns).del_filter(Filter("v0", TC_H_INGRESS_HANDLE)).commit()
    assert backend.filters("v0", TC_H_INGRESS_HANDLE, ns) == []
    backend.batch(ns).del_qdisc("v0").del_qdisc("v0", parent=TC_H_INGRESS).commit()
    assert {q.kind for q in backend.qdiscs(ns, "v0")} <= {"noqueue"}
    # gone already, or the link itself: missing_ok accepts it, plain delete does not
    (backend.batch(ns).del_qdisc("v0", missing_ok=True)
     .del_qdisc("v0", parent=TC_H_INGRESS, missing_ok=True)
     .del_filter(Filter("v0", TC_H_INGRESS_HANDLE), missing_ok=True)
     .del_qdisc("ghost0", missing_ok=True).commit())
    with pytest.raises(NetError) as exc:
        backend.batch(ns).del_qdisc("v0").commit()
    assert exc.value.errno in (errno.ENOENT, errno.EINVAL)


def test_tbf_needs_rate_burst_and_limit(backend: NetBackend) -> None:
    for bad in (Qdisc("v0", "tbf", rate=1000, limit=10), Qdisc("v0", "tbf", burst=10, limit=10),
                Qdisc("v0", "tbf", rate=-5, burst=10, limit=10),
                Qdisc("v0", "tbf", rate=1000, burst=10)):
        with pytest.raises(NetError) as exc:
            backend.batch(None).add_qdisc(bad)
        assert exc.value.errno == errno.EINVAL


# --- rules and tables ------------------------------------------------------------------

def test_rules_add_read_delete(backend: NetBackend, ns: str) -> None:
    backend.batch(ns).add_veth("v0", "v1").commit()
    rules = [Rule(table=100, src="10.1.2.3/32"),
             Rule(table=101, priority=1000, dst="fd00::/64", iif="v0"),
             Rule(table=1002, priority=1001, oif="v1", src="10.9.0.0/16")]
    batch = backend.batch(ns)
    for rule in rules:
        batch.add_rule(rule)
    batch.commit()
    got = backend.rules(ns)
    v4 = {(r.priority, r.table): r for r in backend.rules(ns, socket.AF_INET)}
    assert v4[32765, 100].src == "10.1.2.3/32"  # no priority given: the kernel's next free
    assert v4[1001, 1002] == Rule(table=1002, priority=1001, src="10.9.0.0/16", oif="v1")
    assert Rule(table=101, priority=1000, dst="fd00::/64", iif="v0",
                family=socket.AF_INET6) in got
    assert {(r.table, r.priority) for r in got if r.family == socket.AF_INET} >= {
        (255, 0), (254, 32766), (253, 32767)}
    ip_rules = {(r["priority"], str(r["table"])) for r in ip_json(ns, "rule", "show")}
    assert {(32765, "100"), (1001, "1002")} <= ip_rules
    with pytest.raises(NetError) as exc:
        backend.batch(ns).add_rule(rules[1]).commit()
    assert exc.value.errno == errno.EEXIST
    batch = backend.batch(ns)
    for rule in rules:
        batch.del_rule(rule)
    batch.commit()
    assert len(backend.rules(ns)) == len(got) - 3
    backend.batch(ns).del_rule(rules[0], missing_ok=True).commit()
    with pytest.raises(NetError) as exc:
        backend.batch(ns).del_rule(rules[0]).commit()
    assert exc.value.errno == errno.ENOENT


def test_bad_rules_are_refused_when_queued(backend: NetBackend) -> None:
    for bad in (Rule(table=100, src="10.0.0.0/8", dst="fd00::/64"),
                Rule(table=100, src="10.0.0.1/8"), Rule(table=100, src="nope")):
        with pytest.raises(NetError) as exc:
            backend.batch(None).add_rule(bad)
        assert (exc.value.op, exc.value.errno) == ("add_rule", errno.EINVAL)


@pytest.mark.parametrize("table", [100, 1000])  # <256 fits the header, above only RTA_TABLE
def test_routes_in_another_table(backend: NetBackend, ns: str, table: int) -> None:
    (backend.batch(ns).add_veth("v0", "v1").set_link("v0", up=True).set_link("v1", up=True)
     .add_address("v0", "10.5.0.2/24").add_address("v0", "fd05::2/64", nodad=True).commit())
    routes = [Route(dst="0.0.0.0/0", gateway="10.5.0.1", ifname="v0", table=table),
              Route(dst="10.6.0.0/16", ifname="v0", table=table, priority=20),
              Route(dst="::/0", gateway="fd05::1", ifname="v0", table=table)]
    batch = backend.batch(ns)
    for route in routes:
        batch.add_route(route)
    batch.commit()
    got = backend.routes(ns, table=table)
    assert {(r.dst, r.gateway, r.ifname, r.table) for r in got} == {
        (r.dst, r.gateway, r.ifname, table) for r in routes}
    assert not any(r.dst == "10.6.0.0/16" for r in backend.routes(ns))  # not in main
    shown = ip_json(ns, "route", "show", "table", str(table))
    assert {r["dst"] for r in shown} == {"default", "10.6.0.0/16"}
    batch = backend.batch(ns)
    for route in routes:
        batch.del_route(route)
    batch.commit()
    assert backend.routes(ns, table=table) == []
    backend.batch(ns).del_route(routes[0], missing_ok=True).commit()
