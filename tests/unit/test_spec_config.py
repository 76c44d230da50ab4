"""Network configuration (SPEC.md 1.1.0 sections 1 and 3) and the per-call validators."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from corecni.spec.config import (
    NetworkConfigList,
    PluginConfig,
    parse_cni_args,
    validate_container_id,
    validate_ifname,
    validate_network_name,
    validate_plugin_type,
)
from corecni.spec.errors import CNIError, ErrorCode
from corecni.spec.result import Result

EXAMPLES = Path(__file__).parent / "spec_examples"
RESERVED = {"cniVersion", "name", "runtimeConfig", "prevResult", "args"}


def example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / name).read_text())
    return data


_DROP = object()  # conflist(key=_DROP) leaves the key out


def conflist(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"cniVersion": "1.0.0", "name": "net1", "plugins": [{"type": "bridge"}]}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not _DROP}


def parse_error(data: bytes | dict[str, Any]) -> CNIError:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    with pytest.raises(CNIError) as exc_info:
        NetworkConfigList.from_bytes(raw)
    return exc_info.value


# ---------------------------------------------------------------------------
# The SPEC.md example configuration list


def test_spec_example_list_parses() -> None:
    raw = (EXAMPLES / "config_list_dbnet.json").read_bytes()
    net = NetworkConfigList.from_bytes(raw)
    assert net.name == "dbnet"
    # cniVersions ["0.3.1", "0.4.0", "1.0.0", "1.1.0"]: the highest supported is picked
    assert net.cni_version == "1.1.0"
    assert net.cni_versions == ("0.3.1", "0.4.0", "1.0.0", "1.1.0")
    assert [p.type for p in net.plugins] == ["bridge", "tuning", "portmap"]
    assert [dict(p.capabilities) for p in net.plugins] == [{}, {"mac": True},
                                                            {"portMappings": True}]
    assert (net.disable_check, net.disable_gc) == (False, False)
    assert net.raw_bytes == raw


def test_spec_example_list_keeps_every_plugin_key_in_raw() -> None:
    data = example("config_list_dbnet.json")
    net = NetworkConfigList.from_bytes(json.dumps(data).encode())
    for plugin, original in zip(net.plugins, data["plugins"], strict=True):
        assert dict(plugin.raw) == original
    bridge, tuning, _ = net.plugins
    assert bridge.raw["bridge"] == "cni0"
    assert bridge.raw["keyA"] == ["some more", "plugin specific", "configuration"]
    assert bridge.raw["dns"] == {"nameservers": ["10.1.0.1"]}
    assert bridge.ipam == data["plugins"][0]["ipam"]
    assert tuning.raw["sysctl"] == {"net.core.somaxconn": "500"}
    assert tuning.ipam is None
    assert net.to_dict() == data


def test_spec_example_with_comments_is_not_json() -> None:
    # SPEC.md writes the example as jsonc; JSON (and libcni) has no comments.
    jsonc = (EXAMPLES / "config_list_dbnet.jsonc").read_bytes()
    assert b"// plugin specific parameters" in jsonc
    err = parse_error(jsonc)
    assert err.code == ErrorCode.DECODING_FAILURE == 6
    stripped = b"\n".join(line for line in jsonc.splitlines()
                          if not line.strip().startswith(b"//"))
    assert json.loads(stripped) == example("config_list_dbnet.json")


def test_spec_capabilities_example() -> None:
    conf = PluginConfig.from_dict(example("plugin_config_capabilities.json"))
    assert conf.type == "myPlugin"
    assert conf.capabilities == {"portMappings": True}


REQUESTS = ["request_add_1_bridge.json", "request_add_2_tuning.json",
            "request_add_3_portmap.json", "request_check_1_bridge.json",
            "request_check_2_tuning.json", "request_check_3_portmap.json",
            "request_del_1_portmap.json", "request_del_2_tuning.json",
            "request_del_3_bridge.json"]
PREV_RESULT_OF = {  # which result the spec's appendix passes as prevResult
    "request_add_1_bridge.json": None,
    "request_add_2_tuning.json": "result_add_1_bridge.json",
    "request_add_3_portmap.json": "result_add_2_tuning.json",
    "request_check_1_bridge.json": "result_add_2_tuning.json",
    "request_check_2_tuning.json": "result_add_2_tuning.json",
    "request_check_3_portmap.json": "result_add_2_tuning.json",
    "request_del_1_portmap.json": "result_add_2_tuning.json",
    "request_del_2_tuning.json": "result_add_2_tuning.json",
    "request_del_3_bridge.json": "result_add_2_tuning.json",
}


def test_all_spec_request_examples_are_covered() -> None:
    on_disk = sorted(p.name for p in EXAMPLES.glob("request_*.json"))
    assert on_disk == sorted(REQUESTS)


@pytest.mark.parametrize("name", REQUESTS)
def test_spec_request_examples_parse_as_plugin_configs(name: str) -> None:
    data = example(name)
    conf = PluginConfig.from_bytes(json.dumps(data).encode())
    assert dict(conf.raw) == data
    assert (conf.name, conf.cni_version) == ("dbnet", "1.1.0")
    assert conf.type == name.rsplit("_", 1)[1].removesuffix(".json").replace("_", "-")
    # request configs carry runtimeConfig, never capabilities (section 3)
    assert "capabilities" not in conf.raw
    assert conf.capabilities == {}
    assert conf.runtime_config == data.get("runtimeConfig", {})
    # and the plugin's own keys are those of the configuration list
    listed = {p["type"]: p for p in example("config_list_dbnet.json")["plugins"]}[conf.type]
    own = {k: v for k, v in data.items() if k not in RESERVED}
    assert set(own) == set(listed) - {"capabilities"}


@pytest.mark.parametrize("name", REQUESTS)
def test_spec_request_prev_result_uses_the_config_version(name: str) -> None:
    conf = PluginConfig.from_dict(example(name))
    expected = PREV_RESULT_OF[name]
    if expected is None:
        assert conf.prev_result is None
        return
    prev = conf.prev_result
    assert prev is not None
    # the spec's prevResult has no cniVersion: it is read as the request's version (libcni's
    # ParsePrevResult injects the config version the same way)
    assert prev.cni_version == "1.1.0"
    assert prev == Result.from_dict(example(expected), default_version="1.1.0")
    assert prev.to_dict() == {"cniVersion": "1.1.0", **example(expected)}


def test_constructed_gc_request_keeps_attachments() -> None:
    data = example("constructed_request_gc_bridge.json")
    conf = PluginConfig.from_dict(data)
    assert conf.type == "bridge"
    assert conf.raw["cni.dev/attachments"] == [
        {"containerID": "example-container-1", "ifname": "eth0"},
        {"containerID": "example-container-2", "ifname": "net1"},
    ]
    assert json.loads(conf.to_bytes()) == data


def test_inject_keeps_unknown_keys() -> None:
    conf = PluginConfig.from_dict(example("config_list_dbnet.json")["plugins"][0])
    injected = conf.inject(name="dbnet", cniVersion="1.1.0", runtimeConfig={"mac": "x"})
    assert injected.raw["keyA"] == ["some more", "plugin specific", "configuration"]
    assert (injected.name, injected.cni_version) == ("dbnet", "1.1.0")
    assert injected.runtime_config == {"mac": "x"}
    assert "name" not in conf.raw  # the original is left alone


# ---------------------------------------------------------------------------
# Bad configuration lists, each with its spec error code


@pytest.mark.parametrize("raw", [b"", b"{", b'{"name": "x",}', b"{'name': 'x'}", b"\xff\xfe",
                                 b'{"name": "x"} trailing'])
def test_malformed_json_is_code_6(raw: bytes) -> None:
    assert parse_error(raw).code == ErrorCode.DECODING_FAILURE == 6


@pytest.mark.parametrize("raw", [b"[]", b'"net"', b"42", b"null", b"true",
                                 b'[{"name": "x", "cniVersion": "1.0.0", "plugins": []}]'])
def test_top_level_not_an_object_is_code_6(raw: bytes) -> None:
    assert parse_error(raw).code == 6


@pytest.mark.parametrize("data", [
    conflist(name=_DROP), conflist(name=""), conflist(name=None), conflist(name=7),
])
def test_missing_name_is_code_7(data: dict[str, Any]) -> None:
    err = parse_error(data)
    assert err.code == ErrorCode.INVALID_NETWORK_CONFIG == 7
    assert "name" in err.msg


@pytest.mark.parametrize("plugin", [{}, {"type": ""}, {"type": None}, {"type": 3},
                                    {"name": "x", "cniVersion": "1.0.0"}])
def test_missing_type_is_code_7(plugin: dict[str, Any]) -> None:
    err = parse_error(conflist(plugins=[{"type": "bridge"}, plugin]))
    assert err.code == 7
    assert "type" in err.msg
    assert "plugin 1" in err.msg


@pytest.mark.parametrize("version", [_DROP, "", None])
def test_missing_cni_version_is_code_7(version: Any) -> None:
    err = parse_error(conflist(cniVersion=version))
    assert err.code == 7
    assert "cniVersion" in err.msg


@pytest.mark.parametrize("version", ["0.5.0", "2.0.0", "1.2.0", "0.0.1", "1.2", "1"])
def test_valid_version_we_do_not_speak_is_kept(version: str) -> None:
    """libcni keeps a valid newer version (1.2.0) and lets the plugins negotiate."""
    net = NetworkConfigList.from_dict(conflist(cniVersion=version))
    assert net.cni_version == version


@pytest.mark.parametrize("version", ["v1.0.0", "1.0.0-rc1", "1.0.0.0", "latest",
                                     " 1.0.0", "1.0.x"])
def test_malformed_version_is_code_1(version: str) -> None:
    err = parse_error(conflist(cniVersion=version))
    assert err.code == 1
    assert err.msg == "invalid CNI version"


def test_non_string_version_is_refused() -> None:
    assert parse_error(conflist(cniVersion=1.0)).code == 7


@pytest.mark.parametrize(("listed", "expected"), [
    (["0.3.1", "0.4.0", "1.0.0", "1.1.0"], "1.1.0"),
    (["1.1.0", "0.3.1", "1.0.0"], "1.1.0"),             # order does not matter
    (["0.3.1", "1.0.0", "1.2.0", "2.0.0"], "1.0.0"),    # newer than we know: ignored
    (["0.4.0", "0.5.0", "0.9.9"], "0.4.0"),             # never-released: ignored
    (["0.2.0", "0.1.0"], "0.2.0"),
])
def test_cni_versions_picks_highest_supported(listed: list[str], expected: str) -> None:
    net = NetworkConfigList.from_dict(conflist(cniVersion=_DROP, cniVersions=listed))
    assert net.cni_version == expected
    assert net.cni_versions == tuple(listed)


def test_cni_versions_can_stand_without_cni_version() -> None:
    net = NetworkConfigList.from_dict(conflist(cniVersion=_DROP, cniVersions=["1.0.0"]))
    assert net.cni_version == "1.0.0"


@pytest.mark.parametrize(("version", "listed", "expected"), [
    (_DROP, ["2.0.0", "3.0.0"], "3.0.0"),
    (_DROP, ["0.5.0"], "0.5.0"),
    (_DROP, ["1.0"], "1.0"),
    ("1.2.0", ["1.2.0", "2.0.0"], "1.2.0"),   # libcni: cniVersion stays when all are newer
])
def test_cni_versions_none_supported_keeps_a_valid_one(version: Any, listed: list[str],
                                                       expected: str) -> None:
    net = NetworkConfigList.from_dict(conflist(cniVersion=version, cniVersions=listed))
    assert net.cni_version == expected


@pytest.mark.parametrize(("version", "listed"), [
    ("1.0.0", ["1.0.0", "latest"]),
    ("1.0.0", ["1.0.0.0", "0.4.0"]),
    ("1.0.0", ["v1.1.0"]),
    ("garbage", ["1.0.0"]),
])
def test_invalid_cni_versions_entry_fails(version: str, listed: list[str]) -> None:
    """libcni: an invalid entry fails the whole list (it was silently ignored)."""
    err = parse_error(conflist(cniVersion=version, cniVersions=listed))
    assert err.code == 1 and "invalid" in err.msg


@pytest.mark.parametrize("listed", ["1.0.0", {"1.0.0": True}, [1, "1.0.0"]])
def test_cni_versions_of_wrong_type_is_code_7(listed: Any) -> None:
    assert parse_error(conflist(cniVersions=listed)).code == 7


@pytest.mark.parametrize(("version", "listed", "expected"), [
    ("1.1.0", ["0.3.1", "0.4.0"], "1.1.0"),
    ("1.0.0", ["2.0.0"], "1.0.0"),
    ("1.0.0", [], "1.0.0"),
])
def test_cni_version_joins_cni_versions(version: str, listed: list[str], expected: str) -> None:
    net = NetworkConfigList.from_dict(conflist(cniVersion=version, cniVersions=listed))
    assert net.cni_version == expected


@pytest.mark.parametrize("plugins", [[], {}, {"type": "bridge"}, "bridge", 1, None])
def test_plugins_empty_or_not_a_list_is_code_7(plugins: Any) -> None:
    err = parse_error(conflist(plugins=plugins))
    assert err.code == 7
    assert "plugins" in err.msg


def test_missing_plugins_is_code_7() -> None:
    assert parse_error(conflist(plugins=_DROP)).code == 7


@pytest.mark.parametrize("plugin", [["bridge"], "bridge", 1, None])
def test_plugin_not_an_object_is_code_7(plugin: Any) -> None:
    assert parse_error(conflist(plugins=[plugin])).code == 7


@pytest.mark.parametrize("ptype", ["", "/", "..", ".", "../bridge", "/opt/cni/bin/bridge",
                                   "sub/bridge", "a\\b", "br\x00idge"])
def test_bad_plugin_type_is_code_7(ptype: str) -> None:
    assert parse_error(conflist(plugins=[{"type": ptype}])).code == 7
    with pytest.raises(CNIError) as exc_info:
        validate_plugin_type(ptype)
    assert exc_info.value.code == 7


@pytest.mark.parametrize("ptype", ["bridge", "host-local", "my_plugin.v2", "a..b", "...x"])
def test_plain_plugin_type_is_accepted(ptype: str) -> None:
    assert validate_plugin_type(ptype) == ptype
    assert NetworkConfigList.from_dict(conflist(plugins=[{"type": ptype}])).plugins[0].type \
        == ptype


@pytest.mark.parametrize("caps", [{"portMappings": "true"}, {"mac": 1}, {"mac": None},
                                  ["portMappings"], "portMappings", True])
def test_capabilities_not_booleans_is_code_7(caps: Any) -> None:
    err = parse_error(conflist(plugins=[{"type": "portmap", "capabilities": caps}]))
    assert err.code == 7
    assert "capabilities" in err.msg


def test_capabilities_keep_false_values() -> None:
    net = NetworkConfigList.from_dict(
        conflist(plugins=[{"type": "portmap", "capabilities": {"portMappings": True,
                                                                 "bandwidth": False}}]))
    assert net.plugins[0].capabilities == {"portMappings": True, "bandwidth": False}


@pytest.mark.parametrize("ipam", ["host-local", ["host-local"], 1])
def test_ipam_not_an_object_is_code_7(ipam: Any) -> None:
    assert parse_error(conflist(plugins=[{"type": "bridge", "ipam": ipam}])).code == 7


@pytest.mark.parametrize(("check", "gc"), [(True, False), (False, True), (True, True),
                                           (False, False)])
def test_disable_check_and_gc_are_parsed(check: bool, gc: bool) -> None:
    net = NetworkConfigList.from_dict(conflist(disableCheck=check, disableGC=gc))
    assert (net.disable_check, net.disable_gc) == (check, gc)
    out = net.to_dict()
    assert out.get("disableCheck", False) is check
    assert out.get("disableGC", False) is gc


def test_disable_flags_default_to_false() -> None:
    net = NetworkConfigList.from_dict(conflist())
    assert (net.disable_check, net.disable_gc) == (False, False)


@pytest.mark.parametrize("key", ["disableCheck", "disableGC"])
@pytest.mark.parametrize("value", [1, 0, None, ["true"], "yes"])
def test_disable_flags_of_wrong_type_are_code_7(key: str, value: Any) -> None:
    err = parse_error(conflist(**{key: value}))
    assert err.code == 7
    assert key in err.msg


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("FALSE", False),
                                                 ("True", True)])
def test_disable_flags_accept_libcni_strings(value: str, expected: bool) -> None:
    net = NetworkConfigList.from_dict(conflist(disableCheck=value, disableGC=value))
    assert (net.disable_check, net.disable_gc) == (expected, expected)


@pytest.mark.parametrize("name", ["my net", "-net", "_net", ".net", "net/1", "net:1", "nét",
                                  "net\t", "net;rm", "ne$t"])
def test_network_name_with_invalid_characters_is_code_7(name: str) -> None:
    err = parse_error(conflist(name=name))
    assert err.code == 7
    assert err.msg == "invalid characters found in network name"


@pytest.mark.parametrize("name", ["net1", "a", "0", "my-net_1.conf", "A.B-C_D"])
def test_valid_network_names(name: str) -> None:
    assert NetworkConfigList.from_dict(conflist(name=name)).name == name
    assert validate_network_name(name) == name


def test_network_name_with_trailing_newline_is_code_7() -> None:
    assert parse_error(conflist(name="net1\n")).code == 7


def test_unknown_list_keys_are_kept_in_raw_bytes() -> None:
    data = conflist(extraKey={"a": 1})
    raw = json.dumps(data).encode()
    net = NetworkConfigList.from_bytes(raw)
    assert net.raw_bytes == raw
    assert json.loads(net.raw_bytes)["extraKey"] == {"a": 1}


# ---------------------------------------------------------------------------
# Validators


@pytest.mark.parametrize(("ifname", "msg"), [
    ("", "interface name is empty"),
    ("a" * 16, "interface name is too long"),
    ("a" * 40, "interface name is too long"),
    ("é" * 8, "interface name is too long"),         # 8 chars, 16 bytes
    ("abcd" + "€" * 4, "interface name is too long"),  # 8 chars, 16 bytes
    (".", "interface name is . or .."),
    ("..", "interface name is . or .."),
    ("eth/0", "interface name contains / or : or whitespace characters"),
    ("eth:0", "interface name contains / or : or whitespace characters"),
    ("eth 0", "interface name contains / or : or whitespace characters"),
    ("eth\t0", "interface name contains / or : or whitespace characters"),
    ("eth0\n", "interface name contains / or : or whitespace characters"),
    ("eth\u00a00", "interface name contains / or : or whitespace characters"),  # NBSP
    ("eth\u20030", "interface name contains / or : or whitespace characters"),  # EM SPACE
])
def test_bad_ifname_is_code_4(ifname: str, msg: str) -> None:
    with pytest.raises(CNIError) as exc_info:
        validate_ifname(ifname)
    assert exc_info.value.code == ErrorCode.INVALID_ENVIRONMENT == 4
    assert exc_info.value.msg == msg


@pytest.mark.parametrize("ifname", ["eth0", "a", "a" * 15, "net1.100", "eth" + "€" * 4,
                                    "é" * 7, "veth-ab_cd", "..."])
def test_good_ifname(ifname: str) -> None:
    assert len(ifname.encode()) <= 15
    assert validate_ifname(ifname) == ifname


def test_ifname_limit_counts_bytes_not_characters() -> None:
    name = "é" * 8  # 8 characters, 16 bytes in UTF-8
    assert len(name) < 16
    with pytest.raises(CNIError) as exc_info:
        validate_ifname(name)
    assert exc_info.value.msg == "interface name is too long"
    assert validate_ifname("é" * 7 + "a") == "é" * 7 + "a"  # 15 bytes


def test_container_id_rules() -> None:
    for good in ["abc", "0", "a1b2", "abc-def_ghi.jkl", "A" * 200,
                 "5c7f5e0b5c0e4c3a9f7b0c1d2e3f4a5b"]:
        assert validate_container_id(good) == good
    with pytest.raises(CNIError) as exc_info:
        validate_container_id("")
    assert exc_info.value.code == ErrorCode.UNKNOWN_CONTAINER == 3
    assert exc_info.value.msg == "missing containerID"


@pytest.mark.parametrize("cid", ["-abc", "_abc", ".abc", "ab c", "ab/c", "ab:c", "ab\tc", "ab€",
                                 "ab;c", "ab\x00c"])
def test_container_id_with_invalid_characters_is_code_4(cid: str) -> None:
    with pytest.raises(CNIError) as exc_info:
        validate_container_id(cid)
    assert exc_info.value.code == 4
    assert exc_info.value.msg == "invalid characters in containerID"
    assert exc_info.value.details == cid


def test_container_id_with_trailing_newline_is_code_4() -> None:
    with pytest.raises(CNIError) as exc_info:
        validate_container_id("abc\n")
    assert exc_info.value.code == 4


@pytest.mark.parametrize(("text", "pairs"), [
    ("", ()),
    ("FOO=BAR", (("FOO", "BAR"),)),
    ("FOO=BAR;ABC=123", (("FOO", "BAR"), ("ABC", "123"))),   # SPEC's example
    ("IgnoreUnknown=1;K8S_POD_NAME=web-0;K8S_POD_NAMESPACE=default",
     (("IgnoreUnknown", "1"), ("K8S_POD_NAME", "web-0"), ("K8S_POD_NAMESPACE", "default"))),
    ("EMPTY=", (("EMPTY", ""),)),
])
def test_parse_cni_args(text: str, pairs: tuple[tuple[str, str], ...]) -> None:
    assert parse_cni_args(text) == pairs


@pytest.mark.parametrize("text", ["FOO", "FOO=BAR;ABC", "=BAR", "FOO=BAR;=x", "novalue;A=1"])
def test_parse_cni_args_item_without_key_value_is_code_4(text: str) -> None:
    with pytest.raises(CNIError) as exc_info:
        parse_cni_args(text)
    assert exc_info.value.code == ErrorCode.INVALID_ENVIRONMENT == 4
    assert exc_info.value.msg == "invalid CNI_ARGS pair"


@pytest.mark.parametrize("value", [True, "true", "TRUE"])
def test_load_only_inlined_plugins(value: Any) -> None:
    net = NetworkConfigList.from_dict(conflist(loadOnlyInlinedPlugins=value))
    assert net.load_only_inlined_plugins is True
    assert net.to_dict()["loadOnlyInlinedPlugins"] is True
    assert NetworkConfigList.from_dict(conflist()).load_only_inlined_plugins is False
    assert "loadOnlyInlinedPlugins" not in NetworkConfigList.from_dict(conflist()).to_dict()


def test_load_only_inlined_plugins_needs_plugins() -> None:
    err = parse_error(conflist(plugins=_DROP, loadOnlyInlinedPlugins=True))
    assert err.code == 7 and "loadOnlyInlinedPlugins" in err.msg
    assert parse_error(conflist(loadOnlyInlinedPlugins="maybe")).code == 7


def test_plugins_from_elsewhere_are_appended() -> None:
    extra = (PluginConfig.from_dict({"type": "portmap"}),)
    net = NetworkConfigList.from_dict(conflist(), extra_plugins=extra)
    assert [p.type for p in net.plugins] == ["bridge", "portmap"]
    net = NetworkConfigList.from_dict(conflist(plugins=_DROP), extra_plugins=extra)
    assert [p.type for p in net.plugins] == ["portmap"]
    net = NetworkConfigList.from_dict(conflist(loadOnlyInlinedPlugins=True), extra_plugins=extra)
    assert [p.type for p in net.plugins] == ["bridge"]
