"""Results and errors (SPEC.md 1.1.0 section 5) against the spec's examples and libcni's converters.

The expected values of the conversion tests are written out from libcni's rules
(pkg/types/{020,040,100}/types.go), not computed with corecni.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from corecni.spec.errors import CNIError, ErrorCode
from corecni.spec.result import DNS, Interface, IPConfig, Result, Route
from corecni.spec.version import SUPPORTED

EXAMPLES = Path(__file__).parent / "spec_examples"
LEGACY = ("0.1.0", "0.2.0")
V04X = ("0.3.0", "0.3.1", "0.4.0")
V1X = ("1.0.0", "1.1.0")
MODERN = V04X + V1X
PAIRS = [(src, dst) for src in SUPPORTED for dst in SUPPORTED]


def example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / name).read_text())
    return data


def code_of(exc_info: pytest.ExceptionInfo[CNIError]) -> int:
    return exc_info.value.code


# ---------------------------------------------------------------------------
# SPEC.md examples round-trip

SPEC_RESULTS = ["result_add_1_host_local.json", "result_add_1_bridge.json",
                "result_add_2_tuning.json"]


def test_all_spec_result_examples_are_covered() -> None:
    on_disk = sorted(p.name for p in EXAMPLES.glob("result_*.json"))
    assert on_disk == sorted(SPEC_RESULTS)


@pytest.mark.parametrize("name", SPEC_RESULTS)
@pytest.mark.parametrize("version", V1X)
def test_spec_result_roundtrips_key_by_key(name: str, version: str) -> None:
    # The spec's examples carry no cniVersion: they live inside a 1.1.0 exchange.
    data = example(name)
    assert "cniVersion" not in data
    result = Result.from_dict(data, default_version=version)
    assert result.cni_version == version
    out = result.to_dict()
    expected = {"cniVersion": version, **data}
    assert sorted(out) == sorted(expected)
    for key in expected:
        assert out[key] == expected[key], key
    # and again from its own output
    assert Result.from_dict(out).to_dict() == out


def test_spec_bridge_result_typed_values() -> None:
    result = Result.from_dict(example("result_add_1_bridge.json"), default_version="1.1.0")
    assert result.interfaces == (
        Interface(name="cni0", mac="00:11:22:33:44:55"),
        Interface(name="veth3243", mac="55:44:33:22:11:11"),
        Interface(name="eth0", mac="99:88:77:66:55:44", sandbox="/var/run/netns/blue"),
    )
    assert result.ips == (IPConfig(address="10.1.0.5/16", gateway="10.1.0.1", interface=2),)
    assert result.routes == (Route(dst="0.0.0.0/0"),)
    assert result.dns == DNS(nameservers=("10.1.0.1",))


def test_spec_tuning_result_differs_from_bridge_only_in_mac() -> None:
    bridge = Result.from_dict(example("result_add_1_bridge.json"), default_version="1.1.0")
    tuning = Result.from_dict(example("result_add_2_tuning.json"), default_version="1.1.0")
    assert tuning != bridge
    assert tuning.interfaces[2].mac == "00:11:22:33:44:66"
    assert tuning.interfaces[:2] == bridge.interfaces[:2]
    assert (tuning.ips, tuning.routes, tuning.dns) == (bridge.ips, bridge.routes, bridge.dns)


def test_spec_ipam_result_has_no_interfaces() -> None:
    ipam = Result.from_dict(example("result_add_1_host_local.json"), default_version="1.1.0")
    assert ipam.interfaces == ()
    assert [ip.interface for ip in ipam.ips] == [None]
    assert "interfaces" not in ipam.to_dict()
    assert "interface" not in ipam.to_dict()["ips"][0]


@pytest.mark.parametrize("name", ["error_invalid_config.json", "constructed_error_status_50.json",
                                  "constructed_error_status_51.json"])
def test_spec_error_example_roundtrips(name: str) -> None:
    data = example(name)
    err = CNIError.from_dict(data)
    assert (err.code, err.msg, err.details) == (data["code"], data["msg"], data["details"])
    assert err.to_dict(cni_version=data["cniVersion"]) == data
    assert err.to_dict() == {k: v for k, v in data.items() if k != "cniVersion"}


def test_spec_error_example_values() -> None:
    err = CNIError.from_dict(example("error_invalid_config.json"))
    assert err.code == ErrorCode.INVALID_NETWORK_CONFIG == 7
    assert err.msg == "Invalid Configuration"
    assert err.details == "Network 192.168.0.0/31 too small to allocate from."
    assert str(err) == "Invalid Configuration: Network 192.168.0.0/31 too small to allocate from."


def test_error_codes_match_spec_table() -> None:
    # SPEC.md 1.1.0 section 5 "Error" table and section 2 "STATUS"; 999 is libcni's ErrInternal.
    assert {c.name: c.value for c in ErrorCode} == {
        "INCOMPATIBLE_VERSION": 1, "UNSUPPORTED_FIELD": 2, "UNKNOWN_CONTAINER": 3,
        "INVALID_ENVIRONMENT": 4, "IO_FAILURE": 5, "DECODING_FAILURE": 6,
        "INVALID_NETWORK_CONFIG": 7, "TRY_AGAIN_LATER": 11, "PLUGIN_NOT_AVAILABLE": 50,
        "LIMITED_CONNECTIVITY": 51, "INTERNAL": 999,
    }


def test_error_without_details_omits_the_key() -> None:
    err = CNIError.from_dict({"code": 11, "msg": "busy"})
    assert err.details == ""
    assert err.to_dict("1.1.0") == {"cniVersion": "1.1.0", "code": 11, "msg": "busy"}


@pytest.mark.parametrize("data", [
    [], "text", {"msg": "no code"}, {"code": "7", "msg": "string code"},
    {"code": True, "msg": "bool code"}, {"code": 7}, {"code": 7, "msg": 3},
])
def test_error_from_bad_json_is_refused(data: Any) -> None:
    with pytest.raises(ValueError):
        CNIError.from_dict(data)


# ---------------------------------------------------------------------------
# Conversion: every ordered pair of supported versions
#
# One address-rich result, written in the shape of each version. Two IPv4 and two
# IPv6 addresses, so that a down-conversion to 0.2.0 has something to drop.

DNS_JSON = {"nameservers": ["10.1.0.1", "fd00::1"], "domain": "example.com",
            "search": ["example.com", "svc.example.com"], "options": ["ndots:5"]}
HOST_IF = {"name": "cni0", "mac": "00:11:22:33:44:55"}
CTR_IF_1X = {"name": "eth0", "mac": "99:88:77:66:55:44", "mtu": 1450,
             "sandbox": "/var/run/netns/blue", "socketPath": "/run/vhost/eth0.sock",
             "pciID": "0000:00:1f.6"}
CTR_IF_04X = {"name": "eth0", "mac": "99:88:77:66:55:44", "sandbox": "/var/run/netns/blue"}
IPS = [  # (family, ip entry in the 1.x shape)
    ("4", {"interface": 1, "address": "10.1.0.5/16", "gateway": "10.1.0.1"}),
    ("6", {"interface": 1, "address": "fd00::5/64", "gateway": "fd00::1"}),
    ("4", {"interface": 1, "address": "10.1.0.6/16"}),
    ("6", {"address": "fd00::6/64", "gateway": "fd00::2"}),
]
ROUTES = [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}, {"dst": "::/0", "gw": "fd00::1"},
          {"dst": "192.168.0.0/16"}]


def modern_json(version: str, *, rich_interfaces: bool) -> dict[str, Any]:
    """The rich result as version ``version`` (0.3.0 and later) writes it."""
    ctr = CTR_IF_1X if rich_interfaces else CTR_IF_04X
    if version in V04X:
        ips = [{"version": fam, **ip} for fam, ip in IPS]
    else:
        ips = [dict(ip) for _, ip in IPS]
    return {"cniVersion": version, "interfaces": [dict(HOST_IF), dict(ctr)], "ips": ips,
            "routes": copy.deepcopy(ROUTES), "dns": copy.deepcopy(DNS_JSON)}


def legacy_json(version: str) -> dict[str, Any]:
    """The rich result as 0.1.0/0.2.0 holds it: first address per family, its routes."""
    return {
        "cniVersion": version,
        "ip4": {"ip": "10.1.0.5/16", "gateway": "10.1.0.1",
                "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}, {"dst": "192.168.0.0/16"}]},
        "ip6": {"ip": "fd00::5/64", "gateway": "fd00::1",
                "routes": [{"dst": "::/0", "gw": "fd00::1"}]},
        "dns": copy.deepcopy(DNS_JSON),
    }


def from_legacy_json(version: str) -> dict[str, Any]:
    """libcni's convertFrom02x: ip4 then ip6, their routes in that order, no interfaces."""
    ips: list[dict[str, Any]] = [{"address": "10.1.0.5/16", "gateway": "10.1.0.1"},
                                 {"address": "fd00::5/64", "gateway": "fd00::1"}]
    if version in V04X:
        ips = [{"version": "4", **ips[0]}, {"version": "6", **ips[1]}]
    return {"cniVersion": version, "ips": ips,
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}, {"dst": "192.168.0.0/16"},
                       {"dst": "::/0", "gw": "fd00::1"}],
            "dns": copy.deepcopy(DNS_JSON)}


def source_json(version: str) -> dict[str, Any]:
    if version in LEGACY:
        return legacy_json(version)
    return modern_json(version, rich_interfaces=version in V1X)


def expected_json(src: str, dst: str) -> dict[str, Any]:
    if dst in LEGACY:
        return legacy_json(dst)
    if src in LEGACY:
        return from_legacy_json(dst)
    # mtu/socketPath/pciID exist only in the 1.x types: lost once a 0.3.x/0.4.0 hop is taken
    return modern_json(dst, rich_interfaces=src in V1X and dst in V1X)


def assert_shape(out: dict[str, Any], version: str) -> None:
    assert out["cniVersion"] == version
    assert "dns" in out
    if version in LEGACY:
        assert not {"ips", "interfaces", "routes"} & out.keys()
        assert {"ip4", "ip6"} & out.keys()
        return
    assert not {"ip4", "ip6"} & out.keys()
    for ip in out.get("ips", []):
        if version in V04X:
            assert ip["version"] == ("6" if ":" in ip["address"] else "4")
        else:
            assert "version" not in ip
    for intf in out.get("interfaces", []):
        if version in V04X:
            assert not {"mtu", "socketPath", "pciID"} & intf.keys()


@pytest.mark.parametrize(("src", "dst"), PAIRS)
def test_convert_every_version_pair(src: str, dst: str) -> None:
    source = Result.from_dict(source_json(src))
    assert source.cni_version == src
    assert source.to_dict() == source_json(src)  # every version's own shape round-trips
    converted = source.as_version(dst)
    assert converted.cni_version == dst
    out = converted.to_dict()
    assert_shape(out, dst)
    assert out == expected_json(src, dst)
    # the JSON it writes reads back to the same thing
    assert Result.from_dict(out).to_dict() == out


@pytest.mark.parametrize(("src", "dst"), PAIRS)
def test_convert_does_not_touch_the_source(src: str, dst: str) -> None:
    source = Result.from_dict(source_json(src))
    before = source.to_dict()
    source.as_version(dst)
    assert source.to_dict() == before


def test_interfaces_appear_only_from_030() -> None:
    source = Result.from_dict(source_json("1.1.0"))
    for version in SUPPORTED:
        out = source.as_version(version).to_dict()
        assert ("interfaces" in out) is (version not in LEGACY), version


@pytest.mark.parametrize("dst", SUPPORTED)
def test_interface_extras_only_for_1x(dst: str) -> None:
    source = Result.from_dict(source_json("1.1.0"))
    out = source.as_version(dst).to_dict()
    if dst in LEGACY:
        assert "interfaces" not in out
    elif dst in V04X:
        assert out["interfaces"][1] == CTR_IF_04X
    else:
        assert out["interfaces"][1] == CTR_IF_1X


@pytest.mark.parametrize("src", MODERN)
@pytest.mark.parametrize("dst", LEGACY)
def test_down_to_legacy_keeps_first_ip_per_family(src: str, dst: str) -> None:
    data = source_json(src)
    # put the second IPv4 address first: "first" means list order, not numeric order
    data["ips"] = [data["ips"][2], data["ips"][1], data["ips"][0], data["ips"][3]]
    out = Result.from_dict(data).as_version(dst).to_dict()
    assert out["ip4"]["ip"] == "10.1.0.6/16"
    assert "gateway" not in out["ip4"]
    assert out["ip6"] == {"ip": "fd00::5/64", "gateway": "fd00::1",
                          "routes": [{"dst": "::/0", "gw": "fd00::1"}]}


@pytest.mark.parametrize("src", MODERN)
@pytest.mark.parametrize("dst", LEGACY)
@pytest.mark.parametrize("family", ["4", "6"])
def test_down_to_legacy_drops_routes_of_dropped_family(src: str, dst: str, family: str) -> None:
    data = source_json(src)
    data["ips"] = [ip for ip in data["ips"] if ("version" in ip and ip["version"] == family)
                   or ("version" not in ip and (":" in ip["address"]) == (family == "6"))]
    converted = Result.from_dict(data).as_version(dst)
    assert {r.family for r in converted.routes} == {int(family)}
    out = converted.to_dict()
    kept, dropped = (("ip4", "ip6") if family == "4" else ("ip6", "ip4"))
    assert dropped not in out
    if family == "4":
        assert out[kept] == {"ip": "10.1.0.5/16", "gateway": "10.1.0.1",
                             "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"},
                                        {"dst": "192.168.0.0/16"}]}
    else:
        assert out[kept] == {"ip": "fd00::5/64", "gateway": "fd00::1",
                             "routes": [{"dst": "::/0", "gw": "fd00::1"}]}
    assert out["dns"] == DNS_JSON


@pytest.mark.parametrize("dst", LEGACY)
def test_down_to_legacy_routes_without_any_kept_family_vanish(dst: str) -> None:
    data = {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24"}],
            "routes": [{"dst": "fd00::/8", "gw": "fe80::1"}]}
    out = Result.from_dict(data).as_version(dst).to_dict()
    assert out == {"cniVersion": dst, "ip4": {"ip": "10.0.0.2/24"}, "dns": {}}


@pytest.mark.parametrize("dst", MODERN)
def test_down_then_up_keeps_only_routes_of_kept_families(dst: str) -> None:
    data = {"cniVersion": "1.1.0", "ips": [{"address": "fd00::5/64"}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}, {"dst": "::/0", "gw": "fd00::1"}]}
    out = Result.from_dict(data).as_version("0.2.0").as_version(dst).to_dict()
    assert out["routes"] == [{"dst": "::/0", "gw": "fd00::1"}]


@pytest.mark.parametrize("src", V04X)
def test_04x_interface_never_writes_1x_fields(src: str) -> None:
    # libcni's 040 Interface has only name/mac/sandbox: extra keys are lost when it is read
    data = {"cniVersion": src, "interfaces": [{**CTR_IF_1X}], "ips": [{"version": "4",
            "interface": 0, "address": "10.0.0.2/24"}]}
    out = Result.from_dict(data).to_dict()
    assert out["interfaces"] == [CTR_IF_04X]


@pytest.mark.parametrize("src", LEGACY)
@pytest.mark.parametrize("dst", MODERN)
def test_up_from_legacy_has_ips_and_routes_but_no_interfaces(src: str, dst: str) -> None:
    out = Result.from_dict(legacy_json(src)).as_version(dst).to_dict()
    assert "interfaces" not in out
    assert [ip["address"] for ip in out["ips"]] == ["10.1.0.5/16", "fd00::5/64"]
    assert all("interface" not in ip for ip in out["ips"])
    assert [r["dst"] for r in out["routes"]] == ["0.0.0.0/0", "192.168.0.0/16", "::/0"]


@pytest.mark.parametrize("src", MODERN)
@pytest.mark.parametrize("dst", LEGACY)
@pytest.mark.parametrize("with_interfaces", [False, True])
def test_no_ips_cannot_go_to_legacy(src: str, dst: str, with_interfaces: bool) -> None:
    data: dict[str, Any] = {"cniVersion": src, "routes": [{"dst": "0.0.0.0/0"}],
                            "dns": {"nameservers": ["1.1.1.1"]}}
    if with_interfaces:
        data["interfaces"] = [{"name": "eth0", "sandbox": "/var/run/netns/x"}]
    result = Result.from_dict(data)
    with pytest.raises(CNIError) as exc_info:
        result.as_version(dst)
    assert code_of(exc_info) == ErrorCode.INCOMPATIBLE_VERSION == 1
    assert exc_info.value.msg == "cannot convert: no valid IP addresses"


@pytest.mark.parametrize(("src", "dst"), [("0.1.0", "0.2.0"), ("0.2.0", "0.1.0")])
def test_legacy_to_legacy_without_ips_like_libcni(src: str, dst: str) -> None:
    data = {"cniVersion": src, "dns": {"nameservers": ["1.1.1.1"]}}
    out = Result.from_dict(data).as_version(dst).to_dict()
    assert out == {"cniVersion": dst, "dns": {"nameservers": ["1.1.1.1"]}}


@pytest.mark.parametrize("src", LEGACY)
@pytest.mark.parametrize("dst", MODERN)
def test_legacy_without_ips_goes_up_empty(src: str, dst: str) -> None:
    data = {"cniVersion": src, "dns": {"nameservers": ["1.1.1.1"]}}
    assert Result.from_dict(data).as_version(dst).to_dict() == {
        "cniVersion": dst, "dns": {"nameservers": ["1.1.1.1"]}}


@pytest.mark.parametrize("dst", LEGACY)
def test_down_to_legacy_routes_have_only_dst_and_gw(dst: str) -> None:
    data = {"cniVersion": "1.1.0", "ips": [{"address": "10.0.0.2/24"}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1", "mtu": 1400, "advmss": 1360,
                        "priority": 10, "table": 100, "scope": 0}]}
    out = Result.from_dict(data).as_version(dst).to_dict()
    assert out["ip4"]["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}]


@pytest.mark.parametrize("dst", MODERN)
def test_route_extras_survive_modern_conversions(dst: str) -> None:
    # libcni's 040/100 converters copy whole types.Route values (Route.Copy()).
    route = {"dst": "10.2.0.0/16", "gw": "10.0.0.1", "mtu": 1400, "advmss": 1360,
             "priority": 10, "table": 100, "scope": 253}
    data = {"cniVersion": "1.1.0", "ips": [{"address": "10.0.0.2/24"}], "routes": [route]}
    out = Result.from_dict(data).as_version(dst).to_dict()
    assert out["routes"] == [route]


@pytest.mark.parametrize("src", SUPPORTED)
@pytest.mark.parametrize("dst", ["0.5.0", "2.0.0", "1.2.0", "0.4", "1.0.0.0", "v1.0.0"])
def test_convert_to_unknown_version_fails(src: str, dst: str) -> None:
    result = Result.from_dict(source_json(src))
    with pytest.raises(CNIError) as exc_info:
        result.as_version(dst)
    assert code_of(exc_info) == 1


@pytest.mark.parametrize("version", SUPPORTED)
def test_same_version_conversion_is_identity(version: str) -> None:
    result = Result.from_dict(source_json(version))
    assert result.as_version(version) == result


def test_1x_to_04x_to_1x_loses_only_interface_extras() -> None:
    start = Result.from_dict(source_json("1.1.0"))
    back = start.as_version("0.4.0").as_version("1.1.0")
    assert back.ips == start.ips and back.routes == start.routes and back.dns == start.dns
    assert back.interfaces[1] == Interface(name="eth0", mac="99:88:77:66:55:44",
                                           sandbox="/var/run/netns/blue")


# ---------------------------------------------------------------------------
# Reading results


@pytest.mark.parametrize("version", ["0.5.0", "2.0.0", "1.0", "latest"])
def test_result_with_unsupported_version_is_refused(version: str) -> None:
    with pytest.raises(CNIError) as exc_info:
        Result.from_dict({"cniVersion": version, "ips": []})
    assert code_of(exc_info) == 1


def test_result_version_comes_from_the_result_then_the_default() -> None:
    assert Result.from_dict({"cniVersion": "0.4.0"}, default_version="1.1.0").cni_version \
        == "0.4.0"
    assert Result.from_dict({}, default_version="1.0.0").cni_version == "1.0.0"
    assert Result.from_dict({"cniVersion": ""}).cni_version == "0.1.0"  # libcni DecodeVersion


@pytest.mark.parametrize("data", [
    {"cniVersion": "1.1.0", "ips": [{"address": "10.0.0.5"}]},           # no prefix
    {"cniVersion": "1.1.0", "ips": [{"address": "10.0.0.300/24"}]},
    {"cniVersion": "1.1.0", "ips": [{"address": "10.0.0.5/24", "gateway": "x"}]},
    {"cniVersion": "1.1.0", "ips": [{"address": "10.0.0.5/24", "interface": "0"}]},
    {"cniVersion": "1.1.0", "ips": {"address": "10.0.0.5/24"}},
    {"cniVersion": "1.1.0", "routes": [{"dst": "default"}]},
    {"cniVersion": "1.1.0", "routes": [{"dst": "0.0.0.0/0", "gw": "gateway"}]},
    {"cniVersion": "1.1.0", "routes": [{"dst": "0.0.0.0/0", "mtu": "1500"}]},
    {"cniVersion": "1.1.0", "interfaces": [{"name": "eth0", "mtu": True}]},
    {"cniVersion": "1.1.0", "dns": {"nameservers": "10.0.0.1"}},
    {"cniVersion": "1.1.0", "dns": {"nameservers": [1]}},
    {"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.5"}},
    {"cniVersion": "0.2.0", "ip4": "10.0.0.5/24"},
    {"cniVersion": 1.0},
    ["not", "an", "object"],
])
def test_malformed_result_is_a_decoding_failure(data: Any) -> None:
    with pytest.raises(CNIError) as exc_info:
        Result.from_dict(data)
    assert code_of(exc_info) == ErrorCode.DECODING_FAILURE == 6


def test_04x_ip_version_field_is_rebuilt_from_the_address() -> None:
    data = {"cniVersion": "0.4.0", "ips": [{"version": "4", "address": "10.0.0.5/24"},
                                           {"version": "6", "address": "fd00::5/64"}]}
    result = Result.from_dict(data)
    assert [ip.family for ip in result.ips] == [4, 6]
    assert result.to_dict()["ips"] == data["ips"]


@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_interface_without_name_is_accepted(version: str) -> None:
    """Upstream's Interface has a plain ``name`` string: an entry without it is read (as "")."""
    result = Result.from_dict({"cniVersion": version, "interfaces": [{"mac": "0a:58:0a:00:00:02"}],
                               "ips": [{"address": "10.0.0.2/24", "interface": 0}]})
    assert result.interfaces[0].name == "" and result.interfaces[0].mac == "0a:58:0a:00:00:02"
    assert result.to_dict()["interfaces"] == [{"name": "", "mac": "0a:58:0a:00:00:02"}]
