"""The pod network manager against real namespaces: pods, conf-dir sync, rollback, GC, asyncio.

A "node" namespace stands in for the host (the bridge and the IPAM store live
there: every manager call runs with the calling thread inside it), and each
pod gets its own namespace. Plugins are corecni-contrib's, in-process through
their entry points or exec'd through launchers written by ``corecni install``.
Kernel state is read back with ``ip -j``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from corecni import netns
from corecni.kit import hookimpl
from corecni.manager import (
    AsyncPodNetworkManager,
    NetworkNotFoundError,
    NetworkOptions,
    NotInitializedError,
    PluginError,
    PodNetwork,
    PodNetworkManager,
    PodSandbox,
    PortMapping,
)
from corecni.testing import ip_json, ping
from tests.integration import _portfwd as pf

pytestmark = pytest.mark.root
NsFactory = Callable[..., str]


def bridge_conf(tmp: Path, name: str = "podnet", subnet: str = "10.88.0.0/16",
                bridge: str = "cni-mgr0", *meta: dict[str, Any]) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": name, "plugins": [
        {"type": "bridge", "bridge": bridge, "isGateway": True,
         "ipam": {"type": "host-local", "dataDir": str(tmp / "ipam"),
                  "ranges": [[{"subnet": subnet}]], "routes": [{"dst": "0.0.0.0/0"}]}},
        *meta]}


#: the meta plugins of the default network in the 50-pod test (a real conflist is a chain)
PORTMAP = {"type": "portmap", "capabilities": {"portMappings": True}}
TUNING = {"type": "tuning", "txQLen": 777}


def ptp_conf(tmp: Path, name: str = "second") -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": name, "plugins": [
        {"type": "ptp", "ipam": {"type": "host-local", "dataDir": str(tmp / "ipam"),
                                 "ranges": [[{"subnet": "10.99.0.0/16"}]]}}]}


def write(confdir: Path, filename: str, conf: dict[str, Any] | str) -> None:
    """Write atomically (as an operator's tooling should): a watcher never sees half."""
    confdir.mkdir(parents=True, exist_ok=True)
    tmp = confdir / f".{filename}.tmp"
    tmp.write_text(conf if isinstance(conf, str) else json.dumps(conf))
    os.replace(tmp, confdir / filename)


@pytest.fixture
def node(netns_factory: NsFactory) -> Iterator[str]:
    path = netns_factory("node")
    with netns.entered(path):
        yield path


def manager(tmp: Path, **kwargs: Any) -> PodNetworkManager:
    kwargs.setdefault("plugin_dirs", ())
    return PodNetworkManager([str(tmp / "net.d")], cache_dir=str(tmp / "cache"), **kwargs)


def pod(netns_factory: NsFactory, index: int, **kwargs: Any) -> PodSandbox:
    return PodSandbox(id=f"pod{index:03d}", netns=netns_factory("pod", lo_up=False),
                      name=f"web-{index}", namespace="default", uid=f"uid-{index}", **kwargs)


def node_links(node: str) -> set[str]:
    return {str(link["ifname"]) for link in ip_json(node, "link", "show")}


def has_link(path: str, ifname: str) -> bool:
    return any(link["ifname"] == ifname for link in ip_json(path, "link", "show"))


def addresses(path: str, ifname: str) -> list[str]:
    out = ip_json(path, "addr", "show", "dev", ifname)
    return [f"{a['local']}/{a['prefixlen']}" for a in out[0]["addr_info"]
            if a.get("scope") == "global"] if out else []


def assert_clean(tmp: Path, node: str, baseline: set[str]) -> None:
    """No veth left on the node, no IPAM reservation, no cache entry."""
    assert node_links(node) <= baseline | {"cni-mgr0"}
    ipam = tmp / "ipam"
    leftovers = [p.name for p in ipam.rglob("*") if p.is_file()
                 and p.name != "lock" and not p.name.startswith("last_reserved_ip")] \
        if ipam.exists() else []
    assert leftovers == []
    cache = tmp / "cache"
    assert not cache.exists() or not any(cache.rglob("*-*"))


def wait_until(predicate: Callable[[], bool], seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


# --- pods ----------------------------------------------------------------------------

def test_fifty_pods_eight_at_a_time_two_networks(tmp_path: Path, node: str,
                                                 netns_factory: NsFactory) -> None:
    tuning = {**TUNING, "dataDir": str(tmp_path / "tuning")}
    write(tmp_path / "net.d", "10-podnet.conflist",
          bridge_conf(tmp_path, "podnet", "10.88.0.0/16", "cni-mgr0", PORTMAP, tuning))
    write(tmp_path / "net.d", "20-second.conflist", ptp_conf(tmp_path))
    baseline = node_links(node)
    pods = [pod(netns_factory, i, networks=(PodNetwork(), PodNetwork("second")),
                options=NetworkOptions().with_port_mappings(PortMapping(20000 + i, 80)))
            for i in range(50)]
    with manager(tmp_path) as cni:
        cni.status()

        def setup(p: PodSandbox) -> Any:
            with netns.entered(node):
                return cni.setup(p)

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(setup, pods))
        seen_ips = set()
        for p, result in zip(pods, results, strict=True):
            assert set(result.interfaces) == {"lo", "eth0", "eth1"}
            eth0 = [ip.address for ip in result.interfaces["eth0"].ips]
            eth1 = [ip.address for ip in result.interfaces["eth1"].ips]
            assert eth0[0].startswith("10.88.") and eth1[0].startswith("10.99.")
            assert addresses(p.netns, "eth0") == eth0 and addresses(p.netns, "eth1") == eth1
            assert ip_json(p.netns, "link", "show", "eth0")[0]["txqlen"] == 777  # tuning
            assert ip_json(p.netns, "link", "show", "lo")[0]["operstate"] == "UNKNOWN"
            assert "UP" in ip_json(p.netns, "link", "show", "lo")[0]["flags"]
            assert set(result.raw) == {"cni-loopback", "podnet", "second"}
            seen_ips.add(eth0[0])
            cni.check(p)
        assert len(seen_ips) == 50
        assert ping(pods[0].netns, "10.88.0.1") and \
            ping(pods[0].netns, results[1].interfaces["eth0"].ips[0].address.split("/")[0])
        # a pod's port mapping reaches it: localhost:hostPort on the node -> pod 7 port 80
        pod7 = results[7].interfaces["eth0"].ips[0].address.split("/")[0]
        with pf.tcp_servers(pods[7].netns, 80):
            assert pf.tcp_get(node, "127.0.0.1", 20007).endswith(f"to {pod7}")

        def teardown(p: PodSandbox) -> None:
            with netns.entered(node):
                cni.teardown(p)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(teardown, pods))
    assert_clean(tmp_path, node, baseline)
    assert not list((tmp_path / "tuning").glob("*.json"))  # tuning restored and forgot
    assert not [r for r in pf.iptables_rules(node, 4) if "CNI-DN-" in r]  # portmap rules gone


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
def test_failing_second_network_rolls_back_the_first(tmp_path: Path, node: str,
                                                     netns_factory: NsFactory,
                                                     parallel: bool) -> None:
    write(tmp_path / "net.d", "10-podnet.conflist", bridge_conf(tmp_path))
    broken = ptp_conf(tmp_path)
    broken["plugins"][0]["ipam"]["ranges"] = [[{"subnet": "10.99.0.0/30",
                                                "rangeStart": "10.99.0.2",
                                                "rangeEnd": "10.99.0.2"}]]
    write(tmp_path / "net.d", "20-second.conflist", broken)
    baseline = node_links(node)
    with manager(tmp_path, parallel=parallel) as cni:
        first = pod(netns_factory, 1, networks=(PodNetwork(), PodNetwork("second")))
        attached = cni.setup(first)  # takes the only address of "second"
        assert set(attached.interfaces) == {"lo", "eth0", "eth1"}
        other = pod(netns_factory, 2, networks=(PodNetwork(), PodNetwork("second")))
        with pytest.raises(PluginError) as info:
            cni.setup(other)
        assert info.value.network == "second"
        assert not has_link(other.netns, "eth0")  # rolled back
        assert [e.container_id for e in cni.cached_attachments(other.id)] == []
        cni.teardown(first)
    assert_clean(tmp_path, node, baseline)


def test_teardown_after_netns_is_gone_and_from_cached_config(tmp_path: Path, node: str,
                                                             netns_factory: NsFactory) -> None:
    confdir = tmp_path / "net.d"
    write(confdir, "10-podnet.conflist", bridge_conf(tmp_path))
    baseline = node_links(node)
    with manager(tmp_path, watch=True) as cni:
        old = pod(netns_factory, 1)
        cni.setup(old)
        # the default network changes: new pods use it, old pods tear down by their cache
        (confdir / "10-podnet.conflist").unlink()
        write(confdir, "05-newnet.conflist",
              bridge_conf(tmp_path, "newnet", "10.77.0.0/16", "cni-mgr1"))
        assert wait_until(lambda: cni.config.default == "newnet", 5)
        new = pod(netns_factory, 2)
        result = cni.setup(new)
        assert result.interfaces["eth0"].ips[0].address.startswith("10.77.")
        subprocess.run(["ip", "netns", "del", os.path.basename(old.netns)], check=True)
        cni.teardown(old)  # its netns is gone and its network's file too
        cni.teardown(new)
    # the host end of a veth whose netns was deleted goes asynchronously (kernel cleanup)
    assert wait_until(lambda: node_links(node) - baseline - {"cni-mgr0", "cni-mgr1"} == set(),
                      5)
    assert_clean(tmp_path, node, baseline | {"cni-mgr1"})


def test_gc_removes_attachments_of_pods_not_in_the_valid_list(tmp_path: Path, node: str,
                                                              netns_factory: NsFactory) -> None:
    write(tmp_path / "net.d", "10-podnet.conflist", bridge_conf(tmp_path))
    baseline = node_links(node)
    keep, lost = pod(netns_factory, 1), pod(netns_factory, 2)
    with manager(tmp_path) as cni:
        cni.setup(keep)
        cni.setup(lost)
    # the runtime "crashes" and restarts: a new manager over the same cache
    with manager(tmp_path) as cni:
        cni.gc([keep])
        assert [e.container_id for e in cni.cached_attachments()] and \
            {e.container_id for e in cni.cached_attachments()} == {keep.id}
        assert not has_link(lost.netns, "eth0")
        assert addresses(keep.netns, "eth0")
        cni.teardown(keep)
    assert_clean(tmp_path, node, baseline)


def test_unknown_network_is_not_found(tmp_path: Path, node: str,
                                      netns_factory: NsFactory) -> None:
    write(tmp_path / "net.d", "10-podnet.conflist", bridge_conf(tmp_path))
    with manager(tmp_path) as cni, pytest.raises(NetworkNotFoundError, match="'nope'"):
        cni.setup(pod(netns_factory, 1, networks=(PodNetwork("nope"),)))


def test_exec_only_mode_runs_installed_launchers(tmp_path: Path, node: str,
                                                 netns_factory: NsFactory) -> None:
    bindir = tmp_path / "bin"
    corecni = shutil.which("corecni") or os.path.join(os.path.dirname(sys.executable), "corecni")
    subprocess.run([corecni, "install", "--dir", str(bindir)], check=True, capture_output=True)
    write(tmp_path / "net.d", "10-podnet.conflist", bridge_conf(tmp_path))
    baseline = node_links(node)
    with manager(tmp_path, plugin_dirs=(str(bindir),), in_process=False) as cni:
        p = pod(netns_factory, 1)
        result = cni.setup(p)
        assert addresses(p.netns, "eth0") == [ip.address for ip in
                                              result.interfaces["eth0"].ips]
        cni.check(p)
        assert cni.pod_status(p).interfaces["eth0"].ips == result.interfaces["eth0"].ips
        cni.teardown(p)
    assert_clean(tmp_path, node, baseline)


# --- conf dir sync --------------------------------------------------------------------

@pytest.mark.parametrize("use_inotify", [True, False], ids=["inotify", "poll"])
def test_conf_dir_sync(tmp_path: Path, node: str, use_inotify: bool) -> None:
    confdir = tmp_path / "net.d"
    confdir.mkdir()
    with manager(tmp_path, watch=True, use_inotify=use_inotify, poll_interval=0.2) as cni:
        with pytest.raises(NotInitializedError, match=str(confdir)):
            cni.status()
        write(confdir, "10-podnet.conflist", bridge_conf(tmp_path))
        assert wait_until(cni.is_ready, 1.0)  # the bound: ready within 1 s
        # a broken file (lexically first) never replaces the default, and is named
        write(confdir, "05-broken.conflist", "{not json")
        assert wait_until(lambda: str(confdir / "05-broken.conflist") in cni.config_errors(),
                          2)
        assert cni.config.default == "podnet" and cni.is_ready()
        # a good file broken in place keeps its last good version
        write(confdir, "10-podnet.conflist", '{"cniVersion": "1.0.0", "name": "podnet"')
        assert wait_until(lambda: str(confdir / "10-podnet.conflist") in cni.config_errors(),
                          2)
        assert cni.config.default == "podnet" and cni.is_ready()
        # the directory deleted and recreated
        shutil.rmtree(confdir)
        assert wait_until(lambda: not cni.is_ready(), 2)
        write(confdir, "10-podnet.conflist", bridge_conf(tmp_path))
        assert wait_until(cni.is_ready, 2)


def test_observer_sees_every_operation(tmp_path: Path, node: str,
                                       netns_factory: NsFactory) -> None:
    seen: list[tuple[str, str, str, bool]] = []

    class Recorder:
        @hookimpl
        def manager_operation_done(self, operation: str, pod_id: str, network: str,
                                   duration: float, error: BaseException | None) -> None:
            assert duration >= 0
            seen.append((operation, pod_id, network, error is None))

    write(tmp_path / "net.d", "10-podnet.conflist", bridge_conf(tmp_path))
    with manager(tmp_path, observers=[Recorder()]) as cni:
        p = pod(netns_factory, 1)
        cni.setup(p)
        cni.teardown(p)
    assert ("setup", p.id, "podnet", True) in seen and ("setup", p.id, "", True) in seen
    assert ("teardown", p.id, "podnet", True) in seen


# --- asyncio ---------------------------------------------------------------------------

class _ThreadRecorder:
    """An observer noting which thread ran each finished operation."""

    def __init__(self) -> None:
        self.threads: set[int] = set()

    @hookimpl
    def manager_operation_done(self, operation: str, pod_id: str, network: str,
                               duration: float, error: BaseException | None) -> None:
        self.threads.add(threading.get_ident())


def test_asyncio_setups_never_block_the_loop(tmp_path: Path, node: str,
                                             netns_factory: NsFactory) -> None:
    """50 setups through asyncio.gather while a ticker runs: the plugin work runs on
    executor threads, never on the loop's, and the loop keeps ticking while setups
    are in flight. No time bound (the machine's load is not the manager's): a
    manager that ran a setup on the loop would finish each setup before the ticker
    could run again, so no tick would ever see one in flight."""
    write(tmp_path / "net.d", "10-podnet.conflist", bridge_conf(tmp_path))
    baseline = node_links(node)
    pods = [pod(netns_factory, i) for i in range(50)]
    recorder = _ThreadRecorder()

    async def main() -> tuple[int, int]:
        in_flight = 0
        ticks_in_flight = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks_in_flight
            while not done.is_set():
                await asyncio.sleep(0.005)
                ticks_in_flight += in_flight > 0

        async def setup(p: PodSandbox) -> Any:
            nonlocal in_flight
            in_flight += 1
            try:
                return await cni.setup(p)
            finally:
                in_flight -= 1

        async with AsyncPodNetworkManager([str(tmp_path / "net.d")], (),
                                          cache_dir=str(tmp_path / "cache"),
                                          observers=[recorder]) as cni:
            tick = asyncio.create_task(ticker())
            results = await asyncio.gather(*(setup(p) for p in pods))
            assert len({r.interfaces["eth0"].ips[0].address for r in results}) == 50
            await asyncio.gather(*(cni.teardown(p) for p in pods))
            done.set()
            await tick
        return ticks_in_flight, threading.get_ident()

    # the executor's threads are created from this thread: they start in the node netns
    assert threading.current_thread() is threading.main_thread()
    ticks_in_flight, loop_thread = asyncio.run(main())
    assert recorder.threads and loop_thread not in recorder.threads
    assert ticks_in_flight > 0, "the loop never ran while a setup was in flight"
    assert_clean(tmp_path, node, baseline)


def test_metrics_observer_exports_kubelet_style_series(tmp_path: Path, node: str,
                                                       netns_factory: NsFactory) -> None:
    from corecni_contrib.metrics import ManagerMetrics
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    write(tmp_path / "net.d", "10-podnet.conflist", bridge_conf(tmp_path))
    with manager(tmp_path, observers=[ManagerMetrics(registry)]) as cni:
        p = pod(netns_factory, 1)
        cni.setup(p)
        with pytest.raises(NetworkNotFoundError):
            cni.setup(pod(netns_factory, 2, networks=(PodNetwork("nope"),)))
        cni.teardown(p)

    def value(name: str, operation: str) -> float | None:
        return registry.get_sample_value(name, {"operation_type": operation})

    assert value("corecni_network_plugin_operations_total", "set_up_pod") == 2
    assert value("corecni_network_plugin_operations_errors_total", "set_up_pod") == 1
    assert value("corecni_network_plugin_operations_total", "tear_down_pod") == 1
    assert value("corecni_network_plugin_operations_duration_seconds_count", "set_up_pod") == 2


@pytest.mark.parametrize("use_inotify", [True, False], ids=["inotify", "poll"])
def test_plugin_folder_changes_are_picked_up(tmp_path: Path, node: str,
                                              use_inotify: bool) -> None:
    """SPEC 1.1: plugin configs in ``<confdir>/<network>/`` join that network's list."""
    confdir = tmp_path / "net.d"
    write(confdir, "10-podnet.conflist", bridge_conf(tmp_path))
    with manager(tmp_path, watch=True, use_inotify=use_inotify, poll_interval=0.2) as cni:
        assert [p.type for p in cni.config.networks["podnet"].plugins] == ["bridge"]
        write(confdir / "podnet", "50-tuning.conf",
              {"cniVersion": "1.0.0", "type": "tuning", "txQLen": 500})
        assert wait_until(lambda: [p.type for p in cni.config.networks["podnet"].plugins]
                          == ["bridge", "tuning"], 2)
