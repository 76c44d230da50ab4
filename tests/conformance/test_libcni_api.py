"""libcni's runtime operations (``vectors/libcni_api.json``): the same plugin calls (command,
CNI_* environment, stdin), answers, errors and cache entries as libcni, through CNIRuntime and
a real exec'd plugin."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import attrs
import pytest

from corecni.registry import Registry
from corecni.request import Attachment
from corecni.runtime import CNIRuntime
from corecni.spec.config import NetworkConfigList, RuntimeConf
from corecni.spec.errors import CNIError
from tests.conformance import vectors

API = vectors.load("libcni_api")
NETNS = "/proc/self/ns/net"  # corecni checks the netns before any plugin runs


@attrs.frozen
class Setup:
    runtime: CNIRuntime
    net: NetworkConfigList
    rt: RuntimeConf
    log: Path
    cache: Path
    bindir: Path


def setup(case: dict[str, Any], tmp_path: Path, cni_bin: Path,
          rt_overrides: dict[str, Any] | None = None) -> Setup:
    raw = copy.deepcopy(case["list"])
    log = tmp_path / "calls.log"
    for plugin in raw["plugins"]:
        plugin["commandLog"] = str(log)
    net = NetworkConfigList.from_bytes(json.dumps(raw).encode())
    spec = {**API["runtime"], **(rt_overrides or {})}
    rt = RuntimeConf(container_id=spec["containerId"], ifname=spec["ifName"],
                     netns=spec.get("netns", NETNS),
                     args=tuple((k, v) for k, v in spec["args"]),
                     capability_args=spec["capabilityArgs"])
    registry = Registry(path=(str(cni_bin),), entry_points=False, in_process=False)
    runtime = CNIRuntime(path=(str(cni_bin),), cache_dir=str(tmp_path / "cache"),
                         registry=registry)
    cache = tmp_path / "cache" / "results" / f"{net.name}-{rt.container_id}-{rt.ifname}"
    return Setup(runtime, net, rt, log, cache, cni_bin)


def run_step(s: Setup, step: dict[str, Any]) -> None:
    op = step["op"]

    rt = attrs.evolve(s.rt, ifname=step["ifname"]) if "ifname" in step else s.rt

    def call() -> Any:
        if op == "add":
            return s.runtime.add_network_list(s.net, rt)
        if op == "cached_config":  # asked with a bare RuntimeConf, as upstream
            bare = RuntimeConf(container_id=rt.container_id, ifname=rt.ifname, netns=rt.netns)
            return s.runtime.get_cached_config(s.net, bare)
        if op == "check":
            return s.runtime.check_network_list(s.net, s.rt)
        if op == "del":
            return s.runtime.del_network_list(s.net, s.rt)
        if op == "gc":
            net = attrs.evolve(s.net, disable_gc=bool(step.get("disable_gc")))
            return s.runtime.gc_network_list(net, [Attachment(c, i) for c, i in step["valid"]])
        if op == "status":
            return s.runtime.get_status_network_list(s.net)
        if op == "validate":
            return s.runtime.validate_network_list(s.net)
        raise AssertionError(op)

    if "error" in step:
        with pytest.raises(CNIError) as info:
            call()
        vectors.assert_error(info.value, step["error"])
        return
    answer = call()
    if "expect_result" in step:
        assert answer.to_dict() == step["expect_result"]
    if "expect_caps" in step:
        assert sorted(answer) == step["expect_caps"]
    if op == "cached_config":
        config, cached_rt = answer
        assert config == s.net.raw_bytes
        assert cached_rt.args == s.rt.args
        assert dict(cached_rt.capability_args) == dict(s.rt.capability_args)
        assert (cached_rt.container_id, cached_rt.ifname) == (rt.container_id, rt.ifname)


def plugin_index(case: dict[str, Any], stdin: dict[str, Any]) -> int:
    keys = [p["some-key"] for p in case["list"]["plugins"]]
    return keys.index(stdin["some-key"])


def expected_stdin(case: dict[str, Any], call: dict[str, Any], s: Setup) -> dict[str, Any]:
    """The plugin's config with what libcni's buildOneConfig injects."""
    out = dict(case["list"]["plugins"][call["plugin"]], commandLog=str(s.log),
               name=case["list"]["name"], cniVersion=call["cniVersion"])
    if call["prevResult"] is not None:
        out["prevResult"] = call["prevResult"]
    if call["runtimeConfig"] is not None:
        out["runtimeConfig"] = call["runtimeConfig"]
    return out


@pytest.mark.parametrize("case", API["scenarios"], ids=vectors.ids)
def test_scenario(case: dict[str, Any], tmp_path: Path, cni_bin: Path) -> None:
    s = setup(case, tmp_path, cni_bin)
    if "cache_file" in case:
        s.cache.parent.mkdir(parents=True)
        body = case["cache_file"]
        s.cache.write_text(body if isinstance(body, str) else json.dumps(body))
    for step in case["steps"]:
        run_step(s, step)
    seen = vectors.read_log(s.log)
    if "expect_commands" in case:
        assert [[plugin_index(case, c["stdin"]), c["command"]] for c in seen] == \
            case["expect_commands"]
    if "expect_calls" in case:
        assert len(seen) == len(case["expect_calls"])
        for got, want in zip(seen, case["expect_calls"], strict=True):
            assert (plugin_index(case, got["stdin"]), got["command"]) == \
                (want["plugin"], want["command"])
            expect = expected_stdin(case, want, s)
            if want["prevResult"] == "*":  # not what this scenario is about
                expect.pop("prevResult")
                got["stdin"].pop("prevResult", None)
            assert got["stdin"] == expect
            assert got["env"] == {
                "CNI_COMMAND": want["command"], "CNI_CONTAINERID": s.rt.container_id,
                "CNI_NETNS": s.rt.netns, "CNI_IFNAME": s.rt.ifname, "CNI_ARGS": "FOO=BAR",
                "CNI_PATH": str(s.bindir)}
    if "expect_plugin0" in case:
        mine = [c for c in seen if plugin_index(case, c["stdin"]) == 0]
        assert [c["command"] for c in mine] == [w["command"] for w in case["expect_plugin0"]]
        for got, want in zip(mine, case["expect_plugin0"], strict=True):
            if "valid_attachments" in want:
                assert got["stdin"]["cni.dev/valid-attachments"] == want["valid_attachments"]
                assert got["stdin"]["cni.dev/attachments"] == want["valid_attachments"]
            for key, value in want.get("env", {}).items():
                assert got["env"][key] == value
    if "expect_cache_files" in case:
        assert sorted(p.name for p in s.cache.parent.iterdir()) == case["expect_cache_files"]
    if "expect_cache" in case:
        if case["expect_cache"] is None:
            assert not s.cache.exists()
        else:
            entry = json.loads(s.cache.read_text())
            assert entry == {
                "kind": "cniCacheV1", "containerId": s.rt.container_id,
                "config": base64.b64encode(s.net.raw_bytes).decode(),
                "ifName": s.rt.ifname, "networkName": s.net.name, "netns": s.rt.netns,
                "cniArgs": [list(a) for a in s.rt.args],
                "capabilityArgs": dict(s.rt.capability_args),
                "result": case["expect_cache"]["result"]}


@pytest.mark.parametrize("case", API["bad_runtime"], ids=vectors.ids)
def test_bad_runtime_arguments(case: dict[str, Any], tmp_path: Path, cni_bin: Path) -> None:
    scenario = API["scenarios"][0]
    s = setup(scenario, tmp_path, cni_bin, case.get("rt"))
    net = attrs.evolve(s.net, name=case["network"]) if "network" in case else s.net
    with pytest.raises(CNIError) as info:
        s.runtime.add_network_list(net, s.rt)
    vectors.assert_error(info.value, case["error"])
    assert vectors.read_log(s.log) == []  # no plugin ran
