"""Three nodes, etcd, corecni-flanneld and the flannel CNI plugin: pods talk across nodes.

Everything lives in namespaces of a lab (``corecni_contrib.cluster_lab``): an
underlay bridge, etcd, three nodes each running ``corecni-flanneld``. Pods
attach with the seeds' ``10-flannel.conflist`` (flannel delegating to bridge +
host-local, then portmap): on node 0 exec'd by Go's libcni, on node 1 by
corecni's runtime in-process, on node 2 by Go's libcni again. Every pod pings
every other pod over VXLAN; a daemon SIGKILLed and restarted keeps its subnet
and its peers' routes; a lease deleted in etcd takes its route, neighbour and
FDB entry off the other nodes within 5 s.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from corecni_contrib.cluster_demo import (
    PREFIX,
    Daemons,
    seeds_conflist,
    vtep_routes,
    write_network_config,
)
from corecni_contrib.cluster_lab import Lab, Node, leftovers
from corecni_contrib.etcd_store import EtcdStore
from corecni_contrib.flannel import subnet_env

from corecni import netns
from corecni.registry import Registry
from corecni.runtime import CNIRuntime
from corecni.spec.config import NetworkConfigList, RuntimeConf
from corecni.testing import install_launchers, ip_json, ping

pytestmark = [pytest.mark.interop, pytest.mark.root,
              pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd-server missing")]

GO_PLUGINS = "/usr/lib/cni"


def wait_for(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Lab, Daemons]]:
    with Lab().build(nodes=3) as lab:
        lab.start_etcd()
        write_network_config(lab)
        daemons = Daemons(lab, tmp_path)
        try:
            for node in lab.nodes:
                daemons.start(node)
            daemons.wait_ready()
            yield lab, daemons
        finally:
            daemons.stop_all()
            for node in lab.nodes:
                subprocess.run(["ip", "-n", node.name, "link", "del", "flannel.1"],
                               capture_output=True, check=False)
    assert leftovers(lab.tag) == []


def test_pods_on_three_nodes_reach_each_other_over_vxlan(
        cluster: tuple[Lab, Daemons], tmp_path: Path, gocni: str) -> None:
    lab, daemons = cluster
    subnets = {n.name: subnet_env.load(str(tmp_path / n.name / "subnet.env")).subnet
               for n in lab.nodes}
    assert len(set(subnets.values())) == 3
    for node in lab.nodes:  # every node routes the two others through its VTEP
        wait_for(lambda n=node: len(vtep_routes(n)) == 2, 10, f"routes on {node.name}")

    bindir = tmp_path / "bin"
    install_launchers(bindir, ["flannel", "bridge", "host-local"])
    cni_path = f"{bindir}:{GO_PLUGINS}"  # portmap from Go's set until corecni's is there
    pods: list[tuple[Node, str, str, Path]] = []  # node, netns, container id, conflist
    results: dict[str, str] = {}
    for index, node in enumerate(lab.nodes):
        conf = tmp_path / f"{node.name}.conflist"
        conf.write_text(json.dumps(seeds_conflist(tmp_path, node)))
        for p in range(2):
            ctr = lab.pod_netns(node, p)
            cid = f"{node.name}-pod{p}"
            if index == 1:  # corecni's runtime, plugins in-process
                registry = Registry(path=(str(bindir), GO_PLUGINS))
                runtime = CNIRuntime(registry=registry, cache_dir=str(tmp_path / "cache"))
                net = NetworkConfigList.from_dict(json.loads(conf.read_text()))
                with netns.entered(node.netns):
                    result = runtime.add_network_list(
                        net, RuntimeConf(container_id=cid, ifname="eth0", netns=ctr))
                address = result.ips[0].address
            else:  # Go's libcni exec'ing corecni's launchers
                proc = subprocess.run(
                    ["ip", "netns", "exec", node.name, gocni, "add", str(conf), ctr, cid,
                     "eth0", str(tmp_path / "gocache")],
                    env={**os.environ, "CNI_PATH": cni_path}, capture_output=True, text=True,
                    check=False)
                assert proc.returncode == 0, proc.stderr
                address = json.loads(proc.stdout)["ips"][0]["address"]
            assert ipaddress.ip_address(address.split("/")[0]) in subnets[node.name]  # type: ignore[operator]
            results[cid] = address.split("/")[0]
            pods.append((node, ctr, cid, conf))
    for _, ctr, cid, _ in pods:
        for other, address in results.items():
            if other != cid:
                assert ping(ctr, address, deadline=5), f"{cid} -> {other} ({address})"

    # a daemon killed and restarted keeps its subnet; its peers keep their routes to it
    victim = lab.nodes[2]
    before = (tmp_path / victim.name / "subnet.env").read_text()
    daemons.kill(victim)
    daemons.start(victim)
    time.sleep(2)
    assert (tmp_path / victim.name / "subnet.env").read_text() == before
    wait_for(lambda: len(vtep_routes(victim)) == 2, 10, "routes after restart")
    assert ping(pods[0][1], results[f"{victim.name}-pod0"], deadline=5)

    # a lease deleted in etcd: its route, neighbour and FDB entry leave the other nodes
    gone = subnets[lab.nodes[0].name]
    daemons.kill(lab.nodes[0], signal.SIGTERM)  # else it would re-create its lease
    with netns.entered(lab.nodes[1].netns):
        EtcdStore([lab.etcd_url]).delete(f"{PREFIX}/subnets/{gone.network_address}-24")
    for node in lab.nodes[1:]:
        wait_for(lambda n=node: str(gone) not in vtep_routes(n), 5, "route removal")
        neigh = ip_json(node.netns, "neigh", "show", "dev", "flannel.1")
        assert str(gone.network_address) not in {n.get("dst") for n in neigh}
        fdb = json.loads(subprocess.run(
            ["bridge", "-n", node.name, "-j", "fdb", "show", "dev", "flannel.1"],
            capture_output=True, text=True, check=True).stdout or "[]")
        assert lab.nodes[0].address not in {e.get("dst") for e in fdb}

    for node, ctr, cid, conf in pods:  # DEL, then nothing of the pods is left
        if node is lab.nodes[1]:
            registry = Registry(path=(str(bindir), GO_PLUGINS))
            runtime = CNIRuntime(registry=registry, cache_dir=str(tmp_path / "cache"))
            net = NetworkConfigList.from_dict(json.loads(conf.read_text()))
            with netns.entered(node.netns):
                runtime.del_network_list(net, RuntimeConf(container_id=cid, ifname="eth0",
                                                          netns=ctr))
        else:
            proc = subprocess.run(
                ["ip", "netns", "exec", node.name, gocni, "del", str(conf), ctr, cid, "eth0",
                 str(tmp_path / "gocache")], env={**os.environ, "CNI_PATH": cni_path},
                capture_output=True, text=True, check=False)
            assert proc.returncode == 0, proc.stderr
    for node in lab.nodes:
        assert not list((tmp_path / node.name / "flannel").glob("*"))
