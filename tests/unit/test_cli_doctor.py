"""``corecni doctor`` lists every config file with its state, and a network that lives in a
file that cannot be loaded is named with the file and the reason (issue 12 item 16)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = str(Path(__file__).resolve().parents[2])


def corecni(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "corecni.cli", *args], env=env,
                          capture_output=True, text=True, check=False, cwd=REPO)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    confdir = tmp_path / "net.d"
    confdir.mkdir()
    (confdir / "10-good.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0", "name": "good",
        "plugins": [{"type": "bridge"}, {"type": "portmap"}]}))
    (confdir / "20-syntax.conflist").write_text('{"cniVersion": "1.0.0", "name": "syntax",')
    (confdir / "30-noversion.conflist").write_text(json.dumps({
        "name": "noversion", "plugins": [{"type": "bridge"}]}))
    (confdir / "40-badtype.conf").write_text(json.dumps({
        "cniVersion": "1.0.0", "name": "badtype", "type": "../bridge"}))
    (confdir / "notes.txt").write_text("not a config")
    return {**os.environ, "NETCONFPATH": str(confdir), "CNI_PATH": str(tmp_path / "bin"),
            "CNI_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": REPO,
            "CORECNI_NET_BACKEND": "pyroute2"}


def test_doctor_lists_every_config_file_with_its_state(env: dict[str, str]) -> None:
    out = corecni("doctor", env=env)
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines()
             if line.startswith("  ") and line.split()[0].endswith((".conf", ".conflist"))}
    assert set(lines) == {"10-good.conflist", "20-syntax.conflist", "30-noversion.conflist",
                          "40-badtype.conf"}
    assert "ok" in lines["10-good.conflist"] and "'good'" in lines["10-good.conflist"]
    assert "bridge, portmap" in lines["10-good.conflist"]
    assert "error parsing" in lines["20-syntax.conflist"]
    assert "cniVersion" in lines["30-noversion.conflist"]
    assert "invalid plugin type" in lines["40-badtype.conf"]
    assert f"config dir: {env['NETCONFPATH']} (4 files, 1 loadable)" in out.stdout


@pytest.mark.parametrize(("network", "reason"), [
    ("noversion", "missing 'cniVersion'"),
    ("badtype", "invalid plugin type"),
])
def test_cli_names_the_file_a_network_cannot_be_loaded_from(env: dict[str, str], network: str,
                                                            reason: str) -> None:
    out = corecni("validate", network, env=env)
    assert out.returncode == 1
    assert "no network config named" not in out.stderr
    assert f"network config {network!r} cannot be loaded" in out.stderr and reason in out.stderr


def test_cli_unknown_network_mentions_the_unloadable_files(env: dict[str, str]) -> None:
    out = corecni("validate", "syntax", env=env)
    assert out.returncode == 1
    assert "20-syntax.conflist" in out.stderr and "error parsing" in out.stderr


def test_doctor_says_when_the_config_dir_is_missing(env: dict[str, str], tmp_path: Path) -> None:
    out = corecni("doctor", env={**env, "NETCONFPATH": str(tmp_path / "nowhere")})
    assert out.returncode == 0, out.stderr
    assert f"config dir: {tmp_path / 'nowhere'}: does not exist" in out.stdout


@pytest.mark.parametrize(("prefer", "order"), [
    ("python", "registered > entry-point > CNI_PATH (prefer=python;"),
    ("path", "CNI_PATH > registered > entry-point (prefer=path;"),
])
def test_doctor_prints_who_serves_a_type_found_several_ways(env: dict[str, str], prefer: str,
                                                            order: str) -> None:
    out = corecni("doctor", env={**env, "CORECNI_PREFER": prefer})
    assert out.returncode == 0, out.stderr
    assert f"lookup order: {order}" in out.stdout
