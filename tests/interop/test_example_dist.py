"""A third-party plugin distribution (tests/example_dist), pip-installed, exec'd by Go's
libcni and run in-process by corecni's runtime.

``corecni-example`` is written as an outside author would write it: its plugins
import only ``corecni.kit``, its tests only ``corecni.testing``, and corecni
finds it only through its ``corecni.plugins`` entry points. The module fixture
pip-installs it (from a copy of its source, so no build output lands in the
tree) into a private site directory on ``sys.path`` - the project venv is
never changed, and nothing is left behind. Then:

* its own test suite passes against the installed copy (unit tests on the
  FakeBackend, kernel tests in namespaces, with its own netns prefix);
* Go's libcni execs its launchers (``corecni install``'s) in a chain with
  corecni's host-local: ADD, CHECK, DEL twice, kernel state and a ping;
* corecni's runtime runs the same chain in-process, found through the entry
  points, and leaves the same container state and result.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from corecni import netns
from corecni.registry import Registry
from corecni.runtime import CNIRuntime
from corecni.spec.config import NetworkConfigList, RuntimeConf
from corecni.testing import (
    addrs,
    entry_point_plugins,
    install_launchers,
    link_info,
    link_names,
    netns_state,
    normalise_result,
    ns_name,
    ping,
)

pytestmark = [pytest.mark.interop]

SOURCE = Path(__file__).parents[1] / "example_dist"
TYPES = ("example-veth", "example-tune")


@pytest.fixture(scope="module")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``pip install`` of the example distribution into a private site directory, on
    ``sys.path`` (entry points included) while this module runs."""
    work = tmp_path_factory.mktemp("example")
    source, site = work / "src", work / "site"
    shutil.copytree(SOURCE, source)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--disable-pip-version-check", "--target", str(site), str(source)],
                   check=True, capture_output=True)
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    try:
        yield site
    finally:
        sys.path.remove(str(site))
        for name in [m for m in sys.modules if m.partition(".")[0] == "corecni_example"]:
            del sys.modules[name]


def test_installed_through_entry_points(example_site: Path) -> None:
    plugins = entry_point_plugins()
    assert {t: plugins.get(t) for t in TYPES} == {"example-veth": "corecni_example.veth",
                                                  "example-tune": "corecni_example.tune"}
    assert importlib.import_module("corecni_example.veth").__file__.startswith(  # type: ignore[union-attr]
        str(example_site))


def test_its_own_suite_passes_installed(example_site: Path) -> None:
    tests = example_site.parent / "src" / "tests"
    env = {**os.environ, "PYTHONPATH": str(example_site)}
    env.pop("CORECNI_NETNS_PREFIX", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-rs", str(tests)], cwd=tests.parent, env=env, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    expected = "10 passed" if os.geteuid() == 0 else "7 passed, 3 skipped"
    assert expected in proc.stdout, proc.stdout


def chain(tmp: Path) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": "exgo", "plugins": [
        {"type": "example-veth", "mtu": 1450,
         "ipam": {"type": "host-local", "dataDir": str(tmp / "ipam"), "subnet": "10.82.0.0/24",
                  "routes": [{"dst": "0.0.0.0/0"}]}},
        {"type": "example-tune", "mtu": 1400, "alias": "tuned"}]}


def assert_attached(result: dict[str, Any], node: str, ctr: str) -> None:
    """The chain's work in the kernel: address, tuning, gateway on the node end, a ping."""
    assert [ip["address"] for ip in result["ips"]] == ["10.82.0.2/24"]
    assert addrs(ctr, "eth0") == {"10.82.0.2/24"}
    eth0 = link_info(ctr, "eth0")
    assert (eth0["mtu"], eth0.get("ifalias")) == (1400, "tuned")
    assert addrs(node, result["interfaces"][0]["name"]) == {"10.82.0.1/24"}
    assert ping(ctr, "10.82.0.1")


def assert_detached(node: str, ctr: str, ipam: Path) -> None:
    assert link_names(ctr) == {"lo"} and link_names(node) == {"lo"}
    assert [p.name for p in (ipam / "exgo").iterdir() if p.name[0].isdigit()] == []


def test_go_libcni_and_corecni_runtime_agree(example_site: Path, gocni: str,
                                            netns_factory: Any, tmp_path: Path) -> None:
    conf = tmp_path / "exgo.conflist"
    conf.write_text(json.dumps(chain(tmp_path / "go")))
    bindir = tmp_path / "bin"
    install_launchers(bindir, [*TYPES, "host-local"])

    # Go's libcni execs the launchers
    node, ctr = netns_factory("node"), netns_factory("ctr")

    def go(verb: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", ns_name(node), gocni, verb, str(conf), ctr, "ex1", "eth0",
             str(tmp_path / "go-cache")], env={**os.environ, "CNI_PATH": str(bindir)},
            capture_output=True, text=True, check=False)

    added = go("add")
    assert added.returncode == 0, added.stderr
    go_result = json.loads(added.stdout)
    assert_attached(go_result, node, ctr)
    go_state = netns_state(ctr)
    checked = go("check")
    assert checked.returncode == 0, checked.stderr
    for _ in range(2):  # DEL is idempotent
        deleted = go("del")
        assert deleted.returncode == 0, deleted.stderr
    assert_detached(node, ctr, tmp_path / "go" / "ipam")

    # corecni's runtime, everything in-process from the entry points
    node, ctr = netns_factory("node"), netns_factory("ctr")
    runtime = CNIRuntime(cache_dir=str(tmp_path / "cache"), registry=Registry(path=()))
    net = NetworkConfigList.from_dict(chain(tmp_path / "ours"))
    rt = RuntimeConf("ex1", "eth0", ctr)
    with netns.entered(node):
        ours = runtime.add_network_list(net, rt).to_dict()
    assert_attached(ours, node, ctr)
    assert netns_state(ctr) == go_state
    assert normalise_result(ours) == normalise_result(go_result)
    with netns.entered(node):
        runtime.check_network_list(net, rt)
        runtime.del_network_list(net, rt)
        runtime.del_network_list(net, rt)
    assert_detached(node, ctr, tmp_path / "ours" / "ipam")
