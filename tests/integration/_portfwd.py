"""What the portmap/firewall tests share: a node with a "peer" host, chain configs,
runtimes (in-process or exec'd launchers), netfilter state readers and TCP probes.

Topology (all namespaces are the test's own)::

    peer ns  veth pf-peer 10.98.0.2/24, fd98::2/64
        |
    node ns  veth pf-node 10.98.0.1/24, fd98::1/64; bridge cni-pf0 10.97.0.1/24, fd97::1/64
        |
    container ns(es) eth0 (corecni's bridge + host-local)

Rules are read with ``iptables-save``/``nft -j`` run inside the node namespace.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from corecni import launcher, netns
from corecni.registry import Registry
from corecni.runtime import CNIRuntime
from corecni.spec.config import NetworkConfigList, RuntimeConf
from corecni.testing import ns_name

GO_PLUGINS = "/usr/lib/cni"
OURS = {"bridge": "corecni_contrib.bridge", "host-local": "corecni_contrib.host_local.plugin",
        "portmap": "corecni_contrib.portmap", "firewall": "corecni_contrib.firewall"}
BRIDGE = "cni-pf0"
NODE_V4, NODE_V6 = "10.98.0.1", "fd98::1"
SUBNET_V4, SUBNET_V6 = "10.97.0.0/24", "fd97::/64"


def sh(ns: str, *cmd: str, check: bool = True) -> str:
    """A command inside ``ns``; its stdout."""
    return subprocess.run(["ip", "netns", "exec", ns_name(ns), *cmd], capture_output=True,
                          text=True, check=check).stdout


def connect_peer(node: str, peer: str) -> None:
    """The "other host": a veth between node and peer, with v4 and v6 addresses."""
    subprocess.run(["ip", "-n", ns_name(node), "link", "add", "pf-node", "type", "veth", "peer",
                    "name", "pf-peer", "netns", ns_name(peer)], check=True)
    for ns, name, v4, v6 in ((node, "pf-node", NODE_V4, NODE_V6),
                             (peer, "pf-peer", "10.98.0.2", "fd98::2")):
        sh(ns, "ip", "addr", "add", f"{v4}/24", "dev", name)
        sh(ns, "ip", "addr", "add", f"{v6}/64", "dev", name, "nodad")
        sh(ns, "ip", "link", "set", name, "up")


def chain_conf(tmp: Path, *, backend: str = "iptables", name: str = "pfnet",
               firewall: Mapping[str, Any] | None = None, dual: bool = True,
               extra: tuple[Mapping[str, Any], ...] = (), version: str = "1.0.0",
               portmap: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """bridge (+host-local) -> portmap -> firewall [-> extra...]."""
    ranges = [[{"subnet": SUBNET_V4}]] + ([[{"subnet": SUBNET_V6}]] if dual else [])
    return {"cniVersion": version, "name": name, "plugins": [
        {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": True,
         "hairpinMode": True,
         "ipam": {"type": "host-local", "dataDir": str(tmp / "ipam"), "ranges": ranges,
                  "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]}},
        {"type": "portmap", "capabilities": {"portMappings": True}, "backend": backend,
         **(portmap or {})},
        {"type": "firewall", "backend": backend, **(firewall or {})},
        *extra]}


def install_ours(bindir: Path, types: tuple[str, ...] = tuple(OURS)) -> str:
    from importlib.metadata import entry_points

    targets = {**{ep.name: ep.value for ep in entry_points(group="corecni.plugins")}, **OURS}
    launcher.install(str(bindir), [launcher.LauncherSpec(t, targets[t]) for t in types])
    return str(bindir)


def make_runtime(mode: str, tmp: Path, *, rollback: bool = True) -> CNIRuntime:
    """corecni's runtime: our plugins in-process, or exec'd through their launchers
    (Go's plugins on the path for the types that are not ours, e.g. tuning)."""
    if mode == "exec":
        path: tuple[str, ...] = (install_ours(tmp / "bin"), GO_PLUGINS)
        registry = Registry(path=path, entry_points=False, in_process=False)
    else:
        path = (GO_PLUGINS,)
        registry = Registry(path=path, entry_points=False)
        for plugin_type, target in OURS.items():
            registry.register(plugin_type, target)
    return CNIRuntime(path=path, cache_dir=str(tmp / "cache"), registry=registry,
                      rollback=rollback)


def mappings(*ports: tuple[int, int], protocol: str = "tcp") -> dict[str, Any]:
    return {"portMappings": [{"hostPort": h, "containerPort": c, "protocol": protocol}
                             for h, c in ports]}


class Chain:
    """A runtime bound to the node namespace, for one conflist."""

    def __init__(self, runtime: CNIRuntime, node: str, conf: Mapping[str, Any]) -> None:
        self.runtime, self.node = runtime, node
        self.net = NetworkConfigList.from_dict(conf)

    def _rt(self, ctr: str, cid: str, caps: Mapping[str, Any] | None) -> RuntimeConf:
        return RuntimeConf(cid, "eth0", ctr, capability_args=dict(caps or {}))

    def add(self, ctr: str, cid: str, caps: Mapping[str, Any] | None = None) -> dict[str, Any]:
        with netns.entered(self.node):
            return dict(self.runtime.add_network_list(self.net,
                                                      self._rt(ctr, cid, caps)).to_dict())

    def check(self, ctr: str, cid: str, caps: Mapping[str, Any] | None = None) -> None:
        with netns.entered(self.node):
            self.runtime.check_network_list(self.net, self._rt(ctr, cid, caps))

    def delete(self, ctr: str, cid: str, caps: Mapping[str, Any] | None = None) -> None:
        with netns.entered(self.node):
            self.runtime.del_network_list(self.net, self._rt(ctr, cid, caps))

    def gc(self, valid: list[tuple[str, str]]) -> None:
        from corecni.request import Attachment

        with netns.entered(self.node):
            self.runtime.gc_network_list(self.net, [Attachment(c, i) for c, i in valid])


# --- netfilter state --------------------------------------------------------------------

def iptables_rules(node: str, family: int = 4, table: str = "nat") -> list[str]:
    tool = "iptables-save" if family == 4 else "ip6tables-save"
    return [line for line in sh(node, tool, "-t", table).splitlines()
            if line.startswith(("-A", ":"))]


def nft_ruleset(node: str) -> dict[str, Any]:
    return dict(json.loads(sh(node, "nft", "-j", "list", "ruleset") or "{}"))


def nft_text(node: str) -> str:
    return sh(node, "nft", "list", "ruleset")


def netfilter_state(node: str) -> str:
    """Every rule of the node, both tools' views (for "nothing changed" assertions)."""
    return "\n".join([*iptables_rules(node, 4, "nat"), *iptables_rules(node, 6, "nat"),
                      *iptables_rules(node, 4, "filter"), *iptables_rules(node, 6, "filter"),
                      nft_text(node)])


def container_rules(node: str, cid: str, ips: list[str]) -> list[str]:
    """Lines anywhere in the node's rules that name the container or its addresses."""
    found = []
    text = netfilter_state(node)
    for line in text.splitlines():
        if f'"{cid}"' in line or f"id: \\\"{cid}\\\"" in line or \
                any(f"{ip}/" in line or f"{ip}:" in line or f" {ip} " in f" {line} "
                    for ip in ips):
            found.append(line.strip())
    return found


# --- traffic ----------------------------------------------------------------------------

SERVER = r"""
import socket, sys
family = socket.AF_INET6 if sys.argv[1] == "6" else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
if family == socket.AF_INET6:
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", int(sys.argv[2])))
s.listen(16)
print("ready", flush=True)
while True:
    c, peer = s.accept()
    c.sendall(("hello from %s to %s\n" % (peer[0], c.getsockname()[0])).encode())
    c.close()
"""

CLIENT = r"""
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
try:
    c = socket.create_connection((host, port), timeout=3)
    print(c.recv(200).decode().strip())
except OSError as exc:
    print("ERR", exc)
"""


@contextlib.contextmanager
def tcp_servers(ns: str, port: int) -> Iterator[None]:
    """TCP servers on ``port`` (v4 and v6) in ``ns``, answering with the peer's address."""
    procs = []
    try:
        for family in ("4", "6"):
            proc = subprocess.Popen(["ip", "netns", "exec", ns_name(ns), sys.executable, "-c",
                                     SERVER, family, str(port)], stdout=subprocess.PIPE,
                                    text=True)
            procs.append(proc)
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def tcp_get(ns: str, host: str, port: int, attempts: int = 3) -> str:
    """One TCP exchange from ``ns`` (a few tries: a fresh address may still be settling)."""
    out = ""
    for _ in range(attempts):
        out = sh(ns, sys.executable, "-c", CLIENT, host, str(port)).strip()
        if out.startswith("hello"):
            return out
        time.sleep(0.3)
    return out
