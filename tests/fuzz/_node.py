"""A node for generated input: namespaces, installed launchers, a fork server, state.

Shared by ``tests/fuzz`` and ``tests/soak``. The node namespace holds what a host
would (a "NIC" veth ``phys0`` for macvlan/ipvlan/vlan, a spare device for
host-device); plugins run inside it, exec'd through their installed launchers (or,
for speed, the fork server running the same launcher file). Interface plugins attach
to the container namespace ``ctr``; meta plugins (chained: they need a previous
plugin's result) act on ``eth0`` of a second one, ``mctr``, a veth pair to the node
(``vethmeta0``) addressed and routed as an interface plugin would leave it
(``prev_result``). ``state`` reads what a plugin may change - links, addresses,
routes, rules and qdiscs of the three namespaces, the node's nftables ruleset (which
holds iptables-nft's rules), the files in the plugins' stores - never with the link
layer under test: through the fork server's netlink dumps and libnftables, else with
iproute2/nft/iptables processes.
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
    "bandwidth": "corecni_contrib.bandwidth",
    "tuning": "corecni_contrib.tuning",
    "sbr": "corecni_contrib.sbr",
    "tap": "corecni_contrib.tap",
    "dummy": "corecni_contrib.dummy",
    "vrf": "corecni_contrib.vrf",
    "portmap": "corecni_contrib.portmap",
    "firewall": "corecni_contrib.firewall",
}
#: the meta plugins' attachment (made by ``Node.make_meta_link``)
META_HOST, META_IFNAME = "vethmeta0", "eth0"
META_ADDRESS, META_GATEWAY = "10.70.0.2/24", "10.70.0.1"


@attrs.frozen
class Reply:
    status: int
    stdout: bytes
    stderr: bytes
    state: dict[str, Any] | None = None  # the namespaces' state after the call, if asked
    nft: str | None = None  # and the node's ruleset, if asked


class ForkServer:
    """``tests/fuzz/forkserver.py`` running inside ``netns``: exec-equivalent calls."""

    def __init__(self, netns: str, cwd: str | os.PathLike[str] = REPO) -> None:
        """``cwd``: where the plugins run (a relative ``dataDir`` lands there)."""
        env = {**os.environ, "PYTHONPATH": REPO}
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns_name(netns), sys.executable, "-m",
             "tests.fuzz.forkserver"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=cwd, env=env, text=True)
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline()
        if ready.strip() != "ready":
            self.close()
            raise RuntimeError(f"fork server did not start: {ready!r}")

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return dict(json.loads(self.proc.stdout.readline()))

    def call(self, launcher_path: str, env: Mapping[str, str], stdin: bytes,
             state_of: tuple[str, ...] = (), firewall: bool = False) -> Reply:
        """One call; with ``state_of``, those namespaces' state read after it (and the
        node's ruleset with ``firewall``)."""
        # env values may hold surrogate-escaped bytes: ship them as the bytes they are
        reply = self._ask({
            "launcher": launcher_path, "stdin": base64.b64encode(stdin).decode(),
            "env": {k: v.encode("utf-8", "surrogateescape").decode("latin-1")
                    for k, v in env.items()}, "latin1": True, "state": state_of,
            "firewall": firewall})
        return Reply(reply["status"], base64.b64decode(reply["stdout"]),
                     base64.b64decode(reply["stderr"]), reply.get("state"), reply.get("nft"))

    def state(self, *namespaces: str, firewall: bool = False) -> Reply:
        """The namespaces' state (a ``Reply`` of no call)."""
        reply = self._ask({"op": "state", "state": namespaces, "firewall": firewall})
        return Reply(0, b"", b"", reply["state"], reply.get("nft"))

    def reset(self, flush: bool = False, delete: tuple[tuple[str, str], ...] = (),
              up: tuple[tuple[str, str], ...] = ()) -> None:
        """Flush the node's ruleset, delete links, set links up (no process)."""
        self._ask({"op": "reset", "flush": flush, "delete": delete, "up": up})

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def exec_launcher(netns: str, launcher_path: str, env: Mapping[str, str],
                  stdin: bytes, timeout: float = 60,
                  cwd: str | os.PathLike[str] | None = None) -> Reply:
    """A real exec of the launcher inside ``netns`` (as a runtime on that node would)."""
    raw_env = {k.encode(): v.encode("utf-8", "surrogateescape") for k, v in env.items()}
    raw_env[b"PATH"] = os.environ.get("PATH", "/usr/bin:/bin").encode()
    proc = subprocess.run(["ip", "netns", "exec", ns_name(netns), launcher_path],
                          input=stdin, env=raw_env, capture_output=True, timeout=timeout,
                          check=False, cwd=cwd)
    return Reply(proc.returncode, proc.stdout, proc.stderr)


@attrs.define
class Node:
    """The namespaces and directories of one generated-input run."""

    node: str
    ctr: str
    mctr: str
    bindir: Path
    data_dir: Path

    @classmethod
    def make(cls, factory: NetnsFactory, tmp: Path) -> Node:
        node, ctr, mctr = factory("node"), factory("ctr"), factory("mctr")
        for args in (("link", "add", "phys0", "type", "veth", "peer", "name", "phys0p"),
                     ("link", "set", "phys0", "up"), ("link", "set", "phys0p", "up"),
                     ("link", "add", "hostdev0", "type", "veth", "peer", "name", "hostdev0p")):
            subprocess.run(["ip", "-n", ns_name(node), *args], check=True, capture_output=True)
        bindir = tmp / "bin"
        launcher.install(str(bindir), [launcher.LauncherSpec(t, m, sys_path=(REPO,))
                                       for t, m in CONTRIB.items()])
        data_dir = tmp / "ipam"
        data_dir.mkdir()
        made = cls(node=node, ctr=ctr, mctr=mctr, bindir=bindir, data_dir=data_dir)
        made.make_meta_link()
        return made

    def make_meta_link(self) -> None:
        """(Again) the attachment meta plugins act on: ``eth0`` of ``mctr`` with its
        address and a default route, its peer ``vethmeta0`` in the node with the
        gateway address; a link of that name already there goes first."""
        node, mctr = ns_name(self.node), ns_name(self.mctr)
        subprocess.run(["ip", "-n", node, "link", "del", META_HOST], capture_output=True,
                       check=False)
        subprocess.run(["ip", "-n", mctr, "link", "del", META_IFNAME], capture_output=True,
                       check=False)
        for netns, commands in (
                (node, (f"link add {META_HOST} type veth peer name {META_IFNAME} netns {mctr}",
                        f"addr add {META_GATEWAY}/24 dev {META_HOST}",
                        f"link set {META_HOST} up")),
                (mctr, (f"addr add {META_ADDRESS} dev {META_IFNAME}",
                        f"link set {META_IFNAME} up",
                        f"route add default via {META_GATEWAY}"))):
            subprocess.run(["ip", "-n", netns, "-batch", "-"], check=True, capture_output=True,
                           text=True, input="\n".join(commands) + "\n")

    def prev_result(self) -> dict[str, Any]:
        """What an interface plugin would have answered for the meta attachment."""
        macs = {}
        for netns, name in ((self.node, META_HOST), (self.mctr, META_IFNAME)):
            macs[name] = _ip(netns, "link", "show", name)[0]["address"]
        return {"cniVersion": "1.0.0",
                "interfaces": [{"name": META_HOST, "mac": macs[META_HOST]},
                               {"name": META_IFNAME, "mac": macs[META_IFNAME],
                                "sandbox": self.mctr}],
                "ips": [{"address": META_ADDRESS, "gateway": META_GATEWAY, "interface": 1}],
                "routes": [{"dst": "0.0.0.0/0", "gw": META_GATEWAY}]}

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
    """What the plugins' stores hold: host-local's reservations, tuning's saved links
    (not the locks, not ``last_reserved_ip``, which records history on purpose)."""
    if not data_dir.exists():
        return frozenset()
    return frozenset(str(p.relative_to(data_dir)) for p in data_dir.rglob("*")
                     if p.is_file() and p.name not in ("lock", ".lock")
                     and not p.name.startswith("last_reserved_ip."))


def state(node: Node, server: ForkServer | None = None, with_firewall: bool = True,
          reply: Reply | None = None) -> dict[str, Any]:
    """What a plugin may have changed: ``reply``'s state (read right after its call),
    else the fork server's (netlink and libnftables, no process), else links and
    addresses with ``ip -j`` and the ruleset with ``nft``/``iptables-save``."""
    namespaces = (node.node, node.ctr, node.mctr)
    if reply is None or reply.state is None:
        reply = server.state(*namespaces, firewall=with_firewall) if server is not None \
            else None
    if reply is None or reply.state is None:
        return {"node": links_and_addresses(node.node), "ctr": links_and_addresses(node.ctr),
                "mctr": links_and_addresses(node.mctr), "store": store_files(node.data_dir),
                "firewall": firewall(node.node) if with_firewall else ""}
    return {"node": reply.state[node.node], "ctr": reply.state[node.ctr],
            "mctr": reply.state[node.mctr], "store": store_files(node.data_dir),
            "firewall": reply.nft if with_firewall else ""}
