"""The pod network manager's pieces that need no kernel: options, results, locks, config."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from corecni.manager import (
    Bandwidth,
    ConfigStore,
    DNSConfig,
    IPRange,
    NetworkOptions,
    PodResult,
    PodSandbox,
    PortMapping,
)
from corecni.manager.locks import KeyedLocks, SharedExclusiveLock
from corecni.spec.errors import CNIError
from corecni.spec.result import DNS, Interface, IPConfig, Result, Route


def test_capability_args_as_go_cni_sends_them() -> None:
    opts = (NetworkOptions()
            .with_port_mappings(PortMapping(8080, 80), PortMapping(53, 53, "udp", "10.0.0.1"))
            .with_bandwidth(Bandwidth(1000, 2000, 3000, 4000))
            .with_ip_ranges(IPRange("10.1.0.0/24", range_start="10.1.0.10"))
            .with_dns(DNSConfig(("10.0.0.10",), ("svc.local",), ("ndots:5",)))
            .with_mac("02:00:00:00:00:01").with_ips("10.1.0.12/24")
            .with_cgroup_path("/kubepods/x").with_annotations({"a": "b"}))
    assert opts.capability_args() == {
        "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                         {"hostPort": 53, "containerPort": 53, "protocol": "udp",
                          "hostIP": "10.0.0.1"}],
        "bandwidth": {"ingressRate": 1000, "ingressBurst": 2000, "egressRate": 3000,
                      "egressBurst": 4000},
        "ipRanges": [[{"subnet": "10.1.0.0/24", "rangeStart": "10.1.0.10"}]],
        "dns": {"servers": ["10.0.0.10"], "searches": ["svc.local"], "options": ["ndots:5"]},
        "mac": "02:00:00:00:00:01",
        "ips": ["10.1.0.12/24"],
        "cgroupPath": "/kubepods/x",
        "io.kubernetes.cri.pod-annotations": {"a": "b"},
    }
    assert NetworkOptions().capability_args() == {}


def test_network_options_merge_over_the_pods() -> None:
    base = NetworkOptions(port_mappings=(PortMapping(1, 2),), mac="02:00:00:00:00:01",
                          labels={"app": "web"})
    own = NetworkOptions(port_mappings=(PortMapping(3, 4),), labels={"tier": "front"})
    merged = own.merged(base)
    assert merged.port_mappings == (PortMapping(1, 2), PortMapping(3, 4))
    assert merged.mac == "02:00:00:00:00:01"
    assert merged.labels == {"app": "web", "tier": "front"}


def test_k8s_args_as_kubelet_passes_them() -> None:
    pod = PodSandbox(id="c0ffee", netns="/run/netns/x", name="web", namespace="ns", uid="u1")
    assert pod.k8s_args() == (("IgnoreUnknown", "1"), ("K8S_POD_NAMESPACE", "ns"),
                              ("K8S_POD_NAME", "web"), ("K8S_POD_INFRA_CONTAINER_ID", "c0ffee"),
                              ("K8S_POD_UID", "u1"))
    with pytest.raises(CNIError, match="invalid characters"):
        PodSandbox(id="../x", netns="/run/netns/x")


def test_results_aggregate_by_interface_name() -> None:
    a = Result(cni_version="1.0.0",
               interfaces=(Interface("veth1", "02:aa"), Interface("eth0", "02:bb", sandbox="/n")),
               ips=(IPConfig("10.0.0.2/24", "10.0.0.1", 1),), routes=(Route("0.0.0.0/0"),),
               dns=DNS(nameservers=("10.0.0.53",)))
    b = Result(cni_version="1.0.0", interfaces=(Interface("eth1", "02:cc", sandbox="/n"),),
               ips=(IPConfig("10.9.0.2/24", None, 0), IPConfig("fd00::2/64", None, 0)))
    agg = PodResult.aggregate({"net-a": a, "net-b": b})
    assert set(agg.interfaces) == {"eth0", "eth1"}  # veth1 has no sandbox: host side
    assert agg.interfaces["eth0"].mac == "02:bb"
    assert [ip.address for ip in agg.interfaces["eth0"].ips] == ["10.0.0.2/24"]
    assert [ip.address for ip in agg.interfaces["eth1"].ips] == ["10.9.0.2/24", "fd00::2/64"]
    assert agg.routes == (Route("0.0.0.0/0"),) and agg.dns == (DNS(nameservers=("10.0.0.53",)),)
    assert agg.raw == {"net-a": a, "net-b": b}


def test_gc_lock_excludes_operations_and_is_not_starved() -> None:
    lock = SharedExclusiveLock()
    order: list[str] = []
    with lock.shared():
        gc = threading.Thread(target=lambda: _hold(lock, order))
        gc.start()
        time.sleep(0.05)
        late = threading.Thread(target=lambda: _shared(lock, order))
        late.start()  # arrives while GC waits: must queue behind it
        time.sleep(0.05)
        order.append("first-done")
    gc.join()
    late.join()
    assert order == ["first-done", "gc", "late"]


def _hold(lock: SharedExclusiveLock, order: list[str]) -> None:
    with lock.exclusive():
        order.append("gc")


def _shared(lock: SharedExclusiveLock, order: list[str]) -> None:
    with lock.shared():
        order.append("late")


def test_keyed_locks_serialise_one_pod_and_forget_idle_ones() -> None:
    locks = KeyedLocks()
    inside: list[int] = []
    peak = 0

    def work() -> None:
        nonlocal peak
        with locks.hold("pod1"):
            inside.append(1)
            peak = max(peak, len(inside))
            time.sleep(0.01)
            inside.pop()

    threads = [threading.Thread(target=work) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 1 and len(locks) == 0


def _conf(name: str) -> str:
    return json.dumps({"cniVersion": "1.0.0", "name": name, "plugins": [{"type": "bridge"}]})


def test_config_store_keeps_the_last_good_config_and_names_broken_files(tmp_path: Path) -> None:
    d = tmp_path / "net.d"
    d.mkdir()
    (d / "10-a.conflist").write_text(_conf("a"))
    (d / "20-b.conflist").write_text(_conf("b"))
    store = ConfigStore([str(d)])
    state = store.sync()
    assert list(state.networks) == ["a", "b"] and state.default == "a"
    (d / "05-new.conflist").write_text("{broken")
    (d / "10-a.conflist").write_text('{"cniVersion": "1.0.0"')
    state = store.sync()
    assert state.default == "a" and list(state.networks) == ["a", "b"]
    assert set(state.errors) == {str(d / "05-new.conflist"), str(d / "10-a.conflist")}
    (d / "30-dup.conflist").write_text(_conf("b"))
    assert "already defined" in store.sync().errors[str(d / "30-dup.conflist")]


def test_config_store_validator_and_fixed_default(tmp_path: Path) -> None:
    d = tmp_path / "net.d"
    d.mkdir()
    (d / "10-a.conflist").write_text(_conf("a"))
    (d / "20-b.conflist").write_text(_conf("b"))

    def refuse_a(net: object) -> None:
        if getattr(net, "name", "") == "a":
            raise CNIError(7, "plugin 'bridge' not found")

    state = ConfigStore([str(d)], refuse_a).sync()
    assert state.default == "b" and "not found" in state.errors[str(d / "10-a.conflist")]
    assert ConfigStore([str(d)], default_network="b").sync().default == "b"
    assert ConfigStore([str(d)], default_network="zzz").sync().ready is False
    assert list(ConfigStore([str(d)], max_networks=1).sync().networks) == ["a"]
