"""corecni-contrib ``firewall`` against the kernel: Go's chains (iptables) or corecni's
table (nftables), ingress policies with traffic, CHECK drift, refusals.

Runs in a node namespace with two bridges' worth of containers; kernel state is
read with ``iptables-save``/``nft`` inside it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from corecni.spec.errors import CNIError
from corecni.testing import ns_name, ping, plugin_request, run_in_process
from tests.integration import _portfwd as pf

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("root_netns_guard")]

BACKENDS = ("iptables", "nftables")


def _ips(result: dict[str, Any]) -> list[str]:
    return [ip["address"].split("/")[0] for ip in result["ips"]]


def _two_bridges(tmp: Path, backend: str, policy: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two networks on two bridges (10.97.0.0/24 on cni-pf0, 10.96.0.0/24 on cni-pf1)."""
    a = pf.chain_conf(tmp, backend=backend, firewall={"ingressPolicy": policy}, dual=False)
    b = json.loads(json.dumps(a))
    b["name"] = "pfnet-b"
    b["plugins"][0]["bridge"] = "cni-pf1"
    b["plugins"][0]["ipam"]["ranges"] = [[{"subnet": "10.96.0.0/24"}]]
    return a, b


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("mode", "policy"), [("in-process", "same-bridge"),
                                              ("exec", "same-bridge"), ("in-process", "open")])
def test_same_bridge_policy_isolates_bridges(backend: str, mode: str, policy: str,
                                             netns_factory: Any, tmp_path: Path) -> None:
    node = netns_factory("node")
    ctrs = [netns_factory("ctr") for _ in range(3)]
    runtime = pf.make_runtime(mode, tmp_path)
    conf_a, conf_b = _two_bridges(tmp_path, backend, policy)
    a, b = pf.Chain(runtime, node, conf_a), pf.Chain(runtime, node, conf_b)
    [a1] = _ips(a.add(ctrs[0], "a1"))
    [a2] = _ips(a.add(ctrs[1], "a2"))
    [b1] = _ips(b.add(ctrs[2], "b1"))
    pf.sh(node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    assert ping(ctrs[0], a2)  # same bridge: open
    # other bridge: dropped by the policy (the "open" run shows the path works)
    assert ping(ctrs[0], b1, deadline=1 if policy != "open" else 5) == (policy == "open")
    assert ping(ctrs[0], "10.97.0.1")  # the node itself is not forwarded traffic
    if policy == "open":
        pass
    elif backend == "iptables":
        rules = pf.iptables_rules(node, 4, "filter")
        assert f"-A CNI-FORWARD -s {a1}/32 -j ACCEPT" in rules
        assert rules.index('-A FORWARD -m comment --comment "CNI firewall plugin rules '
                           '(ingressPolicy: same-bridge)" -j CNI-ISOLATION-STAGE-1') < \
            rules.index('-A FORWARD -m comment --comment "CNI firewall plugin rules" '
                        "-j CNI-FORWARD")
    else:
        text = pf.nft_text(node)
        assert f'{a1} comment "a1"' in text and '"cni-pf1" : jump iso-' in text
    for chain, ctr, cid in ((a, ctrs[0], "a1"), (a, ctrs[1], "a2"), (b, ctrs[2], "b1")):
        chain.check(ctr, cid)
        chain.delete(ctr, cid)
    for ip, cid in ((a1, "a1"), (a2, "a2"), (b1, "b1")):
        assert [r for r in pf.container_rules(node, cid, [ip]) if "FORWARD" in r
                or "comment" in r] == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_admin_chain_name_and_check_drift(backend: str, netns_factory: Any,
                                          tmp_path: Path) -> None:
    node, ctr = netns_factory("node"), netns_factory("ctr")
    chain = pf.Chain(pf.make_runtime("in-process", tmp_path), node, pf.chain_conf(
        tmp_path, backend=backend, firewall={"iptablesAdminChainName": "MY-ADMIN"}))
    v4, v6 = _ips(chain.add(ctr, "c1"))
    chain.check(ctr, "c1")
    if backend == "iptables":
        assert '-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" ' \
            "-j MY-ADMIN" in pf.iptables_rules(node, 6, "filter")
        pf.sh(node, "ip6tables", "-D", "CNI-FORWARD", "-s", f"{v6}/128", "-j", "ACCEPT")
    else:
        assert "jump MY-ADMIN" in pf.nft_text(node)
        pf.sh(node, "nft", "delete", "element", "inet", "corecni_firewall", "ctr6", f"{{ {v6} }}")
    with pytest.raises(CNIError) as err:
        chain.check(ctr, "c1")
    assert "firewall" in str(err.value) and v6 in str(err.value) + err.value.details
    chain.delete(ctr, "c1")
    assert not [r for r in pf.container_rules(node, "c1", [v4, v6]) if "ACCEPT" in r
                or '"c1"' in r]


@pytest.mark.parametrize(("conf", "words"), [
    ({"backend": "firewalld"}, ["firewalld", "not supported here"]),
    ({"backend": "ufw"}, ["unknown firewall backend"]),
    ({"ingressPolicy": "closed"}, ["unknown ingress policy"]),
    ({"iptablesAdminChainName": "has space"}, ["iptablesAdminChainName"]),
])
def test_bad_config_refused(conf: dict[str, Any], words: list[str], netns_factory: Any,
                            tmp_path: Path) -> None:
    node, ctr = netns_factory("node"), netns_factory("ctr")
    chain = pf.Chain(pf.make_runtime("in-process", tmp_path), node,
                     pf.chain_conf(tmp_path, firewall=conf))
    with pytest.raises(CNIError) as err:
        chain.add(ctr, "c1")
    assert err.value.code == 7
    for word in words:
        assert word in str(err.value)
    assert not [r for r in pf.iptables_rules(node, 4, "filter") if "CNI-FORWARD -" in r]
    assert "corecni_firewall" not in pf.nft_text(node)


@pytest.mark.parametrize("plugin", ["portmap", "firewall"])
@pytest.mark.parametrize("command", ["ADD", "CHECK"])
def test_missing_prev_result_is_code_7(plugin: str, command: str, netns_factory: Any,
                                       tmp_path: Path) -> None:
    """Exec'd as a runtime would, without prevResult: a clear code-7 error, no rule."""
    node = netns_factory("node")
    bindir = pf.install_ours(tmp_path / "bin", (plugin,))
    conf = {"cniVersion": "1.0.0", "name": "pfnet", "type": plugin,
            "runtimeConfig": pf.mappings((8080, 80))}
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command,
           "CNI_CONTAINERID": "c1", "CNI_NETNS": node, "CNI_IFNAME": "eth0",
           "CNI_PATH": bindir, "CNI_NETNS_OVERRIDE": "1"}  # the node stands in for a pod
    proc = subprocess.run(["ip", "netns", "exec", ns_name(node), f"{bindir}/{plugin}"],
                          input=json.dumps(conf), env=env, capture_output=True, text=True,
                          check=False)
    assert proc.returncode != 0
    error = json.loads(proc.stdout)
    assert error["code"] == 7 and "prevResult" in error["msg"], error
    assert pf.iptables_rules(node, 4) == pf.iptables_rules(node, 4, "nat")
    assert not [r for r in pf.iptables_rules(node, 4) + pf.iptables_rules(node, 4, "filter")
                if r.startswith("-A")]
    assert pf.nft_text(node).strip() == ""


def test_iptables_repeated_add_then_del_leaves_nothing(netns_factory: Any,
                                                       tmp_path: Path) -> None:
    """A repeated ADD (a runtime retrying) takes the no-read path and may hold an
    address's rules twice; DEL removes every copy."""
    node, ctr = netns_factory("node"), netns_factory("ctr")
    chain = pf.Chain(pf.make_runtime("in-process", tmp_path), node, pf.chain_conf(tmp_path))
    result = chain.add(ctr, "c1")
    for _ in range(2):
        again = run_in_process(plugin_request({"type": "firewall", "name": "pfnet",
                                               "backend": "iptables"}, container_id="c1",
                                              netns=ctr, prev_result=result, net=None),
                               "corecni_contrib.firewall", node=node)
        assert again.error is None, again.error
    v4, v6 = _ips(result)
    assert pf.iptables_rules(node, 4, "filter").count(f"-A CNI-FORWARD -s {v4}/32 -j ACCEPT") >= 1
    chain.check(ctr, "c1")
    chain.delete(ctr, "c1")
    for family, ip in ((4, v4), (6, v6)):
        assert not [r for r in pf.iptables_rules(node, family, "filter") if ip in r]
