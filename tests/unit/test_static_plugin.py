"""static IPAM: config keys, CNI_ARGS/args/runtimeConfig precedence, DEL, CHECK."""

from __future__ import annotations

from typing import Any

import pytest

from corecni.plugin import LoadedPlugin, Request, load_plugin
from corecni.spec.config import PluginConfig
from corecni.spec.errors import CNIError
from corecni.spec.result import Result


@pytest.fixture
def plugin() -> LoadedPlugin:
    loaded = load_plugin("static", "corecni_contrib.static")
    assert loaded.family == "ipam"
    return loaded


README_IPAM: dict[str, Any] = {
    "type": "static",
    "addresses": [{"address": "10.10.0.1/24", "gateway": "10.10.0.254"},
                  {"address": "3ffe:ffff:0:01ff::1/64", "gateway": "3ffe:ffff:0::1"}],
    "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.10.5.1"},
               {"dst": "3ffe:ffff:0:01ff::1/64"}],
    "dns": {"nameservers": ["8.8.8.8"], "domain": "example.com", "search": ["example.com"]},
}


def conf(ipam: dict[str, Any] | None, version: str = "1.0.0", **top: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"cniVersion": version, "name": "st", "type": "macvlan", **top}
    if ipam is not None:
        out["ipam"] = ipam
    return out


def run(plugin: LoadedPlugin, command: str, config: dict[str, Any],
        args: tuple[tuple[str, str], ...] = ()) -> Result | None:
    return plugin.run(Request.for_config(command, PluginConfig.from_dict(config),
                                         container_id="c1", ifname="eth0", args=args))


def add(plugin: LoadedPlugin, config: dict[str, Any],
        args: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    result = run(plugin, "ADD", config, args)
    assert isinstance(result, Result)
    return result.to_dict()


def failure(plugin: LoadedPlugin, command: str, config: dict[str, Any],
            args: tuple[tuple[str, str], ...] = ()) -> CNIError:
    with pytest.raises(CNIError) as info:
        run(plugin, command, config, args)
    return info.value


def addresses(out: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(ip["address"], ip.get("gateway")) for ip in out.get("ips", [])]


def test_readme_example(plugin: LoadedPlugin) -> None:
    assert add(plugin, conf(README_IPAM)) == {
        "cniVersion": "1.0.0",
        "ips": [{"address": "10.10.0.1/24", "gateway": "10.10.0.254"},
                {"address": "3ffe:ffff:0:1ff::1/64", "gateway": "3ffe:ffff::1"}],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.10.5.1"},
                   {"dst": "3ffe:ffff:0:1ff::1/64"}],
        "dns": {"nameservers": ["8.8.8.8"], "domain": "example.com",
                "search": ["example.com"]},
    }


def test_no_addresses_is_an_empty_result(plugin: LoadedPlugin) -> None:
    assert add(plugin, conf({"type": "static"})) == {"cniVersion": "1.0.0", "dns": {}}


def test_cni_args_ip_adds_and_gateway_applies_to_those(plugin: LoadedPlugin) -> None:
    ipam = {"type": "static", "addresses": [{"address": "10.10.0.1/24"}]}
    out = add(plugin, conf(ipam), args=(("IgnoreUnknown", "1"),
                                        ("IP", "10.20.0.5/24, 2001:db8::5/64"),
                                        ("GATEWAY", "10.20.0.1,2001:db8::1,10.10.0.254")))
    # Go: GATEWAY only reaches CNI_ARGS addresses, never the configured ones
    assert addresses(out) == [("10.10.0.1/24", None), ("10.20.0.5/24", "10.20.0.1"),
                              ("2001:db8::5/64", "2001:db8::1")]


def test_args_and_runtime_config_replace_in_order(plugin: LoadedPlugin) -> None:
    out = add(plugin, conf(README_IPAM, args={"cni": {"ips": ["10.30.0.3/16"]}}),
              args=(("IP", "10.20.0.5/24"),))
    assert addresses(out) == [("10.30.0.3/16", None)]
    out = add(plugin, conf(README_IPAM, args={"cni": {"ips": ["10.30.0.3/16"]}},
                           runtimeConfig={"ips": ["192.168.1.9/24", "fd00::9/64"]}))
    assert addresses(out) == [("192.168.1.9/24", None), ("fd00::9/64", None)]


@pytest.mark.parametrize(("ipam", "top", "args", "message"), [
    ({"type": "static", "addresses": [{"address": "10.1.0.1"}]}, {}, (),
     "the 'address' field is expected to be in CIDR notation, got: '10.1.0.1'"),
    ({"type": "static", "addresses": [{"address": "10.1.0.1/255.255.255.0"}]}, {}, (),
     "CIDR notation"),
    ({"type": "static", "addresses": [{}]}, {}, (), "CIDR notation, got: ''"),
    ({"type": "static", "addresses": [{"address": "10.1.0.1/24", "gateway": "x"}]}, {}, (),
     "invalid IP address"),
    ({"type": "static", "addresses": [{"address": "10.1.0.1/24", "gateway": "fd00::1"}]},
     {}, (), "is not of the family"),
    ({"type": "static", "addresses": "10.1.0.1/24"}, {}, (), "ipam.addresses must be a list"),
    ({"type": "static"}, {}, (("IP", "10.1.0.1"),),
     "the 'ip' field is expected to be in CIDR notation"),
    ({"type": "static"}, {}, (("IP", "10.1.0.1/24"), ("GATEWAY", "nope")),
     "invalid IP address"),
    ({"type": "static"}, {"args": {"cni": {"ips": ["10.1.0.1"]}}}, (),
     "an entry in the 'ips' field is expected to be in CIDR notation"),
    ({"type": "static"}, {"runtimeConfig": {"ips": "10.1.0.1/24"}}, (),
     "runtimeConfig.ips must be a list of strings"),
    ({"type": "static", "routes": [{"dst": "x"}]}, {}, (), "invalid ipam.routes[0]"),
    ({"type": "static", "dns": {"nameservers": "8.8.8.8"}}, {}, (), "invalid ipam.dns"),
    (None, {}, (), "IPAM config missing 'ipam' key"),
])
def test_bad_config_is_code_7(plugin: LoadedPlugin, ipam: dict[str, Any] | None,
                              top: dict[str, Any], args: tuple[tuple[str, str], ...],
                              message: str) -> None:
    for command in ("ADD", "CHECK"):
        err = failure(plugin, command, conf(ipam, **top), args)
        assert err.code == 7 and message in str(err), (command, err)


def test_one_address_per_family_before_0_3_0(plugin: LoadedPlugin) -> None:
    ipam = {"type": "static", "addresses": [{"address": "10.1.0.1/24"},
                                            {"address": "10.2.0.1/24"}]}
    err = failure(plugin, "ADD", conf(ipam, version="0.2.0"))
    assert "does not support more than 1 address per family" in err.msg
    assert len(addresses(add(plugin, conf(ipam, version="0.3.1")))) == 2


def test_del_is_a_no_op_even_for_bad_config(plugin: LoadedPlugin) -> None:
    assert run(plugin, "DEL", conf(README_IPAM)) is None
    assert run(plugin, "DEL", conf({"type": "static", "addresses": [{"address": "x"}]})) \
        is None


def test_check_against_previous_result(plugin: LoadedPlugin) -> None:
    assert run(plugin, "CHECK", conf(README_IPAM)) is None  # no prevResult: config only
    prev = add(plugin, conf(README_IPAM))
    assert run(plugin, "CHECK", conf(README_IPAM, prevResult=prev)) is None
    changed = {**prev, "ips": [{"address": "10.10.0.1/24", "gateway": "10.10.0.1"},
                               prev["ips"][1]]}
    err = failure(plugin, "CHECK", conf(README_IPAM, prevResult=changed))
    assert err.msg == "static: Failed to match addr 10.10.0.1 on interface eth0"
    missing = {**prev, "ips": prev["ips"][:1]}
    err = failure(plugin, "CHECK", conf(README_IPAM, prevResult=missing))
    assert "3ffe:ffff:0:1ff::1/64 is missing from the previous result" in err.msg
