"""Launchers: the small executables ``corecni install`` puts into /opt/cni/bin.

A launcher makes a Python plugin exec-able by any runtime (Go libcni, podman,
containerd). Its second line is a marker naming the plugin's import target, so

* the launcher itself starts the plugin without scanning entry points (the
  scan costs tens of milliseconds on every exec), and
* corecni, finding a launcher on CNI_PATH, calls the plugin in-process instead
  of spawning a second interpreter.

With the native shim (``install(..., shim=path)``, the default of ``corecni
install``), ``D/<type>`` is the small C program that forwards the call to
``corecni daemon`` and the launcher moves to ``D/.corecni/<type>``, where the
shim falls back to it when no daemon answers. One shim binary serves every
type (hard links of ``D/.corecni/corecni-shim``); it carries ``SHIM_MARKER``, so
``read_marker`` recognises it and follows it to its launcher: foreign files
are still never overwritten, and corecni still runs the plugin in-process.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import attrs

MARKER = "# corecni-launcher: "
_HEAD = 1024
#: bytes inside the shim binary (native/shim/shim.c) that identify it as corecni's
SHIM_MARKER = b"corecni-shim-marker:v1"
SHIM_NAME = "corecni-shim"
#: the hidden directory beside the shims that holds their launchers and the shim itself
LAUNCHER_DIR = ".corecni"
_SHIM_HEAD = 4096  # the shim's marker is an ELF note placed in its first kilobytes


@attrs.frozen
class LauncherSpec:
    type: str
    target: str
    observers: tuple[str, ...] = ()
    sys_path: tuple[str, ...] = ()

    def to_marker(self) -> str:
        data: dict[str, Any] = {"type": self.type, "target": self.target}
        if self.observers:
            data["observers"] = list(self.observers)
        if self.sys_path:
            data["sys_path"] = list(self.sys_path)
        return MARKER + json.dumps(data, separators=(",", ":"))


def _import_root(module: str) -> str | None:
    """The sys.path entry ``module`` is imported from (editable installs included)."""
    import importlib.util

    try:
        found = importlib.util.find_spec(module.partition(".")[0])
    except (ImportError, ValueError):
        return None
    if found is None or not found.origin or found.origin in ("built-in", "frozen"):
        return None
    origin = os.path.dirname(found.origin)
    if found.submodule_search_locations:  # a package: its parent is the root
        origin = os.path.dirname(origin)
    return origin


def frozen_path(spec: LauncherSpec) -> list[str] | None:
    """The sys.path the launcher needs, fixed at install time, or None if unknowable.

    With it the launcher runs ``python -I -S``: no ``site`` processing (``.pth``
    files, editable-install finders), which is ~15-20 ms of every exec.
    """
    roots = []
    for module in ("corecni", spec.target.partition(":")[0],
                   *(o.partition(":")[0] for o in spec.observers)):
        root = _import_root(module)
        if root is None:
            return None
        roots.append(root)
    entries = [*spec.sys_path, *roots, *(p for p in sys.path if p and os.path.isdir(p))]
    return list(dict.fromkeys(entries))


def render(spec: LauncherSpec, python: str | None = None) -> str:
    interpreter = python or sys.executable
    path = frozen_path(spec) if python is None else None
    # -I: no PYTHON* variables, no user site, no script dir, so the runtime's
    # environment cannot change which code runs as a network plugin; -S on top
    # when the import path could be fixed here.
    flags = "-IS" if path is not None else "-I"
    setup = [f"sys.path[:0] = {path!r}"] if path is not None else \
        [f"sys.path.insert(0, {p!r})" for p in spec.sys_path]
    # The marker names where the plugin imports from, so another corecni process that
    # finds this launcher on CNI_PATH (and runs the plugin in-process) can import it
    # too, even from an editable install its own -S start-up never sees.
    roots = tuple(r for r in (_import_root(spec.target.partition(":")[0]),) if r)
    marked = attrs.evolve(spec, sys_path=tuple(dict.fromkeys((*spec.sys_path, *roots))))
    return "\n".join([
        f"#!{interpreter} {flags}",
        marked.to_marker(),
        "# Written by `corecni install`; re-run it to update. Do not edit.",
        "import sys",
        *setup,
        "from corecni.skel import run",
        f"sys.exit(run({spec.type!r}, {spec.target!r}, observers={spec.observers!r}))",
        "",
    ])


def _read_launcher(path: str) -> LauncherSpec | None:
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEAD)
    except OSError:
        return None
    lines = head.split(b"\n", 2)
    if len(lines) < 2 or not lines[1].startswith(MARKER.encode()):
        return None
    try:
        data = json.loads(lines[1][len(MARKER):])
        return LauncherSpec(type=str(data["type"]), target=str(data["target"]),
                            observers=tuple(data.get("observers", ())),
                            sys_path=tuple(data.get("sys_path", ())))
    except (ValueError, KeyError, TypeError):
        return None


def is_shim(path: str) -> bool:
    """True when ``path`` is corecni's native shim: an ELF file whose first block carries
    ``SHIM_MARKER`` (an ELF note, so this reads 4 KB, never a whole Go binary)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(_SHIM_HEAD)
    except OSError:
        return False
    return data.startswith(b"\x7fELF") and SHIM_MARKER in data


def launcher_path(directory: str, plugin_type: str) -> str:
    """Where the launcher behind the shim ``directory/plugin_type`` lives."""
    return os.path.join(directory, LAUNCHER_DIR, plugin_type)


def read_marker(path: str) -> LauncherSpec | None:
    """The launcher spec in ``path``, or None if it is not a corecni launcher.

    A shim is followed to its launcher (``launcher_path``); a shim without one
    is still corecni's (``is_corecni``) but names no plugin.
    """
    spec = _read_launcher(path)
    if spec is None and is_shim(path):
        spec = _read_launcher(launcher_path(os.path.dirname(path), os.path.basename(path)))
    return spec


def is_corecni(path: str) -> bool:
    """Written by ``corecni install`` (a launcher or a shim): safe to replace."""
    return _read_launcher(path) is not None or is_shim(path)


def shim_binary() -> str | None:
    """The shim built with this package (``corecni/corecni-shim``), if it was built."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), SHIM_NAME)
    return path if os.path.isfile(path) and os.access(path, os.X_OK) and is_shim(path) \
        else None


def _write_launcher(dest: str, spec: LauncherSpec, python: str | None) -> None:
    tmp = f"{dest}.corecni-tmp"
    with open(tmp, "w") as fh:
        fh.write(render(spec, python))
    os.chmod(tmp, 0o755)
    os.replace(tmp, dest)  # atomic: a runtime exec'ing it sees old or new, never half


def _place_shim(master: str, dest: str) -> None:
    """``dest`` becomes a hard link of ``master`` (a copy where links are refused)."""
    import shutil

    tmp = f"{dest}.corecni-tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    try:
        os.link(master, tmp)
    except OSError:
        shutil.copyfile(master, tmp)
        os.chmod(tmp, 0o755)
    os.replace(tmp, dest)


def install(directory: str, specs: Sequence[LauncherSpec], *, force: bool = False,
            python: str | None = None, shim: str | None = None) -> list[tuple[str, str]]:
    """Write one launcher per spec (or, with ``shim``, the shim and its launcher);
    return (type, what happened) pairs.

    A file that exists and is not corecni's is left alone unless ``force``: it is
    probably another implementation of that plugin type.
    """
    os.makedirs(directory, exist_ok=True)
    master = ""
    if shim is not None:
        os.makedirs(os.path.join(directory, LAUNCHER_DIR), mode=0o755, exist_ok=True)
        master = os.path.join(directory, LAUNCHER_DIR, SHIM_NAME)
        if not (os.path.exists(master) and os.path.samefile(shim, master)):
            import shutil

            shutil.copyfile(shim, f"{master}.corecni-tmp")
            os.chmod(f"{master}.corecni-tmp", 0o755)
            os.replace(f"{master}.corecni-tmp", master)
    outcome = []
    for spec in specs:
        dest = os.path.join(directory, spec.type)
        existing = os.path.lexists(dest)
        if existing and not is_corecni(dest) and not force:
            outcome.append((spec.type, "skipped: not written by corecni (use --force)"))
            continue
        if master:
            _write_launcher(launcher_path(directory, spec.type), spec, python)
            _place_shim(master, dest)
        else:
            _write_launcher(dest, spec, python)
        what = "updated" if existing else "installed"
        outcome.append((spec.type, f"{what} (shim)" if master else what))
    return outcome
