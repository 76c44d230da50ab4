"""Launchers: the small executables ``corecni install`` puts into /opt/cni/bin.

A launcher makes a Python plugin exec-able by any runtime (Go libcni, podman,
containerd). Its second line is a marker naming the plugin's import target, so

* the launcher itself starts the plugin without scanning entry points (the
  scan costs tens of milliseconds on every exec), and
* corecni, finding a launcher on CNI_PATH, calls the plugin in-process instead
  of spawning a second interpreter.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import attrs

MARKER = "# corecni-launcher: "
_HEAD = 1024


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
    return "\n".join([
        f"#!{interpreter} {flags}",
        spec.to_marker(),
        "# Written by `corecni install`; re-run it to update. Do not edit.",
        "import sys",
        *setup,
        "from corecni.skel import run",
        f"sys.exit(run({spec.type!r}, {spec.target!r}, observers={spec.observers!r}))",
        "",
    ])


def read_marker(path: str) -> LauncherSpec | None:
    """The launcher spec in ``path``, or None if it is not a corecni launcher."""
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


def install(directory: str, specs: Sequence[LauncherSpec], *, force: bool = False,
            python: str | None = None) -> list[tuple[str, str]]:
    """Write one launcher per spec; return (type, what happened) pairs.

    A file that exists and is not a corecni launcher is left alone unless
    ``force``: it is probably another implementation of that plugin type.
    """
    os.makedirs(directory, exist_ok=True)
    outcome = []
    for spec in specs:
        dest = os.path.join(directory, spec.type)
        existing = os.path.lexists(dest)
        if existing and read_marker(dest) is None and not force:
            outcome.append((spec.type, "skipped: not written by corecni (use --force)"))
            continue
        tmp = f"{dest}.corecni-tmp"
        with open(tmp, "w") as fh:
            fh.write(render(spec, python))
        os.chmod(tmp, 0o755)
        os.replace(tmp, dest)  # atomic: a runtime exec'ing it sees old or new, never half
        outcome.append((spec.type, "updated" if existing else "installed"))
    return outcome
