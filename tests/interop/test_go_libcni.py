"""corecni's runtime driving Go's reference plugins, compared with Go's libcni.

The chain is bridge(+ipMasq)+host-local -> portmap -> tuning, dual stack. Each
runtime works in its own node namespace so both can use the same bridge name
and subnets.

Debian's Go portmap (1.1.1) fails every CHECK that carries port mappings - it
looks for its IPv4 rules in the IPv6 table, with Go's libcni just the same - so
CHECK runs without the portMappings capability argument (portmap then skips
its check), for both runtimes.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import attrs
import pytest

from corecni import netns
from corecni.config import list_from_bytes
from corecni.registry import Registry
from corecni.runtime import CNIRuntime
from corecni.spec.config import RuntimeConf
from corecni.testing import ip_json, ns_name, ping

pytestmark = [pytest.mark.interop]

CAPS = {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}


def chain(ipam_dir: Path) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": "interop",
        "plugins": [
            {"type": "bridge", "bridge": "cni-iop0", "isGateway": True, "ipMasq": True,
             "ipam": {"type": "host-local", "dataDir": str(ipam_dir),
                      "ranges": [[{"subnet": "10.66.0.0/24"}], [{"subnet": "fd66::/64"}]],
                      "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
            {"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.arp_notify": "1"}},
        ],
    }


def normalise(result: dict[str, Any]) -> dict[str, Any]:
    """Drop what differs by design: random MACs, veth names, the sandbox path."""
    out = json.loads(json.dumps(result))
    for iface in out.get("interfaces", []):
        iface.pop("mac", None)
        iface.pop("sandbox", None)
        if iface["name"].startswith("veth"):
            iface["name"] = "veth*"
    return out


def iptables(node: str) -> str:
    rules = []
    for tool in ("iptables-save", "ip6tables-save"):
        rules.append(subprocess.run(["ip", "netns", "exec", ns_name(node), tool],
                                    capture_output=True, text=True, check=True).stdout)
    return "\n".join(rules)


def go(gocni: str, plugins: str, node: str, verb: str, conf: Path, ctr: str, cid: str,
       cache: Path) -> subprocess.CompletedProcess[str]:
    caps = "" if verb == "check" else json.dumps(CAPS)  # see the module docstring
    return subprocess.run(
        ["ip", "netns", "exec", ns_name(node), gocni, verb, str(conf), ctr, cid, "eth0",
         str(cache), caps],
        env={**os.environ, "CNI_PATH": plugins}, capture_output=True, text=True, check=False)


def corecni_runtime(plugins: str, cache: Path) -> CNIRuntime:
    return CNIRuntime(path=(plugins,), cache_dir=str(cache),
                      registry=Registry(path=(plugins,), entry_points=False))


def assert_clean(node: str, ctr: str, ipam_dir: Path, cache: Path, cid: str,
                 addresses: list[str]) -> None:
    links = {link["ifname"] for link in ip_json(node, "link", "show")}
    assert links <= {"lo", "cni-iop0"}, links  # the bridge stays, as with Go libcni
    assert {link["ifname"] for link in ip_json(ctr, "link", "show")} == {"lo"}
    leftovers = [f.name for f in (ipam_dir / "interop").iterdir()
                 if f.name != "lock" and not f.name.startswith("last_reserved_ip")]
    assert leftovers == []
    assert not (cache / "results" / f"interop-{cid}-eth0").exists()
    rules = iptables(node)
    assert cid not in rules
    for address in addresses:
        assert address.split("/")[0] not in rules


def test_chain_matches_go_libcni(gocni: str, go_plugins: str, netns_factory: Any,
                                 tmp_path: Path) -> None:
    ours_node, go_node = netns_factory("node"), netns_factory("node")
    ours_ctr, go_ctr = netns_factory("ctr"), netns_factory("ctr")
    conf = tmp_path / "interop.conflist"
    results = {}
    for who, node, ctr in (("ours", ours_node, ours_ctr), ("go", go_node, go_ctr)):
        (tmp_path / who).mkdir()
        ipam_dir, cache = tmp_path / who / "ipam", tmp_path / who / "cache"
        conf.write_text(json.dumps(chain(ipam_dir)))
        cid = f"iop-{who}"
        if who == "ours":
            net = list_from_bytes(conf.read_bytes())
            rt = RuntimeConf(container_id=cid, ifname="eth0", netns=ctr, capability_args=CAPS)
            runtime = corecni_runtime(go_plugins, cache)
            with netns.entered(node):
                results[who] = runtime.add_network_list(net, rt).to_dict()
                runtime.check_network_list(net, attrs.evolve(rt, capability_args={}))
        else:
            added = go(gocni, go_plugins, node, "add", conf, ctr, cid, cache)
            assert added.returncode == 0, added.stderr
            results[who] = json.loads(added.stdout)
            checked = go(gocni, go_plugins, node, "check", conf, ctr, cid, cache)
            assert checked.returncode == 0, checked.stderr
        # kernel state: eth0 in the container with both addresses, bridge in the node
        addrs = {f"{a['local']}/{a['prefixlen']}" for link in ip_json(ctr, "addr", "show", "eth0")
                 for a in link["addr_info"] if a.get("scope") == "global"}
        assert addrs == {ip["address"] for ip in results[who]["ips"]}
        assert ping(ctr, "10.66.0.1")
        rules = iptables(node)
        assert "CNI-HOSTPORT-DNAT" in rules and "--dport 8080" in rules
        if who == "ours":
            with netns.entered(node):
                runtime.del_network_list(net, rt)
                runtime.del_network_list(net, rt)  # idempotent
        else:
            deleted = go(gocni, go_plugins, node, "del", conf, ctr, cid, cache)
            assert deleted.returncode == 0, deleted.stderr
        assert_clean(node, ctr, ipam_dir, cache, cid, [ip["address"] for ip in results[who]["ips"]])
    assert normalise(results["ours"]) == normalise(results["go"])


@pytest.mark.parametrize("writer", ["ours", "go"])
def test_cache_is_shared_with_go_libcni(writer: str, gocni: str, go_plugins: str,
                                        netns_factory: Any, tmp_path: Path) -> None:
    """One runtime ADDs, the other CHECKs and DELs from the cache it left."""
    node, ctr = netns_factory("node"), netns_factory("ctr")
    ipam_dir, cache = tmp_path / "ipam", tmp_path / "cache"
    conf = tmp_path / "interop.conflist"
    conf.write_text(json.dumps(chain(ipam_dir)))
    net = list_from_bytes(conf.read_bytes())
    cid = f"shared-{writer}"
    rt = RuntimeConf(container_id=cid, ifname="eth0", netns=ctr, capability_args=CAPS)
    runtime = corecni_runtime(go_plugins, cache)
    if writer == "ours":
        with netns.entered(node):
            added = runtime.add_network_list(net, rt).to_dict()
        for verb in ("check", "del"):
            proc = go(gocni, go_plugins, node, verb, conf, ctr, cid, cache)
            assert proc.returncode == 0, proc.stderr
    else:
        proc = go(gocni, go_plugins, node, "add", conf, ctr, cid, cache)
        assert proc.returncode == 0, proc.stderr
        added = json.loads(proc.stdout)
        cached = runtime.get_cached_result(net, rt)
        assert cached is not None and cached.to_dict() == added
        with netns.entered(node):
            runtime.check_network_list(net, attrs.evolve(rt, capability_args={}))
            runtime.del_network_list(net, rt)
    assert_clean(node, ctr, ipam_dir, cache, cid, [ip["address"] for ip in added["ips"]])
