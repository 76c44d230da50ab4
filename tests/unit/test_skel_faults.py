"""Bad input at the plugin side (issue 12: items 3, 7, 9, 12, 14, 15): every input gets
an error JSON with the code and message Go's skel gives, and never a traceback."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from corecni import skel
from corecni.hookspecs import hookimpl
from corecni.registry import Registry
from corecni.request import Request
from corecni.runtime import CNIRuntime
from corecni.spec.config import (
    NetworkConfigList,
    RuntimeConf,
    parse_json_object,
    validate_attachment,
)
from corecni.spec.errors import CNIError
from corecni.spec.result import IPConfig, Result
from tests.unit.test_skel import OWN_NETNS, conf, env, foreign_netns, run

__all__ = ["foreign_netns"]  # the module-scoped netns fixture, shared


class OldPlugin:
    """An IPAM plugin that speaks only 0.1.0-0.3.0 (as in Go's skel tests)."""

    @hookimpl
    def plugin_supported_versions(self) -> list[str]:
        return ["0.1.0", "0.2.0", "0.3.0"]

    @hookimpl
    def ipam_add(self, request: Request) -> Result:
        return Result(cni_version=request.cni_version, ips=(IPConfig(address="10.1.0.2/24"),))

    @hookimpl
    def ipam_del(self, request: Request) -> None:
        pass

    @hookimpl
    def ipam_check(self, request: Request) -> None:
        pass


class ArgsEcho:
    """Answers ADD with the CNI_ARGS it was given (in a DNS option), DEL with nothing."""

    @hookimpl
    def ipam_add(self, request: Request) -> Result:
        from corecni.spec.result import DNS

        return Result(cni_version=request.cni_version, ips=(IPConfig(address="10.1.0.2/24"),),
                      dns=DNS(options=tuple(f"{k}={v}" for k, v in request.args)))

    @hookimpl
    def ipam_del(self, request: Request) -> None:
        pass

    @hookimpl
    def ipam_check(self, request: Request) -> None:
        pass


def run_obj(environ: dict[str, str], stdin: bytes | dict[str, Any],
            target: object) -> tuple[int, Any, str]:
    data = json.dumps(stdin).encode() if isinstance(stdin, dict) else stdin
    out, err = io.StringIO(), io.StringIO()
    if environ.get("CNI_NETNS") == "@foreign-netns":
        from tests.unit.test_skel import _FOREIGN

        environ = {**environ, "CNI_NETNS": _FOREIGN[0]}
    code = skel.run("t", target, environ=environ, stdin=io.BytesIO(data), stdout=out,
                    stderr=err)
    text = out.getvalue()
    return code, (json.loads(text) if text.strip() else None), err.getvalue()


def assert_error(status: int, out: Any, err: str, code: int, *fragments: str) -> None:
    assert status == 1
    assert isinstance(out, dict) and out["code"] == code, out
    text = out["msg"] + out.get("details", "")
    for fragment in fragments:
        assert fragment in text, out
    assert "Traceback" not in err


# --- item 3: CNI_ARGS never fails skel; plugins read the keys they ask for -------------

@pytest.mark.parametrize("args", ["K=a=b", "some;extra;args", "=x;IP", "A=1;;B=2;garbage"])
def test_cni_args_never_fail_skel(args: str) -> None:
    for command in ("ADD", "DEL"):
        status, out, _ = run_obj(env(command, CNI_ARGS=args), conf(), ArgsEcho())
        assert status == 0, out


def test_cni_args_pairs_reach_the_plugin_leniently() -> None:
    status, out, _ = run_obj(env(CNI_ARGS="K=a=b;junk;IP=10.1.0.9;=x"), conf(), ArgsEcho())
    assert status == 0
    assert out["dns"]["options"] == ["K=a=b", "IP=10.1.0.9"]


# --- item 7: Go's skel: own netns, blank command, order of checks, versions ------------

@pytest.mark.parametrize("command", ["ADD", "DEL", "CHECK"])
def test_own_netns_is_refused(command: str) -> None:
    status, out, err = run(env(command, CNI_NETNS=OWN_NETNS),
                           conf(cniVersion="1.0.0",
                                prevResult={"cniVersion": "1.0.0", "ips": []}))
    assert_error(status, out, err, 4,
                 "plugin's netns and netns from CNI_NETNS should not be the same")


@pytest.mark.parametrize("value", ["1", "true", "TRUE"])
def test_own_netns_with_go_override(value: str) -> None:
    status, out, _ = run(env(CNI_NETNS=OWN_NETNS, CNI_NETNS_OVERRIDE=value), conf())
    assert status == 0, out


def test_blank_command_prints_about_and_exits_0() -> None:
    status, out, err = run({"CNI_COMMAND": ""}, b"")
    assert status == 0
    assert out is None
    assert "CNI plugin fixed-ipam" in err
    assert "CNI protocol versions supported: 0.1.0, 0.2.0" in err


def test_ifname_is_validated_before_the_netns_is_probed() -> None:
    status, out, err = run(env(CNI_IFNAME="a" * 16, CNI_NETNS="/nonexistent/netns"), conf())
    assert_error(status, out, err, 4, "interface name is too long")


@pytest.mark.parametrize(("command", "version", "code", "msg"), [
    ("CHECK", "adsfsadf", 6, "failed to convert major version part"),
    ("GC", "adsfsadf", 6, "failed to convert major version part"),
    ("STATUS", "1.x.0", 6, "failed to convert minor version part"),
    ("CHECK", "0.4.0", 1, "plugin version does not allow CHECK"),
    ("GC", "1.1.0", 1, "plugin version does not allow GC"),
    ("STATUS", "1.1.0", 1, "plugin version does not allow STATUS"),
    ("CHECK", "0.3.0", 1, "config version does not allow CHECK"),
])
def test_check_gc_status_versions_as_go(command: str, version: str, code: int,
                                        msg: str) -> None:
    environ = env(command) if command == "CHECK" else {"CNI_COMMAND": command, "CNI_PATH": "/x"}
    status, out, err = run_obj(environ, conf(cniVersion=version, prevResult={"ips": []}),
                               OldPlugin())
    assert_error(status, out, err, code, msg)


def test_incompatible_version_details_as_go() -> None:
    status, out, err = run_obj(env(), conf(cniVersion="0.4.0"), OldPlugin())
    assert_error(status, out, err, 1, "incompatible CNI versions")
    assert out["details"] == 'config is "0.4.0", plugin supports ["0.1.0" "0.2.0" "0.3.0"]'


def test_bad_name_is_refused_before_type() -> None:
    status, out, err = run(env(), {"cniVersion": "0.4.0", "name": "te%%st"})
    assert_error(status, out, err, 7, "invalid characters found in network name")


# --- item 9: any nesting gets an error JSON ---------------------------------------------

@pytest.mark.parametrize("depth", [600, 1500, 100_000])
def test_deeply_nested_stdin_is_an_error_json(depth: int) -> None:
    data = b'{"cniVersion":"0.4.0","name":"n","type":"x","a":' + b"[" * depth + b"]" * depth \
        + b"}"
    status, out, err = run(env(), data)
    assert_error(status, out, err, 6, "nested deeper than")
    assert out["cniVersion"] == "0.4.0"


def test_unterminated_deep_nesting_is_an_error_json() -> None:
    status, out, err = run(env(), b"[" * 50_000)
    assert_error(status, out, err, 6)


# --- item 12: non-UTF-8 text names the key -----------------------------------------------

@pytest.mark.parametrize(("stdin", "key"), [
    (b'{"cniVersion":"1.0.0","name":"n","type":"x","ipam":{"dataDir":"\\ud800"}}',
     "ipam.dataDir"),
    (b'{"cniVersion":"1.0.0","name":"n","type":"x","ipam":{"dataDir":"/a\xff"}}',
     "ipam.dataDir"),
    (b'{"cniVersion":"1.0.0","name":"n","type":"x","l":["ok","\\udfff"]}', "l[1]"),
])
def test_non_utf8_strings_are_code_7_naming_the_key(stdin: bytes, key: str) -> None:
    status, out, err = run(env(), stdin)
    assert_error(status, out, err, 7, key, "not valid UTF-8")


def test_non_utf8_ifname_is_code_4() -> None:
    # os.environ hands a non-UTF-8 byte in as a surrogate (surrogateescape)
    status, out, err = run(env(CNI_IFNAME="eth\udcff"), conf())
    assert_error(status, out, err, 4, "interface name is not valid UTF-8")


# --- item 14: what Go's JSON decoder refuses ---------------------------------------------

@pytest.mark.parametrize("stdin", [
    b'\xef\xbb\xbf{"cniVersion":"1.0.0","name":"n","type":"fixed-ipam"}',
    b'{"cniVersion":"1.0.0","name":"n","type":"fixed-ipam","mtu":NaN}',
    b'{"cniVersion":"1.0.0","name":"n","type":"fixed-ipam","mtu":-Infinity}',
    '{"cniVersion":"1.0.0","name":"n","type":"fixed-ipam"}'.encode("utf-16"),
])
def test_json_go_refuses_is_code_6(stdin: bytes) -> None:
    status, out, err = run(env(), stdin)
    assert_error(status, out, err, 6, "error parsing network config")


def test_parse_json_object_refuses_bom_in_text_too() -> None:
    with pytest.raises(CNIError) as exc_info:
        parse_json_object('\ufeff{"a": 1}', "x")
    assert exc_info.value.code == 6


def test_too_long_container_id_is_refused_up_front(tmp_path: Path) -> None:
    with pytest.raises(CNIError) as exc_info:
        validate_attachment("net", "c" * 300, "eth0")
    assert exc_info.value.code == 4
    validate_attachment("n" * 100, "c" * 64, "eth0")  # a realistic one fits
    log = tmp_path / "log"
    registry = Registry(path=(str(tmp_path / "bin"),), entry_points=False)
    registry.register("fixed-ipam", "tests.plugins.fixed_ipam")
    rt = CNIRuntime(cache_dir=str(tmp_path / "cache"), registry=registry)
    net = NetworkConfigList.from_dict({"cniVersion": "1.0.0", "name": "testnet",
                                       "plugins": [{"type": "fixed-ipam", "log": str(log)}]})
    with pytest.raises(CNIError) as exc_info:
        rt.add_network_list(net, RuntimeConf(container_id="c" * 300, netns=OWN_NETNS))
    assert exc_info.value.code == 4
    assert not log.exists(), "a plugin ran before the container ID was refused"


# --- item 15: the config's cniVersion even when the environment is refused --------------

@pytest.mark.parametrize("environ", [
    env(CNI_PATH=""), env(CNI_CONTAINERID="bad id"), env(CNI_IFNAME="a" * 20),
    env("FROB"), env(CNI_NETNS="/nonexistent"),
])
def test_env_errors_claim_the_config_version(environ: dict[str, str]) -> None:
    status, out, _ = run(environ, conf(cniVersion="0.4.0"))
    assert status == 1
    assert out["cniVersion"] == "0.4.0", out
