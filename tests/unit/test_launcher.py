"""``corecni install``: launchers are written, updated, and never clobber a stranger."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from corecni import launcher

REPO = str(Path(__file__).resolve().parents[2])
SPEC = launcher.LauncherSpec("fixed-ipam", "tests.plugins.fixed_ipam", sys_path=(REPO,))


def test_install_update_and_refuse_foreign(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    assert launcher.install(str(bindir), [SPEC]) == [("fixed-ipam", "installed")]
    path = bindir / "fixed-ipam"
    assert os.access(path, os.X_OK)
    assert launcher.read_marker(str(path)) == SPEC
    assert launcher.install(str(bindir), [SPEC]) == [("fixed-ipam", "updated")]

    foreign = bindir / "bridge"
    foreign.write_bytes(b"\x7fELF go binary")
    bridge = launcher.LauncherSpec("bridge", "tests.plugins.fake_iface")
    outcome = launcher.install(str(bindir), [bridge])
    assert outcome[0][1].startswith("skipped")
    assert foreign.read_bytes() == b"\x7fELF go binary"
    assert launcher.install(str(bindir), [bridge], force=True) == [("bridge", "updated")]
    assert launcher.read_marker(str(foreign)) == bridge


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
