"""host-local through corecni's run path (in-process): ADD/DEL/CHECK/GC/STATUS."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from corecni_contrib.host_local.dns import parse_resolv_conf_text

from corecni.plugin import LoadedPlugin, Request, load_plugin
from corecni.spec.config import PluginConfig
from corecni.spec.errors import CNIError
from corecni.spec.result import Result

TARGET = "corecni_contrib.host_local.plugin"


@pytest.fixture
def plugin() -> LoadedPlugin:
    loaded = load_plugin("host-local", TARGET)
    assert loaded.family == "ipam"
    return loaded


def conf(data_dir: Path, ranges: list[list[dict[str, Any]]] | None = None, *,
         version: str = "1.1.0", valid: list[dict[str, str]] | None = None,
         **extra: Any) -> dict[str, Any]:
    """A bridge-like config; runtimeConfig/args go top-level, other extras into ipam."""
    ipam: dict[str, Any] = {"type": "host-local", "dataDir": str(data_dir),
                            "ranges": ranges or [[{"subnet": "10.1.2.0/24"}]]}
    top = {k: v for k, v in extra.items() if k in ("runtimeConfig", "args")}
    ipam.update({k: v for k, v in extra.items() if k not in top})
    if valid is not None:
        top["cni.dev/valid-attachments"] = valid
    return {"cniVersion": version, "name": "mynet", "type": "bridge", "ipam": ipam, **top}


def run(plugin: LoadedPlugin, command: str, config: dict[str, Any], cid: str = "c1",
        ifname: str = "eth0", args: tuple[tuple[str, str], ...] = ()) -> Result | None:
    req = Request.for_config(command, PluginConfig.from_dict(config), container_id=cid,
                             ifname=ifname, args=args)
    return plugin.run(req)


def add(plugin: LoadedPlugin, config: dict[str, Any], cid: str = "c1", ifname: str = "eth0",
        args: tuple[tuple[str, str], ...] = ()) -> Result:
    result = run(plugin, "ADD", config, cid, ifname, args)
    assert isinstance(result, Result)
    return result


def failure(plugin: LoadedPlugin, command: str, config: dict[str, Any], cid: str = "c1",
            ifname: str = "eth0", args: tuple[tuple[str, str], ...] = ()) -> CNIError:
    with pytest.raises(CNIError) as info:
        run(plugin, command, config, cid, ifname, args)
    return info.value


def ip_files(data_dir: Path, network: str = "mynet") -> dict[str, bytes]:
    d = data_dir / network
    return {p.name: p.read_bytes() for p in d.iterdir()
            if p.name != "lock" and not p.name.startswith("last_reserved_ip.")} \
        if d.exists() else {}


def test_add_dual_stack_result_and_files(plugin: LoadedPlugin, tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 192.0.2.3\nsearch a.example b.example\n")
    config = conf(tmp_path, [[{"subnet": "10.1.2.0/24"}], [{"subnet": "2001:db8:1::/64"}]],
                  routes=[{"dst": "0.0.0.0/0"}, {"dst": "::/0"},
                          {"dst": "192.168.0.0/16", "gw": "1.1.1.1"}],
                  resolvConf=str(resolv))
    result = add(plugin, config)
    assert result.to_dict() == {
        "cniVersion": "1.1.0",
        "ips": [{"address": "10.1.2.2/24", "gateway": "10.1.2.1"},
                {"address": "2001:db8:1::2/64", "gateway": "2001:db8:1::1"}],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"},
                   {"dst": "192.168.0.0/16", "gw": "1.1.1.1"}],
        "dns": {"nameservers": ["192.0.2.3"], "search": ["a.example", "b.example"]},
    }
    assert ip_files(tmp_path) == {"10.1.2.2": b"c1\r\neth0", "2001:db8:1::2": b"c1\r\neth0"}
    assert (tmp_path / "mynet" / "last_reserved_ip.1").read_text() == "2001:db8:1::2"


def test_result_in_older_versions(plugin: LoadedPlugin, tmp_path: Path) -> None:
    result = add(plugin, conf(tmp_path, version="0.3.1"))
    assert result.to_dict()["ips"] == [{"version": "4", "address": "10.1.2.2/24",
                                        "gateway": "10.1.2.1"}]
    legacy = add(plugin, conf(tmp_path, version="0.2.0"), cid="c2")
    assert legacy.to_dict()["ip4"] == {"ip": "10.1.2.3/24", "gateway": "10.1.2.1"}


def test_add_is_idempotent_per_attachment(plugin: LoadedPlugin, tmp_path: Path) -> None:
    config = conf(tmp_path, [[{"subnet": "10.1.2.0/24"}], [{"subnet": "2001:db8:1::/64"}]])
    first = add(plugin, config)
    assert add(plugin, config).ips == first.ips
    other_if = add(plugin, config, ifname="eth1")
    other_ctr = add(plugin, config, cid="c2")
    assert [ip.address for ip in other_if.ips] == ["10.1.2.3/24", "2001:db8:1::3/64"]
    assert [ip.address for ip in other_ctr.ips] == ["10.1.2.4/24", "2001:db8:1::4/64"]
    assert len(ip_files(tmp_path)) == 6


def test_del_releases_only_the_attachment(plugin: LoadedPlugin, tmp_path: Path) -> None:
    config = conf(tmp_path)
    add(plugin, config)
    add(plugin, config, ifname="eth1")
    add(plugin, config, cid="c2")
    assert run(plugin, "DEL", config) is None
    assert ip_files(tmp_path) == {"10.1.2.3": b"c1\r\neth1", "10.1.2.4": b"c2\r\neth0"}
    run(plugin, "DEL", config)  # again: nothing left, still fine
    run(plugin, "DEL", config, cid="never-added")
    # the next ADD continues after the last reservation instead of reusing .2
    assert add(plugin, config, cid="c3").ips[0].address == "10.1.2.5/24"


def test_del_works_without_state_and_with_broken_ranges(plugin: LoadedPlugin,
                                                        tmp_path: Path) -> None:
    run(plugin, "DEL", conf(tmp_path / "nothing-here"))
    assert not (tmp_path / "nothing-here").exists()  # DEL creates no state
    add(plugin, conf(tmp_path))
    run(plugin, "DEL", conf(tmp_path, [[{"subnet": "10.1.2.0/33"}]]))
    assert ip_files(tmp_path) == {}


def test_check(plugin: LoadedPlugin, tmp_path: Path) -> None:
    config = conf(tmp_path)
    err = failure(plugin, "CHECK", config)
    assert err.msg == "host-local: Failed to find address added by container c1"
    add(plugin, config)
    assert run(plugin, "CHECK", config) is None
    assert failure(plugin, "CHECK", config, ifname="eth1").code == 999
    run(plugin, "DEL", config)
    assert "Failed to find address" in failure(plugin, "CHECK", config).msg
    assert failure(plugin, "CHECK", conf(tmp_path, [[{"subnet": "nope"}]])).code == 7


def test_check_accepts_legacy_files(plugin: LoadedPlugin, tmp_path: Path) -> None:
    (tmp_path / "mynet").mkdir()
    (tmp_path / "mynet" / "10.1.2.9").write_bytes(b"c1")
    assert run(plugin, "CHECK", conf(tmp_path)) is None


def test_gc_releases_everything_not_valid(plugin: LoadedPlugin, tmp_path: Path) -> None:
    config = conf(tmp_path)
    add(plugin, config, cid="keep")
    add(plugin, config, cid="keep", ifname="eth1")
    add(plugin, config, cid="gone")
    add(plugin, config, cid="whole")
    (tmp_path / "mynet" / "10.1.2.100").write_bytes(b"keep")  # legacy, container is valid
    (tmp_path / "mynet" / "10.1.2.101").write_bytes(b"gone")  # legacy, container is not
    gc = conf(tmp_path, valid=[{"containerID": "keep", "ifname": "eth0"},
                               {"containerID": "whole"}])
    assert run(plugin, "GC", gc, cid="", ifname="") is None
    assert ip_files(tmp_path) == {"10.1.2.2": b"keep\r\neth0", "10.1.2.5": b"whole\r\neth0",
                                  "10.1.2.100": b"keep"}
    assert (tmp_path / "mynet" / "lock").exists()
    empty = conf(tmp_path, valid=[])
    run(plugin, "GC", empty, cid="", ifname="")
    assert ip_files(tmp_path) == {}
    run(plugin, "GC", conf(tmp_path / "none"), cid="", ifname="")  # no state: fine


def test_status(plugin: LoadedPlugin, tmp_path: Path) -> None:
    assert run(plugin, "STATUS", conf(tmp_path / "not" / "yet")) is None
    (tmp_path / "afile").write_text("")
    err = failure(plugin, "STATUS", conf(tmp_path / "afile" / "sub"))
    assert err.code == 50 and "not writable" in err.msg


def test_exhaustion_leaves_nothing_reserved(plugin: LoadedPlugin, tmp_path: Path) -> None:
    config = conf(tmp_path, [[{"subnet": "10.1.2.0/24"}],
                             [{"subnet": "10.9.0.0/30"}]])  # one usable address: .2
    add(plugin, config, cid="first")
    before = ip_files(tmp_path)
    err = failure(plugin, "ADD", config, cid="second")
    assert err.code == 999
    assert err.msg == ("failed to allocate for range 1: no IP addresses available in range "
                       "set: 10.9.0.1-10.9.0.2")
    assert ip_files(tmp_path) == before  # the address from range set 0 was given back


def test_requested_ip_from_each_source(plugin: LoadedPlugin, tmp_path: Path) -> None:
    ranges = [[{"subnet": "10.1.2.0/24"}], [{"subnet": "2001:db8::/64"}]]
    result = add(plugin, conf(tmp_path, ranges), args=(("IgnoreUnknown", "1"),
                                                       ("IP", "10.1.2.50")))
    assert [ip.address for ip in result.ips] == ["10.1.2.50/24", "2001:db8::2/64"]
    result = add(plugin, conf(tmp_path, ranges, args={"cni": {"ips": ["2001:db8::77"]}}),
                 cid="c2")
    assert [ip.address for ip in result.ips] == ["10.1.2.51/24", "2001:db8::77/64"]
    result = add(plugin, conf(tmp_path, ranges,
                              runtimeConfig={"ips": ["10.1.2.9/24", "2001:db8::9/64"]}),
                 cid="c3")
    assert [ip.address for ip in result.ips] == ["10.1.2.9/24", "2001:db8::9/64"]


def test_requested_ip_refusals_reserve_nothing(plugin: LoadedPlugin, tmp_path: Path) -> None:
    ranges = [[{"subnet": "10.1.2.0/24"}], [{"subnet": "2001:db8::/64"}]]
    add(plugin, conf(tmp_path, ranges), cid="owner", args=(("IP", "2001:db8::5"),))
    before = ip_files(tmp_path)
    taken = failure(plugin, "ADD", conf(tmp_path, ranges), args=(("IP", "2001:db8::5"),))
    assert taken.code == 999
    assert taken.msg == ("failed to allocate for range 1: requested IP address 2001:db8::5 is "
                         "not available in range set 2001:db8::1-2001:db8::ffff:ffff:ffff:ffff")
    outside = failure(plugin, "ADD", conf(tmp_path, ranges), args=(("IP", "10.7.7.7"),))
    assert (outside.code, outside.msg) == (7, "failed to allocate all requested IPs: 10.7.7.7")
    gateway = failure(plugin, "ADD", conf(tmp_path, ranges), args=(("IP", "10.1.2.1"),))
    assert gateway.code == 7 and "is subnet's gateway" in gateway.msg
    assert ip_files(tmp_path) == before


def test_failed_repeat_add_keeps_earlier_allocation(plugin: LoadedPlugin,
                                                    tmp_path: Path) -> None:
    config = conf(tmp_path)
    add(plugin, config)
    err = failure(plugin, "ADD", config, args=(("IP", "10.1.2.77"),))
    assert "duplicate allocation is not allowed" in err.msg
    assert ip_files(tmp_path) == {"10.1.2.2": b"c1\r\neth0"}
    assert add(plugin, config, args=(("IP", "10.1.2.2"),)).ips[0].address == "10.1.2.2/24"


def test_resolv_conf_missing_is_io_failure(plugin: LoadedPlugin, tmp_path: Path) -> None:
    err = failure(plugin, "ADD", conf(tmp_path, resolvConf=str(tmp_path / "missing")))
    assert err.code == 5
    assert ip_files(tmp_path) == {}


def test_resolv_conf_parsing_like_go() -> None:
    dns = parse_resolv_conf_text(
        "# comment\n; other comment\nnameserver 10.0.0.1\nnameserver 10.0.0.2 ignored\n"
        "domain first.example\ndomain example.com\nsearch a b\nsearch c\n"
        "options ndots:5 rotate\noptions timeout:1\n  nameserver   10.0.0.3  \nbogus\n\n")
    assert dns.to_dict() == {"nameservers": ["10.0.0.1", "10.0.0.2", "10.0.0.3"],
                             "domain": "example.com", "search": ["a", "b", "c"],
                             "options": ["ndots:5", "rotate", "timeout:1"]}


def test_missing_container_id_is_refused(plugin: LoadedPlugin, tmp_path: Path) -> None:
    assert failure(plugin, "ADD", conf(tmp_path), cid="").code == 4
    assert ip_files(tmp_path) == {}


def test_result_json_has_no_interfaces(plugin: LoadedPlugin, tmp_path: Path) -> None:
    out = json.loads(json.dumps(add(plugin, conf(tmp_path)).to_dict()))
    assert "interfaces" not in out and "interface" not in out["ips"][0]
