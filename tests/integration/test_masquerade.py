"""bridge's ``ipMasq`` with traffic: both backends masquerade what leaves the subnet.

A peer "host" behind the node answers with the source address it sees: the
node's own address when the container's traffic was masqueraded, the
container's address when it was not (container to container stays
unmasqueraded). The nftables layout (per-subnet sets, an attachment is
elements) is also driven directly through ``_masq`` to pin its ownership
rules: a DEL told of an address another attachment now holds leaves that
attachment's element alone, and an ADD replaces a leftover element.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from corecni_contrib import _masq

from corecni import netns
from tests.integration import _portfwd as pf
from tests.integration._harness import masq_chains

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("root_netns_guard")]


def _conf(tmp: Path, backend: str) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": "masqnet", "plugins": [
        {"type": "bridge", "bridge": pf.BRIDGE, "isGateway": True, "ipMasq": True,
         "ipMasqBackend": backend,
         "ipam": {"type": "host-local", "dataDir": str(tmp / "ipam"),
                  "ranges": [[{"subnet": pf.SUBNET_V4}], [{"subnet": pf.SUBNET_V6}]],
                  "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]}}]}


def _ips(result: dict[str, Any]) -> tuple[str, str]:
    v4, v6 = (ip["address"].split("/")[0] for ip in result["ips"])
    return v4, v6


@pytest.mark.parametrize("mode", ["in-process", "exec"])
@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_masquerade_with_traffic(backend: str, mode: str, netns_factory: Any,
                                 tmp_path: Path) -> None:
    node, peer = netns_factory("node"), netns_factory("peer")
    ctrs = [netns_factory("ctr"), netns_factory("ctr")]
    pf.connect_peer(node, peer)
    pf.sh(node, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
    chain = pf.Chain(pf.make_runtime(mode, tmp_path), node, _conf(tmp_path, backend))
    results = [chain.add(ctr, f"c{i}", None) for i, ctr in enumerate(ctrs)]
    assert len(masq_chains(node)) == 2
    with pf.tcp_servers(peer, 7070), pf.tcp_servers(ctrs[0], 7071):
        for ctr in ctrs:  # leaving the subnet: the peer sees the node
            assert pf.tcp_get(ctr, "10.98.0.2", 7070) == "hello from 10.98.0.1 to 10.98.0.2"
            assert pf.tcp_get(ctr, "fd98::2", 7070) == "hello from fd98::1 to fd98::2"
        v4, v6 = _ips(results[0])  # inside the subnet: the container's own address
        assert pf.tcp_get(ctrs[1], v4, 7071) == f"hello from {_ips(results[1])[0]} to {v4}"
        assert pf.tcp_get(ctrs[1], v6, 7071) == f"hello from {_ips(results[1])[1]} to {v6}"
        chain.delete(ctrs[0], "c0")
        assert len(masq_chains(node)) == 1  # the other attachment keeps its rules
        assert pf.tcp_get(ctrs[1], "10.98.0.2", 7070) == "hello from 10.98.0.1 to 10.98.0.2"
    chain.delete(ctrs[1], "c1")
    chain.delete(ctrs[1], "c1")  # idempotent, without a cached result
    assert masq_chains(node) == []


def test_nft_ownership_of_elements(netns_factory: Any) -> None:
    node = netns_factory("node")
    old, new = _masq.Owner("masqnet", "old", "eth0"), _masq.Owner("masqnet", "new", "eth0")
    address = "10.97.0.5/24"

    def owners() -> list[str]:
        return masq_chains(node)

    with netns.entered(node):
        _masq.setup("nftables", old, [address])  # the subnet's set and rule, then the element
        _masq.setup("nftables", old, [address])  # a repeated ADD: still one element
        assert owners() == [old.nft_chain]
        _masq.setup("nftables", new, [address])  # a leftover element of ``old``: replaced
        assert owners() == [new.nft_chain]
        _masq.teardown("nftables", old, [address])  # a late DEL of ``old``: not its element
        assert owners() == [new.nft_chain]
        _masq.gc("nftables", "masqnet", [("new", "eth0")])
        assert owners() == [new.nft_chain]
        _masq.gc("nftables", "othernet", [])  # another network's GC: not its sets
        assert owners() == [new.nft_chain]
        _masq.teardown("nftables", new, [])  # no addresses known: found by its owner
        assert owners() == []
        _masq.teardown("nftables", new, [address])  # nothing there: fine
        ruleset = pf.sh(node, "nft", "list", "table", "inet", _masq.NFT_TABLE)
    assert ruleset.count(" masquerade comment") == 1  # one rule for the subnet, still
