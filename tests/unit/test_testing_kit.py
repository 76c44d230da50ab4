"""corecni.testing: the request builder, the two runners, launchers and the netns prefix.

The runners are exercised on the suite's own test plugins (no kernel work), so
the in-process and the exec'd outcome of one request can be compared exactly.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from corecni import launcher
from corecni.request import Attachment
from corecni.spec.errors import CNIError
from corecni.spec.result import IPConfig, Result
from corecni.spec.version import CURRENT
from corecni.testing import (
    CTR,
    GO_PLUGINS,
    FakeBackend,
    FakeDelegate,
    chain_runtime,
    cni_bin_dir,
    entry_point_plugins,
    install_launchers,
    netns_prefix,
    normalise_result,
    plugin_request,
    plugin_target,
    run_exec,
    run_in_process,
)
from corecni.testing.namespaces import PREFIX_ENV, set_prefix_template

PREV = Result(cni_version="1.0.0", ips=(IPConfig(address="10.9.0.2/24"),))


# --- plugin_request --------------------------------------------------------------------

def test_plugin_request_fills_the_spec_parameters() -> None:
    req = plugin_request(type="macvlan", master="phys0")
    assert (req.command, req.container_id, req.ifname, req.netns) == ("ADD", "c1", "eth0", CTR)
    assert req.config.type == "macvlan" and req.config.raw["master"] == "phys0"
    assert (req.config.cni_version, req.config.name) == (CURRENT, "testnet")
    assert isinstance(req.net, FakeBackend)
    assert req.prev_result is None and req.delegate is None


def test_plugin_request_keywords_win_over_config_and_prev_result_is_written() -> None:
    req = plugin_request({"type": "tuning", "mtu": 1500, "cniVersion": "1.0.0"}, mtu=1400,
                         command="CHECK", prev_result=PREV, args={"IP": "10.9.0.9"},
                         path=["/a", "/b"])
    assert req.config.raw["mtu"] == 1400 and req.config.cni_version == "1.0.0"
    assert req.prev_result == PREV.as_version("1.0.0")
    assert req.config.raw["prevResult"] == PREV.to_dict()
    assert req.arg("IP") == "10.9.0.9" and req.path == ("/a", "/b")
    assert req.environ({})["CNI_PATH"] == "/a:/b"


def test_plugin_request_gc_attachments_and_no_net() -> None:
    req = plugin_request(type="x", command="GC", valid_attachments=[("c1", "eth0"),
                                                                    Attachment("c2", "net1")],
                         net=None)
    assert req.valid_attachments == (Attachment("c1", "eth0"), Attachment("c2", "net1"))
    with pytest.raises(CNIError, match="no link layer"):
        _ = req.net


def test_plugin_request_hands_the_fake_and_the_delegate_to_a_plugin() -> None:
    from corecni_contrib import macvlan

    fake, ipam = FakeBackend(), FakeDelegate(PREV)
    req = plugin_request(type="macvlan", master="phys0", ipam={"type": "static"}, net=fake,
                         delegate=ipam)
    result = macvlan.cni_add(req)
    assert [op for _, op, _, _ in fake.ops("add_macvlan")] == ["add_macvlan"]
    assert ipam.calls == [("static", "ADD")]
    assert [ip.address for ip in result.ips] == ["10.9.0.2/24"]


# --- running in-process and exec'd -------------------------------------------------------

CONF = {"type": "fake-iface", "cniVersion": "1.0.0",
        "ipam": {"type": "fixed-ipam", "ip": "10.77.0.9/24"}}


@pytest.fixture
def bindir(tmp_path: Path) -> Path:
    """Launchers of the suite's interface and IPAM test plugins."""
    install_launchers(tmp_path, {"fake-iface": "tests.plugins.fake_iface",
                                 "fixed-ipam": "tests.plugins.fixed_ipam"})
    return tmp_path


def test_in_process_and_exec_give_the_same_result(bindir: Path) -> None:
    req = plugin_request(CONF, path=[str(bindir)], net=None)
    here = run_in_process(req, "tests.plugins.fake_iface")
    there = run_exec(str(bindir / "fake-iface"), req)
    assert here.ok and there.ok, (here, there)
    assert here.result is not None
    assert [ip.address for ip in here.result.ips] == ["10.77.0.9/24"]
    assert normalise_result(here) == normalise_result(there)
    assert normalise_result(here)["interfaces"] == [{"name": "eth0"}]  # type: ignore[index]


def test_errors_come_back_as_outcomes_both_ways(bindir: Path) -> None:
    req = plugin_request({**CONF, "fail": {"DEL": [11, "try later"]}}, command="DEL",
                         path=[str(bindir)], net=None)
    here = run_in_process(req, "tests.plugins.fake_iface")
    there = run_exec(str(bindir / "fake-iface"), req)
    assert (here.code, there.code) == (11, 11)
    assert here.error is not None and there.error is not None
    assert here.error.msg == there.error.msg == "try later"
    with pytest.raises(CNIError):
        there.unwrap()


def test_run_in_process_defaults_to_the_installed_plugin() -> None:
    req = plugin_request(type="static", cniVersion="1.0.0",
                         ipam={"type": "static", "addresses": [{"address": "10.5.0.7/24"}]})
    outcome = run_in_process(req)
    assert outcome.result is not None
    assert [ip.address for ip in outcome.result.ips] == ["10.5.0.7/24"]


# --- entry points, launchers, a CNI_PATH ---------------------------------------------------

def test_entry_points_are_the_installed_contrib_plugins() -> None:
    plugins = entry_point_plugins()
    assert plugins["bridge"] == "corecni_contrib.bridge"
    assert plugin_target("host-local") == "corecni_contrib.host_local.plugin"
    with pytest.raises(LookupError, match="no-such"):
        plugin_target("no-such")


def test_cni_bin_dir_prefers_ours_and_fills_in_gos(tmp_path: Path) -> None:
    ours = Path(cni_bin_dir(tmp_path / "a", ours=["bridge"]))
    spec = launcher.read_marker(str(ours / "bridge"))
    assert spec is not None and spec.target == "corecni_contrib.bridge"
    if os.path.isdir(GO_PLUGINS):
        assert os.readlink(ours / "portmap") == f"{GO_PLUGINS}/portmap"
        go_first = Path(cni_bin_dir(tmp_path / "b", ours=["bridge"], prefer="go"))
        assert os.readlink(go_first / "bridge") == f"{GO_PLUGINS}/bridge"
    mine = Path(cni_bin_dir(tmp_path / "c", go=False))
    assert sorted(os.listdir(mine)) == sorted(entry_point_plugins())


def test_chain_runtime_runs_ours_each_road_and_skips_on_a_missing_partner(
        tmp_path: Path) -> None:
    partners = cni_bin_dir(tmp_path / "partners-in", go=False)
    inproc = chain_runtime("in-process", tmp_path / "i", {"ptp": "corecni_contrib.ptp"},
                           partners, needs=("host-local",))
    assert inproc.registry is not None
    assert inproc.registry.resolve("ptp").kind == "python"
    inproc.registry.resolve("host-local")  # a launcher on the partners path
    execd = chain_runtime("exec", tmp_path / "e", {"ptp": "corecni_contrib.ptp"}, partners)
    assert execd.registry is not None and execd.registry.resolve("ptp").kind == "exec"
    with pytest.raises(pytest.skip.Exception, match="chain partner 'nosuch' not found"):
        chain_runtime("in-process", tmp_path / "s", {"ptp": "corecni_contrib.ptp"}, partners,
                      needs=("nosuch",))


# --- the namespace prefix --------------------------------------------------------------

def test_prefix_keeps_the_pid_by_default_and_env_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PREFIX_ENV, raising=False)
    assert netns_prefix() == f"ccni-{os.getpid()}-"
    monkeypatch.setenv(PREFIX_ENV, "mine-{pid}-")
    assert netns_prefix() == f"mine-{os.getpid()}-"
    with pytest.raises(ValueError, match="bad network namespace prefix"):
        set_prefix_template("a/b")


def test_prefix_from_the_ini_option(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\ncorecni_netns_prefix = proj-{pid}-\n")
    (tmp_path / "test_p.py").write_text(textwrap.dedent("""
        import os
        from corecni.testing import netns_prefix

        def test_p():
            assert netns_prefix() == f"proj-{os.getpid()}-"
    """))
    env = {k: v for k, v in os.environ.items() if k != PREFIX_ENV}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(tmp_path)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout
