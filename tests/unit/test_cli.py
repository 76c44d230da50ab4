"""The ``corecni`` command line, run as a user would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from corecni import launcher
from corecni.cli import cnitool_container_id, format_error
from corecni.spec.errors import CNIError

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


# ---- issue 13 (CLI): flags, errors, install, status ---------------------------------------

def _log_network(tmp_path: Path, setup: dict[str, str], version: str = "1.0.0",
                 **plugin: object) -> Path:
    """A network ``lognet`` whose plugins append each call they see to a log file."""
    log = tmp_path / "calls.log"
    conf = {"cniVersion": version, "name": "lognet",
            "plugins": [{"type": "fake-iface", "ipam": {"type": "fixed-ipam"}, "log": str(log),
                         "capabilities": {"portMappings": True}, **plugin}]}
    (Path(setup["NETCONFPATH"]) / "20-log.conflist").write_text(json.dumps(conf))
    return log


def _calls(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


PORTS = [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]


@pytest.mark.parametrize("exec_only", [False, True])
def test_ifname_args_cap_args_flags(setup: dict[str, str], tmp_path: Path,
                                    exec_only: bool) -> None:
    log = _log_network(tmp_path, setup)
    env = {**setup, "CNI_IFNAME": "fromenv", "CNI_ARGS": "A=env", "CAP_ARGS": "{}"}
    mode = ["--exec-only"] if exec_only else []
    out = corecni(*mode, "add", "lognet", "/proc/self/ns/net", "--ifname", "net7",
                  "--args", "IgnoreUnknown=1;K8S_POD_NAME=web", "--cap-args",
                  json.dumps({"portMappings": PORTS}), env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["interfaces"][0]["name"] == "net7"
    call = _calls(log)[0]
    assert call["ifname"] == "net7"
    assert call["args"] == [["IgnoreUnknown", "1"], ["K8S_POD_NAME", "web"]]
    assert call["runtimeConfig"] == {"portMappings": PORTS}
    cid = cnitool_container_id("/proc/self/ns/net")
    assert (tmp_path / "cache" / "results" / f"lognet-{cid}-net7").exists()
    out = corecni(*mode, "del", "lognet", "/proc/self/ns/net", "-i", "net7", env=env)
    assert out.returncode == 0, out.stderr
    assert not (tmp_path / "cache" / "results" / f"lognet-{cid}-net7").exists()


def test_cnitool_env_vars_keep_working(setup: dict[str, str], tmp_path: Path) -> None:
    log = _log_network(tmp_path, setup)
    env = {**setup, "CNI_IFNAME": "net3", "CNI_ARGS": "A=1;B=2",
           "CAP_ARGS": json.dumps({"portMappings": PORTS, "bandwidth": {}})}
    out = corecni("add", "lognet", "/proc/self/ns/net", env=env)
    assert out.returncode == 0, out.stderr
    call = _calls(log)[0]
    assert (call["ifname"], call["args"]) == ("net3", [["A", "1"], ["B", "2"]])
    assert call["runtimeConfig"] == {"portMappings": PORTS}  # only declared capabilities
    assert corecni("check", "lognet", "/proc/self/ns/net", env=env).returncode == 0
    assert corecni("del", "lognet", "/proc/self/ns/net", env=env).returncode == 0
    assert [c["command"] for c in _calls(log) if c["who"] == "fake-iface"] == \
        ["ADD", "CHECK", "DEL"]


@pytest.mark.parametrize(("flag", "value", "fragment"), [
    ("--args", "K8S_POD_NAME", "invalid CNI_ARGS pair"),
    ("--args", "A=1=2", "invalid CNI_ARGS pair"),
    ("--cap-args", "{nope", "--cap-args is not valid JSON"),
    ("--cap-args", "[1, 2]", "--cap-args must be a JSON object"),
    ("--ifname", "x" * 16, "interface name is too long"),
    ("--ifname", "a/b", "ifname"),
    ("--container-id", "../../x", "invalid characters in containerID"),
])
def test_bad_attachment_flags_are_refused(setup: dict[str, str], flag: str, value: str,
                                          fragment: str) -> None:
    out = corecni("add", "clinet", "/proc/self/ns/net", f"{flag}={value}", env=setup)
    assert out.returncode == 2
    assert out.stdout == ""
    assert f"argument {flag.split('=')[0]}" in out.stderr and fragment in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_bad_cni_args_env(setup: dict[str, str]) -> None:
    out = corecni("add", "clinet", "/proc/self/ns/net", env={**setup, "CNI_ARGS": "novalue"})
    assert out.returncode == 1 and "invalid CNI_ARGS pair" in out.stderr


@pytest.mark.parametrize("exec_only", [False, True])
def test_plugin_error_names_the_plugin_once(setup: dict[str, str], tmp_path: Path,
                                            exec_only: bool) -> None:
    _log_network(tmp_path, setup, fail={"ADD": [11, "busy now"]})
    mode = ["--exec-only"] if exec_only else []
    out = corecni(*mode, "add", "lognet", "/proc/self/ns/net", env=setup)
    assert out.returncode == 1 and out.stdout == ""
    line = out.stderr.strip()
    assert len(line.splitlines()) == 1, out.stderr
    assert line.count("fake-iface") == 1, line
    assert "busy now" in line and line.endswith("(CNI error code 11)")


def test_plugin_crash_is_one_line(setup: dict[str, str], tmp_path: Path) -> None:
    _log_network(tmp_path, setup, fail={"ADD": "crash"})
    for mode in ([], ["--exec-only"]):
        out = corecni(*mode, "add", "lognet", "/proc/self/ns/net", env=setup)
        assert out.returncode == 1
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert "Traceback" not in out.stderr and "crashed on purpose" in out.stderr


@pytest.mark.parametrize(("exc", "expected"), [
    (CNIError(999, "set lo up: set_link lo: EPERM (Operation not permitted)", "EPERM",
              plugin="loopback"),
     "plugin 'loopback': set lo up: set_link lo: EPERM (Operation not permitted) "
     "(needs root / CAP_NET_ADMIN) (CNI error code 999)"),
    (CNIError(999, "plugin type='bridge' failed (add)", "operation not permitted\nmore",
              plugin="bridge"),
     "plugin type='bridge' failed (add): operation not permitted | more "
     "(needs root / CAP_NET_ADMIN) (CNI error code 999)"),
    (PermissionError(13, "Permission denied", "/var/lib/cni/results"),
     "[Errno 13] Permission denied: '/var/lib/cni/results' (needs root / CAP_NET_ADMIN)"),
    (CNIError(7, "no network config named 'x'"), "no network config named 'x' "
     "(CNI error code 7)"),
])
def test_format_error(exc: BaseException, expected: str) -> None:
    assert format_error(exc) == expected


def test_status_prints_ready(setup: dict[str, str], tmp_path: Path) -> None:
    log = _log_network(tmp_path, setup, version="1.1.0")
    out = corecni("status", "lognet", env=setup)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "lognet: ready\n"
    assert [c["command"] for c in _calls(log)] == ["STATUS"]  # the plugin was really asked
    _log_network(tmp_path, setup, version="1.1.0", fail={"STATUS": [50, "no IPs left"]})
    out = corecni("status", "lognet", env=setup)
    assert out.returncode == 1 and out.stdout == ""
    assert "no IPs left" in out.stderr and "(CNI error code 50)" in out.stderr


def test_gc_valid_is_checked(setup: dict[str, str], tmp_path: Path) -> None:
    log = _log_network(tmp_path, setup, version="1.1.0")
    for bad in ("../../x", "ok/a/b", "/eth0", "ok/" + "x" * 16, ""):
        out = corecni("gc", "lognet", "--valid", bad, env=setup)
        assert out.returncode == 2, bad
        assert "argument --valid" in out.stderr and "CONTAINERID[/IFNAME]" in out.stderr
    assert not log.exists()  # refused before any plugin ran
    out = corecni("gc", "lognet", "--valid", "c1", "--valid", "c2/net1", env=setup)
    assert out.returncode == 0, out.stderr
    gc = next(c for c in _calls(log) if c["command"] == "GC")
    assert gc["valid"] == [{"containerID": "c1", "ifname": "eth0"},
                           {"containerID": "c2", "ifname": "net1"}]


def test_install_chosen_types(setup: dict[str, str], tmp_path: Path) -> None:
    bindir = tmp_path / "chosen"
    out = corecni("install", "--dir", str(bindir), "host-local", "loopback", env=setup)
    assert out.returncode == 0, out.stderr
    assert [line.split(": ")[0] for line in out.stdout.splitlines()] == ["host-local", "loopback"]
    assert all(": installed" in line for line in out.stdout.splitlines())
    installed = sorted(f for f in os.listdir(bindir) if not f.startswith("."))
    assert installed == ["host-local", "loopback"]
    out = corecni("install", "--dir", str(bindir), "host-local", "no-such-type", env=setup)
    assert out.returncode == 1 and out.stdout == ""
    assert "no Python plugin of type 'no-such-type'" in out.stderr
    assert "host-local" in out.stderr  # the line lists what could be installed
    assert sorted(f for f in os.listdir(bindir) if not f.startswith(".")) == installed
