"""corecni-contrib ``loopback``: ``lo`` up in the container, Go's result, idempotent DEL.

Runs in-process and exec'd through a launcher on every net backend, in a
container namespace whose ``lo`` starts down.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from corecni.plugin import Attachment, Request, load_plugin
from corecni.runtime import CNIRuntime
from corecni.spec.config import NetworkConfigList, PluginConfig, RuntimeConf
from corecni.spec.errors import CNIError
from corecni.testing import ip, ip_json, ns_name, unchanged
from tests.integration import _harness
from tests.integration._harness import NsFactory

pytestmark = pytest.mark.root


def _root_link_flags() -> dict[str, Any]:
    return {str(link["ifname"]): link["flags"] for link in ip_json(None, "link", "show")}


@pytest.fixture(autouse=True)
def _root_namespace_untouched() -> Iterator[None]:
    """Every link of the machine's own namespace keeps its flags; the thread stays put."""
    with unchanged(_root_link_flags):
        yield


def runtime(mode: str, tmp: Path) -> CNIRuntime:
    """loopback in-process or exec'd, with no other plugin to find."""
    return _harness.runtime(mode, tmp, "loopback", search=())


def net(version: str = "1.0.0") -> NetworkConfigList:
    return NetworkConfigList.from_dict({"cniVersion": version, "name": "lonet",
                                        "plugins": [{"type": "loopback"}]})


def lo_up(ns: str) -> bool:
    [lo] = ip_json(ns, "link", "show", "dev", "lo")
    flags = lo["flags"]
    return isinstance(flags, list) and "UP" in flags


@pytest.mark.parametrize("mode", ["in-process", "exec"])
def test_lifecycle(mode: str, net_backend: str, netns_factory: NsFactory, tmp_path: Path) -> None:
    ctr = netns_factory("ctr", lo_up=False)
    rt, rtc = runtime(mode, tmp_path), RuntimeConf("c0", "eth0", ctr)
    assert not lo_up(ctr)
    result = rt.add_network_list(net(), rtc).to_dict()
    assert lo_up(ctr)
    assert result == {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": ctr}],
        "ips": [{"interface": 0, "address": "127.0.0.1/8"},
                {"interface": 0, "address": "::1/128"}],
        "dns": {},
    }
    rt.check_network_list(net(), rtc)

    rt.del_network_list(net(), rtc)
    assert not lo_up(ctr)  # Go sets lo down again
    ip(ctr, "link", "set", "lo", "up")
    rt.add_network_list(net(), rtc)
    ip(ctr, "link", "set", "lo", "down")
    with pytest.raises(CNIError, match="loopback interface is down"):
        rt.check_network_list(net(), rtc)

    rt.del_network_list(net(), rtc)
    rt.del_network_list(net(), rtc)  # twice
    rt.del_network_list(net(), RuntimeConf("c0", "eth0", ""))  # no netns at all
    subprocess.run(["ip", "netns", "del", ns_name(ctr)], check=True)
    rt.del_network_list(net(), rtc)  # namespace gone


@pytest.mark.parametrize(("version", "expected"), [
    ("0.2.0", {"cniVersion": "0.2.0", "ip4": {"ip": "127.0.0.1/8"}, "ip6": {"ip": "::1/128"},
               "dns": {}}),
    ("0.3.1", {"cniVersion": "0.3.1",
               "ips": [{"version": "4", "interface": 0, "address": "127.0.0.1/8"},
                       {"version": "6", "interface": 0, "address": "::1/128"}]}),
])
def test_result_in_older_versions(version: str, expected: dict[str, Any],
                                  container_netns: str, tmp_path: Path) -> None:
    """Spec-shaped (Go 1.1.1 prints a 1.0-shaped body labelled with the old version)."""
    result = runtime("in-process", tmp_path).add_network_list(
        net(version), RuntimeConf("c0", "eth0", container_netns)).to_dict()
    assert {k: v for k, v in result.items() if k in expected} == expected


def test_chained_prev_result_passes_through(container_netns: str) -> None:
    prev = {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": container_netns}],
            "ips": [{"interface": 0, "address": "10.1.2.3/24"}], "dns": {}}
    config = PluginConfig.from_dict({"cniVersion": "1.0.0", "name": "lonet", "type": "loopback",
                                     "prevResult": prev})
    plugin = load_plugin("loopback", "corecni_contrib.loopback")
    result = plugin.run(Request.for_config("ADD", config, container_id="c0",
                                           netns=container_netns, ifname="eth0"))
    assert result is not None and result.to_dict() == prev
    assert lo_up(container_netns)


def test_refuses_non_loopback_address(container_netns: str, tmp_path: Path) -> None:
    ip(container_netns, "addr", "add", "10.9.9.9/32", "dev", "lo")
    with pytest.raises(CNIError, match="non-loopback address"):
        runtime("in-process", tmp_path).add_network_list(
            net(), RuntimeConf("c0", "eth0", container_netns))


def test_status_and_gc_are_no_ops(container_netns: str, tmp_path: Path) -> None:
    """Go's loopback has neither: STATUS is "ready", GC collects nothing."""
    rt = runtime("in-process", tmp_path)
    rt.add_network_list(net("1.1.0"), RuntimeConf("c0", "eth0", container_netns))
    rt.get_status_network_list(net("1.1.0"))
    rt.gc_network_list(net("1.1.0"), [Attachment("c0", "eth0")])
    assert lo_up(container_netns)
