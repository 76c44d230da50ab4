"""corecni-contrib ``portmap`` (and ``firewall``) against the kernel, in throwaway namespaces.

The chain is corecni's ``bridge -> portmap -> firewall`` in a node namespace with a
"peer" host beside it; plugins run in-process and exec'd through installed
launchers, on both netfilter backends. After ADD, CHECK and DEL the node's rules
are read with ``iptables-save``/``nft`` and TCP proves the forwarding: from the
peer to the node's address (v4 and v6), from the container to its own host port
(hairpin) and from the node to ``127.0.0.1:hostPort`` (route_localnet).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from corecni_contrib.portmap import iptables as pm_iptables
from corecni_contrib.portmap import nftables as pm_nftables
from corecni_contrib.portmap.iptables import KILL_AFTER_V4

from corecni.spec.errors import CNIError
from corecni.testing import plugin_request, run_in_process
from tests.integration import _portfwd as pf

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("root_netns_guard")]

BACKENDS = ("iptables", "nftables")
MODES = ("in-process", "exec")
CAPS = pf.mappings((8080, 80), (8081, 81), (8082, 82), (8083, 83))


@pytest.fixture
def world(netns_factory: Any) -> tuple[str, str, str]:
    """(node, peer, container) namespaces, node and peer connected."""
    node, peer, ctr = netns_factory("node"), netns_factory("peer"), netns_factory("ctr")
    pf.connect_peer(node, peer)
    return node, peer, ctr


def _ips(result: dict[str, Any]) -> list[str]:
    return [ip["address"].split("/")[0] for ip in result["ips"]]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_add_check_del_with_traffic(backend: str, mode: str, world: tuple[str, str, str],
                                    tmp_path: Path) -> None:
    node, peer, ctr = world
    chain = pf.Chain(pf.make_runtime(mode, tmp_path), node, pf.chain_conf(tmp_path,
                                                                          backend=backend))
    result = chain.add(ctr, "ctr-1", CAPS)
    v4, v6 = _ips(result)
    if backend == "iptables":
        dn = pm_iptables.dnat_chain("pfnet", "ctr-1")
        rules = pf.iptables_rules(node, 4)
        assert f"-A {dn} -p tcp -m tcp --dport 8080 -j DNAT --to-destination {v4}:80" in rules
        assert any(r.startswith("-A CNI-HOSTPORT-DNAT -p tcp") and "--dports 8080,8081,8082,8083"
                   in r and r.endswith(f"-j {dn}") for r in rules)
        assert f"-A {dn} -p tcp -m tcp --dport 8083 -j DNAT --to-destination [{v6}]:83" in \
            pf.iptables_rules(node, 6)
        assert f"-A CNI-FORWARD -s {v4}/32 -j ACCEPT" in pf.iptables_rules(node, 4, "filter")
    else:
        text = pf.nft_text(node)
        assert f'tcp . 8080 comment "ctr-1" : {v4} . 80' in text
        assert f'tcp . 8083 comment "ctr-1" : {v6} . 83' in text
        assert f'{v4} . {v4} comment "ctr-1"' in text
        assert "table inet corecni_firewall" in text
        assert pf.iptables_rules(node, 4) == pf.iptables_rules(node, 4)  # no iptables needed
        assert not any("CNI-DN-" in r for r in pf.iptables_rules(node, 4))
    assert pf.sh(node, "cat", f"/proc/sys/net/ipv4/conf/{pf.BRIDGE}/route_localnet").strip() \
        == "1"
    chain.check(ctr, "ctr-1", CAPS)
    with pf.tcp_servers(ctr, 80):
        # from another host, v4 and v6: DNAT to the container, source kept
        assert pf.tcp_get(peer, pf.NODE_V4, 8080) == f"hello from 10.98.0.2 to {v4}"
        assert pf.tcp_get(peer, pf.NODE_V6, 8080) == f"hello from fd98::2 to {v6}"
        # hairpin: the container to its own host port, masqueraded (the bridge answers)
        assert pf.tcp_get(ctr, pf.NODE_V4, 8080).startswith("hello from 10.97.0.1 to")
        assert pf.tcp_get(ctr, pf.NODE_V6, 8080).startswith("hello from fd97::1 to")
        # localhost on the node
        assert pf.tcp_get(node, "127.0.0.1", 8080).startswith("hello from 10.97.0.1 to")
    chain.delete(ctr, "ctr-1", CAPS)
    chain.delete(ctr, "ctr-1", CAPS)  # idempotent
    assert pf.container_rules(node, "ctr-1", [v4, v6]) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_check_v4_only_and_drift(backend: str, world: tuple[str, str, str],
                                 tmp_path: Path) -> None:
    node, _, ctr = world
    chain = pf.Chain(pf.make_runtime("in-process", tmp_path), node,
                     pf.chain_conf(tmp_path, backend=backend, dual=False))
    result = chain.add(ctr, "ctr-1", CAPS)
    [v4] = _ips(result)
    chain.check(ctr, "ctr-1", CAPS)
    # drift: the container's forwarding vanishes behind the plugin's back
    if backend == "iptables":
        dn = pm_iptables.dnat_chain("pfnet", "ctr-1")
        pf.sh(node, "iptables", "-t", "nat", "-D", dn, "-p", "tcp", "--dport", "8081", "-j",
              "DNAT", "--to-destination", f"{v4}:81")
    else:
        names = pm_nftables.set_names("pfnet")
        pf.sh(node, "nft", "delete", "element", "inet", "corecni_portmap", names["dn4"],
              "{ tcp . 8081 }")
    with pytest.raises(CNIError) as err:
        chain.check(ctr, "ctr-1", CAPS)
    assert "portmap" in str(err.value)
    chain.delete(ctr, "ctr-1", CAPS)
    assert pf.container_rules(node, "ctr-1", [v4]) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_del_without_prev_result_or_mappings(backend: str, world: tuple[str, str, str],
                                             tmp_path: Path) -> None:
    """Rules are found by network and container ID: DEL needs neither the cached
    result nor the portMappings."""
    node, _, ctr = world
    chain = pf.Chain(pf.make_runtime("in-process", tmp_path), node,
                     pf.chain_conf(tmp_path, backend=backend))
    ips = _ips(chain.add(ctr, "ctr-1", CAPS))
    for cached in (tmp_path / "cache").rglob("*"):
        if cached.is_file():
            cached.unlink()  # no prevResult on DEL
    chain.delete(ctr, "ctr-1")  # no capability args either
    assert not [r for r in pf.container_rules(node, "ctr-1", ips) if "DNAT" in r or "dnat" in r
                or "comment \"ctr-1\"" in r]


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_containers_and_gc(backend: str, world: tuple[str, str, str], netns_factory: Any,
                               tmp_path: Path) -> None:
    node, peer, ctr = world
    other = netns_factory("ctr")
    chain = pf.Chain(pf.make_runtime("in-process", tmp_path), node,
                     pf.chain_conf(tmp_path, backend=backend, version="1.1.0"))
    ips1 = _ips(chain.add(ctr, "ctr-1", pf.mappings((8080, 80))))
    ips2 = _ips(chain.add(other, "ctr-2", pf.mappings((9090, 80))))
    with pf.tcp_servers(ctr, 80), pf.tcp_servers(other, 80):
        assert pf.tcp_get(peer, pf.NODE_V4, 8080).endswith(ips1[0])
        assert pf.tcp_get(peer, pf.NODE_V4, 9090).endswith(ips2[0])
    before = pf.netfilter_state(node)
    assert f"{ips1[0]} . 80" in before or f"{ips1[0]}:80" in before
    for cached in (tmp_path / "cache").rglob("*ctr-1*"):
        cached.unlink()  # the runtime lost ctr-1: only the plugins' own GC can find it
    chain.gc([("ctr-2", "eth0")])
    state = pf.netfilter_state(node)
    assert pm_iptables.dnat_chain("pfnet", "ctr-1") not in state  # portmap, iptables
    assert 'comment "ctr-1"' not in state  # portmap and firewall, nftables
    assert f"{ips1[0]} . 80" not in state and f"{ips1[0]}:80" not in state
    assert pf.container_rules(node, "ctr-2", ips2) != []
    chain.check(other, "ctr-2", pf.mappings((9090, 80)))
    chain.delete(other, "ctr-2", pf.mappings((9090, 80)))
    assert pf.container_rules(node, "ctr-2", ips2) == []


BAD_MAPPINGS = [
    ({"hostPort": 0, "containerPort": 80, "protocol": "tcp"}, "hostPort"),
    ({"hostPort": 65536, "containerPort": 80, "protocol": "tcp"}, "hostPort"),
    ({"hostPort": 8080, "containerPort": 0, "protocol": "tcp"}, "containerPort"),
    ({"hostPort": 8080, "containerPort": 80, "protocol": "icmp"}, "protocol"),
    ({"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "no-ip"}, "hostIP"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("entry", "word"), [*BAD_MAPPINGS, (None, "repeats")])
def test_bad_mappings_refused_nothing_written(backend: str, entry: dict[str, Any] | None,
                                              word: str, world: tuple[str, str, str],
                                              tmp_path: Path) -> None:
    """Code 7 naming the problem; the rollback leaves the node's rules as before."""
    node, _, ctr = world
    good = {"hostPort": 7000, "containerPort": 70, "protocol": "tcp"}
    entries = [good, entry] if entry is not None else [good, {**good, "containerPort": 71}]
    chain = pf.Chain(pf.make_runtime("in-process", tmp_path, rollback=False), node,
                     pf.chain_conf(tmp_path, backend=backend))

    def ours() -> list[str]:
        """portmap's and firewall's rules (the bridge's masquerade is not under test)."""
        return [line for line in pf.netfilter_state(node).splitlines()
                if "HOSTPORT" in line or "CNI-DN" in line or "corecni_portmap" in line
                or "CNI-FORWARD" in line or "corecni_firewall" in line or "7000" in line]

    before = ours()
    with pytest.raises(CNIError) as err:
        chain.add(ctr, "ctr-1", {"portMappings": entries})
    assert err.value.code == 7, repr(err.value)
    assert word in str(err.value)
    assert ours() == before == []


@pytest.mark.parametrize("conf", [{"backend": "pf"}, {"backend": "nftables",
                                                      "externalSetMarkChain": "X"},
                                  {"markMasqBit": 32},
                                  {"markMasqBit": 3, "externalSetMarkChain": "X"},
                                  {"snat": "yes"}])
def test_bad_config_refused(conf: dict[str, Any], world: tuple[str, str, str],
                            tmp_path: Path) -> None:
    node, _, ctr = world
    chain = pf.Chain(pf.make_runtime("in-process", tmp_path), node,
                     pf.chain_conf(tmp_path, portmap=conf))
    with pytest.raises(CNIError) as err:
        chain.add(ctr, "ctr-1", CAPS)
    assert err.value.code == 7, repr(err.value)
    assert not [r for r in pf.iptables_rules(node) if "CNI-DN-" in r]
    assert "corecni_portmap" not in pf.nft_text(node)


def test_crash_mid_add_then_del_and_gc(world: tuple[str, str, str], netns_factory: Any,
                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The exec'd portmap is SIGKILLed between its IPv4 and IPv6 transactions: the
    IPv4 rules are there, IPv6's are not. DEL removes what is there; GC (SPEC 1.1)
    removes a crashed container the runtime no longer lists."""
    node, _, ctr = world
    conf = pf.chain_conf(tmp_path, version="1.1.0")
    chain = pf.Chain(pf.make_runtime("exec", tmp_path, rollback=False), node, conf)
    monkeypatch.setenv(KILL_AFTER_V4, "1")
    for cid in ("crash-1", "crash-2"):
        with pytest.raises(CNIError) as err:
            chain.add(ctr if cid == "crash-1" else netns_factory("ctr"), cid, CAPS)
        assert "portmap" in str(err.value)
    monkeypatch.delenv(KILL_AFTER_V4)
    for cid in ("crash-1", "crash-2"):
        dn = pm_iptables.dnat_chain("pfnet", cid)
        assert any(r.endswith(f"-j {dn}") for r in pf.iptables_rules(node, 4))
        assert not any(dn in r for r in pf.iptables_rules(node, 6))
    chain.delete(ctr, "crash-1", CAPS)
    assert not any(pm_iptables.dnat_chain("pfnet", "crash-1") in r
                   for r in pf.iptables_rules(node, 4))
    chain.gc([])
    assert not any("CNI-DN-" in r for r in pf.iptables_rules(node, 4) + pf.iptables_rules(node, 6))
    assert os.environ.get(KILL_AFTER_V4) is None


def test_iptables_repeated_add_and_repair(world: tuple[str, str, str], netns_factory: Any,
                                          tmp_path: Path) -> None:
    """A repeated ADD rewrites the container's rules without duplicating its jumps, and
    an ADD repairs shared rules someone removed (both take the read-then-write path;
    a new container on a set-up node takes the one-transaction path)."""
    node, _, ctr = world
    chain = pf.Chain(pf.make_runtime("in-process", tmp_path), node,
                     pf.chain_conf(tmp_path, dual=False))
    result = chain.add(ctr, "c1", CAPS)
    [v4] = _ips(result)
    # portmap's ADD once more for the same container, as a runtime retrying would
    again = run_in_process(plugin_request({"type": "portmap", "name": "pfnet",
                                           "backend": "iptables", "runtimeConfig": CAPS},
                                          container_id="c1", netns=ctr, prev_result=result,
                                          net=None),
                           "corecni_contrib.portmap", node=node)
    assert again.error is None, again.error
    dn = pm_iptables.dnat_chain("pfnet", "c1")
    assert len([r for r in pf.iptables_rules(node) if r.endswith(f"-j {dn}")]) == 1
    assert len([r for r in pf.iptables_rules(node) if r.startswith(f"-A {dn} ")]) == 12
    pf.sh(node, "iptables", "-t", "nat", "-F", "CNI-HOSTPORT-MASQ")
    with pytest.raises(CNIError):
        chain.check(ctr, "c1", CAPS)
    other = netns_factory("ctr")
    chain.add(other, "c2", pf.mappings((9090, 80)))
    assert pm_iptables.masq_rule(13) in pf.iptables_rules(node)
    chain.check(ctr, "c1", CAPS)
    with pf.tcp_servers(ctr, 80):
        assert pf.tcp_get(ctr, pf.NODE_V4, 8080).startswith("hello from 10.97.0.1")
    for cid, ns in (("c1", ctr), ("c2", other)):
        chain.delete(ns, cid, CAPS if cid == "c1" else pf.mappings((9090, 80)))
    assert not [r for r in pf.iptables_rules(node) if "CNI-DN-" in r]
    assert pf.container_rules(node, "c1", [v4]) == []


def test_iptables_new_container_on_a_set_up_node_reads_no_table(
        world: tuple[str, str, str], netns_factory: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the node's shared chains and rules are in place (seen through nft, chain by
    chain), a new container's ADD writes its rules without reading the nat or filter
    table (an ``*-save`` read costs more the more pods the node holds) and deletes
    nothing; the rules it writes are the same."""
    from corecni_contrib.firewall import iptables as fw_iptables

    node, _, ctr = world
    chain = pf.Chain(pf.make_runtime("in-process", tmp_path), node,
                     pf.chain_conf(tmp_path, dual=True))
    chain.add(ctr, "c1", CAPS)
    reads: list[str] = []

    def no_read(family: int, table: str, what: str = "") -> Any:
        reads.append(f"IPv{family} {table}")
        raise AssertionError("a new container's ADD read the table")

    monkeypatch.setattr(pm_iptables, "iptables_save", no_read)
    monkeypatch.setattr(fw_iptables, "iptables_save", no_read)
    other = netns_factory("ctr")
    result = chain.add(other, "c2", pf.mappings((9090, 80)))
    assert reads == []
    monkeypatch.undo()
    chain.check(other, "c2", pf.mappings((9090, 80)))
    v4, v6 = _ips(result)
    with pf.tcp_servers(other, 80):  # c1 reaches c2 through the node's host port
        assert pf.tcp_get(ctr, pf.NODE_V4, 9090).endswith(f" to {v4}")
    for cid, ns, caps in (("c1", ctr, CAPS), ("c2", other, pf.mappings((9090, 80)))):
        chain.delete(ns, cid, caps)
    assert not [r for r in pf.iptables_rules(node) + pf.iptables_rules(node, 6)
                if "CNI-DN-" in r]
    assert pf.container_rules(node, "c2", [v4, v6]) == []
