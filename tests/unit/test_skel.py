"""The plugin side of the protocol: env + stdin in, JSON + exit status out."""

from __future__ import annotations

import io
import json
import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from corecni import skel
from corecni.request import ENV, Request, read_env
from corecni.spec.config import PluginConfig
from corecni.spec.version import SUPPORTED

#: stands for a live network namespace that is not the plugin's own (Go's skel refuses
#: that one); ``run`` swaps in the path of ``foreign_netns``'s
LIVE_NETNS = "@foreign-netns"
OWN_NETNS = "/proc/self/ns/net"
_FOREIGN: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def foreign_netns() -> Iterator[str]:
    """A network namespace other than ours, held by a sleeping ``unshare -rn``
    (a user namespace too, so no privilege is needed)."""
    proc = subprocess.Popen(["unshare", "-rn", "sleep", "600"])
    path = f"/proc/{proc.pid}/ns/net"
    try:
        for _ in range(500):
            if os.stat(path).st_ino != os.stat(OWN_NETNS).st_ino:
                break
            time.sleep(0.01)
        else:
            pytest.skip("cannot make a network namespace (unshare -rn)")
        _FOREIGN[:] = [path]
        yield path
    finally:
        proc.kill()
        proc.wait()


def conf(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"cniVersion": "1.0.0", "name": "testnet", "type": "fixed-ipam"}
    base.update(extra)
    return base


def env(command: str = "ADD", **extra: str) -> dict[str, str]:
    base = {"CNI_COMMAND": command, "CNI_CONTAINERID": "ctr1", "CNI_NETNS": LIVE_NETNS,
            "CNI_IFNAME": "eth0", "CNI_PATH": "/nonexistent"}
    base.update(extra)
    return {k: v for k, v in base.items() if v is not None}


def run(environ: dict[str, str], stdin: bytes | dict[str, Any] = b"",
        target: str = "tests.plugins.fixed_ipam") -> tuple[int, Any, str]:
    data = json.dumps(stdin).encode() if isinstance(stdin, dict) else stdin
    if environ.get("CNI_NETNS") == LIVE_NETNS:
        environ = {**environ, "CNI_NETNS": _FOREIGN[0]}
    out, err = io.StringIO(), io.StringIO()
    code = skel.run("fixed-ipam", target, environ=environ, stdin=io.BytesIO(data),
                    stdout=out, stderr=err)
    text = out.getvalue()
    return code, (json.loads(text) if text.strip() else None), err.getvalue()


def test_add_prints_result_in_config_version() -> None:
    code, out, _ = run(env(), conf(cniVersion="0.3.1"))
    assert code == 0
    assert out["cniVersion"] == "0.3.1"
    assert out["ips"] == [{"version": "4", "address": "10.77.0.5/24", "gateway": "10.77.0.1"}]


def test_version_needs_no_other_variable() -> None:
    code, out, _ = run({"CNI_COMMAND": "VERSION"})
    assert code == 0
    assert out == {"cniVersion": "1.1.0", "supportedVersions": list(SUPPORTED)}


def test_version_reports_plugin_versions() -> None:
    code, out, _ = run({"CNI_COMMAND": "VERSION"}, target="tests.plugins.dns_meta")
    assert code == 0
    assert out["supportedVersions"] == ["0.4.0", "1.0.0", "1.1.0"]


@pytest.mark.parametrize(("environ", "code", "fragment"), [
    (env("FROB"), 4, "unknown CNI_COMMAND: FROB"),
    (env(CNI_NETNS=""), 4, "[CNI_NETNS]"),
    (env(CNI_CONTAINERID="", CNI_IFNAME=""), 4, "[CNI_CONTAINERID,CNI_IFNAME]"),
    (env(CNI_PATH=""), 4, "[CNI_PATH]"),
    (env(CNI_IFNAME="a" * 16), 4, "interface name is too long"),
    (env(CNI_IFNAME="eth/0"), 4, "contains / or :"),
    (env(CNI_IFNAME="eth 0"), 4, "contains / or :"),
    (env(CNI_IFNAME=".."), 4, "interface name is . or .."),
    (env(CNI_CONTAINERID="-bad id"), 4, "invalid characters in containerID"),
    (env(CNI_NETNS="/nonexistent/netns"), 3, "network namespace does not exist"),
    (env(CNI_NETNS="/etc/hostname"), 4, "not a network namespace"),
    (env(CNI_NETNS="/proc/self/ns/uts"), 4, "not a network namespace"),
])
def test_bad_environment(environ: dict[str, str], code: int, fragment: str) -> None:
    status, out, err = run(environ, conf())
    assert status == 1
    assert out["code"] == code, out
    assert fragment in out["msg"] + out.get("details", ""), out
    assert "Traceback" not in err


@pytest.mark.parametrize(("stdin", "code", "fragment"), [
    (b"{not json", 6, "error parsing network config"),
    (b"[1, 2]", 6, "top level is not a JSON object"),
    (b"", 6, "error parsing network config"),
    (json.dumps({"cniVersion": "1.0.0", "type": "x"}).encode(), 7, "missing network name"),
    (json.dumps({"cniVersion": "1.0.0", "name": "n"}).encode(), 7, "missing 'type'"),
    (json.dumps({"name": "n", "type": "x"}).encode(), 7, "missing cniVersion"),
    (json.dumps({"cniVersion": "1.0.0", "name": "bad name", "type": "x"}).encode(), 7,
     "invalid characters found in network name"),
    (json.dumps({"cniVersion": "0.9.0", "name": "n", "type": "x"}).encode(), 1,
     "incompatible CNI versions"),
    (json.dumps({"cniVersion": "1.0.0", "name": "n", "type": "x",
                 "prevResult": {"cniVersion": "1.0.0", "ips": [{"address": "nope"}]}}).encode(),
     6, "invalid ips[].address"),
])
def test_bad_stdin(stdin: bytes, code: int, fragment: str) -> None:
    status, out, _ = run(env(), stdin)
    assert status == 1
    assert out["code"] == code, out
    assert fragment in out["msg"] + out.get("details", ""), out


def test_plugin_version_mismatch_is_code_1() -> None:
    status, out, _ = run(env(), conf(cniVersion="0.3.1", type="dns-meta"),
                         target="tests.plugins.dns_meta")
    assert status == 1
    assert out["code"] == 1
    assert "0.3.1" in out["details"]


def test_plugin_crash_is_999_without_traceback() -> None:
    status, out, err = run(env(), conf(fail={"ADD": "crash"}))
    assert status == 1
    assert out == {"cniVersion": "1.0.0", "code": 999, "msg": "fixed-ipam crashed on purpose",
                   "details": "RuntimeError"}
    assert "Traceback" not in err


def test_plugin_error_keeps_code_and_details() -> None:
    status, out, _ = run(env(), conf(fail={"ADD": [11, "busy, retry"]}))
    assert status == 1
    assert out["code"] == 11 and out["msg"] == "busy, retry"


def test_stray_print_does_not_corrupt_stdout() -> None:
    status, out, err = run(env(), conf(), target="tests.plugins.chatty")
    assert status == 0
    assert out["ips"][0]["address"] == "10.9.0.2/24"
    assert "debug: allocating" in err


def test_del_tolerates_missing_netns() -> None:
    status, out, _ = run(env("DEL", CNI_NETNS="/nonexistent/netns"), conf())
    assert status == 0
    assert out is None


def test_gc_and_status_need_only_path() -> None:
    gc_env = {"CNI_COMMAND": "GC", "CNI_PATH": "/x"}
    assert run(gc_env, conf(cniVersion="1.1.0", **{"cni.dev/valid-attachments": []}),
               target="tests.plugins.fake_iface")[0] == 0
    assert run({"CNI_COMMAND": "STATUS", "CNI_PATH": "/x"}, conf(cniVersion="1.1.0"),
               target="tests.plugins.fake_iface")[0] == 0
    status, out, _ = run({"CNI_COMMAND": "GC"}, conf(), target="tests.plugins.fake_iface")
    assert status == 1 and out["code"] == 4


@pytest.mark.parametrize(("command", "version"), [("CHECK", "0.3.1"), ("GC", "1.0.0"),
                                                  ("STATUS", "1.0.0")])
def test_command_newer_than_config_version_is_code_1(command: str, version: str) -> None:
    status, out, _ = run(env(command), conf(cniVersion=version),
                         target="tests.plugins.fake_iface")
    assert status == 1
    assert out["code"] == 1 and out["msg"] == f"config version does not allow {command}"


def test_load_failure_is_reported_as_json() -> None:
    status, out, _ = run(env(), conf(), target="tests.plugins.does_not_exist")
    assert status == 1
    assert "failed to load" in out["msg"]
    assert "No module named" in out["details"]


def test_env_table_drives_requirements() -> None:
    required = {v.name: v.required_for for v in ENV}
    assert required["CNI_NETNS"] == {"ADD", "CHECK"}
    assert "DEL" in required["CNI_IFNAME"] and "GC" not in required["CNI_IFNAME"]


def test_env_table_is_both_sides_of_the_protocol() -> None:
    """What the runtime side writes (Request.environ) the plugin side reads back
    (read_env) to the same Request fields: one table, no drift."""
    config = PluginConfig.from_dict({"cniVersion": "1.1.0", "name": "n", "type": "x"})
    sent = Request(command="DEL", config=config, container_id="c1", ifname="eth0",
                   args=(("IgnoreUnknown", "1"), ("IP", "10.0.0.2")), path=("/a", "/b"))
    fields = read_env("DEL", sent.environ({}))
    assert Request(config=config, **fields) == sent
