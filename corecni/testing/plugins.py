"""Finding plugins and making them exec-able: entry points, launchers, a test CNI_PATH.

A plugin under test is exec'd exactly as a node would run it: through the
launcher ``corecni install`` writes (``corecni.launcher``). Its chain partners
(the IPAM plugin an interface plugin delegates to, the interface plugin a meta
plugin follows) are either corecni's installed plugins (the ``corecni.plugins``
entry points) or Go's reference plugins (Debian's containernetworking-plugins
in ``/usr/lib/cni``), gathered into one temporary directory that serves as
CNI_PATH (``cni_bin_dir``; the ``chain_partners`` fixture).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Literal

from corecni import launcher

#: where Debian's containernetworking-plugins put Go's reference plugins
GO_PLUGINS = "/usr/lib/cni"
#: the entry-point group corecni discovers Python plugins in
PLUGIN_GROUP = "corecni.plugins"


def entry_point_plugins() -> dict[str, str]:
    """Every installed Python plugin: CNI type -> import target (``corecni.plugins``)."""
    return {ep.name: ep.value for ep in entry_points(group=PLUGIN_GROUP)}


def plugin_target(plugin_type: str) -> str:
    """The import target of the installed plugin serving ``plugin_type``."""
    found = entry_point_plugins().get(plugin_type)
    if found is None:
        raise LookupError(f"no installed corecni plugin of type {plugin_type!r} "
                          f"(entry-point group {PLUGIN_GROUP!r})")
    return found


def go_plugin_path(plugin_type: str) -> str | None:
    """Go's ``plugin_type`` binary, when Debian's containernetworking-plugins has it."""
    binary = os.path.join(GO_PLUGINS, plugin_type)
    return binary if os.access(binary, os.X_OK) else None


def import_root(target: str) -> str | None:
    """The ``sys.path`` entry the module of ``target`` (``pkg.mod[:attr]``) imports from."""
    top = target.partition(":")[0].partition(".")[0]
    try:
        found = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if found is None or not found.origin or found.origin in ("built-in", "frozen"):
        return None
    origin = os.path.dirname(found.origin)
    return os.path.dirname(origin) if found.submodule_search_locations else origin


def install_launchers(bindir: str | os.PathLike[str],
                      plugins: Mapping[str, str] | Iterable[str]) -> dict[str, str]:
    """Write a launcher per plugin into ``bindir`` (as ``corecni install`` does); their paths.

    ``plugins`` maps CNI types to import targets, or lists types of installed
    plugins (their targets come from the entry points). Each launcher's marker
    names its plugin's import root, so a Python plugin that finds it on CNI_PATH
    and runs it in-process can import it even when the two plugins were
    installed into different places (an editable install, ``pip --target``).
    """
    targets = dict(plugins) if isinstance(plugins, Mapping) \
        else {t: plugin_target(t) for t in plugins}
    specs = []
    for plugin_type, target in targets.items():
        root = import_root(target)
        specs.append(launcher.LauncherSpec(plugin_type, target,
                                           sys_path=(root,) if root else ()))
    launcher.install(os.fspath(bindir), specs, force=True)
    return {t: os.path.join(os.fspath(bindir), t) for t in targets}


def cni_bin_dir(bindir: str | os.PathLike[str], *,
                ours: Mapping[str, str] | Iterable[str] | None = None, go: bool = True,
                prefer: Literal["corecni", "go"] = "corecni") -> str:
    """One directory holding a whole plugin set, like a node's ``/opt/cni/bin``; its path.

    ``ours``: corecni plugins to install launchers for (default: every installed
    one). ``go``: also link Go's reference plugins in, when present. When both
    have a type, ``prefer`` says which one serves it.
    """
    directory = Path(bindir)
    directory.mkdir(parents=True, exist_ok=True)
    targets = dict(ours) if isinstance(ours, Mapping) else \
        entry_point_plugins() if ours is None else {t: plugin_target(t) for t in ours}
    go_types = sorted(os.listdir(GO_PLUGINS)) if go and os.path.isdir(GO_PLUGINS) else []
    if prefer == "go":
        targets = {t: v for t, v in targets.items() if t not in go_types}
    install_launchers(directory, targets)
    for name in go_types:
        source = os.path.join(GO_PLUGINS, name)
        dest = directory / name
        if name not in targets and os.access(source, os.X_OK) and not dest.exists():
            dest.symlink_to(source)
    return str(directory)
