"""The ``corecni`` command line, run as a user would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from corecni import launcher
from corecni.cli import cnitool_container_id

REPO = str(Path(__file__).resolve().parents[2])


def corecni(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "corecni.cli", *args], env=env,
                          capture_output=True, text=True, check=False, cwd=REPO)


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, str]:
    confdir, bindir = tmp_path / "net.d", tmp_path / "bin"
    confdir.mkdir()
    launcher.install(str(bindir), [
        launcher.LauncherSpec("fake-iface", "tests.plugins.fake_iface", sys_path=(REPO,)),
        launcher.LauncherSpec("fixed-ipam", "tests.plugins.fixed_ipam", sys_path=(REPO,))])
    (confdir / "10-test.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0", "name": "clinet",
        "plugins": [{"type": "fake-iface", "ipam": {"type": "fixed-ipam"},
                     "capabilities": {"portMappings": True}}]}))
    (confdir / "05-broken.conf").write_text("{oops")
    return {**os.environ, "NETCONFPATH": str(confdir), "CNI_PATH": str(bindir),
            "CNI_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": REPO}


def test_add_check_del(setup: dict[str, str], tmp_path: Path) -> None:
    out = corecni("add", "clinet", "/proc/self/ns/net", env=setup)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["ips"][0]["address"] == "10.77.0.5/24"
    cid = cnitool_container_id("/proc/self/ns/net")
    assert (tmp_path / "cache" / "results" / f"clinet-{cid}-eth0").exists()
    assert corecni("check", "clinet", "/proc/self/ns/net", env=setup).returncode == 0
    assert corecni("del", "clinet", "/proc/self/ns/net", env=setup).returncode == 0
    assert not (tmp_path / "cache" / "results" / f"clinet-{cid}-eth0").exists()


def test_container_id_and_ifname_from_env(setup: dict[str, str], tmp_path: Path) -> None:
    env = {**setup, "CNI_CONTAINERID": "mine", "CNI_IFNAME": "net1"}
    assert corecni("add", "clinet", "/proc/self/ns/net", env=env).returncode == 0
    assert (tmp_path / "cache" / "results" / "clinet-mine-net1").exists()
    out = corecni("--exec-only", "del", "clinet", "/proc/self/ns/net", "--container-id", "mine",
                  env={**setup, "CNI_IFNAME": "net1"})
    assert out.returncode == 0, out.stderr
    assert not (tmp_path / "cache" / "results" / "clinet-mine-net1").exists()


def test_cnitool_default_container_id() -> None:
    # the value Go's cnitool computes for this netns path
    assert cnitool_container_id("/var/run/netns/test") == "cnitool-" + \
        __import__("hashlib").sha512(b"/var/run/netns/test").hexdigest()[:20]
    assert len(cnitool_container_id("/x")) == len("cnitool-") + 20


@pytest.mark.parametrize(("args", "fragment"), [
    (("add", "nonet", "/proc/self/ns/net"), "no network config named 'nonet'"),
    (("add", "clinet", "/does/not/exist"), "does not exist: /does/not/exist (CNI error code 3)"),
    (("version", "no-such-plugin"), "failed to find plugin"),
])
def test_errors_are_one_line(setup: dict[str, str], args: tuple[str, ...],
                             fragment: str) -> None:
    out = corecni(*args, env=setup)
    assert out.returncode == 1
    assert out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert fragment in out.stderr


def test_bad_cap_args(setup: dict[str, str]) -> None:
    out = corecni("add", "clinet", "/proc/self/ns/net", env={**setup, "CAP_ARGS": "{nope"})
    assert out.returncode == 1 and "CAP_ARGS is not valid JSON" in out.stderr


def test_version_validate_plugins(setup: dict[str, str]) -> None:
    out = corecni("version", "fixed-ipam", env=setup)
    assert json.loads(out.stdout)["supportedVersions"][-1] == "1.1.0"
    out = corecni("validate", "clinet", env=setup)
    assert json.loads(out.stdout) == {"network": "clinet", "valid": True,
                                      "capabilities": ["portMappings"]}
    out = corecni("plugins", env=setup)
    rows = {line.split()[0]: line.split()[1:3] for line in out.stdout.splitlines()}
    assert rows["fake-iface"] == ["in-process", "launcher"]


def test_doctor_names_the_backend(setup: dict[str, str]) -> None:
    from corecni.net import available_backends

    out = corecni("doctor", env={**setup, "CORECNI_NET_BACKEND": "pyroute2"})
    assert out.returncode == 0, out.stderr
    assert "net backend: pyroute2" in out.stdout
    if "native" in available_backends():
        out = corecni("doctor", env={**setup, "CORECNI_NET_BACKEND": "auto"})
        assert "net backend: native" in out.stdout
        assert "native module: corecni-native" in out.stdout


def test_install_writes_a_launcher_per_plugin(setup: dict[str, str], tmp_path: Path) -> None:
    from importlib.metadata import entry_points

    types = sorted(ep.name for ep in entry_points(group="corecni.plugins"))
    assert "host-local" in types  # corecni-contrib is installed in the test venv
    bindir = tmp_path / "opt-cni-bin"
    bindir.mkdir()
    (bindir / "bridge").write_bytes(b"\x7fELF not ours")
    out = corecni("install", "--dir", str(bindir), env=setup)
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(": ", 1) for line in out.stdout.splitlines())
    assert lines["host-local"] == "installed (shim)"  # the native shim + its launcher
    assert launcher.is_shim(str(bindir / "host-local"))
    assert lines["bridge"].startswith("skipped")
    assert (bindir / "bridge").read_bytes() == b"\x7fELF not ours"
    assert launcher.read_marker(str(bindir / "host-local")) is not None
    again = corecni("install", "--dir", str(bindir), "--force", env=setup)
    lines = dict(line.split(": ", 1) for line in again.stdout.splitlines())
    assert lines["host-local"] == "updated (shim)" and lines["bridge"] == "updated (shim)"
    plain = corecni("install", "--dir", str(bindir), "--no-shim", env=setup)
    lines = dict(line.split(": ", 1) for line in plain.stdout.splitlines())
    assert lines["host-local"] == "updated" and not launcher.is_shim(str(bindir / "host-local"))
    version = subprocess.run([str(bindir / "host-local")], env={"CNI_COMMAND": "VERSION"},
                             capture_output=True, check=True)
    assert json.loads(version.stdout)["supportedVersions"][-1] == "1.1.0"
