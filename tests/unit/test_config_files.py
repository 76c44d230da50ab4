"""Configuration files and directories (libcni conf.go, kubelet's default-network rule)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from corecni.config import (
    EXTENSIONS,
    conf_files,
    default_network,
    list_from_bytes,
    load_dir,
    load_file,
    load_network,
)
from corecni.spec.errors import CNIError

EXAMPLES = Path(__file__).parent / "spec_examples"


def single(name: str, ptype: str = "bridge", version: str = "1.0.0", **extra: Any) -> str:
    return json.dumps({"cniVersion": version, "name": name, "type": ptype, **extra})


def listed(name: str, *types: str, version: str = "1.0.0", **extra: Any) -> str:
    return json.dumps({"cniVersion": version, "name": name,
                       "plugins": [{"type": t} for t in types or ("bridge",)], **extra})


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for fname, body in files.items():
        (directory / fname).write_text(body)
    return directory


# ---------------------------------------------------------------------------
# Which files


def test_extensions() -> None:
    assert set(EXTENSIONS) == {".conf", ".conflist", ".json"}


def test_conf_files_lexical_order_and_extensions(tmp_path: Path) -> None:
    write(tmp_path, {"20-b.conflist": "{}", "10-a.conf": "{}", "99-z.json": "{}",
                     "05-x.conf.bak": "{}", "30-c.yaml": "{}", "README": "x",
                     "15-m.CONF": "{}", "100-first.conf": "{}"})
    (tmp_path / "50-dir.conf").mkdir()
    names = [Path(p).name for p in conf_files(str(tmp_path))]
    # plain string order, as Go's sort.Strings: "100-" sorts before "20-"
    assert names == ["10-a.conf", "100-first.conf", "20-b.conflist", "99-z.json"]
    assert all(Path(p).parent == tmp_path for p in conf_files(str(tmp_path)))


def test_conf_files_with_custom_extensions(tmp_path: Path) -> None:
    write(tmp_path, {"a.conf": "{}", "b.conflist": "{}", "c.json": "{}"})
    assert [Path(p).name for p in conf_files(str(tmp_path), [".conflist"])] == ["b.conflist"]


def test_missing_directory_gives_no_files(tmp_path: Path) -> None:
    missing = tmp_path / "does-not-exist"
    assert conf_files(str(missing)) == []
    assert load_dir(str(missing)) == []


def test_directory_that_is_a_file_is_an_io_failure(tmp_path: Path) -> None:
    not_dir = tmp_path / "net.d"
    not_dir.write_text("x")
    with pytest.raises(CNIError) as exc_info:
        conf_files(str(not_dir))
    assert exc_info.value.code == 5


# ---------------------------------------------------------------------------
# One file


def test_conflist_file(tmp_path: Path) -> None:
    body = listed("net1", "bridge", "portmap", disableCheck=True)
    write(tmp_path, {"10-net1.conflist": body})
    net = load_file(str(tmp_path / "10-net1.conflist"))
    assert net.name == "net1"
    assert [p.type for p in net.plugins] == ["bridge", "portmap"]
    assert net.disable_check is True
    assert net.raw_bytes == body.encode()


def test_spec_example_as_a_conflist_file(tmp_path: Path) -> None:
    body = (EXAMPLES / "config_list_dbnet.json").read_text()
    write(tmp_path, {"10-dbnet.conflist": body})
    net = load_network(str(tmp_path), "dbnet")
    assert net.cni_version == "1.1.0"
    assert [p.type for p in net.plugins] == ["bridge", "tuning", "portmap"]


@pytest.mark.parametrize("fname", ["10-net1.conf", "10-net1.json"])
def test_single_conf_becomes_one_plugin_list(tmp_path: Path, fname: str) -> None:
    # libcni ConfListFromConf: {name, cniVersion, plugins: [the whole original object]}
    body = single("net1", "bridge", version="0.4.0", bridge="cni0",
                  ipam={"type": "host-local", "subnet": "10.1.0.0/16"})
    write(tmp_path, {fname: body})
    net = load_file(str(tmp_path / fname))
    assert (net.name, net.cni_version) == ("net1", "0.4.0")
    assert len(net.plugins) == 1
    plugin = net.plugins[0]
    assert plugin.type == "bridge"
    assert dict(plugin.raw) == json.loads(body)
    assert plugin.ipam == {"type": "host-local", "subnet": "10.1.0.0/16"}
    assert net.cni_versions == ()
    assert (net.disable_check, net.disable_gc) == (False, False)
    assert net.to_dict() == {"cniVersion": "0.4.0", "name": "net1", "plugins": [json.loads(body)]}


def test_conf_file_holding_a_list_is_refused(tmp_path: Path) -> None:
    """kubelet and containerd pick the parser by extension: a list in .conf is invalid."""
    write(tmp_path, {"10-net1.conf": listed("net1", "bridge", "tuning")})
    with pytest.raises(CNIError) as exc_info:
        load_file(str(tmp_path / "10-net1.conf"))
    assert exc_info.value.code == 7 and "missing 'type'" in exc_info.value.msg


@pytest.mark.parametrize(("body", "code"), [
    (single("", "bridge"), 7),                         # no name
    (json.dumps({"cniVersion": "1.0.0", "type": "bridge"}), 7),
    (json.dumps({"name": "net1", "type": "bridge"}), 7),  # no cniVersion
    (single("net1", "bridge", version="v0.5.0"), 1),
    (single("net1", "bridge", version="1.0.0.0"), 1),
    (single("bad name", "bridge"), 7),
    (single("net1", ""), 7),
    (single("net1", "../bridge"), 7),
    (json.dumps({"cniVersion": "1.0.0", "name": "net1"}), 7),  # no type
    ("{not json", 6),
    ("[]", 6),
])
def test_bad_single_conf(tmp_path: Path, body: str, code: int) -> None:
    write(tmp_path, {"10-x.conf": body})
    with pytest.raises(CNIError) as exc_info:
        load_file(str(tmp_path / "10-x.conf"))
    assert exc_info.value.code == code
    assert exc_info.value.msg.startswith(str(tmp_path / "10-x.conf") + ": ")


def test_list_from_bytes_matches_load_file(tmp_path: Path) -> None:
    body = listed("net1", "bridge")
    write(tmp_path, {"a.conflist": body})
    assert list_from_bytes(body.encode()) == load_file(str(tmp_path / "a.conflist"))


def test_unreadable_file_is_an_io_failure(tmp_path: Path) -> None:
    with pytest.raises(CNIError) as exc_info:
        load_file(str(tmp_path / "missing.conflist"))
    assert exc_info.value.code == 5


# ---------------------------------------------------------------------------
# A directory


def test_load_dir_reports_each_file(tmp_path: Path) -> None:
    write(tmp_path, {"10-bad.conflist": "{", "20-good.conflist": listed("good"),
                     "30-one.conf": single("one")})
    entries = load_dir(str(tmp_path))
    assert [Path(e.path).name for e in entries] == ["10-bad.conflist", "20-good.conflist",
                                                    "30-one.conf"]
    assert entries[0].network is None and entries[0].error is not None
    assert entries[0].error.code == 6
    assert [e.network.name for e in entries[1:] if e.network] == ["good", "one"]
    assert all(e.error is None for e in entries[1:])


def test_default_network_is_first_file_in_lexical_order(tmp_path: Path) -> None:
    write(tmp_path, {"20-b.conflist": listed("bnet"), "10-a.conf": single("anet"),
                     "30-c.json": single("cnet")})
    assert default_network(str(tmp_path)).name == "anet"


def test_default_network_skips_invalid_earlier_files(tmp_path: Path) -> None:
    write(tmp_path, {
        "00-garbage.conf": "{",
        "01-noplugins.conflist": json.dumps({"cniVersion": "1.0.0", "name": "x", "plugins": []}),
        "02-badversion.conflist": listed("old", version="v0.5.0"),
        "03-notype.conf": json.dumps({"cniVersion": "1.0.0", "name": "t"}),
        "04-ignored.txt": listed("txt"),
        "10-good.conflist": listed("good"),
        "20-later.conflist": listed("later"),
    })
    net = default_network(str(tmp_path))
    assert net.name == "good"
    assert net.raw_bytes == (tmp_path / "10-good.conflist").read_bytes()


def test_default_network_without_valid_files(tmp_path: Path) -> None:
    write(tmp_path, {"10-a.conf": "{", "20-b.conflist": listed("b", version="9.x.9")})
    with pytest.raises(CNIError) as exc_info:
        default_network(str(tmp_path))
    assert exc_info.value.code == 7
    assert "10-a.conf" in exc_info.value.details
    assert "20-b.conflist" in exc_info.value.details


@pytest.mark.parametrize("make_dir", [False, True])
def test_default_network_with_no_files(tmp_path: Path, make_dir: bool) -> None:
    directory = tmp_path / "net.d"
    if make_dir:
        write(directory, {"README.md": "nothing here"})
    with pytest.raises(CNIError) as exc_info:
        default_network(str(directory))
    assert exc_info.value.code == 7
    assert exc_info.value.details == "no .conf/.conflist/.json files"


def test_load_network_by_name(tmp_path: Path) -> None:
    write(tmp_path, {"10-a.conflist": listed("anet", "bridge"),
                     "20-b.conf": single("bnet", "macvlan"),
                     "30-c.json": single("cnet", "ipvlan")})
    for name, ptype in [("anet", "bridge"), ("bnet", "macvlan"), ("cnet", "ipvlan")]:
        net = load_network(str(tmp_path), name)
        assert net.name == name
        assert [p.type for p in net.plugins] == [ptype]


def test_load_network_first_of_duplicate_names_wins(tmp_path: Path) -> None:
    write(tmp_path, {"20-second.conflist": listed("dup", "macvlan"),
                     "10-first.conflist": listed("dup", "bridge")})
    assert load_network(str(tmp_path), "dup").plugins[0].type == "bridge"


def test_load_network_skips_broken_files(tmp_path: Path) -> None:
    write(tmp_path, {"10-broken.conflist": "{", "20-net.conflist": listed("net1")})
    assert load_network(str(tmp_path), "net1").name == "net1"


@pytest.mark.parametrize("directory_exists", [False, True])
def test_load_network_unknown_name(tmp_path: Path, directory_exists: bool) -> None:
    directory = tmp_path / "net.d"
    if directory_exists:
        write(directory, {"10-a.conflist": listed("anet")})
    with pytest.raises(CNIError) as exc_info:
        load_network(str(directory), "nope")
    assert exc_info.value.code == 7
    assert "'nope'" in exc_info.value.msg


def test_conflist_without_plugins_is_refused(tmp_path: Path) -> None:
    write(tmp_path, {"10-flat.conflist": single("flat"), "20-real.conflist": listed("real")})
    with pytest.raises(CNIError) as exc_info:
        load_file(str(tmp_path / "10-flat.conflist"))
    assert exc_info.value.code == 7
    assert default_network(str(tmp_path)).name == "real"


# ---------------------------------------------------------------------------
# Plugins in <confdir>/<network>/ (SPEC 1.1.0, libcni NetworkPluginConfsFromFiles)


def test_plugins_from_the_network_folder_are_appended(tmp_path: Path) -> None:
    write(tmp_path, {"10-a.conflist": listed("anet", "bridge")})
    write(tmp_path / "anet", {"20-tuning.conf": json.dumps({"type": "tuning"}),
                              "10-portmap.conf": json.dumps({"type": "portmap",
                                                             "capabilities": {"x": True}}),
                              "30-ignored.json": json.dumps({"type": "nope"}),
                              "README": "x"})
    net = load_network(str(tmp_path), "anet")
    assert [p.type for p in net.plugins] == ["bridge", "portmap", "tuning"]
    assert net.raw_bytes == (tmp_path / "10-a.conflist").read_bytes()  # as libcni's Bytes


def test_load_only_inlined_plugins_ignores_the_folder(tmp_path: Path) -> None:
    write(tmp_path, {"10-a.conflist": listed("anet", "bridge", loadOnlyInlinedPlugins=True)})
    write(tmp_path / "anet", {"10-portmap.conf": json.dumps({"type": "portmap"})})
    assert [p.type for p in load_network(str(tmp_path), "anet").plugins] == ["bridge"]


def test_list_without_inlined_plugins_takes_the_folder(tmp_path: Path) -> None:
    write(tmp_path, {"10-a.conflist": json.dumps({"cniVersion": "1.1.0", "name": "anet"})})
    write(tmp_path / "anet", {"10-bridge.conf": json.dumps({"type": "bridge"})})
    assert [p.type for p in load_network(str(tmp_path), "anet").plugins] == ["bridge"]


def test_list_with_no_plugins_anywhere_fails(tmp_path: Path) -> None:
    write(tmp_path, {"10-a.conflist": json.dumps({"cniVersion": "1.1.0", "name": "anet"})})
    with pytest.raises(CNIError) as exc_info:
        load_file(str(tmp_path / "10-a.conflist"))
    assert exc_info.value.code == 7 and "no plugin configs found" in exc_info.value.msg


@pytest.mark.parametrize("body", ["{", json.dumps({"name": "no type"})])
def test_broken_plugin_file_in_the_folder_names_it(tmp_path: Path, body: str) -> None:
    write(tmp_path, {"10-a.conflist": listed("anet", "bridge")})
    write(tmp_path / "anet", {"10-broken.conf": body})
    with pytest.raises(CNIError) as exc_info:
        load_file(str(tmp_path / "10-a.conflist"))
    assert str(tmp_path / "anet" / "10-broken.conf") in str(exc_info.value)


# ---------------------------------------------------------------------------
# A file that cannot be loaded is named with its reason (issue 12 item 16)


@pytest.mark.parametrize(("body", "reason"), [
    (json.dumps({"name": "anet", "plugins": [{"type": "bridge"}]}), "cniVersion"),
    (json.dumps({"cniVersion": "1.0.0", "name": "anet", "plugins": [{"type": "../x"}]}),
     "invalid plugin type"),
    (json.dumps({"cniVersion": "1.0.0", "name": "anet", "plugins": [{}]}), "missing 'type'"),
])
def test_load_network_names_the_file_that_holds_it_but_cannot_load(
        tmp_path: Path, body: str, reason: str) -> None:
    write(tmp_path, {"10-a.conflist": body, "20-b.conflist": listed("bnet")})
    with pytest.raises(CNIError) as exc_info:
        load_network(str(tmp_path), "anet")
    text = str(exc_info.value)
    assert "no network config named" not in text
    assert str(tmp_path / "10-a.conflist") in text and reason in text


def test_load_network_not_found_lists_the_files_it_could_not_load(tmp_path: Path) -> None:
    write(tmp_path, {"10-a.conflist": '{"cniVersion": "1.0.0", "name": "anet",',
                     "20-b.conflist": listed("bnet")})
    with pytest.raises(CNIError) as exc_info:
        load_network(str(tmp_path), "anet")
    assert exc_info.value.code == 7
    assert "'anet'" in exc_info.value.msg and "1 file could not be loaded" in exc_info.value.msg
    assert str(tmp_path / "10-a.conflist") in exc_info.value.details
    assert "error parsing" in exc_info.value.details
