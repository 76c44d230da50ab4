"""The example plugins against the kernel, in throwaway namespaces (needs root).

corecni.testing's fixtures make the node and container namespaces and a CNI_PATH
holding every installed corecni plugin (host-local serves IPAM); the chain runs
in-process and exec'd through launchers, and both must leave the same state.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from corecni.testing import (
    MODES,
    Mode,
    NodeCni,
    addrs,
    install_launchers,
    link_info,
    link_names,
    netns_state,
    normalise_result,
    ns_name,
    ping,
    plugin_request,
    plugin_runtime,
    plugin_target,
    run_exec,
    run_in_process,
)

OURS = {t: plugin_target(t) for t in ("example-veth", "example-tune")}
NsFactory = Any


def chain(tmp: Path) -> dict[str, Any]:
    return {"cniVersion": "1.1.0", "name": "exnet", "plugins": [
        {"type": "example-veth", "mtu": 1450,
         "ipam": {"type": "host-local", "dataDir": str(tmp / "ipam"), "subnet": "10.80.0.0/24",
                  "routes": [{"dst": "0.0.0.0/0"}]}},
        {"type": "example-tune", "mtu": 1400, "alias": "tuned"}]}


@pytest.mark.parametrize("mode", MODES)
def test_chain_add_check_del(mode: Mode, netns_factory: NsFactory, chain_partners: str,
                             tmp_path: Path) -> None:
    node, ctr = netns_factory("node"), netns_factory("ctr")
    assert ns_name(node).startswith(f"cnex-{os.getpid()}-")  # pyproject's corecni_netns_prefix
    cni = NodeCni(plugin_runtime(mode, tmp_path, OURS, search=(chain_partners,)), node)
    conf = chain(tmp_path)
    result = cni.add(conf, ctr)
    assert [ip["address"] for ip in result["ips"]] == ["10.80.0.2/24"]
    assert addrs(ctr, "eth0") == {"10.80.0.2/24"}
    eth0 = link_info(ctr, "eth0")
    assert (eth0["mtu"], eth0.get("ifalias")) == (1400, "tuned")
    host = result["interfaces"][0]["name"]
    assert addrs(node, host) == {"10.80.0.1/24"}
    assert ping(ctr, "10.80.0.1")
    cni.check(conf, ctr)
    cni.delete(conf, ctr)
    cni.delete(conf, ctr)  # DEL is idempotent
    assert link_names(ctr) == {"lo"} and link_names(node) == {"lo"}
    assert sorted(p.name for p in (tmp_path / "ipam" / "exnet").iterdir()
                  if p.name[0].isdigit()) == []


def test_in_process_and_exec_agree(netns_factory: NsFactory, chain_partners: str,
                                   tmp_path: Path) -> None:
    """One ADD request, run both ways from two nodes: same result, same container."""
    [binary] = install_launchers(tmp_path / "bin", ["example-veth"]).values()
    outcomes, ctrs = [], []
    for mode in MODES:
        node, ctr = netns_factory("node"), netns_factory("ctr")
        ipam = {"type": "host-local", "dataDir": str(tmp_path / mode), "subnet": "10.81.0.0/24"}
        req = plugin_request(type="example-veth", cniVersion="1.0.0", ipam=ipam, netns=ctr,
                             path=[chain_partners], net=None)
        outcome = run_in_process(req, node=node) if mode == "in-process" \
            else run_exec(binary, req, node=node)
        assert outcome.ok, outcome.error
        assert ping(ctr, "10.81.0.1")
        outcomes.append(normalise_result(outcome))
        ctrs.append(netns_state(ctr))
    assert outcomes[0] == outcomes[1]
    assert ctrs[0] == ctrs[1]
    assert ctrs[0]["links"]["eth0"]["addrs"] == ["10.81.0.2/24"]
