"""Exec'ing a plugin: every way a plugin can misbehave becomes a clear CNIError."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from corecni.invoke import exec_plugin, exec_version, exec_with_result
from corecni.request import Request
from corecni.spec.config import PluginConfig
from corecni.spec.errors import CNIError

ARGS = Request(command="ADD", config=PluginConfig.from_dict({"cniVersion": "1.1.0", "name": "n",
                                                              "type": "x"}),
               container_id="c1", netns="/proc/self/ns/net", ifname="eth0",
               args=(("K", "V"),), path=("/opt/cni/bin",)).environ()


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_env_and_stdin_reach_the_plugin(tmp_path: Path) -> None:
    exe = script(tmp_path, "envdump", 'cat > "$0.stdin"; env | grep ^CNI_ | sort > "$0.env"; '
                 'echo \'{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"}]}\'')
    result = exec_with_result(exe, b'{"hello":1}', ARGS)
    assert result.ips[0].address == "10.0.0.2/24"
    assert Path(exe + ".stdin").read_bytes() == b'{"hello":1}'
    assert Path(exe + ".env").read_text().splitlines() == [
        "CNI_ARGS=K=V", "CNI_COMMAND=ADD", "CNI_CONTAINERID=c1", "CNI_IFNAME=eth0",
        "CNI_NETNS=/proc/self/ns/net", "CNI_PATH=/opt/cni/bin"]


def test_error_json_passes_through(tmp_path: Path) -> None:
    exe = script(tmp_path, "err", 'echo \'{"code":7,"msg":"bad","details":"why"}\'; exit 1')
    with pytest.raises(CNIError) as info:
        exec_plugin(exe, b"{}", ARGS)
    assert (info.value.code, info.value.msg, info.value.details) == (7, "bad", "why")
    assert info.value.plugin == "err"


def test_crash_without_output(tmp_path: Path) -> None:
    exe = script(tmp_path, "crash", 'echo "panic: nil pointer" >&2; exit 2')
    with pytest.raises(CNIError) as info:
        exec_plugin(exe, b"{}", ARGS)
    assert info.value.code == 999
    assert "exit status 2" in info.value.msg and "panic: nil pointer" in info.value.details


def test_killed_by_signal(tmp_path: Path) -> None:
    exe = script(tmp_path, "segv", "kill -SEGV $$")
    with pytest.raises(CNIError) as info:
        exec_plugin(exe, b"{}", ARGS)
    assert info.value.code == 999 and "killed by signal 11" in info.value.msg


def test_garbage_on_failure(tmp_path: Path) -> None:
    exe = script(tmp_path, "garbage", "echo 'this is not json'; exit 1")
    with pytest.raises(CNIError) as info:
        exec_plugin(exe, b"{}", ARGS)
    assert info.value.code == 6 and "unparseable error" in info.value.msg
    assert "this is not json" in info.value.details


def test_garbage_on_success(tmp_path: Path) -> None:
    exe = script(tmp_path, "garbage0", "echo 'ok!'")
    with pytest.raises(CNIError) as info:
        exec_with_result(exe, b"{}", ARGS)
    assert info.value.code == 6 and "not JSON" in info.value.msg


def test_invalid_result_on_success(tmp_path: Path) -> None:
    exe = script(tmp_path, "badresult",
                 'echo \'{"cniVersion":"1.0.0","ips":[{"address":"300.1.1.1/24"}]}\'')
    with pytest.raises(CNIError) as info:
        exec_with_result(exe, b"{}", ARGS)
    assert info.value.code == 6 and "invalid result" in info.value.msg


def test_hang_is_killed_with_its_children(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    exe = script(tmp_path, "hang", f"sleep 300 & echo $! > {pidfile}; wait")
    started = time.monotonic()
    with pytest.raises(CNIError) as info:
        exec_plugin(exe, b"{}", ARGS, timeout=0.5)
    assert time.monotonic() - started < 10
    assert info.value.code == 11 and "timed out after 0.5s" in info.value.msg
    child = int(pidfile.read_text())
    for _ in range(50):
        if not os.path.exists(f"/proc/{child}") or \
                Path(f"/proc/{child}/stat").read_text().split()[2] == "Z":
            break
        time.sleep(0.05)
    else:
        pytest.fail("the hung plugin's child survived")


def test_not_executable(tmp_path: Path) -> None:
    bad = tmp_path / "notexec"
    bad.write_bytes(b"\x7fELFgarbage")
    bad.chmod(0o755)
    with pytest.raises(CNIError) as info:
        exec_plugin(str(bad), b"{}", ARGS)
    assert info.value.code == 5 and "cannot execute" in info.value.msg


def test_version_of_legacy_plugin(tmp_path: Path) -> None:
    exe = script(tmp_path, "legacy", 'echo \'{"code":4,"msg":"unknown CNI_COMMAND: VERSION"}\'; '
                 "exit 1")
    assert exec_version(exe).supported_versions == ("0.1.0",)


def test_version_of_modern_plugin(tmp_path: Path) -> None:
    exe = script(tmp_path, "modern",
                 'echo \'{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}\'')
    assert exec_version(exe).supported_versions == ("0.4.0", "1.0.0")


@pytest.mark.parametrize("stdout", [
    '{"interfaces":[{"name":"eth0"}],"ips":[{"interface":0,"address":"10.0.0.2/24"}]}',
    '{"cniVersion":"","interfaces":[{"name":"eth0"}],"ips":[{"address":"10.0.0.2/24"}]}',
])
def test_result_without_version_is_read_with_the_config_version(tmp_path: Path,
                                                                 stdout: str) -> None:
    """libcni's fixupResultVersion (cni#895): a missing or empty result cniVersion is the
    config's, so a 1.x-shaped result keeps its interfaces and IPs."""
    exe = script(tmp_path, "noversion", f"echo '{stdout}'")
    result = exec_with_result(exe, b'{"cniVersion":"1.0.0","name":"n","type":"x"}', ARGS)
    assert result.cni_version == "1.0.0"
    assert [i.name for i in result.interfaces] == ["eth0"]
    assert [ip.address for ip in result.ips] == ["10.0.0.2/24"]


def test_result_and_config_without_version_are_0_1_0(tmp_path: Path) -> None:
    exe = script(tmp_path, "legacyresult", 'echo \'{"ip4":{"ip":"10.0.0.2/24"}}\'')
    result = exec_with_result(exe, b'{"name":"n","type":"x"}', ARGS)
    assert result.cni_version == "0.1.0"
    assert [ip.address for ip in result.ips] == ["10.0.0.2/24"]


def test_no_default_time_limit() -> None:
    """libcni puts no limit on a plugin call: a slow DHCP or IPAM plugin is not killed."""
    import inspect

    from corecni.invoke import DEFAULT_TIMEOUT, Invoker
    from corecni.runtime import CNIRuntime

    assert DEFAULT_TIMEOUT is None
    for func in (exec_plugin, exec_with_result, exec_version):
        assert inspect.signature(func).parameters["timeout"].default is None
    assert CNIRuntime(cache_dir="/nonexistent").timeout is None
    assert Invoker.__attrs_attrs__.timeout.default is None  # type: ignore[attr-defined]
