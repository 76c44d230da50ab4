"""What macvlan, ipvlan, vlan and host-device ask of the link layer, without a kernel.

The kernel here has no ipvlan or 8021q module, so the requests those plugins
send are checked against a recording stand-in for ``corecni.net``'s
``NetBackend``/``Batch`` (the same Protocols the real backends implement): it
keeps just enough link state (names, kinds, namespaces) for the plugins'
read-backs, logs every committed request in order, and can refuse one to
exercise the failure paths. IPAM is a recording ``Delegate``. The sysfs
lookups of host-device run against a fake sysfs tree.
"""

from __future__ import annotations

import errno
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from corecni_contrib import host_device, ipvlan, macvlan, vlan

import corecni.kit
import corecni.kit.links
from corecni.net import Link, Route
from corecni.request import Request
from corecni.spec.config import PluginConfig
from corecni.spec.errors import CNIError
from corecni.spec.result import DNS, Interface, IPConfig, Result
from corecni.spec.result import Route as ResultRoute
from corecni.testing.fake_net import CTR, NODE, FakeBackend, FakeDelegate, Op, make_link

TMP = "cnitmp00"


IPAM_RESULT = Result(cni_version="1.0.0", ips=(IPConfig(address="10.1.0.5/24",
                                                        gateway="10.1.0.1"),),
                     routes=(ResultRoute(dst="0.0.0.0/0"),),
                     dns=DNS(nameservers=("10.1.0.53",)))


def request(conf: dict[str, Any], command: str = "ADD", *, netns: str = CTR,
            ifname: str = "eth0", delegate: FakeDelegate | None = None,
            args: tuple[tuple[str, str], ...] = (), prev: Result | None = None) -> Request:
    raw = {"cniVersion": "1.0.0", "name": "net", **conf}
    if prev is not None:
        raw["prevResult"] = prev.to_dict()
    config = PluginConfig.from_dict(raw)
    return Request(command=command, config=config, container_id="c1", netns=netns,
                   ifname=ifname, args=args, prev_result=config.prev_result,
                   delegate=delegate if delegate is not None else FakeDelegate(IPAM_RESULT),
                   net=_backend)


#: the fake the ``fake`` fixture made for the running test (plugins get it via request.net)
_backend: FakeBackend | None = None


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBackend]:
    backend = FakeBackend()
    monkeypatch.setattr(sys.modules[__name__], "_backend", backend)
    names = iter([TMP, "cnitmp01", "cnitmp02"])
    for module in (corecni.kit, corecni.kit.links):
        monkeypatch.setattr(module, "temp_link_name", lambda: next(names))
    yield backend


def configured(ifname: str = "eth0") -> list[Op]:
    """What every plugin sends once the link is in place (IPAM_RESULT, one batch)."""
    return [
        (CTR, "add_address", (ifname, "10.1.0.5/24"), {"nodad": False}),
        (CTR, "set_link", (ifname,), {"up": True}),
        (CTR, "add_route", (Route(dst="0.0.0.0/0", gateway="10.1.0.1", ifname=ifname),), {}),
    ]


NOTIFY: list[Op] = [(CTR, "sysctl", ("ipv4/conf/eth0/arp_notify", "1"), {}),
                    (CTR, "sysctl", ("ipv6/conf/eth0/ndisc_notify", "1"), {})]


def expected_result(kind_mac: str, dns: DNS | None = None) -> Result:
    return Result(cni_version="1.1.0",
                  interfaces=(Interface(name="eth0", mac=kind_mac, sandbox=CTR),),
                  ips=(IPConfig(address="10.1.0.5/24", gateway="10.1.0.1", interface=0),),
                  routes=(ResultRoute(dst="0.0.0.0/0"),), dns=dns or DNS())


# --- ipvlan ---------------------------------------------------------------------------

def test_ipvlan_add_creates_in_container_renames_then_configures(fake: FakeBackend) -> None:
    ipam = FakeDelegate(IPAM_RESULT)
    conf = {"type": "ipvlan", "master": "phys0", "mode": "l3", "mtu": 1400,
            "ipam": {"type": "host-local"}, "dns": {"nameservers": ["192.0.2.53"]}}
    result = ipvlan.cni_add(request(conf, delegate=ipam))
    assert fake.ops() == [
        (NODE, "add_ipvlan", (TMP, "phys0"), {"mode": "l3", "netns": CTR, "mtu": 1400}),
        (CTR, "set_link", (TMP,), {"rename": "eth0"}),
        *NOTIFY,
        *configured(),
    ]
    assert ipam.calls == [("host-local", "ADD")]
    mac = fake.state[CTR]["eth0"].mac
    assert result == expected_result(mac, DNS(nameservers=("192.0.2.53",)))  # config's DNS


def test_ipvlan_defaults_l2_and_default_route_master(fake: FakeBackend) -> None:
    ipvlan.cni_add(request({"type": "ipvlan", "ipam": {"type": "static"}}))
    assert fake.ops("add_ipvlan") == [(NODE, "add_ipvlan", (TMP, "phys0"),
                                       {"mode": "l2", "netns": CTR})]


def test_ipvlan_link_in_container_is_one_container_batch(fake: FakeBackend) -> None:
    fake.state[CTR]["up0"] = make_link("up0", index=5)
    ipvlan.cni_add(request({"type": "ipvlan", "master": "up0", "linkInContainer": True,
                            "ipam": {"type": "static"}}))
    assert fake.ops()[:2] == [
        (CTR, "add_ipvlan", (TMP, "up0"), {"mode": "l2"}),
        (CTR, "set_link", (TMP,), {"rename": "eth0"}),
    ]


def test_ipvlan_chained_uses_prev_result_and_its_interface_as_master(fake: FakeBackend) -> None:
    prev = Result(cni_version="1.0.0", interfaces=(Interface(name="phys0"),),
                  ips=(IPConfig(address="10.1.0.5/24", gateway="10.1.0.1", interface=0),),
                  routes=(ResultRoute(dst="0.0.0.0/0"),))
    ipam = FakeDelegate()
    result = ipvlan.cni_add(request({"type": "ipvlan"}, delegate=ipam, prev=prev))
    assert ipam.calls == []  # no IPAM: the prevResult addresses the interface
    assert fake.ops("add_ipvlan")[0][2] == (TMP, "phys0")
    assert fake.ops("add_address", "add_route") == [configured()[0], configured()[2]]
    assert result.interfaces == (Interface(name="eth0", mac=fake.state[CTR]["eth0"].mac,
                                           sandbox=CTR),)  # prevResult's are replaced
    assert result.ips[0].interface == 0


@pytest.mark.parametrize(("conf", "prev", "words"), [
    ({"mode": "l4"}, None, ("ipvlan mode", "l4")),
    ({"master": "nope0"}, None, ('"nope0"',)),
    ({"ipam": None}, None, ("ipam",)),
    ({"mtu": -5}, None, ("MTU -5",)),
    ({"master": None}, Result(cni_version="1.0.0", interfaces=(Interface(name="a"),
                                                               Interface(name="b")),
                              ips=(IPConfig(address="10.1.0.5/24"),)),
     ("chained master failure",)),
    ({"linkInContainer": "yes"}, None, ("linkInContainer", "boolean")),
])
def test_ipvlan_config_errors_send_nothing(fake: FakeBackend, conf: dict[str, Any],
                                           prev: Result | None, words: tuple[str, ...]) -> None:
    base = {"type": "ipvlan", "master": "phys0", "ipam": {"type": "static"}}
    merged = {k: v for k, v in (base | conf).items() if v is not None}
    ipam = FakeDelegate(IPAM_RESULT)
    with pytest.raises(CNIError) as info:
        ipvlan.cni_add(request(merged, delegate=ipam, prev=prev))
    assert info.value.code == 7
    assert all(w in str(info.value) for w in words), str(info.value)
    assert fake.ops() == [] and ipam.calls == []


def test_ipam_failure_removes_the_link(fake: FakeBackend) -> None:
    ipam = FakeDelegate(fail=("ADD",))
    with pytest.raises(CNIError, match="IPAM ADD failed"):
        ipvlan.cni_add(request({"type": "ipvlan", "master": "phys0",
                                "ipam": {"type": "static"}}, delegate=ipam))
    assert fake.ops()[-1] == (CTR, "del_link", ("eth0",), {"missing_ok": True})
    assert fake.state[CTR].keys() == {"lo"}
    assert ipam.calls == [("static", "ADD")]  # as Go: nothing allocated, nothing released


def test_configure_failure_releases_ipam_and_removes_the_link(fake: FakeBackend) -> None:
    fake.refuse[("add_address", "eth0")] = errno.EINVAL
    ipam = FakeDelegate(IPAM_RESULT)
    with pytest.raises(CNIError) as info:
        ipvlan.cni_add(request({"type": "ipvlan", "master": "phys0",
                                "ipam": {"type": "static"}}, delegate=ipam))
    assert info.value.code == 999 and "EINVAL" in str(info.value)
    assert ipam.calls == [("static", "ADD"), ("static", "DEL")]
    assert fake.ops()[-1] == (CTR, "del_link", ("eth0",), {"missing_ok": True})
    assert fake.state[CTR].keys() == {"lo"}


def test_ipam_without_ips_is_refused_and_released(fake: FakeBackend) -> None:
    ipam = FakeDelegate(Result(cni_version="1.0.0"))
    with pytest.raises(CNIError, match="missing IP config"):
        ipvlan.cni_add(request({"type": "ipvlan", "master": "phys0",
                                "ipam": {"type": "static"}}, delegate=ipam))
    assert ipam.calls == [("static", "ADD"), ("static", "DEL")]
    assert fake.state[CTR].keys() == {"lo"}


def test_rename_clash_deletes_the_temporary_link(fake: FakeBackend) -> None:
    fake.refuse[("set_link", TMP)] = errno.EEXIST
    with pytest.raises(CNIError) as info:
        ipvlan.cni_add(request({"type": "ipvlan", "master": "phys0",
                                "ipam": {"type": "static"}}))
    assert info.value.code == 4 and "already exists" in str(info.value)
    assert fake.ops()[-1] == (CTR, "del_link", (TMP,), {"missing_ok": True})
    assert fake.state[CTR].keys() == {"lo"}


def test_ifname_taken_is_refused_before_anything(fake: FakeBackend) -> None:
    fake.state[CTR]["eth0"] = make_link("eth0", index=7)
    ipam = FakeDelegate(IPAM_RESULT)
    with pytest.raises(CNIError, match="already exists") as info:
        ipvlan.cni_add(request({"type": "ipvlan", "master": "phys0",
                                "ipam": {"type": "static"}}, delegate=ipam))
    assert info.value.code == 4
    assert fake.ops() == [] and ipam.calls == []


def test_kernel_without_module_is_a_clear_error(fake: FakeBackend) -> None:
    fake.refuse[("add_ipvlan", TMP)] = errno.EOPNOTSUPP
    with pytest.raises(CNIError, match="ipvlan kernel module") as info:
        ipvlan.cni_add(request({"type": "ipvlan", "master": "phys0",
                                "ipam": {"type": "static"}}))
    assert info.value.code == 999
    assert fake.state[CTR].keys() == {"lo"}


def test_del_releases_ipam_then_deletes_only_its_kind(fake: FakeBackend) -> None:
    ipam = FakeDelegate()
    conf = {"type": "ipvlan", "master": "phys0", "ipam": {"type": "static"}}
    fake.state[CTR]["eth0"] = Link(index=9, name="eth0", kind="ipvlan", mtu=1500, mac="", up=True)
    ipvlan.cni_del(request(conf, "DEL", delegate=ipam))
    assert fake.ops() == [(CTR, "del_link", ("eth0",), {"missing_ok": True})]
    ipvlan.cni_del(request(conf, "DEL", delegate=ipam))  # again: nothing left to do
    fake.state[CTR]["eth0"] = make_link("eth0", "veth", index=8)  # not ours
    ipvlan.cni_del(request(conf, "DEL", delegate=ipam))
    ipvlan.cni_del(request(conf, "DEL", delegate=ipam, netns=""))
    ipvlan.cni_del(request(conf, "DEL", delegate=ipam, netns="/run/netns/ccni-gone-xyz"))
    assert len(fake.ops()) == 1 and "eth0" in fake.state[CTR]
    assert ipam.calls == [("static", "DEL")] * 5


def test_del_of_chained_ipvlan_has_no_ipam_to_release(fake: FakeBackend) -> None:
    ipam = FakeDelegate()
    ipvlan.cni_del(request({"type": "ipvlan"}, "DEL", delegate=ipam))
    assert ipam.calls == []


def test_status_asks_the_ipam_plugin(fake: FakeBackend) -> None:
    ipam = FakeDelegate()
    for module in (macvlan, ipvlan, vlan, host_device):
        module.plugin_status(request({"type": "x", "ipam": {"type": "static"}}, "STATUS",
                                  delegate=ipam))
        module.plugin_status(request({"type": "x"}, "STATUS", delegate=ipam))
    assert ipam.calls == [("static", "STATUS")] * 4


@pytest.mark.parametrize("module", [ipvlan, vlan])
def test_check_sees_missing_route_address_and_link(fake: FakeBackend, module: Any) -> None:
    conf = {"type": module.KIND, "master": "phys0", "vlanId": 7, "ipam": {"type": "static"}}
    result = module.cni_add(request(conf))
    module.cni_check(request(conf, "CHECK", prev=result))
    routes = fake.rts[CTR]
    fake.rts[CTR] = []
    with pytest.raises(CNIError, match=re.escape("route to 0.0.0.0/0 via 10.1.0.1 is missing")):
        module.cni_check(request(conf, "CHECK", prev=result))
    fake.rts[CTR] = routes
    fake.addrs[CTR] = []
    with pytest.raises(CNIError, match=re.escape("address 10.1.0.5/24 is missing")):
        module.cni_check(request(conf, "CHECK", prev=result))
    del fake.state[CTR]["eth0"]
    with pytest.raises(CNIError, match="eth0 from prevResult not found"):
        module.cni_check(request(conf, "CHECK", prev=result))


# --- vlan -------------------------------------------------------------------------------

def test_vlan_add(fake: FakeBackend) -> None:
    result = vlan.cni_add(request({"type": "vlan", "master": "phys0", "vlanId": 5, "mtu": 1400,
                                   "ipam": {"type": "static"}}))
    assert fake.ops() == [
        (NODE, "add_vlan", (TMP, "phys0", 5), {"netns": CTR, "mtu": 1400}),
        (CTR, "set_link", (TMP,), {"rename": "eth0"}),
        *NOTIFY,
        *configured(),
    ]
    assert result == expected_result(fake.state[CTR]["eth0"].mac)


@pytest.mark.parametrize(("conf", "words"), [
    ({"vlanId": 4095}, ("invalid VLAN ID 4095",)),
    ({"vlanId": -1}, ("invalid VLAN ID -1",)),
    ({"vlanId": True}, ("vlanId", "integer")),
    ({"master": None}, ('"master" field is required',)),
    ({"master": "nope0"}, ('"nope0"',)),
    ({"mtu": 1501}, ("MTU 1501", "1500")),
    ({"ipam": None}, ("ipam",)),
])
def test_vlan_config_errors_send_nothing(fake: FakeBackend, conf: dict[str, Any],
                                         words: tuple[str, ...]) -> None:
    base = {"type": "vlan", "master": "phys0", "vlanId": 5, "ipam": {"type": "static"}}
    merged = {k: v for k, v in (base | conf).items() if v is not None}
    with pytest.raises(CNIError) as info:
        vlan.cni_add(request(merged))
    assert info.value.code == 7
    assert all(w in str(info.value) for w in words), str(info.value)
    assert fake.ops() == []


def test_vlan_id_bounds_are_accepted(fake: FakeBackend) -> None:
    for vid in (0, 4094):
        conf = vlan.VlanConfig(master="phys0", vlan_id=vid)
        assert conf.vlan_id == vid


def test_vlan_check_sees_kind_and_mtu_drift(fake: FakeBackend) -> None:
    conf = {"type": "vlan", "master": "phys0", "vlanId": 5, "mtu": 1400,
            "ipam": {"type": "static"}}
    result = vlan.cni_add(request(conf))
    ipam = FakeDelegate()
    vlan.cni_check(request(conf, "CHECK", prev=result, delegate=ipam))
    assert ipam.calls == [("static", "CHECK")]
    link = fake.state[CTR]["eth0"]
    fake.state[CTR]["eth0"] = attrs.evolve(link, mtu=1300)
    with pytest.raises(CNIError, match="MTU of eth0 is 1400, current value is 1300"):
        vlan.cni_check(request(conf, "CHECK", prev=result))
    fake.state[CTR]["eth0"] = attrs.evolve(link, kind="macvlan")
    with pytest.raises(CNIError, match="not of type vlan"):
        vlan.cni_check(request(conf, "CHECK", prev=result))
    with pytest.raises(CNIError, match="prevResult"):
        vlan.cni_check(request(conf, "CHECK"))


def test_vlan_check_sees_vlan_id_drift(fake: FakeBackend) -> None:
    conf = {"type": "vlan", "master": "phys0", "vlanId": 5, "ipam": {"type": "static"}}
    result = vlan.cni_add(request(conf))
    link = fake.state[CTR]["eth0"]
    assert link.vlan_id == 5
    vlan.cni_check(request(conf, "CHECK", prev=result))
    fake.state[CTR]["eth0"] = attrs.evolve(link, vlan_id=6)
    with pytest.raises(CNIError) as info:
        vlan.cni_check(request(conf, "CHECK", prev=result))
    assert info.value.code == 999
    assert "configured VLAN ID of eth0 is 5, current VLAN ID is 6" in str(info.value)
    vlan.cni_check(request(conf | {"vlanId": 6}, "CHECK", prev=result))
    # a backend that cannot read the ID back (None) is not a mismatch
    fake.state[CTR]["eth0"] = attrs.evolve(link, vlan_id=None)
    vlan.cni_check(request(conf, "CHECK", prev=result))


@pytest.mark.parametrize(("module", "mode", "other"), [
    (ipvlan, "l2", "l3"), (ipvlan, "l3s", "l2"), (macvlan, "bridge", "private"),
    (macvlan, "vepa", "passthru"),
])
def test_check_sees_mode_drift(fake: FakeBackend, module: Any, mode: str, other: str) -> None:
    conf = {"type": module.KIND, "master": "phys0", "mode": mode, "ipam": {"type": "static"}}
    result = module.cni_add(request(conf))
    link = fake.state[CTR]["eth0"]
    assert link.mode == mode
    module.cni_check(request(conf, "CHECK", prev=result))
    fake.state[CTR]["eth0"] = attrs.evolve(link, mode=other)
    with pytest.raises(CNIError) as info:
        module.cni_check(request(conf, "CHECK", prev=result))
    assert info.value.code == 999
    assert (f"configured {module.KIND} mode of eth0 is {mode!r}, current mode is {other!r}"
            in str(info.value))
    module.cni_check(request(conf | {"mode": other}, "CHECK", prev=result))
    fake.state[CTR]["eth0"] = attrs.evolve(link, mode=None)  # not read back: not compared
    module.cni_check(request(conf, "CHECK", prev=result))


def test_ipvlan_check_compares_the_default_mode(fake: FakeBackend) -> None:
    """No ``mode`` in the config means l2, for CHECK as for ADD."""
    conf = {"type": "ipvlan", "master": "phys0", "ipam": {"type": "static"}}
    result = ipvlan.cni_add(request(conf))
    ipvlan.cni_check(request(conf, "CHECK", prev=result))
    fake.state[CTR]["eth0"] = attrs.evolve(fake.state[CTR]["eth0"], mode="l3")
    with pytest.raises(CNIError, match="ipvlan mode of eth0 is 'l2', current mode is 'l3'"):
        ipvlan.cni_check(request(conf, "CHECK", prev=result))


# --- macvlan ----------------------------------------------------------------------------

def test_macvlan_mac_precedence_runtime_config_over_args_over_config(fake: FakeBackend) -> None:
    conf = {"type": "macvlan", "master": "phys0", "mode": "passthru", "mac": "02:AA:00:00:00:01"}
    macvlan.cni_add(request(conf))
    macvlan.cni_add(request(conf, ifname="net1", args=(("MAC", "02:aa:00:00:00:02"),)))
    macvlan.cni_add(request(conf | {"runtimeConfig": {"mac": "02-aa-00-00-00-03"}},
                            ifname="net2", args=(("MAC", "02:aa:00:00:00:02"),)))
    assert [kw["mac"] for _, _, _, kw in fake.ops("add_macvlan")] == \
        ["02:aa:00:00:00:01", "02:aa:00:00:00:02", "02:aa:00:00:00:03"]
    assert {kw["mode"] for _, _, _, kw in fake.ops("add_macvlan")} == {"passthru"}


def test_macvlan_without_ipam_only_sets_the_link_up(fake: FakeBackend) -> None:
    ipam = FakeDelegate()
    result = macvlan.cni_add(request({"type": "macvlan", "master": "phys0"}, delegate=ipam))
    assert fake.ops() == [
        (NODE, "add_macvlan", (TMP, "phys0"), {"mode": "bridge", "netns": CTR}),
        (CTR, "set_link", (TMP,), {"rename": "eth0"}),
        (CTR, "set_link", ("eth0",), {"up": True}),
    ]
    assert ipam.calls == []
    assert result == Result(cni_version="1.1.0", interfaces=(
        Interface(name="eth0", mac=fake.state[CTR]["eth0"].mac, sandbox=CTR),))


@pytest.mark.parametrize(("conf", "code", "words"), [
    ({"mode": "passthrough"}, 7, ('unknown macvlan mode: "passthrough"',)),
    ({"mtu": 9000}, 7, ("invalid MTU 9000", "1500")),
    ({"mtu": -1}, 7, ("invalid MTU -1",)),
    ({"mac": "02:00:00:00:00"}, 7, ("MAC",)),
    ({"master": "nope0"}, 7, ('failed to lookup master "nope0"',)),
    ({"master": 3}, 7, ("'master' must be a string",)),
    ({"dns": {"nameservers": "x"}}, 7, ("dns",)),
])
def test_macvlan_config_errors_send_nothing(fake: FakeBackend, conf: dict[str, Any], code: int,
                                            words: tuple[str, ...]) -> None:
    with pytest.raises(CNIError) as info:
        macvlan.cni_add(request({"type": "macvlan", "master": "phys0"} | conf))
    assert info.value.code == code
    assert all(w in str(info.value) for w in words), str(info.value)
    assert fake.ops() == []


def test_macvlan_without_default_route_needs_master(fake: FakeBackend) -> None:
    fake.default_routes = []
    with pytest.raises(CNIError, match="no default route interface") as info:
        macvlan.cni_add(request({"type": "macvlan"}))
    assert info.value.code == 7


def test_macvlan_check_requires_the_sandbox_of_the_result(fake: FakeBackend) -> None:
    conf = {"type": "macvlan", "master": "phys0", "ipam": {"type": "static"}}
    result = macvlan.cni_add(request(conf))
    macvlan.cni_check(request(conf, "CHECK", prev=result))
    moved = Result(cni_version="1.0.0", interfaces=(Interface(name="eth0", sandbox="/other"),))
    with pytest.raises(CNIError, match="sandbox in prevResult"):
        macvlan.cni_check(request(conf, "CHECK", prev=moved))


# --- host-device --------------------------------------------------------------------------

def test_host_device_moves_in_with_alias_and_back_by_it(fake: FakeBackend) -> None:
    fake.state[NODE]["phys1"] = make_link("phys1", index=4)
    conf = {"type": "host-device", "device": "phys1", "ipam": {"type": "static"}}
    result = host_device.cni_add(request(conf))
    assert fake.ops()[:2] == [
        (NODE, "set_link", ("phys1",), {"rename": TMP, "alias": "phys1", "netns": CTR}),
        (CTR, "set_link", (TMP,), {"rename": "eth0", "up": True}),
    ]
    assert fake.ops()[2:] == configured()  # no arp_notify: Go's host-device sends none
    assert result.interfaces == (Interface(name="eth0", mac="02:00:00:00:00:04", sandbox=CTR),)
    assert fake.state[CTR]["eth0"].alias == "phys1"
    fake.log.clear()
    host_device.cni_del(request(conf, "DEL", delegate=FakeDelegate()))
    [(ns1, op1, args1, kw1), (ns2, op2, args2, kw2)] = fake.ops()
    assert (ns1, op1, args1) == (CTR, "set_link", ("eth0",))
    assert kw1["rename"] == "cnitmp01" and kw1["netns"].startswith("/proc/self/fd/")
    assert (ns2, op2, args2, kw2) == (NODE, "set_link", ("cnitmp01",),
                                      {"rename": "phys1", "alias": ""})
    assert "phys1" in fake.state[NODE] and fake.state[NODE]["phys1"].alias == ""
    fake.log.clear()
    host_device.cni_del(request(conf, "DEL", delegate=FakeDelegate()))
    assert fake.ops() == []


def test_host_device_failure_after_move_moves_it_back(fake: FakeBackend) -> None:
    fake.state[NODE]["phys1"] = make_link("phys1", index=4)
    ipam = FakeDelegate(fail=("ADD",))
    with pytest.raises(CNIError, match="IPAM ADD failed"):
        host_device.cni_add(request({"type": "host-device", "device": "phys1",
                                     "ipam": {"type": "static"}}, delegate=ipam))
    back = fake.state[NODE]["phys1"]
    assert back.up and back.alias == ""
    assert fake.state[CTR].keys() == {"lo"}


def test_host_device_del_leaves_links_that_are_not_its_own(fake: FakeBackend) -> None:
    fake.state[CTR]["eth0"] = make_link("eth0", index=7)  # no alias
    host_device.cni_del(request({"type": "host-device", "device": "phys1"}, "DEL"))
    assert fake.ops() == [] and "eth0" in fake.state[CTR]


def test_host_device_del_refuses_to_clobber_a_node_link(fake: FakeBackend) -> None:
    fake.state[CTR]["eth0"] = attrs.evolve(make_link("eth0", index=7), alias="phys0")
    with pytest.raises(CNIError, match="'phys0' already exists"):
        host_device.cni_del(request({"type": "host-device", "device": "phys0"}, "DEL"))
    assert fake.ops() == []


def _sysfs(tmp: Path, pci: str, driver: str, names: list[str], virtio: bool = False) -> Path:
    devices = tmp / "bus" / "pci" / "devices"
    dev = tmp / "devices" / "pci0000:00" / pci
    net = dev / ("virtio0" if virtio else "") / "net"
    dev.mkdir(parents=True)
    for name in names:
        (net / name).mkdir(parents=True, exist_ok=True)
    (tmp / "drivers" / driver).mkdir(parents=True)
    os.symlink(tmp / "drivers" / driver, dev / "driver")
    devices.mkdir(parents=True)
    os.symlink(dev, devices / pci)
    return devices


def test_host_device_by_pci_and_kernelpath(fake: FakeBackend, tmp_path: Path) -> None:
    bus = _sysfs(tmp_path, "0000:00:1f.6", "e1000e", ["phys0"])
    conf = host_device.HostDeviceConfig(pci_bus_id="0000:00:1f.6")
    assert not conf.dpdk_mode(str(bus))
    assert host_device.find_host_device(fake, conf, str(bus)).name == "phys0"
    virtio = _sysfs(tmp_path / "v", "0000:00:03.0", "virtio-pci", ["phys0"], virtio=True)
    conf = host_device.HostDeviceConfig(pci_bus_id="0000:00:03.0")
    assert host_device.find_host_device(fake, conf, str(virtio)).name == "phys0"
    with pytest.raises(CNIError, match="/sys/devices/"):
        host_device.HostDeviceConfig(kernelpath=str(tmp_path))
    names = host_device.device_names(
        host_device.HostDeviceConfig(pci_bus_id="0000:00:1f.6"), str(bus))
    assert names == ["phys0"]
    with pytest.raises(CNIError) as info:
        host_device.find_host_device(fake, host_device.HostDeviceConfig(pci_bus_id="0000:09:00.0"),
                                     str(bus))
    assert info.value.code == 7 and "0000:09:00.0" in str(info.value)


def test_host_device_dpdk_only_reports(fake: FakeBackend, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    bus = _sysfs(tmp_path, "0000:3d:00.1", "vfio-pci", [])
    monkeypatch.setattr(host_device, "SYS_BUS_PCI", str(bus))
    monkeypatch.setattr(host_device.HostDeviceConfig.dpdk_mode, "__defaults__", (str(bus),))
    conf = {"type": "host-device", "runtimeConfig": {"deviceID": "0000:3d:00.1"},
            "ipam": {"type": "static"}}
    result = host_device.cni_add(request(conf))
    assert fake.ops() == []
    assert result.interfaces == (Interface(name="eth0", sandbox=CTR),)
    assert result.ips[0].address == "10.1.0.5/24"


def test_host_device_config_needs_a_device() -> None:
    with pytest.raises(CNIError, match="specify either") as info:
        host_device.HostDeviceConfig()
    assert info.value.code == 7
    with pytest.raises(CNIError, match="hwaddr"):
        host_device.HostDeviceConfig(hwaddr="nonsense")
