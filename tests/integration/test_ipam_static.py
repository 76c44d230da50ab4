"""static exec'd through a launcher, side by side with Go's ``static`` on the same input."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration._harness import exec_plugin, go_plugin

GO, needs_go = go_plugin("static")
PLUGIN_TYPE = "static"  # the conftest fixture ours installs its launcher


def call(binary: str, command: str, config: dict[str, Any],
         cni_args: str = "") -> tuple[int, dict[str, Any]]:
    return exec_plugin(binary, command, config, cni_args=cni_args, timeout=60)


README: dict[str, Any] = {
    "type": "static",
    "addresses": [{"address": "10.10.0.1/24", "gateway": "10.10.0.254"},
                  {"address": "3ffe:ffff:0:01ff::1/64", "gateway": "3ffe:ffff:0::1"}],
    "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.10.5.1"},
               {"dst": "3ffe:ffff:0:01ff::1/64"}],
    "dns": {"nameservers": ["8.8.8.8"], "domain": "example.com", "search": ["example.com"],
            "options": ["ndots:3"]},
}

CASES: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
    ("readme", README, {}, ""),
    ("cni-args", {"type": "static", "addresses": [{"address": "10.10.0.1/24"}]}, {},
     "IgnoreUnknown=1;IP=10.20.0.5/24,2001:db8::5/64;GATEWAY=10.20.0.1,10.10.0.254"),
    ("args", README, {"args": {"cni": {"ips": ["10.30.0.3/16"]}}}, "IP=10.20.0.5/24"),
    ("runtime-config", README, {"runtimeConfig": {"ips": ["192.168.1.9/24", "fd00::9/64"]}},
     ""),
    ("empty", {"type": "static"}, {}, ""),
]


def conf(version: str, ipam: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    return {"cniVersion": version, "name": "st", "type": "macvlan", "ipam": ipam, **top}


@needs_go
@pytest.mark.interop
@pytest.mark.parametrize("version", ["1.0.0", "0.4.0", "0.3.1"])
@pytest.mark.parametrize(("label", "ipam", "top", "cni_args"), CASES,
                         ids=[c[0] for c in CASES])
def test_same_result_as_go(ours: str, version: str, label: str, ipam: dict[str, Any],
                           top: dict[str, Any], cni_args: str) -> None:
    config = conf(version, ipam, top)
    go_rc, go_out = call(GO, "ADD", config, cni_args)
    our_rc, our_out = call(ours, "ADD", config, cni_args)
    assert (go_rc, our_rc) == (0, 0), (go_out, our_out)
    assert our_out == go_out
    checked = {**config, "prevResult": go_out}
    for impl in (GO, ours):
        if version != "0.3.1":  # CHECK exists from 0.4.0 on
            assert call(impl, "CHECK", checked, cni_args)[0] == 0, impl
        assert call(impl, "DEL", config, cni_args)[0] == 0, impl


@needs_go
@pytest.mark.interop
def test_legacy_version_single_address_per_family(ours: str) -> None:
    config = conf("0.2.0", README, {})
    assert call(ours, "ADD", config) == call(GO, "ADD", config)
    two_v4 = conf("0.2.0", {"type": "static", "addresses": [{"address": "10.1.0.1/24"},
                                                            {"address": "10.2.0.1/24"}]}, {})
    (go_rc, go_out), (our_rc, our_out) = call(GO, "ADD", two_v4), call(ours, "ADD", two_v4)
    assert go_rc == our_rc == 1 and our_out["code"] == 7
    assert our_out["msg"] == go_out["msg"] == \
        "CNI version 0.2.0 does not support more than 1 address per family"


def test_bad_address_is_error_json(ours: str) -> None:
    rc, out = call(ours, "ADD", conf("1.0.0", {"type": "static",
                                               "addresses": [{"address": "10.1.0.1"}]}, {}))
    assert rc == 1 and out["code"] == 7
    assert out["msg"] == "the 'address' field is expected to be in CIDR notation, got: '10.1.0.1'"


@needs_go
@pytest.mark.interop
def test_check_detects_a_changed_gateway_like_go(ours: str) -> None:
    config = conf("1.0.0", README, {})
    _, result = call(GO, "ADD", config)
    result["ips"][0]["gateway"] = "10.10.0.1"
    for impl in (GO, ours):
        rc, out = call(impl, "CHECK", {**config, "prevResult": result})
        assert rc == 1 and out["msg"] == \
            "static: Failed to match addr 10.10.0.1 on interface eth0", impl
