"""``make demo-cluster``: three nodes on flannel + etcd, all in namespaces, then nothing left.

Builds a lab (``cluster_lab``: underlay bridge, etcd, three nodes), writes
flannel's network config to etcd, starts ``corecni-flanneld`` on every node,
attaches two pods per node with kube-flannel's ``10-flannel.conflist`` through
corecni's runtime (flannel -> bridge + host-local in-process), pings every pod
from every other pod across nodes over VXLAN, detaches them, stops everything
and checks that no namespace, link or etcd process of the lab is left. Exits 0
only when every pod reached every other.

    python -m corecni_contrib.cluster_demo
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from corecni import netns
from corecni.registry import Registry
from corecni.runtime import CNIRuntime
from corecni.spec.config import NetworkConfigList, RuntimeConf
from corecni_contrib.cluster_lab import Lab, Node, leftovers
from corecni_contrib.etcd_store import EtcdStore

PREFIX = "/coreos.com/network"
NETWORK_CONFIG = {"Network": "10.60.0.0/16", "SubnetLen": 24,
                  "Backend": {"Type": "vxlan", "VNI": 1, "Port": 8472}}


def flanneld_path() -> str:
    return os.path.join(os.path.dirname(sys.executable), "corecni-flanneld")


class Daemons:
    """``corecni-flanneld`` per node, each inside its node's namespace."""

    def __init__(self, lab: Lab, workdir: Path, ttl: int = 15) -> None:
        self.lab, self.workdir, self.ttl = lab, workdir, ttl
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def subnet_file(self, node: Node) -> Path:
        return self.workdir / node.name / "subnet.env"

    def start(self, node: Node) -> None:
        (self.workdir / node.name).mkdir(parents=True, exist_ok=True)
        with open(self.workdir / f"{node.name}-flanneld.log", "ab") as log:
            self.procs[node.name] = subprocess.Popen(
                ["ip", "netns", "exec", node.name, flanneld_path(), "--etcd-endpoints",
                 self.lab.etcd_url, "--iface", "uplink", "--subnet-file",
                 str(self.subnet_file(node)), "--subnet-lease-ttl", str(self.ttl),
                 "--resync", "1"], stdout=log, stderr=log, start_new_session=True)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until every node wrote subnet.env and routes every other node's subnet."""
        peers = len(self.lab.nodes) - 1
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if all(self.subnet_file(n).exists() and len(vtep_routes(n)) == peers
                   for n in self.lab.nodes):
                return
            time.sleep(0.1)
        raise RuntimeError(f"flanneld did not converge in time: see {self.workdir}")

    def kill(self, node: Node, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(node.name)
        os.killpg(proc.pid, sig)
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        for name in list(self.procs):
            proc = self.procs.pop(name)
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def vtep_routes(node: Node) -> set[str]:
    """The subnets ``node`` routes through its VTEP (flannel.1)."""
    out = subprocess.run(["ip", "-n", node.name, "-j", "route", "show", "dev", "flannel.1"],
                         capture_output=True, text=True, check=False).stdout
    return {str(r["dst"]) for r in json.loads(out or "[]") if "gateway" in r}


def write_network_config(lab: Lab) -> None:
    with netns.entered(lab.nodes[0].netns):
        EtcdStore([lab.etcd_url]).put(f"{PREFIX}/config", json.dumps(NETWORK_CONFIG))


def seeds_conflist(workdir: Path, node: Node) -> dict[str, Any]:
    """kube-flannel's 10-flannel.conflist (flannel + portmap), with this node's files
    under ``workdir`` (subnet.env, the saved delegate configs, the IPAM store)."""
    return {"name": "cbr0", "cniVersion": "0.3.1", "plugins": [
        {"type": "flannel", "subnetFile": str(workdir / node.name / "subnet.env"),
         "dataDir": str(workdir / node.name / "flannel"),
         "ipam": {"dataDir": str(workdir / node.name / "ipam")},
         "delegate": {"hairpinMode": True, "isDefaultGateway": True}},
        {"type": "portmap", "capabilities": {"portMappings": True}}]}


def ping(from_netns: str, address: str) -> bool:
    """One answer within 3 s (ping keeps asking until then: the first packet to a new
    peer waits for its ARP entry)."""
    return subprocess.run(["ip", "netns", "exec", os.path.basename(from_netns), "ping", "-c1",
                           "-w3", "-i0.2", address], capture_output=True,
                          check=False).returncode == 0


def main() -> int:
    if os.geteuid() != 0:
        print("demo-cluster needs root (network namespaces)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="corecni-demo-cluster-"))
    lab = Lab()
    ok = False
    try:
        lab.build(nodes=3)
        lab.start_etcd()
        print(f"lab {lab.tag}: underlay + etcd at {lab.etcd_url} + "
              f"{', '.join(n.name for n in lab.nodes)}")
        write_network_config(lab)
        daemons = Daemons(lab, workdir)
        try:
            for node in lab.nodes:
                daemons.start(node)
            daemons.wait_ready()
            runtime = CNIRuntime(registry=Registry(path=("/usr/lib/cni",)),
                                 cache_dir=str(workdir / "cache"))
            pods: list[tuple[Node, str, str, NetworkConfigList]] = []
            addresses: dict[str, str] = {}
            for node in lab.nodes:
                net = NetworkConfigList.from_dict(seeds_conflist(workdir, node))
                for index in range(2):
                    ctr = lab.pod_netns(node, index)
                    cid = f"{node.name}-pod{index}"
                    with netns.entered(node.netns):
                        result = runtime.add_network_list(
                            net, RuntimeConf(container_id=cid, ifname="eth0", netns=ctr))
                    addresses[cid] = result.ips[0].address.split("/")[0]
                    pods.append((node, ctr, cid, net))
                    print(f"{cid}: {result.ips[0].address}")
            failures = 0
            for _, ctr, cid, _ in pods:
                for other, address in addresses.items():
                    if other != cid and not ping(ctr, address):
                        failures += 1
                        print(f"FAIL {cid} -> {other} ({address})")
            pairs = len(pods) * (len(pods) - 1)
            print(f"cross-node pings: {pairs - failures}/{pairs} ok")
            for node, ctr, cid, net in pods:
                with netns.entered(node.netns):
                    runtime.del_network_list(net, RuntimeConf(container_id=cid, ifname="eth0",
                                                              netns=ctr))
            ok = failures == 0
        finally:
            daemons.stop_all()
    finally:
        etcd_pid = lab.etcd_proc.pid if lab.etcd_proc is not None else None
        lab.close()
        subprocess.run(["rm", "-rf", str(workdir)], check=False)
    left = leftovers(lab.tag)
    etcd_left = etcd_pid is not None and os.path.exists(f"/proc/{etcd_pid}")
    print(f"left behind: {len(left)} namespaces, {'an' if etcd_left else 'no'} etcd process")
    return 0 if ok and not left and not etcd_left else 1


if __name__ == "__main__":
    sys.exit(main())
