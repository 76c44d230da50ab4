"""``corecni install``: launchers are written, updated, and never clobber a stranger."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from corecni import launcher

REPO = str(Path(__file__).resolve().parents[2])
SPEC = launcher.LauncherSpec("fixed-ipam", "tests.plugins.fixed_ipam", sys_path=(REPO,))


def test_install_update_and_refuse_foreign(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    assert launcher.install(str(bindir), [SPEC]) == [("fixed-ipam", "installed")]
    path = bindir / "fixed-ipam"
    assert os.access(path, os.X_OK)
    marker = launcher.read_marker(str(path))
    assert marker is not None and (marker.type, marker.target) == (SPEC.type, SPEC.target)
    assert marker.sys_path  # where the plugin imports from (see the test below)
    assert launcher.install(str(bindir), [SPEC]) == [("fixed-ipam", "updated")]

    foreign = bindir / "bridge"
    foreign.write_bytes(b"\x7fELF go binary")
    bridge = launcher.LauncherSpec("bridge", "tests.plugins.fake_iface")
    outcome = launcher.install(str(bindir), [bridge])
    assert outcome[0][1].startswith("skipped")
    assert foreign.read_bytes() == b"\x7fELF go binary"
    assert launcher.install(str(bindir), [bridge], force=True) == [("bridge", "updated")]
    marker = launcher.read_marker(str(foreign))
    assert marker is not None and (marker.type, marker.target) == (bridge.type, bridge.target)


def test_launcher_runs_as_an_executable(tmp_path: Path) -> None:
    launcher.install(str(tmp_path), [SPEC])
    env = {"PATH": os.environ["PATH"], "CNI_COMMAND": "VERSION"}
    out = subprocess.run([str(tmp_path / "fixed-ipam")], env=env, capture_output=True,
                         check=True)
    assert json.loads(out.stdout)["cniVersion"] == "1.1.0"


def test_marker_rejects_other_files(tmp_path: Path) -> None:
    other = tmp_path / "script"
    other.write_text("#!/bin/sh\n# corecni-launcher: {not json\n")
    assert launcher.read_marker(str(other)) is None
    assert launcher.read_marker(str(tmp_path / "missing")) is None


# ---- the native shim ---------------------------------------------------------

def _shim() -> str:
    shim = launcher.shim_binary()
    if shim is None:
        pytest.fail("corecni/corecni-shim is not built (make venv builds it)")
    return shim


def test_install_with_shim_keeps_launcher_beside_it(tmp_path: Path) -> None:
    from corecni.registry import Registry

    bindir = tmp_path / "bin"
    assert launcher.install(str(bindir), [SPEC], shim=_shim()) == \
        [("fixed-ipam", "installed (shim)")]
    path = bindir / "fixed-ipam"
    assert launcher.is_shim(str(path))
    assert os.path.samefile(path, bindir / launcher.LAUNCHER_DIR / launcher.SHIM_NAME)
    assert launcher.read_marker(str(bindir / launcher.LAUNCHER_DIR / "fixed-ipam")) == SPEC
    # the registry follows the shim to its launcher: corecni runs the plugin in-process
    marker = launcher.read_marker(str(path))
    assert marker is not None and (marker.type, marker.target) == (SPEC.type, SPEC.target)
    assert marker.sys_path  # where the plugin imports from (see the test below)
    ref = Registry(path=(str(bindir),), entry_points=False).resolve("fixed-ipam")
    assert (ref.kind, ref.source, ref.location) == ("python", "launcher", SPEC.target)
    # a shim is corecni's: updated in place, and replaced by a launcher on request
    assert launcher.install(str(bindir), [SPEC], shim=_shim()) == \
        [("fixed-ipam", "updated (shim)")]
    assert launcher.install(str(bindir), [SPEC]) == [("fixed-ipam", "updated")]
    assert not launcher.is_shim(str(path)) and launcher.read_marker(str(path)) == SPEC


def test_shim_never_overwrites_foreign_files(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    foreign = bindir / "fixed-ipam"
    foreign.write_bytes(b"\x7fELF go binary")
    outcome = launcher.install(str(bindir), [SPEC], shim=_shim())
    assert outcome[0][1].startswith("skipped")
    assert foreign.read_bytes() == b"\x7fELF go binary"
    assert not launcher.is_corecni(str(foreign))
    assert launcher.install(str(bindir), [SPEC], shim=_shim(), force=True)[0][1] == \
        "updated (shim)"
    assert launcher.is_shim(str(foreign))


def test_a_go_plugin_is_not_read_as_a_shim() -> None:
    go = "/usr/lib/cni/host-local"
    if not os.path.exists(go):
        pytest.skip("containernetworking-plugins not installed")
    assert not launcher.is_shim(go) and launcher.read_marker(go) is None


def _env(command: str, socket: Path, **extra: str) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "CNI_COMMAND": command, "CNI_CONTAINERID": "c1",
            "CNI_NETNS": "/proc/self/ns/net", "CNI_IFNAME": "eth0", "CNI_PATH": "/nonexistent",
            "CORECNI_DAEMON_SOCKET": str(socket), "CNI_NETNS_OVERRIDE": "1",  # own ns as ctr
            **extra}


def test_shim_without_daemon_falls_back_to_the_launcher(tmp_path: Path) -> None:
    """No daemon: the launcher serves the call (stdin intact), one line on stderr."""
    launcher.install(str(tmp_path / "bin"), [SPEC], shim=_shim())
    exe = str(tmp_path / "bin" / "fixed-ipam")
    conf = json.dumps({"cniVersion": "1.0.0", "name": "n", "type": "fixed-ipam"}).encode()
    for command in ("ADD", "DEL", "VERSION"):
        out = subprocess.run([exe], input=conf, env=_env(command, tmp_path / "none.sock"),
                             capture_output=True, check=False)
        assert out.returncode == 0, out
        assert out.stderr.decode().count("\n") == 1
        assert b"no corecni daemon at" in out.stderr and b"Python launcher" in out.stderr
    added = subprocess.run([exe], input=conf, env=_env("ADD", tmp_path / "none.sock"),
                           capture_output=True, check=True)
    assert json.loads(added.stdout)["ips"][0]["address"] == "10.77.0.5/24"


def test_shim_with_no_launcher_is_a_cni_error(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    launcher.install(str(bindir), [SPEC], shim=_shim())
    os.unlink(bindir / launcher.LAUNCHER_DIR / "fixed-ipam")
    out = subprocess.run([str(bindir / "fixed-ipam")], input=b'{"cniVersion":"0.4.0"}',
                         env=_env("ADD", tmp_path / "none.sock"), capture_output=True,
                         check=False)
    assert out.returncode == 1
    error = json.loads(out.stdout)
    assert (error["code"], error["cniVersion"]) == (5, "0.4.0")
    assert "launcher" in error["msg"]


def test_marker_carries_the_plugins_import_root(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Another corecni process (started -I -S, seeing no .pth or editable finder) that finds
    the launcher on CNI_PATH can still load the plugin in-process."""
    import subprocess
    import sys

    from corecni import launcher

    src = tmp_path / "src"
    (src / "extplug").mkdir(parents=True)
    (src / "extplug" / "__init__.py").write_text(
        "from corecni.kit import Request, Result, hookimpl\n\n"
        "@hookimpl\ndef ipam_add(request: Request) -> Result:\n"
        "    return Result(cni_version='1.0.0')\n\n"
        "@hookimpl\ndef ipam_del(request: Request) -> None: ...\n\n"
        "@hookimpl\ndef ipam_check(request: Request) -> None: ...\n")
    monkeypatch.syspath_prepend(str(src))
    bindir = tmp_path / "bin"
    launcher.install(str(bindir), [launcher.LauncherSpec("extplug", "extplug")])
    spec = launcher.read_marker(str(bindir / "extplug"))
    assert spec is not None and str(src) in spec.sys_path
    corecni_root = os.path.dirname(os.path.dirname(launcher.__file__))
    path = [p for p in (corecni_root, *sys.path) if p != str(src)]  # only the marker knows src
    code = ("import sys; from corecni.registry import Registry; "
            f"r = Registry(path=({str(bindir)!r},), entry_points=False); "
            "print(r.load(r.resolve('extplug')).family)")
    out = subprocess.run([sys.executable, "-I", "-S", "-c",
                          f"import sys; sys.path[:0] = {path!r}; " + code],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ipam"
