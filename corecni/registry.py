"""Discovery: which implementation serves a CNI ``type``, and how it is called.

Lookup order for a type:

1. plugins registered on the registry by the embedding program;
2. Python plugins published under the entry-point group ``corecni.plugins``
   (scanned once, lazily, only when step 1 has no answer);
3. executables on CNI_PATH. A corecni launcher found there is recognised by
   its marker and called in-process; anything else is exec'd.

``in_process`` narrows which types may run in-process (everything else is
exec'd from CNI_PATH), which is how a runtime mixes implementations, e.g.
Go's bridge with corecni's host-local.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Collection, Iterable
from typing import Any, Literal

import attrs

from corecni import launcher
from corecni.plugin import LoadedPlugin, load_plugin
from corecni.spec.config import validate_plugin_type
from corecni.spec.errors import CNIError, ErrorCode

PLUGIN_GROUP = "corecni.plugins"
OBSERVER_GROUP = "corecni.observers"

Kind = Literal["python", "exec"]


@attrs.frozen
class PluginRef:
    type: str
    kind: Kind
    location: str  # import target (python) or executable path (exec)
    source: str  # "registered", "entry-point", "launcher" or "path"
    sys_path: tuple[str, ...] = ()


def _entry_points(group: str) -> list[Any]:
    from importlib.metadata import entry_points

    return list(entry_points(group=group))


def find_in_path(plugin_type: str, path: Iterable[str]) -> str | None:
    for directory in path:
        if not directory:
            continue
        candidate = os.path.join(directory, plugin_type)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


@attrs.define
class Registry:
    path: tuple[str, ...] = ()
    entry_points: bool = True
    in_process: bool | Collection[str] = True
    observers: tuple[str | object, ...] | None = None  # None: from entry points
    _registered: dict[str, str | object] = attrs.field(factory=dict, alias="_registered")
    _eps: dict[str, str] | None = attrs.field(default=None, alias="_eps")
    _loaded: dict[str, LoadedPlugin] = attrs.field(factory=dict, alias="_loaded")

    def register(self, plugin_type: str, target: str | object) -> None:
        """Serve ``plugin_type`` from a Python plugin (module path or object)."""
        self._registered[validate_plugin_type(plugin_type)] = target
        self._loaded.pop(plugin_type, None)

    def may_run_in_process(self, plugin_type: str) -> bool:
        if isinstance(self.in_process, bool):
            return self.in_process
        return plugin_type in self.in_process

    def _entry_point_targets(self) -> dict[str, str]:
        if self._eps is None:
            self._eps = {ep.name: ep.value for ep in _entry_points(PLUGIN_GROUP)} \
                if self.entry_points else {}
        return self._eps

    def observer_targets(self) -> tuple[str | object, ...]:
        if self.observers is None:
            self.observers = tuple(ep.value for ep in _entry_points(OBSERVER_GROUP)) \
                if self.entry_points else ()
        return self.observers

    def resolve(self, plugin_type: str) -> PluginRef:
        validate_plugin_type(plugin_type)
        if self.may_run_in_process(plugin_type):
            if plugin_type in self._registered:
                target = self._registered[plugin_type]
                return PluginRef(plugin_type, "python",
                                 target if isinstance(target, str) else repr(target), "registered")
            eps = self._entry_point_targets()
            if plugin_type in eps:
                return PluginRef(plugin_type, "python", eps[plugin_type], "entry-point")
        exe = find_in_path(plugin_type, self.path)
        if exe is None:
            raise CNIError(ErrorCode.INVALID_NETWORK_CONFIG,
                           f"failed to find plugin {plugin_type!r} in path {list(self.path)}",
                           plugin=plugin_type)
        spec = launcher.read_marker(exe)
        if spec is not None and self.may_run_in_process(plugin_type):
            return PluginRef(plugin_type, "python", spec.target, "launcher", spec.sys_path)
        return PluginRef(plugin_type, "exec", exe, "path")

    def load(self, ref: PluginRef) -> LoadedPlugin:
        """The validated Python plugin behind ``ref`` (loaded once per registry)."""
        if ref.kind != "python":
            raise ValueError(f"{ref.type} is not a Python plugin")
        cached = self._loaded.get(ref.type)
        if cached is not None:
            return cached
        for entry in ref.sys_path:
            if entry not in sys.path:
                sys.path.insert(0, entry)
        target = self._registered.get(ref.type, ref.location) if ref.source == "registered" \
            else ref.location
        plugin = load_plugin(ref.type, target, self.observer_targets())
        self._loaded[ref.type] = plugin
        return plugin

    def discover(self) -> list[PluginRef]:
        """Every type this registry could serve, first match per type (for ``corecni plugins``)."""
        seen: dict[str, PluginRef] = {}
        names: list[str] = list(self._registered)
        if self.entry_points:
            names += list(self._entry_point_targets())
        for directory in self.path:
            if os.path.isdir(directory):
                names += sorted(os.listdir(directory))
        for name in names:
            if name in seen:
                continue
            try:
                seen[name] = self.resolve(name)
            except CNIError:
                continue
        return sorted(seen.values(), key=lambda r: r.type)


def split_path(value: str | None) -> tuple[str, ...]:
    return tuple(p for p in (value or "").split(os.pathsep) if p)
