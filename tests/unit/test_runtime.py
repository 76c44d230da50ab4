"""The libcni-equivalent runtime over Python test plugins (no kernel work needed)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest

from corecni import launcher
from corecni.cache import ResultCache
from corecni.plugin import Attachment
from corecni.registry import Registry
from corecni.runtime import CNIRuntime
from corecni.spec.config import NetworkConfigList, RuntimeConf
from corecni.spec.errors import CNIError

REPO = str(Path(__file__).resolve().parents[2])
NETNS = "/proc/self/ns/net"
PLUGINS = {"fake-iface": "tests.plugins.fake_iface", "fixed-ipam": "tests.plugins.fixed_ipam",
           "dns-meta": "tests.plugins.dns_meta"}


def network(log: Path, version: str = "1.0.0", **overrides: Any) -> NetworkConfigList:
    raw: dict[str, Any] = {
        "cniVersion": version, "name": "testnet",
        "plugins": [
            {"type": "fake-iface", "log": str(log),
             "ipam": {"type": "fixed-ipam", "ip": "10.77.0.9/24", "log": str(log)},
             "capabilities": {"portMappings": True, "bandwidth": False}},
            {"type": "dns-meta", "log": str(log), "option": "ndots:5"},
        ],
    }
    raw.update(overrides)
    return NetworkConfigList.from_bytes(json.dumps(raw).encode())


def calls(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.fixture
def runtime(tmp_path: Path) -> CNIRuntime:
    registry = Registry(path=(str(tmp_path / "bin"),), entry_points=False)
    for ptype, target in PLUGINS.items():
        registry.register(ptype, target)
    return CNIRuntime(cache_dir=str(tmp_path / "cache"), registry=registry)


@pytest.fixture
def exec_runtime(tmp_path: Path) -> CNIRuntime:
    """The same plugins, but exec'd through launchers (as Go libcni would run them)."""
    bindir = tmp_path / "bin"
    launcher.install(str(bindir), [launcher.LauncherSpec(t, m, sys_path=(REPO,))
                                   for t, m in PLUGINS.items()])
    registry = Registry(path=(str(bindir),), entry_points=False, in_process=False)
    return CNIRuntime(path=(str(bindir),), cache_dir=str(tmp_path / "cache"), registry=registry)


RT = RuntimeConf(container_id="ctr-1", ifname="eth0", netns=NETNS,
                 args=(("K8S_POD_NAME", "web"),),
                 capability_args={"portMappings": [{"hostPort": 80}], "bandwidth": {"x": 1}})


def test_add_chains_and_caches(runtime: CNIRuntime, tmp_path: Path) -> None:
    log = tmp_path / "log"
    net = network(log)
    result = runtime.add_network_list(net, RT)
    assert result.to_dict() == {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "mac": "02:00:00:00:00:01", "sandbox": NETNS}],
        "ips": [{"interface": 0, "address": "10.77.0.9/24", "gateway": "10.77.0.1"}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.77.0.1"}],
        "dns": {"nameservers": ["10.77.0.53"], "options": ["ndots:5"]},
    }
    seen = calls(log)
    assert [c["who"] for c in seen] == ["fake-iface", "fixed-ipam", "dns-meta"]
    assert seen[0]["prev"] is None
    assert seen[2]["prev"]["ips"][0]["address"] == "10.77.0.9/24"
    # capabilities: only the enabled one reaches runtimeConfig
    assert seen[0]["runtimeConfig"] == {"portMappings": [{"hostPort": 80}]}
    assert seen[2]["runtimeConfig"] == {}
    assert seen[0]["args"] == [["K8S_POD_NAME", "web"]]
    # libcni's cache file, same path and keys
    cache = tmp_path / "cache" / "results" / "testnet-ctr-1-eth0"
    entry = json.loads(cache.read_text())
    assert entry["kind"] == "cniCacheV1"
    assert entry["containerId"] == "ctr-1" and entry["ifName"] == "eth0"
    assert entry["networkName"] == "testnet"
    assert base64.b64decode(entry["config"]) == net.raw_bytes
    assert entry["cniArgs"] == [["K8S_POD_NAME", "web"]]
    assert entry["result"] == result.to_dict()
    assert oct(cache.stat().st_mode & 0o777) == "0o600"


def test_check_uses_cached_result(runtime: CNIRuntime, tmp_path: Path) -> None:
    log = tmp_path / "log"
    net = network(log)
    runtime.add_network_list(net, RT)
    log.unlink()
    runtime.check_network_list(net, RT)
    seen = calls(log)
    assert [c["who"] for c in seen] == ["fake-iface", "fixed-ipam", "dns-meta"]
    assert all(c["prev"]["dns"]["options"] == ["ndots:5"] for c in seen)


def test_check_without_cache_calls_plugins_without_prev_result(
        runtime: CNIRuntime, tmp_path: Path) -> None:
    """libcni: no cached result is no prevResult; the plugins decide (fake-iface refuses)."""
    log = tmp_path / "log"
    with pytest.raises(CNIError) as info:
        runtime.check_network_list(network(log), RT)
    assert info.value.code == 7 and "CHECK without prevResult" in info.value.msg
    assert [(c["who"], c["command"], c["prev"]) for c in calls(log)] == [
        ("fake-iface", "CHECK", None)]


def test_check_with_unreadable_cache_fails_before_any_plugin(
        runtime: CNIRuntime, tmp_path: Path) -> None:
    log = tmp_path / "log"
    results = tmp_path / "cache" / "results"
    results.mkdir(parents=True)
    (results / "testnet-ctr-1-eth0").write_text("adfadsfasdfasfdsafaf")
    with pytest.raises(CNIError) as info:
        runtime.check_network_list(network(log), RT)
    assert "failed to get network 'testnet' cached result" in info.value.msg
    assert calls(log) == []
    runtime.del_network_list(network(log), RT)  # DEL tolerates it and drops the file
    assert [c["prev"] for c in calls(log)] == [None, None, None]
    assert not (results / "testnet-ctr-1-eth0").exists()


def test_check_disabled_and_old_versions(runtime: CNIRuntime, tmp_path: Path) -> None:
    runtime.check_network_list(network(tmp_path / "log", disableCheck=True), RT)
    assert calls(tmp_path / "log") == []
    with pytest.raises(CNIError, match="does not support the CHECK command"):
        runtime.check_network_list(network(tmp_path / "log", version="0.3.1"), RT)


def test_del_reverse_idempotent(runtime: CNIRuntime, tmp_path: Path) -> None:
    log = tmp_path / "log"
    net = network(log)
    runtime.add_network_list(net, RT)
    log.unlink()
    runtime.del_network_list(net, RT)
    assert [c["who"] for c in calls(log)] == ["dns-meta", "fake-iface", "fixed-ipam"]
    assert calls(log)[0]["prev"]["ips"][0]["address"] == "10.77.0.9/24"
    assert not (tmp_path / "cache" / "results" / "testnet-ctr-1-eth0").exists()
    runtime.del_network_list(net, RT)  # twice
    runtime.del_network_list(net, RuntimeConf(container_id="never-added", netns=""))


def test_failed_add_rolls_back(runtime: CNIRuntime, tmp_path: Path) -> None:
    log = tmp_path / "log"
    raw = json.loads(network(log).raw_bytes)
    raw["plugins"][1]["fail"] = {"ADD": [102, "meta exploded"]}
    net = NetworkConfigList.from_bytes(json.dumps(raw).encode())
    with pytest.raises(CNIError) as info:
        runtime.add_network_list(net, RT)
    assert info.value.code == 102
    assert "type='dns-meta'" in info.value.msg and "meta exploded" in info.value.msg
    assert [(c["who"], c["command"]) for c in calls(log)] == [
        ("fake-iface", "ADD"), ("fixed-ipam", "ADD"), ("dns-meta", "ADD"),
        ("dns-meta", "DEL"), ("fake-iface", "DEL"), ("fixed-ipam", "DEL")]
    assert not (tmp_path / "cache" / "results").exists() or \
        not list((tmp_path / "cache" / "results").iterdir())


@pytest.mark.parametrize(("rt", "code", "fragment"), [
    (RuntimeConf(container_id="", netns=NETNS), 3, "missing containerID"),
    (RuntimeConf(container_id="a b", netns=NETNS), 4, "invalid characters in containerID"),
    (RuntimeConf(container_id="c", ifname="way-too-long-ifname", netns=NETNS), 4, "too long"),
    (RuntimeConf(container_id="c", netns="/nonexistent"), 3, "does not exist"),
    (RuntimeConf(container_id="c", netns="/etc/hostname"), 4, "not a network namespace"),
    (RuntimeConf(container_id="c", netns=""), 4, "missing network namespace"),
])
def test_bad_runtime_args_reach_no_plugin(runtime: CNIRuntime, tmp_path: Path,
                                          rt: RuntimeConf, code: int, fragment: str) -> None:
    log = tmp_path / "log"
    with pytest.raises(CNIError) as info:
        runtime.add_network_list(network(log), rt)
    assert info.value.code == code
    assert fragment in str(info.value)
    assert calls(log) == []


def test_plugin_not_found_and_bad_type(runtime: CNIRuntime, tmp_path: Path) -> None:
    raw = {"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "no-such-plugin"}]}
    with pytest.raises(CNIError) as info:
        runtime.add_network_list(NetworkConfigList.from_bytes(json.dumps(raw).encode()), RT)
    assert info.value.code == 7 and "failed to find plugin 'no-such-plugin'" in info.value.msg
    raw["plugins"] = [{"type": "../../bin/sh"}]
    with pytest.raises(CNIError) as info:
        NetworkConfigList.from_bytes(json.dumps(raw).encode())
    assert info.value.code == 7 and "invalid plugin type" in info.value.msg


def test_gc_deletes_stale_then_calls_gc(runtime: CNIRuntime, tmp_path: Path) -> None:
    log = tmp_path / "log"
    net = network(log, version="1.1.0")
    for cid in ("keep", "stale"):
        runtime.add_network_list(net, RuntimeConf(container_id=cid, netns=NETNS))
    log.unlink()
    runtime.gc_network_list(net, [Attachment("keep", "eth0")])
    seen = calls(log)
    dels = [(c["who"], c["container_id"]) for c in seen if c["command"] == "DEL"]
    assert dels == [("dns-meta", "stale"), ("fake-iface", "stale"), ("fixed-ipam", "stale")]
    gcs = [c for c in seen if c["command"] == "GC"]
    assert [c["who"] for c in gcs] == ["fake-iface"]  # dns-meta has no plugin_gc hook: a no-op
    assert gcs[0]["valid"] == [{"containerID": "keep", "ifname": "eth0"}]
    remaining = ResultCache(str(tmp_path / "cache")).attachments()
    assert [(a.container_id, a.ifname) for a in remaining] == [("keep", "eth0")]


def test_gc_removes_what_a_killed_cache_writer_left(runtime: CNIRuntime,
                                                    tmp_path: Path) -> None:
    """A runtime killed between writing an entry's temporary file and renaming it
    leaves ``<name>.tmp<pid>``: never read as an entry (GC would DEL it as stale), and
    removed by GC once that process is gone; a live writer's file is left alone."""
    import shutil
    import subprocess

    log = tmp_path / "log"
    net = network(log, version="1.1.0")
    runtime.add_network_list(net, RuntimeConf(container_id="keep", netns=NETNS))
    results = tmp_path / "cache" / "results"
    [entry] = os.listdir(results)
    dead_pid = subprocess.Popen(["true"])  # a process that has exited and been reaped
    dead_pid.wait()
    shutil.copy(results / entry, results / f"{entry.replace('keep', 'ghost')}.tmp{dead_pid.pid}")
    (results / f"{entry}.tmp{os.getpid()}").write_text("{}")  # our own write, in progress
    cache = ResultCache(str(tmp_path / "cache"))
    assert [a.container_id for a in cache.attachments()] == ["keep"]
    log.unlink()
    runtime.gc_network_list(net, [Attachment("keep", "eth0")])
    assert not [c for c in calls(log) if c["command"] == "DEL"]
    assert sorted(os.listdir(results)) == sorted([entry, f"{entry}.tmp{os.getpid()}"])


def test_gc_is_best_effort(runtime: CNIRuntime, tmp_path: Path) -> None:
    """libcni: errors of stale DELs and of plugin GCs are collected; every plugin gets GC,
    with both ``cni.dev/valid-attachments`` and the spec's old ``cni.dev/attachments``."""
    log = tmp_path / "log"
    raw = {"cniVersion": "1.1.0", "name": "gcnet", "plugins": [
        {"type": "fake-iface", "log": str(log), "fail": {"GC": [11, "gc one failed"]}},
        {"type": "dns-meta", "log": str(log), "fail": {"DEL": [11, "del failed"]}},
        {"type": "fake-iface", "log": str(log)},
    ]}
    net = NetworkConfigList.from_bytes(json.dumps(raw).encode())
    cache = ResultCache(str(tmp_path / "cache"))
    for cid in ("keep", "stale1", "stale2"):
        cache.add("gcnet", RuntimeConf(container_id=cid, netns=NETNS), net.raw_bytes, None)
    with pytest.raises(CNIError) as info:
        runtime.gc_network_list(net, [Attachment("keep", "eth0")])
    text = str(info.value)
    assert "stale1" in text and "stale2" in text and "del failed" in text
    assert "gc one failed" in text
    seen = calls(log)
    dels = [(c["who"], c["container_id"]) for c in seen if c["command"] == "DEL"]
    assert dels == [("fake-iface", "stale1"), ("dns-meta", "stale1"),
                    ("fake-iface", "stale2"), ("dns-meta", "stale2")]
    gcs = [c for c in seen if c["command"] == "GC"]
    assert [c["who"] for c in gcs] == ["fake-iface", "fake-iface"]
    for call in gcs:
        assert call["keys"] == ["cni.dev/attachments", "cni.dev/valid-attachments"]
        assert call["valid"] == [{"containerID": "keep", "ifname": "eth0"}]
    # the stale entries whose DEL failed stay cached, so the next GC tries again
    assert sorted(a.container_id for a in cache.attachments()) == ["keep", "stale1", "stale2"]


def test_cache_entry_of_another_attachment_is_not_used(runtime: CNIRuntime,
                                                       tmp_path: Path) -> None:
    """``<net>-<cid>-<ifname>`` is ambiguous: ``n-x``+``c1`` and ``n``+``x-c1`` share a path.
    The entry's own networkName/containerId/ifName decide whose it is."""
    log = tmp_path / "log"
    other = network(log, name="testnet-x")
    runtime.add_network_list(other, RuntimeConf(container_id="c1", netns=NETNS))
    path = tmp_path / "cache" / "results" / "testnet-x-c1-eth0"
    assert path.exists()
    log.unlink()
    mine = RuntimeConf(container_id="x-c1", netns=NETNS)
    assert runtime.get_cached_result(network(log), mine) is None
    runtime.del_network_list(network(log), mine)
    assert [c["prev"] for c in calls(log)] == [None, None, None]
    assert path.exists()  # not ours to delete
    assert runtime.get_cached_result(other, RuntimeConf(container_id="c1")) is not None


def test_status_propagates_50(runtime: CNIRuntime, tmp_path: Path) -> None:
    log = tmp_path / "log"
    runtime.get_status_network_list(network(log, version="1.1.0"))
    raw = json.loads(network(log, version="1.1.0").raw_bytes)
    raw["plugins"][0]["fail"] = {"STATUS": [50, "not ready"]}
    with pytest.raises(CNIError) as info:
        runtime.get_status_network_list(NetworkConfigList.from_bytes(json.dumps(raw).encode()))
    assert info.value.code == 50


def test_validate(runtime: CNIRuntime, tmp_path: Path) -> None:
    assert runtime.validate_network_list(network(tmp_path / "log")) == ["portMappings"]
    with pytest.raises(CNIError) as info:
        runtime.validate_network_list(network(tmp_path / "log", version="0.3.1"))
    assert "dns-meta does not support config version '0.3.1'" in info.value.details


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0", "1.1.0"])
def test_exec_and_in_process_give_identical_results(
        runtime: CNIRuntime, exec_runtime: CNIRuntime, tmp_path: Path, version: str) -> None:
    net = network(tmp_path / "log", version=version)
    in_proc = runtime.add_network_list(net, RT)
    runtime.del_network_list(net, RT)
    exec_res = exec_runtime.add_network_list(net, RT)
    exec_runtime.check_network_list(net, RT)
    exec_runtime.del_network_list(net, RT)
    assert in_proc.to_dict() == exec_res.to_dict()


def test_exec_error_names_plugin(exec_runtime: CNIRuntime, tmp_path: Path) -> None:
    raw = json.loads(network(tmp_path / "log").raw_bytes)
    raw["plugins"][0]["ipam"]["fail"] = {"ADD": "crash"}
    with pytest.raises(CNIError) as info:
        exec_runtime.add_network_list(NetworkConfigList.from_bytes(json.dumps(raw).encode()), RT)
    assert info.value.code == 999
    assert "type='fake-iface'" in info.value.msg and "fixed-ipam crashed" in info.value.msg


def test_launcher_on_path_runs_in_process(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    launcher.install(str(bindir), [launcher.LauncherSpec("fixed-ipam", PLUGINS["fixed-ipam"],
                                                         sys_path=(REPO,))])
    ref = Registry(path=(str(bindir),), entry_points=False).resolve("fixed-ipam")
    assert (ref.kind, ref.source, ref.location) == ("python", "launcher", PLUGINS["fixed-ipam"])
    ref = Registry(path=(str(bindir),), entry_points=False, in_process=False).resolve("fixed-ipam")
    assert ref.kind == "exec"


def test_cache_write_failure_rolls_back(runtime: CNIRuntime, tmp_path: Path) -> None:
    log = tmp_path / "log"
    blocker = tmp_path / "cache-is-a-file"
    blocker.write_text("not a directory")
    rt = RuntimeConf(container_id="ctr-1", ifname="eth0", netns=NETNS, cache_dir=str(blocker))
    with pytest.raises(CNIError) as info:
        runtime.add_network_list(network(log), rt)
    assert info.value.code == 5 and "cached result" in info.value.msg
    assert [(c["who"], c["command"]) for c in calls(log)][-3:] == [
        ("dns-meta", "DEL"), ("fake-iface", "DEL"), ("fixed-ipam", "DEL")]


def test_runtime_takes_its_plugin_path_from_the_registry(tmp_path: Path) -> None:
    """One plugin path: CNI_PATH handed to plugins is the path they were found on."""
    registry = Registry(path=("/a", "/b"), entry_points=False)
    assert CNIRuntime(registry=registry, cache_dir=str(tmp_path)).path == ("/a", "/b")
    with pytest.raises(ValueError, match="differs from its registry"):
        CNIRuntime(path=("/c",), registry=registry, cache_dir=str(tmp_path))


def test_list_of_a_newer_version_is_the_plugins_to_refuse(runtime: CNIRuntime,
                                                          tmp_path: Path) -> None:
    """libcni keeps a valid newer cniVersion; the plugin answers "incompatible" (code 1)."""
    log = tmp_path / "log"
    net = network(log, version="1.2.0")
    assert net.cni_version == "1.2.0"
    with pytest.raises(CNIError) as info:
        runtime.add_network_list(net, RT)
    assert info.value.code == 1 and "incompatible CNI versions" in info.value.msg
    assert not (tmp_path / "cache" / "results" / "testnet-ctr-1-eth0").exists()
    with pytest.raises(CNIError) as info:  # Go's skel refuses DEL the same way
        runtime.del_network_list(net, RT)
    assert info.value.code == 1


def test_cached_attachments_skip_entries_without_network_or_ifname(tmp_path: Path) -> None:
    """libcni's GetCachedAttachments skips entries with an empty ifName or networkName."""
    results = tmp_path / "cache" / "results"
    results.mkdir(parents=True)
    base = {"kind": "cniCacheV1", "containerId": "c1", "config": "", "ifName": "eth0",
            "networkName": "n"}
    (results / "n-c1-eth0").write_text(json.dumps(base))
    (results / "-c1-eth0").write_text(json.dumps({**base, "networkName": ""}))
    (results / "n-c1-").write_text(json.dumps({**base, "ifName": ""}))
    found = ResultCache(str(tmp_path / "cache")).attachments()
    assert [(a.network, a.container_id, a.ifname) for a in found] == [("n", "c1", "eth0")]


def test_cached_config_round_trip(runtime: CNIRuntime, tmp_path: Path) -> None:
    net = network(tmp_path / "log")
    bare = RuntimeConf(container_id=RT.container_id, ifname=RT.ifname, netns=RT.netns)
    assert runtime.get_cached_config(net, bare) is None
    runtime.add_network_list(net, RT)
    cached = runtime.get_cached_config(net, bare)
    assert cached is not None
    assert cached[0] == net.raw_bytes
    assert (cached[1].args, dict(cached[1].capability_args)) == \
        (RT.args, dict(RT.capability_args))
