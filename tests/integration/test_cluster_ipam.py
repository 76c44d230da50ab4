"""cluster-ipam against a real etcd in a lab of namespaces: 3 nodes share one range.

etcd runs inside its own namespace; each "node" reaches it over the lab's
underlay from its namespace (the allocating thread enters it), so the calls
take the path they take on a real cluster. Nothing touches the machine's own
network.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from corecni_contrib import cluster_ipam
from corecni_contrib.cluster_lab import Lab, Node, leftovers
from corecni_contrib.etcd_store import EtcdStore

from corecni import netns
from corecni.kit import CNIError, Request
from corecni.plugin import LoadedPlugin, load_plugin
from corecni.request import Attachment
from corecni.spec.config import PluginConfig
from corecni.testing import install_launchers

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd-server missing")]


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab().build(nodes=3) as lab:
        lab.start_etcd()
        yield lab
    assert leftovers(lab.tag) == []


@pytest.fixture(scope="module")
def plugin() -> LoadedPlugin:
    return load_plugin("cluster-ipam", "corecni_contrib.cluster_ipam")


def config(lab: Lab, network: str, subnet: str = "10.40.0.0/16", **extra: Any) -> PluginConfig:
    return PluginConfig.from_dict({
        "cniVersion": "1.1.0", "name": network, "type": "bridge",
        "ipam": {"type": "cluster-ipam", "range": subnet, "etcd_endpoints": [lab.etcd_url],
                 "gateway": str(ipaddress.ip_network(subnet)[1]), **extra}})


def call(plugin: LoadedPlugin, node: Node, command: str, conf: PluginConfig, cid: str,
         ifname: str = "eth0", valid: tuple[Attachment, ...] = ()) -> Any:
    if command == "GC":
        conf = conf.inject(**{"cni.dev/valid-attachments": [a.to_dict() for a in valid]})
    request = Request.for_config(command, conf, container_id=cid if command != "GC" else "",
                                 netns=node.netns, ifname=ifname if command != "GC" else "")
    with netns.entered(node.netns):
        return plugin.run(request)


def allocations(lab: Lab, node: Node, network: str) -> list[dict[str, Any]]:
    with netns.entered(node.netns):
        return cluster_ipam.allocations(EtcdStore([lab.etcd_url]), cluster_ipam.DEFAULT_PREFIX,
                                        network)


def test_three_nodes_one_hundred_adds_each_never_share_an_address(
        lab: Lab, plugin: LoadedPlugin) -> None:
    conf = config(lab, "spread")

    def node_run(node: Node) -> list[str]:
        with ThreadPoolExecutor(16) as pool:
            results = pool.map(lambda i: call(plugin, node, "ADD", conf, f"{node.name}-c{i}"),
                               range(100))
            return [r.ips[0].address for r in results]

    with ThreadPoolExecutor(3) as nodes:
        per_node = list(nodes.map(node_run, lab.nodes))
    everything = [a for addresses in per_node for a in addresses]
    assert len(everything) == 300 and len(set(everything)) == 300
    assert all(a.startswith("10.40.") and a.endswith("/16") for a in everything)
    assert "10.40.0.1/16" not in everything  # the gateway
    assert len(allocations(lab, lab.nodes[0], "spread")) == 300
    # ADD again is idempotent: the same address
    again = call(plugin, lab.nodes[0], "ADD", conf, f"{lab.nodes[0].name}-c7")
    assert again.ips[0].address == per_node[0][7]
    call(plugin, lab.nodes[0], "CHECK", conf, f"{lab.nodes[0].name}-c7")
    for node in lab.nodes:
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda i, n=node: call(plugin, n, "DEL", conf, f"{n.name}-c{i}"),
                          range(100)))
    assert allocations(lab, lab.nodes[1], "spread") == []
    call(plugin, lab.nodes[0], "DEL", conf, "never-added")  # DEL of nothing is fine


def test_etcd_restart_mid_run_never_duplicates_and_leaks_nothing(
        lab: Lab, plugin: LoadedPlugin) -> None:
    conf = config(lab, "restart", "10.41.0.0/16")
    outcomes: dict[str, str | None] = {}

    def add(args: tuple[Node, int]) -> None:
        node, i = args
        cid = f"{node.name}-r{i}"
        try:
            outcomes[cid] = call(plugin, node, "ADD", conf, cid).ips[0].address
        except CNIError as exc:
            assert exc.code == 11 and "etcd unavailable" in exc.msg, exc
            outcomes[cid] = None

    work = [(node, i) for i in range(60) for node in lab.nodes]
    with ThreadPoolExecutor(12) as pool:
        first = list(pool.map(add, work[:60]))
        lab.stop_etcd()
        second = list(pool.map(add, work[60:120]))
        lab.start_etcd()
        third = list(pool.map(add, work[120:]))
    assert len(first) + len(second) + len(third) == 180
    assert any(v is None for v in outcomes.values())  # some calls saw etcd down
    got = [v for v in outcomes.values() if v is not None]
    assert len(got) == len(set(got)) and len(got) >= 120
    stored = allocations(lab, lab.nodes[0], "restart")
    assert len(stored) == len(got)
    # a failed ADD is DEL'd by its runtime; then GC with no valid attachment empties it
    for cid, value in outcomes.items():
        if value is not None:
            call(plugin, lab.nodes[0], "DEL", conf, cid)
    call(plugin, lab.nodes[0], "GC", conf, "")
    assert allocations(lab, lab.nodes[0], "restart") == []


def test_gc_releases_an_add_killed_after_allocating(lab: Lab, plugin: LoadedPlugin,
                                                   tmp_path: Path) -> None:
    conf = config(lab, "gcnet", "10.42.0.0/24")
    kept = call(plugin, lab.nodes[0], "ADD", conf, "alive").ips[0].address
    # an exec'd ADD SIGKILLed as soon as its allocation is in etcd: its runtime never
    # recorded a result, so only GC can know the address is nobody's
    install_launchers(tmp_path / "bin", ["cluster-ipam"])
    node = lab.nodes[1]
    env = {**os.environ, "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "killed",
           "CNI_NETNS": node.netns, "CNI_IFNAME": "eth0", "CNI_PATH": str(tmp_path / "bin"),
           "CNI_NETNS_OVERRIDE": "1"}  # the node's own namespace stands in for a pod's
    proc = subprocess.Popen(["ip", "netns", "exec", node.name,
                             str(tmp_path / "bin" / "cluster-ipam")], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    assert proc.stdin is not None
    proc.stdin.write(conf.to_bytes())
    proc.stdin.close()
    owner = f"{cluster_ipam.DEFAULT_PREFIX}/gcnet/owners/killed/eth0"
    deadline = time.monotonic() + 30
    with netns.entered(node.netns):
        store = EtcdStore([lab.etcd_url])
        while store.get(owner) is None and time.monotonic() < deadline:
            time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert {a["containerID"] for a in allocations(lab, lab.nodes[0], "gcnet")} == \
        {"alive", "killed"}
    call(plugin, lab.nodes[2], "GC", conf, "", valid=(Attachment("alive", "eth0"),))
    rows = allocations(lab, lab.nodes[0], "gcnet")
    assert [(r["containerID"], r["address"]) for r in rows] == [("alive", kept.split("/")[0])]
    call(plugin, lab.nodes[0], "DEL", conf, "alive")


def test_range_keys_and_exclusions(lab: Lab, plugin: LoadedPlugin) -> None:
    conf = config(lab, "small", "10.43.0.0/29", exclude=["10.43.0.2/31"],
                  range_start="10.43.0.1", range_end="10.43.0.6")
    got = sorted(call(plugin, lab.nodes[0], "ADD", conf, f"s{i}").ips[0].address
                 for i in range(3))
    # .1 is the gateway, .2-.3 excluded, .0/.7 network/broadcast: .4 .5 .6 remain
    assert got == ["10.43.0.4/29", "10.43.0.5/29", "10.43.0.6/29"]
    with pytest.raises(CNIError, match="no IP addresses available"):
        call(plugin, lab.nodes[0], "ADD", conf, "s9")
    for i in range(3):
        call(plugin, lab.nodes[0], "DEL", conf, f"s{i}")


@pytest.mark.parametrize(("ipam", "message"), [
    ({"range": ""}, "ipam.range is required"),
    ({"range": "0.0.0.0/0"}, "whole address space"),
    ({"range": "10.0.0.0/24", "etcd_endpoints": []}, "etcd_endpoints is required"),
    ({"range": "10.0.0.0/24", "range_start": "10.0.1.1"}, "inside range"),
    ({"range": "10.0.0.0/24", "exclude": ["nope"]}, "ipam.exclude"),
    ({"range": "10.0.0.0/24", "etcd_endpoints": ["ftp://x"]}, "invalid etcd endpoint"),
])
def test_bad_config_is_code_7(plugin: LoadedPlugin, ipam: dict[str, Any], message: str) -> None:
    raw = {"cniVersion": "1.1.0", "name": "bad", "type": "bridge",
           "ipam": {"type": "cluster-ipam", "etcd_endpoints": ["http://127.0.0.1:9"], **ipam}}
    request = Request.for_config("ADD", PluginConfig.from_dict(raw), container_id="c",
                                 netns="/proc/self/ns/net", ifname="eth0")
    with pytest.raises(CNIError, match=message) as info:
        plugin.run(request)
    assert info.value.code == 7


def test_cli_lists_the_allocations(lab: Lab, plugin: LoadedPlugin,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    conf = config(lab, "cliview", "10.44.0.0/24")
    address = call(plugin, lab.nodes[0], "ADD", conf, "viewme").ips[0].address
    with netns.entered(lab.nodes[0].netns):
        assert cluster_ipam.main(["list", "--etcd", lab.etcd_url, "--network", "cliview",
                                  "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == [{"address": address.split("/")[0], "containerID": "viewme",
                     "ifname": "eth0"}]
    call(plugin, lab.nodes[0], "DEL", conf, "viewme")
