"""bridge ADD that fails leaves the node as it found it (issue 12, items 10, 11, 14).

Most run without the runtime's rollback, so what stays is what the plugin itself
left: no bridge this ADD created (nor its gateway address), no veth, no lease. A
bridge that was there before (shared with other pods) stays, with its addresses.
With the rollback (``rolling``), a later plugin of the chain fails and the bridge's
DEL removes the bridge its ADD created (``corecni_contrib.bridge.owner``).
"""

from __future__ import annotations

import json
import os
import subprocess
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import pytest

from corecni.spec.errors import CNIError
from corecni.testing import (
    NodeCni,
    addrs,
    conflist,
    expect_error,
    install_launchers,
    ip,
    ip_json,
    link_names,
    nft,
    ns_name,
    ping,
    plugin_runtime,
    plugin_target,
)
from tests.integration._harness import NsFactory, host_local, reserved, runtime

pytestmark = pytest.mark.root

BRIDGE = "cnifault0"


def conf(tmp: Path, name: str = "faultnet", **plugin: Any) -> dict[str, Any]:
    return conflist({"type": "bridge", "bridge": BRIDGE, "isGateway": True,
                     "ipam": host_local(tmp, "10.93.0.0/24"), **plugin}, name)


@pytest.fixture(params=["in-process", "exec"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def bare(mode: str, netns_factory: NsFactory, tmp_path: Path) -> NodeCni:
    """Our bridge (in-process, with our host-local; or exec'd, with Go's), no rollback."""
    in_process = {"host-local": "corecni_contrib.host_local.plugin"}
    return NodeCni(runtime(mode, tmp_path, "bridge", in_process=in_process, rollback=False),
               netns_factory("node"))


def bad_ipam(tmp: Path) -> list[tuple[dict[str, Any], str]]:
    """(ipam section, a word of the error) pairs that fail at the IPAM step."""
    afile = tmp / "a-file"
    afile.write_text("")
    return [
        ({"type": "no-such-ipam"}, "no-such-ipam"),
        ({**host_local(tmp, "10.93.0.0/24"), "dataDir": str(afile / "sub")}, ""),
        ({"type": "host-local", "dataDir": str(tmp / "ipam")}, ""),  # no ranges
    ]


def test_failed_ipam_leaves_no_bridge(bare: NodeCni, netns_factory: NsFactory,
                                      tmp_path: Path) -> None:
    ctr = netns_factory("ctr")
    for ipam, word in bad_ipam(tmp_path):
        cfg = conf(tmp_path)
        cfg["plugins"][0]["ipam"] = ipam
        with pytest.raises(Exception) as info:
            bare.add(cfg, ctr)
        assert word in str(info.value)
        assert link_names(bare.node) == {"lo"}, ipam
        assert link_names(ctr) == {"lo"}


def test_bad_ip_arg_leaves_no_bridge(bare: NodeCni, netns_factory: NsFactory,
                                     tmp_path: Path) -> None:
    ctr = netns_factory("ctr")
    for value in ("zz", "10.99.0.5", "10.93.0.5=1"):
        with pytest.raises(Exception):  # noqa: B017 - the code differs between plugins
            bare.add(conf(tmp_path), ctr, args=(("IP", value),))
        assert link_names(bare.node) == {"lo"}, value
        assert reserved(tmp_path / "ipam") == []


def test_failure_after_the_bridge_removes_only_what_this_add_made(
        bare: NodeCni, netns_factory: NsFactory, tmp_path: Path) -> None:
    """The container's ifname is taken: refused before the bridge exists. A clash in
    the bridge's addresses after creating it: the new bridge goes again."""
    ctr = netns_factory("ctr")
    ip(ctr, "link", "add", "eth0", "type", "veth", "peer", "name", "xp0")
    with expect_error(4, "eth0"):
        bare.add(conf(tmp_path), ctr)
    assert link_names(bare.node) == {"lo"}
    assert reserved(tmp_path / "ipam") == []


def test_existing_bridge_and_its_address_stay(bare: NodeCni, netns_factory: NsFactory,
                                              tmp_path: Path) -> None:
    """A bridge that was there before the failed ADD (another pod's) is not touched."""
    ctr = netns_factory("ctr")
    ip(bare.node, "link", "add", BRIDGE, "type", "bridge")
    ip(bare.node, "addr", "add", "10.93.0.1/24", "dev", BRIDGE)
    cfg = conf(tmp_path)
    cfg["plugins"][0]["ipam"] = {"type": "no-such-ipam"}
    with pytest.raises(Exception):  # noqa: B017
        bare.add(cfg, ctr)
    assert link_names(bare.node) == {"lo", BRIDGE}
    assert addrs(bare.node, BRIDGE) == {"10.93.0.1/24"}


@pytest.mark.parametrize("subnet", ["0.0.0.0/0", "::/0"])
def test_whole_address_space_subnet_is_refused(bare: NodeCni, mode: str, netns_factory: NsFactory,
                                               tmp_path: Path, subnet: str) -> None:
    ctr = netns_factory("ctr")
    cfg = conf(tmp_path)
    cfg["plugins"][0]["ipam"] = host_local(tmp_path, subnet)
    with pytest.raises(CNIError) as info:
        bare.add(cfg, ctr)
    if mode == "in-process":  # ours; exec'd, the IPAM is Go's (999, nothing to allocate)
        assert info.value.code == 7 and "whole address space" in str(info.value), info.value
    assert link_names(bare.node) == {"lo"}
    assert link_names(ctr) == {"lo"}


@pytest.mark.parametrize(("key", "value", "word"), [
    ("bridge", "", "bridge"),
    ("ipam", {"type": 5}, "ipam.type"),
])
def test_go_refuses_these_keys(bare: NodeCni, netns_factory: NsFactory, tmp_path: Path,
                               key: str, value: Any, word: str) -> None:
    ctr = netns_factory("ctr")
    cfg = conf(tmp_path)
    cfg["plugins"][0][key] = value
    with expect_error(7, word):
        bare.add(cfg, ctr)
    assert link_names(bare.node) == {"lo"}


def test_bad_mac_arg_is_refused(bare: NodeCni, netns_factory: NsFactory, tmp_path: Path) -> None:
    ctr = netns_factory("ctr")
    with expect_error(7, "MAC"):
        bare.add(conf(tmp_path), ctr, args=(("MAC", "zz:zz"),))
    assert link_names(bare.node) == {"lo"}
    assert reserved(tmp_path / "ipam") == []


def test_failure_after_creating_the_bridge_removes_it(bare: NodeCni, netns_factory: NsFactory,
                                                      tmp_path: Path) -> None:
    """A multicast MAC is refused by the kernel only when the veth is made - after the
    bridge: the bridge this ADD created goes, and the address is released."""
    ctr = netns_factory("ctr")
    with pytest.raises(CNIError):
        bare.add(conf(tmp_path), ctr, args=(("MAC", "01:00:5e:00:00:01"),))
    assert link_names(bare.node) == {"lo"}
    assert link_names(ctr) == {"lo"}
    assert reserved(tmp_path / "ipam") == []


def test_del_never_fails_on_cni_args(bare: NodeCni, mode: str, netns_factory: NsFactory,
                                     tmp_path: Path) -> None:
    if mode == "exec":
        pytest.skip("exec'd, the IPAM is Go's host-local 1.1.1: it refuses unknown CNI_ARGS")
    ctr = netns_factory("ctr")
    for args in ((("MAC", "zz:zz"),), (("IP", "zz"),), (("K", "a=b"),)):
        bare.delete(conf(tmp_path), ctr, args=args)
    cfg = conf(tmp_path)
    cfg["plugins"][0]["bridge"] = ""
    bare.delete(cfg, ctr)


# --- a failing later plugin, and the bridge's creator (issue 12, item 10) -----------------

FAILING_PLUGIN = """#!/bin/sh
# A chain plugin that refuses every ADD (and answers every other command with success).
cat >/dev/null
case "$CNI_COMMAND" in
ADD) echo '{"cniVersion": "1.0.0", "code": 11, "msg": "fails on purpose"}'; exit 1 ;;
VERSION) echo '{"cniVersion": "1.0.0", "supportedVersions": ["0.4.0", "1.0.0", "1.1.0"]}' ;;
esac
exit 0
"""


@pytest.fixture
def rolling(mode: str, netns_factory: NsFactory, tmp_path: Path) -> NodeCni:
    """Our bridge and host-local (in-process or exec'd) with corecni's rollback, and a
    ``fails`` plugin on CNI_PATH."""
    failbin = tmp_path / "failbin"
    failbin.mkdir()
    (failbin / "fails").write_text(FAILING_PLUGIN)
    (failbin / "fails").chmod(0o755)
    in_process = {"host-local": "corecni_contrib.host_local.plugin"}
    rt = plugin_runtime(mode, tmp_path, {"bridge": plugin_target("bridge"), **in_process},
                        search=(str(failbin),))
    return NodeCni(rt, netns_factory("node"))


def rules(ns: str) -> list[Any]:
    """Every nftables rule of the namespace (iptables-nft's too) and every iptables rule
    (empty base chains that iptables leaves behind are no rules)."""
    listing = json.loads(nft(ns, "-j", "list", "ruleset") or "{}")
    found: list[Any] = [item["rule"] for item in listing.get("nftables", []) if "rule" in item]
    for tool in ("iptables-save", "ip6tables-save"):
        out = subprocess.run(["ip", "netns", "exec", ns_name(ns), tool], capture_output=True,
                             text=True, check=False).stdout
        found += [line for line in out.splitlines() if line.startswith("-A")]
    return found


def test_failing_later_plugin_leaves_no_bridge(rolling: NodeCni, netns_factory: NsFactory,
                                               tmp_path: Path) -> None:
    """bridge -> a plugin that fails ADD: the runtime's rollback DEL of the bridge removes
    the bridge that ADD created, and with it the gateway address; no lease, no rule, no
    cache entry stays."""
    ctr = netns_factory("ctr")
    cfg = conf(tmp_path, ipMasq=True)
    cfg["plugins"].append({"type": "fails"})
    with expect_error(11, "fails on purpose"):
        rolling.add(cfg, ctr)
    assert link_names(rolling.node) == {"lo"}
    assert {a["local"] for link in ip_json(rolling.node, "addr", "show")
            for a in link["addr_info"]} <= {"127.0.0.1", "::1"}
    assert link_names(ctr) == {"lo"}
    assert reserved(tmp_path / "ipam") == []
    assert rules(rolling.node) == []
    assert not list((tmp_path / "cache").rglob("*faultnet*"))


def test_creator_del_keeps_a_bridge_others_use(rolling: NodeCni, netns_factory: NsFactory,
                                               tmp_path: Path) -> None:
    """The pod whose ADD made the bridge goes first: the bridge stays (with its gateway)
    while another pod is on it, and stays after that pod's DEL too (only the creator's
    DEL removes it: from then on it is shared, as Go's bridges always are). The DEL of
    a lone creator removes it - also when a first DEL came without the namespace and
    found its own port still there: the repeated DEL does."""
    ctrs = [netns_factory("ctr"), netns_factory("ctr")]
    cfg = conf(tmp_path)
    rolling.add(cfg, ctrs[0], "c0")
    rolling.add(cfg, ctrs[1], "c1")
    rolling.delete(cfg, ctrs[0], "c0")
    names = link_names(rolling.node)
    assert BRIDGE in names and len([n for n in names if n.startswith("veth")]) == 1
    assert addrs(rolling.node, BRIDGE) == {"10.93.0.1/24"}
    assert ping(ctrs[1], "10.93.0.1")
    rolling.delete(cfg, ctrs[1], "c1")
    assert link_names(rolling.node) == {"lo", BRIDGE}
    ip(rolling.node, "link", "del", BRIDGE)

    rolling.add(cfg, ctrs[0], "c2")
    rolling.delete(cfg, ctrs[0], "c2")
    rolling.delete(cfg, ctrs[0], "c2")  # idempotent
    assert link_names(rolling.node) == {"lo"}

    rolling.add(cfg, ctrs[0], "c3")
    rolling.delete(cfg, "", "c3")  # no namespace: its veth (a port) stays, so the bridge
    assert BRIDGE in link_names(rolling.node)
    rolling.delete(cfg, ctrs[0], "c3")
    assert link_names(rolling.node) == {"lo"}
    assert reserved(tmp_path / "ipam") == []


def test_a_bridge_this_pod_did_not_make_stays(rolling: NodeCni, netns_factory: NsFactory,
                                              tmp_path: Path) -> None:
    """Found (the admin's, Go's, an earlier pod's): never taken over, never removed."""
    ctr = netns_factory("ctr")
    ip(rolling.node, "link", "add", BRIDGE, "type", "bridge")
    rolling.add(conf(tmp_path), ctr, "c0")
    rolling.delete(conf(tmp_path), ctr, "c0")
    assert link_names(rolling.node) == {"lo", BRIDGE}
    assert addrs(rolling.node, BRIDGE) == {"10.93.0.1/24"}


def test_creator_del_waits_for_an_add_that_found_the_bridge(
        netns_factory: NsFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An ADD has found the bridge and is about to put its port on it when the creator's
    DEL runs: the removal waits for it (the ADD's shared lock), then finds the port and
    keeps the bridge. Without the lock the DEL would remove the bridge under the ADD,
    whose port then has no master to join (the ADD fails)."""
    from corecni_contrib.bridge import add

    cni = NodeCni(runtime("in-process", tmp_path, "bridge",
                          in_process={"host-local": "corecni_contrib.host_local.plugin"}),
                  netns_factory("node"))
    ctrs = [netns_factory("ctr"), netns_factory("ctr")]
    cfg = conf(tmp_path)
    cni.add(cfg, ctrs[0], "c0")
    create_veth = add.create_veth
    racing: list[Future[None]] = []

    def creator_deleted_meanwhile(*args: Any, **kw: Any) -> str:
        racing.append(pool.submit(cni.delete, cfg, ctrs[0], "c0"))
        wait(racing, timeout=1)  # done at once without the lock; with it, blocked
        return create_veth(*args, **kw)

    monkeypatch.setattr(add, "create_veth", creator_deleted_meanwhile)
    with ThreadPoolExecutor(1) as pool:
        cni.add(cfg, ctrs[1], "c1")
        racing[0].result()
    assert link_names(ctrs[0]) == {"lo"}
    assert ping(ctrs[1], "10.93.0.1")
    monkeypatch.undo()
    cni.delete(cfg, ctrs[1], "c1")
    assert link_names(cni.node) == {"lo", BRIDGE}  # not the creator: it stays
    assert reserved(tmp_path / "ipam") == []


def test_too_long_network_name_leaves_no_bridge(netns_factory: NsFactory, tmp_path: Path) -> None:
    """A runtime refuses such a name before any plugin runs (its cache file name would be
    too long); exec'd directly (another runtime), host-local cannot make its directory:
    the error comes before the bridge exists."""
    node, ctr = netns_factory("node"), netns_factory("ctr")
    paths = install_launchers(tmp_path / "bin", ["bridge", "host-local"])
    plugin = {**conf(tmp_path, name="n" * 300)["plugins"][0], "cniVersion": "1.0.0",
              "name": "n" * 300}
    env = {**os.environ, "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": ctr,
           "CNI_IFNAME": "eth0", "CNI_PATH": str(tmp_path / "bin")}
    proc = subprocess.run(["ip", "netns", "exec", ns_name(node), paths["bridge"]],
                          input=json.dumps(plugin), env=env, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 1 and "File name too long" in json.loads(proc.stdout)["details"]
    assert link_names(node) == {"lo"}
    assert link_names(ctr) == {"lo"}
    assert reserved(tmp_path / "ipam") == []
