"""Discovery: which implementation serves a CNI ``type``, and how it is called.

Lookup order for a type, with ``prefer="python"`` (the default):

1. plugins registered on the registry by the embedding program;
2. Python plugins published under the entry-point group ``corecni.plugins``
   (scanned once, lazily, only when step 1 has no answer);
3. executables on CNI_PATH, in directory order. A corecni launcher found there
   is recognised by its marker and called in-process; anything else is exec'd.

``prefer="path"`` puts step 3 first: CNI_PATH order decides, as in libcni,
and the in-process sources only serve types no CNI_PATH directory has. The
choice is never silent: ``candidates()`` lists every implementation of a type
in precedence order, so ``corecni plugins`` can show which one wins and what
it shadows.

``in_process`` narrows which types may run in-process (everything else is
exec'd from CNI_PATH), which is how a runtime mixes implementations, e.g.
Go's bridge with corecni's host-local.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Collection, Iterable, Iterator
from typing import Any, Literal

import attrs

from corecni import launcher
from corecni.plugin import LoadedPlugin, load_plugin
from corecni.spec.config import validate_plugin_type
from corecni.spec.errors import CNIError, ErrorCode

PLUGIN_GROUP = "corecni.plugins"
OBSERVER_GROUP = "corecni.observers"

Kind = Literal["python", "exec"]
Prefer = Literal["python", "path"]
PREFER_CHOICES: tuple[Prefer, ...] = ("python", "path")


def precedence(prefer: Prefer) -> tuple[str, ...]:
    """The order sources are tried in, by ``PluginRef.source`` family, for humans."""
    python = ("registered", "entry-point")
    return (*python, "CNI_PATH") if prefer == "python" else ("CNI_PATH", *python)


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


def find_all_in_path(plugin_type: str, path: Iterable[str]) -> Iterator[str]:
    """Executables named ``plugin_type`` on ``path``, in directory order (lazily)."""
    for directory in path:
        if not directory:
            continue
        candidate = os.path.join(directory, plugin_type)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            yield candidate


@attrs.define
class Registry:
    """Which implementation serves each CNI ``type``.

    ``path`` is CNI_PATH; ``entry_points`` turns the entry-point scan on/off;
    ``in_process`` narrows which types may run in-process; ``prefer`` says who
    wins when a type is both a Python plugin and an executable on CNI_PATH
    (``"python"``, the default, or ``"path"``: CNI_PATH order, as libcni).
    """

    path: tuple[str, ...] = ()
    entry_points: bool = True
    in_process: bool | Collection[str] = True
    prefer: Prefer = attrs.field(default="python", validator=attrs.validators.in_(PREFER_CHOICES))
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

    def _in_process_candidates(self, plugin_type: str) -> Iterator[PluginRef]:
        if not self.may_run_in_process(plugin_type):
            return
        if plugin_type in self._registered:
            target = self._registered[plugin_type]
            yield PluginRef(plugin_type, "python",
                            target if isinstance(target, str) else repr(target), "registered")
        eps = self._entry_point_targets()
        if plugin_type in eps:
            yield PluginRef(plugin_type, "python", eps[plugin_type], "entry-point")

    def _path_candidates(self, plugin_type: str) -> Iterator[PluginRef]:
        for exe in find_all_in_path(plugin_type, self.path):
            spec = launcher.read_marker(exe)
            if spec is not None and self.may_run_in_process(plugin_type):
                yield PluginRef(plugin_type, "python", spec.target, "launcher", spec.sys_path)
            else:
                yield PluginRef(plugin_type, "exec", exe, "path")

    def _candidates(self, plugin_type: str) -> Iterator[PluginRef]:
        """Every implementation of ``plugin_type``, lazily, in precedence order."""
        if self.prefer == "path":
            yield from self._path_candidates(plugin_type)
            yield from self._in_process_candidates(plugin_type)
        else:
            yield from self._in_process_candidates(plugin_type)
            yield from self._path_candidates(plugin_type)

    def candidates(self, plugin_type: str) -> list[PluginRef]:
        """Every implementation of ``plugin_type``: the first wins, the rest are shadowed."""
        validate_plugin_type(plugin_type)
        return list(self._candidates(plugin_type))

    def resolve(self, plugin_type: str) -> PluginRef:
        """The implementation that serves ``plugin_type`` (the first candidate)."""
        validate_plugin_type(plugin_type)
        ref = next(self._candidates(plugin_type), None)
        if ref is None:
            raise CNIError(ErrorCode.INVALID_NETWORK_CONFIG,
                           f"failed to find plugin {plugin_type!r} in path {list(self.path)}",
                           plugin=plugin_type)
        return ref

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

    def _known_types(self) -> list[str]:
        names: list[str] = list(self._registered)
        if self.entry_points:
            names += list(self._entry_point_targets())
        for directory in self.path:
            if os.path.isdir(directory):
                names += sorted(os.listdir(directory))
        return sorted(set(names))

    def survey(self) -> list[list[PluginRef]]:
        """For every type this registry could serve, its candidates (winner first)."""
        found = []
        for name in self._known_types():
            try:
                refs = self.candidates(name)
            except CNIError:  # a file on CNI_PATH whose name is no valid type
                continue
            if refs:
                found.append(refs)
        return found

    def discover(self) -> list[PluginRef]:
        """Every type this registry could serve, the winning implementation of each."""
        return [refs[0] for refs in self.survey()]


def split_path(value: str | None) -> tuple[str, ...]:
    return tuple(p for p in (value or "").split(os.pathsep) if p)
