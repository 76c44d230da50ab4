"""Upstream's pkg/invoke vectors (``vectors/invoke.json``), each against a real executable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from corecni.invoke import exec_version, exec_with_result
from corecni.request import Request
from corecni.spec.config import PluginConfig
from corecni.spec.errors import CNIError
from tests.conformance import vectors

INVOKE = vectors.load("invoke")
ENV = Request(command="ADD", config=PluginConfig.from_dict({"cniVersion": "1.1.0", "type": "x"}),
              container_id="c1", netns="/proc/self/ns/net", ifname="eth0",
              path=("/opt/cni/bin",)).environ()


def plugin(tmp_path: Path, case: dict[str, Any]) -> str:
    """An executable that logs its stdin and CNI_* env, prints ``stdout``, exits ``exit``."""
    (tmp_path / "answer").write_text(json.dumps(case["stdout"]))
    exe = tmp_path / "plugin"
    exe.write_text(f"#!/bin/sh\ncat > {tmp_path}/stdin\nenv | grep ^CNI_ > {tmp_path}/env\n"
                   f"cat {tmp_path}/answer\nexit {case.get('exit', 0)}\n")
    exe.chmod(0o755)
    return str(exe)


def env_seen(tmp_path: Path) -> dict[str, str]:
    lines = (tmp_path / "env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines)


@pytest.mark.parametrize("case", INVOKE["with_result"], ids=vectors.ids)
def test_exec_with_result(case: dict[str, Any], tmp_path: Path) -> None:
    exe = plugin(tmp_path, case)
    stdin = json.dumps(case["config"]).encode()
    if "error" in case:
        with pytest.raises(CNIError) as info:
            exec_with_result(exe, stdin, ENV)
        vectors.assert_error(info.value, case["error"])
        return
    result = exec_with_result(exe, stdin, ENV)
    assert (tmp_path / "stdin").read_bytes() == stdin
    assert result.cni_version == case["expect_version"]
    assert [ip.address for ip in result.ips] == case["expect_ips"]
    if "expect_interfaces" in case:
        assert [i.name for i in result.interfaces] == case["expect_interfaces"]


@pytest.mark.parametrize("case", INVOKE["version"], ids=vectors.ids)
def test_version(case: dict[str, Any], tmp_path: Path) -> None:
    info = exec_version(plugin(tmp_path, case))
    assert list(info.supported_versions) == case["expect"]
    if "expect_stdin" in case:
        assert json.loads((tmp_path / "stdin").read_text()) == case["expect_stdin"]
    env = env_seen(tmp_path)
    for key, value in case.get("expect_env", {}).items():
        assert env.get(key) == value, key
