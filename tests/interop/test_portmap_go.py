"""portmap and firewall against Go: Go's libcni exec'ing corecni's chain, Go's plugins
mixed in, and a node switching between Go's and corecni's portmap with live pods.

Everything runs in the test's namespaces: the libcni driver (``gocni``) is exec'd
inside the node namespace, so every rule it makes lands there. Kernel state is read
with ``iptables-save``/``nft`` after each step; TCP proves the forwarding.

Debian ships Go's plugins 1.1.1: their portmap CHECK fails on every attachment (it
checks each address against both families' tables), so Go's portmap is never
CHECKed here; corecni's is, on v4-only and dual-stack attachments.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from corecni_contrib.portmap import iptables as pm_iptables

from corecni.testing import ns_name
from tests.integration import _portfwd as pf

pytestmark = [pytest.mark.interop, pytest.mark.root, pytest.mark.usefixtures("root_netns_guard")]

REGISTERED = {ep.name for ep in entry_points(group="corecni.plugins")}
CAPS = pf.mappings((8080, 80), (8081, 81), (8082, 82), (8083, 83))
TAIL = ({"type": "tuning", "sysctl": {"net.core.somaxconn": "512"}},
        {"type": "bandwidth", "ingressRate": 100_000_000, "ingressBurst": 1_000_000,
         "egressRate": 100_000_000, "egressBurst": 1_000_000})


class GoCni:
    """Go's libcni (the interop driver) run inside the node namespace."""

    def __init__(self, gocni: str, cni_path: str, node: str, conf: dict[str, Any],
                 tmp: Path, name: str = "net.conflist") -> None:
        self.gocni, self.cni_path, self.node, self.tmp = gocni, cni_path, node, tmp
        self.path = tmp / name
        self.path.write_text(json.dumps(conf))

    def run(self, verb: str, ctr: str, cid: str, caps: dict[str, Any] | None = None,
            cni_path: str | None = None) -> str:
        proc = subprocess.run(
            ["ip", "netns", "exec", ns_name(self.node), self.gocni, verb, str(self.path), ctr,
             cid, "eth0", str(self.tmp / "cache"), json.dumps(caps or {})],
            env={**os.environ, "CNI_PATH": cni_path or self.cni_path}, capture_output=True,
            text=True, check=False)
        assert proc.returncode == 0, f"{verb}: {proc.stderr}"
        return proc.stdout

    def add(self, ctr: str, cid: str, caps: dict[str, Any] | None = None) -> list[str]:
        result = json.loads(self.run("add", ctr, cid, caps))
        return [ip["address"].split("/")[0] for ip in result["ips"]]


def plugin_dir(tmp: Path, ours: tuple[str, ...], go: tuple[str, ...]) -> str:
    """One directory holding our launchers for ``ours`` and Go's binaries for ``go``."""
    bindir = tmp / "plugins"
    pf.install_ours(bindir, ours)
    for name in go:
        shutil.copy(f"{pf.GO_PLUGINS}/{name}", bindir / name)
    return str(bindir)


@pytest.fixture
def world(netns_factory: Any) -> tuple[str, str, str]:
    node, peer, ctr = netns_factory("node"), netns_factory("peer"), netns_factory("ctr")
    pf.connect_peer(node, peer)
    return node, peer, ctr


def assert_forwarding(node: str, peer: str, ctr: str, ips: list[str]) -> None:
    v4, v6 = ips
    with pf.tcp_servers(ctr, 80):
        assert pf.tcp_get(peer, pf.NODE_V4, 8080) == f"hello from 10.98.0.2 to {v4}"
        assert pf.tcp_get(peer, pf.NODE_V6, 8080) == f"hello from fd98::2 to {v6}"
        assert pf.tcp_get(ctr, pf.NODE_V4, 8080).startswith("hello from 10.97.0.1")
        assert pf.tcp_get(ctr, pf.NODE_V6, 8080).startswith("hello from fd97::1")
        assert pf.tcp_get(node, "127.0.0.1", 8080).startswith("hello from 10.97.0.1")


def no_rules_of(node: str, cid: str, ips: list[str], network: str = "pfnet") -> None:
    dn = pm_iptables.dnat_chain(network, cid)
    state = pf.netfilter_state(node)
    assert dn not in state
    assert f'id: \\"{cid}\\"' not in state and f'comment "{cid}"' not in state
    for ip in ips:
        assert f"{ip}:" not in state and f"[{ip}]" not in state and f"{ip}/32" not in state \
            and f"{ip}/128" not in state


@pytest.mark.parametrize("bridge", ["ours", "go"])
@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_go_libcni_execs_our_chain(bridge: str, backend: str, gocni: str,
                                   world: tuple[str, str, str], tmp_path: Path) -> None:
    """bridge -> portmap -> firewall -> tuning -> bandwidth, Go's libcni driving;
    portmap, firewall, tuning and bandwidth are corecni's launchers (Go's when
    corecni's are not installed), bridge is ours or Go's (with Go's host-local)."""
    node, peer, ctr = world
    tail = tuple(t for t in ("tuning", "bandwidth") if t in REGISTERED)
    ours = ("portmap", "firewall", *tail) + (("bridge", "host-local") if bridge == "ours" else ())
    go = tuple(t for t in ("tuning", "bandwidth") if t not in REGISTERED) + \
        (("bridge", "host-local") if bridge == "go" else ())
    cni = GoCni(gocni, plugin_dir(tmp_path, ours, go), node,
                pf.chain_conf(tmp_path, backend=backend, extra=TAIL), tmp_path)
    ips = cni.add(ctr, "ctr-1", CAPS)
    cni.run("check", ctr, "ctr-1", CAPS)
    if backend == "iptables":
        assert f"-A CNI-FORWARD -s {ips[0]}/32 -j ACCEPT" in pf.iptables_rules(node, 4, "filter")
        assert any(pm_iptables.dnat_chain("pfnet", "ctr-1") in r
                   for r in pf.iptables_rules(node, 6))
    else:
        assert f'comment "ctr-1" : {ips[1]} . 80' in pf.nft_text(node)
    assert pf.sh(ctr, "cat", "/proc/sys/net/core/somaxconn").strip() == "512"
    assert "tbf" in pf.sh(node, "tc", "qdisc", "show")
    assert_forwarding(node, peer, ctr, ips)
    cni.run("del", ctr, "ctr-1", CAPS)
    cni.run("del", ctr, "ctr-1", CAPS)
    no_rules_of(node, "ctr-1", ips)


def test_go_portmap_beside_ours(gocni: str, world: tuple[str, str, str], netns_factory: Any,
                                tmp_path: Path) -> None:
    """Two networks on one node: one with Go's portmap, one with corecni's. Each
    forwards its ports; each DEL removes its own container's rules only."""
    node, peer, ctr = world
    other = netns_factory("ctr")
    go_dir = plugin_dir(tmp_path / "go", ("bridge", "host-local", "firewall"), ("portmap",))
    our_dir = plugin_dir(tmp_path / "ours", ("bridge", "host-local", "firewall", "portmap"), ())
    go_conf = pf.chain_conf(tmp_path, name="gonet")
    our_conf = json.loads(json.dumps(go_conf))
    our_conf["name"] = "ournet"
    our_conf["plugins"][0]["bridge"] = "cni-pf1"
    our_conf["plugins"][0]["ipam"]["ranges"] = [[{"subnet": "10.96.0.0/24"}],
                                                [{"subnet": "fd96::/64"}]]
    go_cni = GoCni(gocni, go_dir, node, go_conf, tmp_path, "go.conflist")
    our_cni = GoCni(gocni, our_dir, node, our_conf, tmp_path, "ours.conflist")
    go_ips = go_cni.add(ctr, "go-1", pf.mappings((8080, 80)))
    our_ips = our_cni.add(other, "our-1", pf.mappings((9090, 80)))
    our_cni.run("check", other, "our-1", pf.mappings((9090, 80)))
    with pf.tcp_servers(ctr, 80), pf.tcp_servers(other, 80):
        assert pf.tcp_get(peer, pf.NODE_V4, 8080).endswith(go_ips[0])
        assert pf.tcp_get(peer, pf.NODE_V6, 9090).endswith(our_ips[1])
        assert pf.tcp_get(node, "127.0.0.1", 9090).startswith("hello from 10.96.0.1")
    go_cni.run("del", ctr, "go-1", pf.mappings((8080, 80)))
    no_rules_of(node, "go-1", go_ips, "gonet")
    our_cni.run("check", other, "our-1", pf.mappings((9090, 80)))
    our_cni.run("del", other, "our-1", pf.mappings((9090, 80)))
    no_rules_of(node, "our-1", our_ips, "ournet")


@pytest.mark.parametrize("direction", ["go-then-ours", "ours-then-go"])
def test_switch_portmap_with_live_pods(direction: str, gocni: str, world: tuple[str, str, str],
                                       tmp_path: Path) -> None:
    """A pod attached by one implementation's portmap, removed by the other's DEL
    (iptables backend): no rule of the pod is left. Forwarding works before the
    switch, and CHECK by corecni passes on Go's rules."""
    node, peer, ctr = world
    go_dir = plugin_dir(tmp_path / "go", ("bridge", "host-local", "firewall"), ("portmap",))
    our_dir = plugin_dir(tmp_path / "ours", ("bridge", "host-local", "firewall", "portmap"), ())
    first, second = (go_dir, our_dir) if direction == "go-then-ours" else (our_dir, go_dir)
    cni = GoCni(gocni, first, node, pf.chain_conf(tmp_path), tmp_path)
    ips = cni.add(ctr, "pod-1", CAPS)
    assert_forwarding(node, peer, ctr, ips)
    if direction == "go-then-ours":
        cni.run("check", ctr, "pod-1", CAPS, cni_path=our_dir)  # ours reads Go's rules
    cni.run("del", ctr, "pod-1", CAPS, cni_path=second)
    no_rules_of(node, "pod-1", ips)
    # the shared chains stay (as both implementations leave them) and still work
    ips = cni.add(ctr, "pod-2", CAPS)
    assert_forwarding(node, peer, ctr, ips)
    cni.run("del", ctr, "pod-2", CAPS, cni_path=second)
    no_rules_of(node, "pod-2", ips)
