"""corecni-contrib's ipvlan and vlan against the kernel, in-process and exec'd.

Kernels without the ipvlan or 8021q module (this project's CI kernel has
neither) cannot create those links: the lifecycle tests probe for the link
kind in a scratch namespace and skip, saying why. What does not need the
module still runs everywhere: config errors (before any link is made), the
kernel refusing the link (a clean error, nothing left, no IP reserved), DEL
idempotency and STATUS. The requests the plugins queue are unit-tested in
``tests/unit/test_link_plugins_requests.py``.
"""

from __future__ import annotations

import functools
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from corecni.testing import (
    MODES,
    addrs,
    expect_error,
    ip,
    link_info,
    link_names,
    ns_name,
    ping,
    session_prefix,
)
from tests.integration._harness import (
    NODE_LINKS,
    WITH_GO_IPAM,
    NsFactory,
    assert_one_address_result,
    assert_status_is_ipams,
    host_local,
    plugin_cni,
    reserved,
)

pytestmark = WITH_GO_IPAM

SUBNET = "10.72.0.0/24"  # host-local's, on the node's "LAN" behind phys0


@functools.cache
def kernel_lacks(kind: str) -> str:
    """Why the kernel cannot make ``kind`` links ("" when it can): tried for real, on a
    veth in a scratch namespace."""
    name = f"{session_prefix()}probe-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "add", "p0", "type", "veth", "peer", "name",
                        "p1"], check=True, capture_output=True)
        extra = ["id", "5"] if kind == "vlan" else []
        probe = subprocess.run(["ip", "-n", name, "link", "add", "link", "p0", "name", "x0",
                                "type", kind, *extra], capture_output=True, text=True, check=False)
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
    if probe.returncode == 0:
        return ""
    return f"kernel cannot create {kind} links ({probe.stderr.strip()}): module not available"


def needs_kernel(kind: str) -> None:
    reason = kernel_lacks(kind)
    if reason:
        print(f"SKIP: {reason}")
        pytest.skip(reason)


def base_conf(kind: str, tmp: Path, **extra: Any) -> dict[str, Any]:
    conf: dict[str, Any] = {"type": kind, "master": "phys0", "ipam": host_local(tmp, SUBNET)}
    if kind == "vlan":
        conf["vlanId"] = 5
    return conf | extra


# --- lifecycle (needs the kernel module) ---------------------------------------

def test_ipvlan_l2_two_containers_talk(variant: str, node: str, netns_factory: NsFactory,
                                       tmp_path: Path) -> None:
    needs_kernel("ipvlan")
    cni = plugin_cni("ipvlan", variant, node, tmp_path)
    conf = base_conf("ipvlan", tmp_path, mtu=1400, dns={"nameservers": ["10.72.0.53"]})
    ctrs = [netns_factory("ctr"), netns_factory("ctr")]
    results = [cni.add(conf, ctr, cid=f"c{i}") for i, ctr in enumerate(ctrs)]
    for i, (ctr, result) in enumerate(zip(ctrs, results, strict=True)):
        link = link_info(ctr, "eth0")
        assert link["linkinfo"]["info_kind"] == "ipvlan"
        assert link["linkinfo"]["info_data"]["mode"] == "l2"
        assert link["link_index"] == link_info(node, "phys0")["ifindex"]
        assert link["mtu"] == 1400
        assert_one_address_result(result, ctr, link["address"], "10.72.0.1",
                                  {"nameservers": ["10.72.0.53"]})
        cni.check(conf, ctr, cid=f"c{i}")
    assert ping(ctrs[0], results[1]["ips"][0]["address"].split("/")[0])
    ip(ctrs[0], "route", "del", "default")
    with expect_error(999, "0.0.0.0/0", "missing"):
        cni.check(conf, ctrs[0], cid="c0")
    for i, ctr in enumerate(ctrs):
        cni.delete(conf, ctr, cid=f"c{i}")
        cni.delete(conf, ctr, cid=f"c{i}")
        assert link_names(ctr) == {"lo"}
    assert reserved(tmp_path / "ipam") == []
    assert link_names(node) == NODE_LINKS


@pytest.mark.parametrize("mode", ["l3", "l3s"])
def test_ipvlan_modes_and_link_in_container(mode: str, node: str, container_netns: str,
                                            tmp_path: Path) -> None:
    needs_kernel("ipvlan")
    ctr = container_netns
    ip(ctr, "link", "add", "up0", "type", "veth", "peer", "name", "up0p")
    ip(ctr, "link", "set", "up0", "up")
    cni = plugin_cni("ipvlan", "in-process", node, tmp_path)
    conf = base_conf("ipvlan", tmp_path, master="up0", mode=mode, linkInContainer=True)
    cni.add(conf, ctr)
    link = link_info(ctr, "eth0")
    assert link["linkinfo"]["info_data"]["mode"] == mode
    assert link["link"] == "up0"
    cni.check(conf, ctr)
    cni.delete(conf, ctr)
    assert link_names(ctr) == {"lo", "up0", "up0p"}


def test_vlan_reaches_the_node_on_its_vlan(variant: str, node: str, container_netns: str,
                                           tmp_path: Path) -> None:
    needs_kernel("vlan")
    ctr = container_netns
    ip(node, "link", "add", "link", "phys0p", "name", "phys0p.5", "type", "vlan", "id", "5")
    ip(node, "addr", "add", "10.72.0.1/24", "dev", "phys0p.5")
    ip(node, "link", "set", "phys0p.5", "up")
    cni = plugin_cni("vlan", variant, node, tmp_path)
    conf = base_conf("vlan", tmp_path, mtu=1400)
    result = cni.add(conf, ctr)
    link = link_info(ctr, "eth0")
    assert link["linkinfo"]["info_kind"] == "vlan"
    assert link["linkinfo"]["info_data"]["id"] == 5
    assert link["link_index"] == link_info(node, "phys0")["ifindex"] and link["mtu"] == 1400
    assert addrs(ctr, "eth0") == {result["ips"][0]["address"]}
    assert result["interfaces"] == [{"name": "eth0", "mac": link["address"], "sandbox": ctr}]
    assert ping(ctr, "10.72.0.1")
    cni.check(conf, ctr)
    ip(ctr, "link", "set", "eth0", "mtu", "1300")
    with expect_error(999, "MTU", "1400"):
        cni.check(conf, ctr)
    cni.delete(conf, ctr)
    cni.delete(conf, ctr)
    assert link_names(ctr) == {"lo"}
    assert reserved(tmp_path / "ipam") == []


# --- without the module: errors, refusals, DEL, STATUS --------------------------

@pytest.mark.parametrize("mode", MODES)
def test_config_errors_before_any_link(mode: str, node: str, container_netns: str,
                                       tmp_path: Path) -> None:
    ctr = container_netns
    cases: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
        ("ipvlan", {"master": "nope0"}, ('"nope0"', "master")),
        ("ipvlan", {"mode": "l4"}, ("ipvlan mode", "l4")),
        ("ipvlan", {"mtu": -1}, ("MTU",)),
        ("ipvlan", {"ipam": None}, ("ipam",)),
        ("vlan", {"master": "nope0"}, ('"nope0"', "master")),
        ("vlan", {"vlanId": 4095}, ("VLAN ID 4095",)),
        ("vlan", {"vlanId": -1}, ("VLAN ID -1",)),
        ("vlan", {"master": None}, ('"master" field is required',)),
        ("vlan", {"mtu": 9000}, ("MTU 9000",)),
        ("vlan", {"ipam": None}, ("ipam",)),
        ("vlan", {"vlanId": "5"}, ("vlanId", "integer")),
    ]
    for kind, change, words in cases:
        conf = {k: v for k, v in (base_conf(kind, tmp_path) | change).items() if v is not None}
        with expect_error(7, *words):
            plugin_cni(kind, mode, node, tmp_path / kind).add(conf, ctr)
        assert link_names(ctr) == {"lo"}
        assert link_names(node) == NODE_LINKS
    assert reserved(tmp_path / "ipam") == []


@pytest.mark.parametrize("kind", ["ipvlan", "vlan"])
def test_kernel_refusal_is_clean(variant: str, kind: str, node: str, container_netns: str,
                                 tmp_path: Path) -> None:
    """Where the module is missing, ADD fails with a CNIError saying so; nothing stays."""
    if not kernel_lacks(kind):
        pytest.skip(f"the kernel supports {kind}: nothing to refuse")
    with expect_error(999, f"failed to create {kind}", "kernel module"):
        plugin_cni(kind, variant, node, tmp_path).add(base_conf(kind, tmp_path), container_netns)
    assert link_names(container_netns) == {"lo"}
    assert link_names(node) == NODE_LINKS
    assert reserved(tmp_path / "ipam") == []


@pytest.mark.parametrize("kind", ["ipvlan", "vlan"])
def test_del_is_idempotent_and_status_ok(variant: str, kind: str, node: str,
                                         netns_factory: NsFactory, tmp_path: Path) -> None:
    cni = plugin_cni(kind, variant, node, tmp_path)
    conf = base_conf(kind, tmp_path)
    ctr = netns_factory("ctr")
    cni.delete(conf, ctr)  # never added
    cni.delete(conf, ctr)
    cni.delete(conf, "")
    # a container's own link under CNI_IFNAME is not ours: DEL leaves it
    ip(ctr, "link", "add", "eth0", "type", "veth", "peer", "name", "xp0")
    cni.delete(conf, ctr)
    assert link_names(ctr) == {"lo", "eth0", "xp0"}
    subprocess.run(["ip", "netns", "del", ns_name(ctr)], check=True)
    cni.delete(conf, ctr)  # the namespace is gone
    assert link_names(node) == NODE_LINKS  # DEL left the node untouched
    no_ipam = {k: v for k, v in conf.items() if k != "ipam"}
    assert_status_is_ipams(kind, variant, node, tmp_path, no_ipam)
