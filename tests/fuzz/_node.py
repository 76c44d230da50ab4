"""A node for generated input: namespaces, installed launchers, a fork server, state.

Shared by ``tests/fuzz`` and ``tests/soak``. The node namespace holds what a host
would (a "NIC" veth ``phys0`` for macvlan/ipvlan/vlan, a spare device for
host-device); plugins run inside it, exec'd through their installed launchers (or,
for speed, the fork server running the same launcher file). ``State`` reads what a
plugin may change - links and addresses of both namespaces, nftables and iptables
of the node, the files in the IPAM store - with iproute2/nft/iptables, never with
the link layer under test.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from corecni import launcher
from corecni.testing import NetnsFactory, ns_name

REPO = str(Path(__file__).resolve().parents[2])

#: every contrib plugin, by type (installed as launchers into the node's bin dir)
CONTRIB = {
    "bridge": "corecni_contrib.bridge",
    "ptp": "corecni_contrib.ptp",
    "loopback": "corecni_contrib.loopback",
    "macvlan": "corecni_contrib.macvlan",
    "ipvlan": "corecni_contrib.ipvlan",
    "vlan": "corecni_contrib.vlan",
    "host-device": "corecni_contrib.host_device",
    "host-local": "corecni_contrib.host_local.plugin",
    "static": "corecni_contrib.static",
}


@attrs.frozen
class Reply:
    status: int
    stdout: bytes
    stderr: bytes
    links: dict[str, Any] | None = None  # the namespaces' links after the call, if asked


class ForkServer:
    """``tests/fuzz/forkserver.py`` running inside ``netns``: exec-equivalent calls."""

    def __init__(self, netns: str) -> None:
        env = {**os.environ, "PYTHONPATH": REPO}
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns_name(netns), sys.executable, "-m",
             "tests.fuzz.forkserver"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO, env=env, text=True)
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline()
        if ready.strip() != "ready":
            self.close()
            raise RuntimeError(f"fork server did not start: {ready!r}")

    def call(self, launcher_path: str, env: Mapping[str, str], stdin: bytes,
             state_of: tuple[str, ...] = ()) -> Reply:
        """One call; with ``state_of``, those namespaces' links read after it."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        # env values may hold surrogate-escaped bytes: ship them as the bytes they are
        request = {"launcher": launcher_path, "stdin": base64.b64encode(stdin).decode(),
                   "env": {k: v.encode("utf-8", "surrogateescape").decode("latin-1")
                           for k, v in env.items()}, "latin1": True, "state": state_of}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        return Reply(reply["status"], base64.b64decode(reply["stdout"]),
                     base64.b64decode(reply["stderr"]), reply.get("links"))

    def links(self, *namespaces: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"op": "links", "netns": list(namespaces)}) + "\n")
        self.proc.stdin.flush()
        return dict(json.loads(self.proc.stdout.readline()))

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def exec_launcher(netns: str, launcher_path: str, env: Mapping[str, str],
                  stdin: bytes, timeout: float = 60) -> Reply:
    """A real exec of the launcher inside ``netns`` (as a runtime on that node would)."""
    raw_env = {k.encode(): v.encode("utf-8", "surrogateescape") for k, v in env.items()}
    raw_env[b"PATH"] = os.environ.get("PATH", "/usr/bin:/bin").encode()
    proc = subprocess.run(["ip", "netns", "exec", ns_name(netns), launcher_path],
                          input=stdin, env=raw_env, capture_output=True, timeout=timeout,
                          check=False)
    return Reply(proc.returncode, proc.stdout, proc.stderr)


@attrs.define
class Node:
    """The namespaces and directories of one generated-input run."""

    node: str
    ctr: str
    bindir: Path
    data_dir: Path

    @classmethod
    def make(cls, factory: NetnsFactory, tmp: Path) -> Node:
        node, ctr = factory("node"), factory("ctr")
        for args in (("link", "add", "phys0", "type", "veth", "peer", "name", "phys0p"),
                     ("link", "set", "phys0", "up"), ("link", "set", "phys0p", "up"),
                     ("link", "add", "hostdev0", "type", "veth", "peer", "name", "hostdev0p")):
            subprocess.run(["ip", "-n", ns_name(node), *args], check=True, capture_output=True)
        bindir = tmp / "bin"
        launcher.install(str(bindir), [launcher.LauncherSpec(t, m, sys_path=(REPO,))
                                       for t, m in CONTRIB.items()])
        data_dir = tmp / "ipam"
        data_dir.mkdir()
        return cls(node=node, ctr=ctr, bindir=bindir, data_dir=data_dir)

    def launcher(self, plugin_type: str) -> str:
        return str(self.bindir / plugin_type)

    def env(self, command: str, cid: str = "c1", ifname: str = "eth0",
            netns: str | None = None, args: str = "") -> dict[str, str]:
        env = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid,
               "CNI_NETNS": self.ctr if netns is None else netns, "CNI_IFNAME": ifname,
               "CNI_PATH": str(self.bindir)}
        if args:
            env["CNI_ARGS"] = args
        return env


def _ip(netns: str, *args: str) -> Any:
    out = subprocess.run(["ip", "-j", "-n", ns_name(netns), *args], capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out or "[]")


def links_and_addresses(netns: str) -> frozenset[tuple[Any, ...]]:
    """Each link: name, kind, master, MTU, up, and its addresses (not ifindex or MAC,
    which an ADD/DEL cycle of a shared device may legitimately renumber)."""
    out = set()
    for link in _ip(netns, "-d", "addr", "show"):
        addresses = tuple(sorted(f"{a['local']}/{a['prefixlen']}"
                                 for a in link.get("addr_info", ())
                                 if a.get("scope") != "link"))
        out.add((link["ifname"], link.get("linkinfo", {}).get("info_kind", ""),
                 link.get("master", ""), link.get("mtu"), "UP" in link.get("flags", ()),
                 addresses))
    return frozenset(out)


def firewall(netns: str) -> str:
    """The node's nftables ruleset and iptables rules (both families)."""
    name = ns_name(netns)
    parts = [subprocess.run(["ip", "netns", "exec", name, "nft", "list", "ruleset"],
                            capture_output=True, text=True, check=False).stdout]
    for tool in ("iptables-save", "ip6tables-save"):
        text = subprocess.run(["ip", "netns", "exec", name, tool], capture_output=True,
                              text=True, check=False).stdout
        parts.append("\n".join(line for line in text.splitlines()
                               if not line.startswith("#")))
    return "\n".join(parts)


def store_files(data_dir: Path) -> frozenset[str]:
    """What the IPAM store holds: reservations (not the lock, not ``last_reserved_ip``,
    which records history on purpose)."""
    if not data_dir.exists():
        return frozenset()
    return frozenset(str(p.relative_to(data_dir)) for p in data_dir.rglob("*")
                     if p.is_file() and p.name != "lock"
                     and not p.name.startswith("last_reserved_ip."))


def state(node: Node, server: ForkServer | None = None, with_firewall: bool = True,
          links: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a plugin may have changed. Links: ``links`` (a reply's), else the server's
    netlink dump (no process per read: the fuzz reads state after every call), else
    ``ip -j``."""
    if links is None:
        links = server.links(node.node, node.ctr) if server is not None else \
            {node.node: links_and_addresses(node.node),
             node.ctr: links_and_addresses(node.ctr)}
    return {"node": links[node.node], "ctr": links[node.ctr],
            "store": store_files(node.data_dir),
            "firewall": firewall(node.node) if with_firewall else ""}
