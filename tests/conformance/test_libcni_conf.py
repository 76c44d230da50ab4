"""libcni's configuration loading (``vectors/libcni_conf.json``) against corecni.config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from corecni.config import load_file, load_network
from corecni.spec.config import NetworkConfigList
from corecni.spec.errors import CNIError
from tests.conformance import vectors

CONF = vectors.load("libcni_conf")


def write_files(directory: Path, files: dict[str, Any] | None) -> None:
    if files is None:
        return  # the directory does not exist
    directory.mkdir()
    for relpath, body in files.items():
        path = directory / relpath
        if relpath.endswith("/"):
            path.mkdir(parents=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body if isinstance(body, str) else json.dumps(body))


def load(case: dict[str, Any], directory: Path) -> NetworkConfigList:
    what = case["load"]
    if isinstance(what, str):
        return load_network(str(directory), what)
    if "file" in what:
        return load_file(str(directory / what["file"]))
    return NetworkConfigList.from_bytes(json.dumps(what["bytes"]).encode())


@pytest.mark.parametrize("case", CONF["cases"], ids=vectors.ids)
def test_load(case: dict[str, Any], tmp_path: Path) -> None:
    directory = tmp_path / "net.d"
    write_files(directory, case.get("files", {}))
    if "error" in case:
        with pytest.raises(CNIError) as info:
            load(case, directory)
        vectors.assert_error(info.value, case["error"])
        return
    net = load(case, directory)
    expect = case["expect"]
    got = {"name": net.name, "cniVersion": net.cni_version, "disableCheck": net.disable_check,
           "loadOnlyInlinedPlugins": net.load_only_inlined_plugins,
           "plugins": [dict(p.raw) for p in net.plugins],
           "plugin_types": [p.type for p in net.plugins],
           "capabilities": [dict(p.capabilities) for p in net.plugins]}
    assert {key: got[key] for key in expect} == expect
