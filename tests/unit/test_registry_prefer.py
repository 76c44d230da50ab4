"""Who serves a type found both as a Python plugin and on CNI_PATH: explicit, visible,
switchable (``Registry(prefer=...)``, ``--prefer``/``CORECNI_PREFER``, ``corecni plugins``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from corecni import launcher
from corecni.registry import Registry, precedence

REPO = str(Path(__file__).resolve().parents[2])
OLD_VERSION = {"cniVersion": "0.4.0", "supportedVersions": ["0.3.1", "0.4.0"]}


def _script(path: Path) -> Path:
    """A foreign (non-corecni) plugin executable answering VERSION with 0.4.0."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho '{json.dumps(OLD_VERSION)}'\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[str, str]:
    first, second = tmp_path / "first", tmp_path / "second"
    launcher.install(str(first), [launcher.LauncherSpec(
        "fixed-ipam", "tests.plugins.fixed_ipam", sys_path=(REPO,))])
    _script(second / "fixed-ipam")
    _script(second / "only-exec")
    return str(first), str(second)


def _summary(refs: list[object]) -> list[tuple[str, str]]:
    return [(r.source, r.kind) for r in refs]  # type: ignore[attr-defined]


def test_prefer_python_is_the_default(dirs: tuple[str, str]) -> None:
    registry = Registry(path=dirs, entry_points=False)
    registry.register("fixed-ipam", "tests.plugins.fixed_ipam")
    assert registry.prefer == "python"
    assert _summary(registry.candidates("fixed-ipam")) == [
        ("registered", "python"), ("launcher", "python"), ("path", "exec")]
    assert registry.resolve("fixed-ipam").source == "registered"
    assert precedence("python") == ("registered", "entry-point", "CNI_PATH")


def test_prefer_path_follows_cni_path_order(dirs: tuple[str, str]) -> None:
    registry = Registry(path=dirs, entry_points=False, prefer="path")
    registry.register("fixed-ipam", "tests.plugins.fixed_ipam")
    assert _summary(registry.candidates("fixed-ipam")) == [
        ("launcher", "python"), ("path", "exec"), ("registered", "python")]
    assert registry.resolve("fixed-ipam").location == "tests.plugins.fixed_ipam"
    reverse = Registry(path=dirs[::-1], entry_points=False, prefer="path")
    reverse.register("fixed-ipam", "tests.plugins.fixed_ipam")
    ref = reverse.resolve("fixed-ipam")
    assert (ref.kind, ref.location) == ("exec", os.path.join(dirs[1], "fixed-ipam"))
    # a type only registered still resolves, after CNI_PATH had no say
    reverse.register("only-python", "tests.plugins.fixed_ipam")
    assert reverse.resolve("only-python").source == "registered"
    assert precedence("path") == ("CNI_PATH", "registered", "entry-point")


def test_exec_only_registry_lists_only_executables(dirs: tuple[str, str]) -> None:
    registry = Registry(path=dirs, entry_points=False, in_process=False)
    registry.register("fixed-ipam", "tests.plugins.fixed_ipam")
    assert _summary(registry.candidates("fixed-ipam")) == [("path", "exec"), ("path", "exec")]


def test_survey_and_discover(dirs: tuple[str, str]) -> None:
    registry = Registry(path=dirs, entry_points=False)
    survey = {refs[0].type: refs for refs in registry.survey()}
    assert sorted(survey) == ["fixed-ipam", "only-exec"]
    assert len(survey["fixed-ipam"]) == 2 and len(survey["only-exec"]) == 1
    assert [r.type for r in registry.discover()] == ["fixed-ipam", "only-exec"]


def test_prefer_is_validated() -> None:
    with pytest.raises(ValueError):
        Registry(prefer="go")  # type: ignore[arg-type]


# ---- the CLI: --prefer / CORECNI_PREFER change who runs, `corecni plugins` shows it ------

def corecni(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "corecni.cli", *args], env=env,
                          capture_output=True, text=True, check=False, cwd=REPO)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    _script(tmp_path / "bin" / "host-local")  # shadows corecni-contrib's entry point
    base = {k: v for k, v in os.environ.items() if k != "CORECNI_PREFER"}
    return {**base, "CNI_PATH": str(tmp_path / "bin"), "PYTHONPATH": REPO}


def test_prefer_changes_who_answers(env: dict[str, str]) -> None:
    python = json.loads(corecni("version", "host-local", env=env).stdout)
    assert "1.1.0" in python["supportedVersions"]  # corecni-contrib's host-local, in-process
    for how in (["--prefer", "path", "version", "host-local"],
                ["version", "host-local", "--prefer=path"]):
        out = corecni(*how, env=env)
        assert json.loads(out.stdout) == OLD_VERSION, out.stderr
    out = corecni("version", "host-local", env={**env, "CORECNI_PREFER": "path"})
    assert json.loads(out.stdout) == OLD_VERSION
    out = corecni("--prefer", "python", "version", "host-local",
                  env={**env, "CORECNI_PREFER": "path"})  # the flag beats the env var
    assert "1.1.0" in json.loads(out.stdout)["supportedVersions"]


def test_plugins_shows_winner_and_what_it_shadows(env: dict[str, str]) -> None:
    exe = os.path.join(env["CNI_PATH"], "host-local")
    out = corecni("plugins", env=env)
    assert out.returncode == 0, out.stderr
    header, *rows = out.stdout.splitlines()
    assert header.startswith("# order: registered > entry-point > CNI_PATH (prefer=python")
    line = next(r for r in rows if r.split()[0] == "host-local")
    assert line.split()[1:3] == ["in-process", "entry-point"]
    assert line.endswith(f"(shadows path {exe})")
    loopback = next(r for r in rows if r.split()[0] == "loopback")
    assert "shadows" not in loopback  # no executable of that name on this CNI_PATH

    out = corecni("plugins", "--prefer", "path", env=env)
    header, *rows = out.stdout.splitlines()
    assert header.startswith("# order: CNI_PATH > registered > entry-point (prefer=path")
    line = next(r for r in rows if r.split()[0] == "host-local")
    assert line.split()[1:4] == ["exec", "path", exe]
    assert "(shadows entry-point corecni_contrib." in line
