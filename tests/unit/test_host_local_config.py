"""host-local configuration: Go's keys and defaults, and every bad input as code 7."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from corecni_contrib.host_local.config import (
    DEFAULT_DATA_DIR,
    HostLocalConfig,
    load_config,
    store_location,
)

from corecni.plugin import Request
from corecni.spec.config import PluginConfig
from corecni.spec.errors import CNIError


def request(ipam: dict[str, Any] | None, *, version: str = "1.0.0",
            cni_args: tuple[tuple[str, str], ...] = (), **top: Any) -> Request:
    raw: dict[str, Any] = {"cniVersion": version, "name": "net1", "type": "bridge", **top}
    if ipam is not None:
        raw["ipam"] = {"type": "host-local", **ipam}
    return Request(command="ADD", config=PluginConfig.from_dict(raw), container_id="c1",
                   ifname="eth0", args=cni_args)


def load(ipam: dict[str, Any] | None, **kw: Any) -> HostLocalConfig:
    return load_config(request(ipam, **kw))


def config_error(ipam: dict[str, Any] | None, **kw: Any) -> CNIError:
    with pytest.raises(CNIError) as info:
        load(ipam, **kw)
    assert info.value.code == 7, info.value
    return info.value


def test_defaults_of_a_range() -> None:
    cfg = load({"ranges": [[{"subnet": "10.1.2.0/24"}]]})
    (r,) = cfg.ranges[0].ranges
    assert (str(r.range_start), str(r.range_end), str(r.gateway)) == \
        ("10.1.2.1", "10.1.2.254", "10.1.2.1")
    assert cfg.data_dir == DEFAULT_DATA_DIR == "/var/lib/cni/networks"
    assert cfg.name == "net1" and cfg.routes == () and cfg.resolv_conf == ""


def test_ipv6_range_ends_at_last_address() -> None:
    (r,) = load({"ranges": [[{"subnet": "2001:db8:1::/64"}]]}).ranges[0].ranges
    assert str(r.range_end) == "2001:db8:1:0:ffff:ffff:ffff:ffff"  # RFC 5952, as Go prints it
    assert str(r.gateway) == "2001:db8:1::1"


def test_readme_example_with_two_range_sets() -> None:
    cfg = load({
        "ranges": [
            [{"subnet": "10.10.0.0/16", "rangeStart": "10.10.1.20", "rangeEnd": "10.10.3.50",
              "gateway": "10.10.0.254"},
             {"subnet": "172.16.5.0/24"}],
            [{"subnet": "3ffe:ffff:0:01ff::/64", "rangeStart": "3ffe:ffff:0:01ff::0010",
              "rangeEnd": "3ffe:ffff:0:01ff::0020"}],
        ],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.10.5.1"},
                   {"dst": "3ffe:ffff:0:01ff::1/64"}],
        "dataDir": "/run/my-orchestrator/container-ipam-state",
    })
    assert [str(s) for s in cfg.ranges] == [
        "10.10.1.20-10.10.3.50,172.16.5.1-172.16.5.254", "3ffe:ffff:0:1ff::10-3ffe:ffff:0:1ff::20"]
    assert str(cfg.ranges[0].ranges[0].gateway) == "10.10.0.254"
    # printed as Go prints it (RFC 5952), host bits kept
    assert [r.dst for r in cfg.routes] == ["0.0.0.0/0", "192.168.0.0/16", "3ffe:ffff:0:1ff::1/64"]
    assert cfg.routes[1].gw == "10.10.5.1"
    assert cfg.data_dir == "/run/my-orchestrator/container-ipam-state"


def test_legacy_top_level_range_comes_first_then_ranges_then_ip_ranges_before_all() -> None:
    cfg = load({"subnet": "10.5.0.0/24", "rangeStart": "10.5.0.10", "gateway": "10.5.0.254",
                "ranges": [[{"subnet": "2001:db8::/64"}]]},
               runtimeConfig={"ipRanges": [[{"subnet": "192.168.7.0/24"}]]})
    assert [str(s) for s in cfg.ranges] == [
        "192.168.7.1-192.168.7.254", "10.5.0.10-10.5.0.254",
        "2001:db8::1-2001:db8::ffff:ffff:ffff:ffff"]
    assert str(cfg.ranges[1].ranges[0].gateway) == "10.5.0.254"


def test_requested_ips_from_cni_args_args_and_runtime_config() -> None:
    cfg = load({"ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "2001:db8::/64"}]]},
               cni_args=(("IgnoreUnknown", "1"), ("IP", "10.1.0.7")),
               runtimeConfig={"ips": ["2001:db8::7/64"]},
               args={"cni": {"ips": ["10.1.0.7", "10.1.0.8"]}})
    assert cfg.requested_ips == tuple(ipaddress.ip_address(a) for a in
                                      ("10.1.0.7", "10.1.0.8", "2001:db8::7"))


def test_store_location_needs_no_ranges() -> None:
    loc = store_location(request({"dataDir": "/tmp/x", "ranges": [[{"subnet": "bogus"}]]}))
    assert (loc.data_dir, loc.network) == ("/tmp/x", "net1")


@pytest.mark.parametrize(("ipam", "message"), [
    ({}, "no IP ranges specified"),
    ({"ranges": []}, "no IP ranges specified"),
    ({"ranges": [[]]}, "invalid range set 0: empty range set"),
    ({"ranges": [[{"subnet": "10.1.0.0/33"}]]}, "invalid range set 0: invalid CIDR address"),
    ({"ranges": [[{"subnet": "not-a-cidr"}]]}, "invalid CIDR address: not-a-cidr"),
    ({"ranges": [[{"subnet": "10.1.0.0"}]]}, "invalid CIDR address: 10.1.0.0"),
    ({"ranges": [[{"subnet": "10.1.0.0/255.255.0.0"}]]}, "invalid CIDR address: 10.1.0.0/255"),
    ({"ranges": [[{"rangeStart": "10.1.0.5"}]]}, "invalid range set 0: missing subnet"),
    ({"ranges": [[{"subnet": "10.1.0.1/24"}]]},
     "Network has host bits set. For a subnet mask of length 24 the network address is "
     "10.1.0.0"),
    ({"ranges": [[{"subnet": "10.1.0.0/31"}]]}, "Network 10.1.0.0/31 too small to allocate"),
    ({"ranges": [[{"subnet": "2001:db8::/127"}]]}, "too small to allocate from"),
    ({"ranges": [[{"subnet": "10.1.0.0/24", "rangeStart": "10.1.1.5"}]]},
     "RangeStart 10.1.1.5 not in network 10.1.0.0/24"),
    ({"ranges": [[{"subnet": "10.1.0.0/24", "rangeEnd": "10.2.0.5"}]]},
     "RangeEnd 10.2.0.5 not in network 10.1.0.0/24"),
    ({"ranges": [[{"subnet": "10.1.0.0/24", "rangeStart": "2001:db8::1"}]]},
     "RangeStart 2001:db8::1 not in network"),
    ({"ranges": [[{"subnet": "10.1.0.0/24", "rangeStart": "10.1.0.50",
                   "rangeEnd": "10.1.0.40"}]]},
     "RangeStart 10.1.0.50 is after RangeEnd 10.1.0.40"),
    ({"ranges": [[{"subnet": "10.1.0.0/24", "gateway": "10.9.0.1"}]]},
     "Gateway 10.9.0.1 not in network 10.1.0.0/24"),
    ({"ranges": [[{"subnet": "10.1.0.0/24", "gateway": "banana"}]]},
     "invalid range set 0: invalid IP address in range set 0, range 0.gateway: 'banana'"),
    ({"ranges": [[{"subnet": "10.1.0.0/24"}, {"subnet": "10.1.0.128/25"}]]},
     "invalid range set 0: subnets 10.1.0.1-10.1.0.254 and 10.1.0.129-10.1.0.254 overlap"),
    ({"ranges": [[{"subnet": "10.1.0.0/24"}, {"subnet": "2001:db8::/64"}]]},
     "invalid range set 0: mixed address families"),
    ({"ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "10.1.0.0/16"}]]},
     "range set 0 overlaps with 1"),
    ({"subnet": "10.1.0.0/24", "ranges": [[{"subnet": "10.1.0.0/24"}]]},
     "range set 0 overlaps with 1"),
    ({"ranges": [{"subnet": "10.1.0.0/24"}]}, "a range set must be a list of ranges"),
    ({"ranges": "10.1.0.0/24"}, "ipam.ranges must be a list"),
    ({"ranges": [[{"subnet": 10}]]}, "range set 0, range 0.subnet must be a string"),
    ({"dataDir": 5, "ranges": [[{"subnet": "10.1.0.0/24"}]]}, "ipam.dataDir must be a string"),
    ({"ranges": [[{"subnet": "10.1.0.0/24"}]], "routes": [{"dst": "nope"}]},
     "invalid ipam.routes[0]"),
])
def test_bad_config_is_code_7(ipam: dict[str, Any], message: str) -> None:
    assert message in str(config_error(ipam))


def test_missing_ipam_section() -> None:
    assert config_error(None).msg == "IPAM config missing 'ipam' key"


def test_two_addresses_per_family_need_cni_0_3_0() -> None:
    ipam = {"ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "10.2.0.0/24"}]]}
    assert "does not support more than 1 address per family" in \
        str(config_error(ipam, version="0.2.0"))
    assert len(load(ipam, version="0.3.1").ranges) == 2


@pytest.mark.parametrize("bad", [("IP", "10.1.0.300"), ("IP", "nope/24")])
def test_unparseable_requested_ip(bad: tuple[str, str]) -> None:
    assert "invalid IP address" in str(
        config_error({"ranges": [[{"subnet": "10.1.0.0/24"}]]}, cni_args=(bad,)))


def test_runtime_config_ips_must_be_strings() -> None:
    assert "runtimeConfig.ips must be a list of strings" in str(
        config_error({"ranges": [[{"subnet": "10.1.0.0/24"}]]}, runtimeConfig={"ips": [1]}))
