"""``make demo``: attach a container the way podman does, through corecni, and prove it.

The network is podman's default conflist - ``bridge -> portmap -> firewall ->
tuning`` - plus ``bandwidth``, with one port mapping (node 8080 -> container
80). Everything happens inside three namespaces made for the purpose, removed
at the end even on failure; the machine's own network is never touched:

* ``node``: stands in for the host (the bridge, the rules, the IPAM store);
* ``container``: the pod, running a small HTTP server on port 80;
* ``client``: another machine on the node's uplink (192.0.2.0/24), which
  reaches the container only through the node's hostPort.

The demo shows the ADD result, pings the gateway, fetches the page through
the hostPort, runs CHECK, DELs twice (DEL is idempotent) and shows that no
rule, address or IPAM file is left.

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
import time
from pathlib import Path

from corecni import netns
from corecni.config import list_from_bytes
from corecni.registry import Registry
from corecni.runtime import CNIRuntime
from corecni.spec.config import NetworkConfigList, RuntimeConf

GO_PLUGIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin")
NODE_UPLINK = "192.0.2.1"
CLIENT = "192.0.2.2"
HOST_PORT, CONTAINER_PORT = 8080, 80
PAGE = "hello from the container, through corecni's portmap\n"


def _sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), check=check, capture_output=True, text=True)


def demo_config(workdir: str) -> dict[str, object]:
    """podman's default network (bridge, portmap, firewall, tuning) plus bandwidth."""
    return {
        "cniVersion": "1.0.0",
        "name": "corecni-demo",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni-demo0",
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": "10.123.0.0/24"}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": os.path.join(workdir, "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
            {"type": "firewall"},
            {"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.arp_notify": "1"}},
            {"type": "bandwidth", "ingressRate": 100_000_000, "ingressBurst": 1_000_000,
             "egressRate": 100_000_000, "egressBurst": 1_000_000},
        ],
    }


def _rules_of(node: str, *marks: str) -> int:
    """How many iptables rules (both families) of the node name the container (its ID
    or address). The shared chains the plugins hang theirs from stay, as Go's do."""
    dumps = (_sh("ip", "netns", "exec", node, tool, check=False).stdout
             for tool in ("iptables-save", "ip6tables-save"))
    return sum(line.startswith("-A") and any(m in line for m in marks)
               for dump in dumps for line in dump.splitlines())


def _serve(ctr: str, root: str) -> subprocess.Popen[bytes]:
    """A static HTTP server on the container's port 80, and wait until it listens."""
    Path(root).mkdir(exist_ok=True)
    Path(root, "index.html").write_text(PAGE)
    server = subprocess.Popen(
        ["ip", "netns", "exec", ctr, sys.executable, "-m", "http.server", str(CONTAINER_PORT),
         "--bind", "0.0.0.0", "--directory", root],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        listening = _sh("ip", "netns", "exec", ctr, "ss", "-Hltn",
                        f"sport = :{CONTAINER_PORT}", check=False).stdout
        if listening.strip():
            break
        time.sleep(0.05)
    return server


def _fetch(client: str, url: str) -> str:
    """GET ``url`` from the client namespace ('' when it cannot be reached)."""
    code = ("import urllib.request; "
            f"print(urllib.request.urlopen({url!r}, timeout=5).read().decode(), end='')")
    return _sh("ip", "netns", "exec", client, sys.executable, "-c", code, check=False).stdout


def _describe_plugins(runtime: CNIRuntime, net: NetworkConfigList) -> None:
    assert runtime.registry is not None
    for plugin in net.plugins:
        ref = runtime.registry.resolve(plugin.type)
        how = "in-process" if ref.kind == "python" else "exec"
        print(f"plugin {plugin.type:<9} -> {how} ({ref.location})")


def run_demo() -> int:
    if os.geteuid() != 0:
        print("corecni demo needs root (it creates network namespaces)", file=sys.stderr)
        return 1
    tag = f"corecni-demo-{os.getpid()}"
    node, ctr, client = f"{tag}-node", f"{tag}-ctr", f"{tag}-client"
    workdir = tempfile.mkdtemp(prefix="corecni-demo-")
    created: list[str] = []
    server: subprocess.Popen[bytes] | None = None
    try:
        for name in (node, ctr, client):
            _sh("ip", "netns", "add", name)
            created.append(name)
            _sh("ip", "-n", name, "link", "set", "lo", "up")
        # the node's uplink: a veth to the client namespace
        _sh("ip", "-n", node, "link", "add", "uplink0", "type", "veth", "peer", "name", "eth0",
            "netns", client)
        _sh("ip", "-n", node, "addr", "add", f"{NODE_UPLINK}/24", "dev", "uplink0")
        _sh("ip", "-n", node, "link", "set", "uplink0", "up")
        _sh("ip", "-n", client, "addr", "add", f"{CLIENT}/24", "dev", "eth0")
        _sh("ip", "-n", client, "link", "set", "eth0", "up")

        path = tuple(d for d in GO_PLUGIN_DIRS if os.path.isdir(d))
        runtime = CNIRuntime(path=path, cache_dir=os.path.join(workdir, "cache"),
                             registry=Registry(path=path))
        net = list_from_bytes(json.dumps(demo_config(workdir)).encode())
        mapping = {"hostPort": HOST_PORT, "containerPort": CONTAINER_PORT, "protocol": "tcp"}
        rt = RuntimeConf(container_id=f"demo{os.getpid()}", ifname="eth0",
                         netns=f"/run/netns/{ctr}",
                         capability_args={"portMappings": [mapping]})
        _describe_plugins(runtime, net)
        with netns.entered(f"/run/netns/{node}"):
            print(f"\n== ADD {net.name} to {rt.netns} (hostPort {HOST_PORT} -> "
                  f"container {CONTAINER_PORT})")
            result = runtime.add_network_list(net, rt)
            print(json.dumps(result.to_dict(), indent=2))
            marks = (rt.container_id, *(ip.address.split("/")[0] + "/" for ip in result.ips))
            print(f"node iptables rules of this container: {_rules_of(node, *marks)}")
            gateway = next(ip.gateway for ip in result.ips if ip.gateway)
            print(f"\n== ping gateway {gateway} from the container")
            ping = _sh("ip", "netns", "exec", ctr, "ping", "-c", "3", "-i", "0.2", "-W", "2",
                       str(gateway), check=False)
            print(ping.stdout.strip())
            if ping.returncode != 0:
                print("demo FAILED: no connectivity", file=sys.stderr)
                return 1
            url = f"http://{NODE_UPLINK}:{HOST_PORT}/"
            print(f"\n== from the client namespace: GET {url} (the node's hostPort)")
            server = _serve(ctr, os.path.join(workdir, "www"))
            page = _fetch(client, url)
            print(page.strip() or "(nothing)")
            if page != PAGE:
                print("demo FAILED: the hostPort did not reach the container", file=sys.stderr)
                return 1
            print("\n== CHECK")
            runtime.check_network_list(net, rt)
            print("ok")
            print("\n== DEL (twice: DEL is idempotent)")
            runtime.del_network_list(net, rt)
            runtime.del_network_list(net, rt)
            print("ok")
            rules = _rules_of(node, *marks)
        store = os.path.join(workdir, "ipam", net.name)
        leftovers = [f for f in os.listdir(store)
                     if f != "lock" and not f.startswith("last_reserved")]
        print(f"IPAM store after DEL: {leftovers or 'empty'}; "
              f"node iptables rules of this container: {rules}")
        if leftovers or rules:
            print("demo FAILED: DEL left state behind", file=sys.stderr)
            return 1
        print("\ndemo OK")
        return 0
    finally:
        if server is not None:
            server.kill()
            server.wait()
        for name in reversed(created):
            _sh("ip", "netns", "del", name, check=False)
        shutil.rmtree(workdir, ignore_errors=True)
