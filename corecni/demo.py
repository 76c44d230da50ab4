"""``make demo``: attach a throwaway container through corecni and prove it works.

Everything happens inside two namespaces made for the purpose - a "node"
standing in for the host, and a "container" - which are removed at the end
even on failure. The machine's own network is never touched.

Plugins: corecni's own (``corecni-contrib``) where they are installed,
otherwise Debian's Go reference plugins, so the demo runs on a bare core too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

from corecni import netns
from corecni.config import list_from_bytes
from corecni.registry import Registry
from corecni.runtime import CNIRuntime
from corecni.spec.config import RuntimeConf

GO_PLUGIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin")


def _sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), check=check, capture_output=True, text=True)


def demo_config(workdir: str) -> dict[str, object]:
    return {
        "cniVersion": "1.0.0",
        "name": "corecni-demo",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni-demo0",
                "isGateway": True,
                "ipMasq": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": "10.123.0.0/24"}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": os.path.join(workdir, "ipam"),
                },
            },
            {"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.arp_notify": "1"}},
        ],
    }


def run_demo() -> int:
    if os.geteuid() != 0:
        print("corecni demo needs root (it creates network namespaces)", file=sys.stderr)
        return 1
    tag = f"corecni-demo-{os.getpid()}"
    node, ctr = f"{tag}-node", f"{tag}-ctr"
    workdir = tempfile.mkdtemp(prefix="corecni-demo-")
    created: list[str] = []
    try:
        for name in (node, ctr):
            _sh("ip", "netns", "add", name)
            created.append(name)
            _sh("ip", "-n", name, "link", "set", "lo", "up")
        path = tuple(d for d in GO_PLUGIN_DIRS if os.path.isdir(d))
        runtime = CNIRuntime(path=path, cache_dir=os.path.join(workdir, "cache"),
                             registry=Registry(path=path))
        net = list_from_bytes(json.dumps(demo_config(workdir)).encode())
        rt = RuntimeConf(container_id=f"demo{os.getpid()}", ifname="eth0",
                         netns=f"/run/netns/{ctr}")
        for plugin in net.plugins:
            ref = runtime.registry.resolve(plugin.type)  # type: ignore[union-attr]
            how = "in-process" if ref.kind == "python" else "exec"
            print(f"plugin {plugin.type:<8} -> {how} ({ref.location})")
        with netns.entered(f"/run/netns/{node}"):
            print(f"\n== ADD {net.name} to {rt.netns}")
            result = runtime.add_network_list(net, rt)
            print(json.dumps(result.to_dict(), indent=2))
            gateway = next(ip.gateway for ip in result.ips if ip.gateway)
            print(f"\n== ping gateway {gateway} from the container")
            ping = _sh("ip", "netns", "exec", ctr, "ping", "-c", "3", "-i", "0.2", "-W", "2",
                       gateway, check=False)
            print(ping.stdout.strip())
            if ping.returncode != 0:
                print("demo FAILED: no connectivity", file=sys.stderr)
                return 1
            print("\n== CHECK")
            runtime.check_network_list(net, rt)
            print("ok")
            print("\n== DEL (twice: DEL is idempotent)")
            runtime.del_network_list(net, rt)
            runtime.del_network_list(net, rt)
            print("ok")
        left = os.listdir(os.path.join(workdir, "ipam", net.name))
        leftovers = [f for f in left if f not in ("lock",) and not f.startswith("last_reserved")]
        print(f"IPAM store after DEL: {leftovers or 'empty'}")
        print("\ndemo OK")
        return 0
    finally:
        for name in reversed(created):
            _sh("ip", "netns", "del", name, check=False)
        shutil.rmtree(workdir, ignore_errors=True)
