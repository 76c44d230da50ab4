"""Loading a Python plugin and running one of its hooks: the single run path.

``load_plugin`` puts one plugin (and the observers) into its own pluggy
``PluginManager`` and validates it there, so a broken third-party plugin
fails at load, with its type and the reason. ``LoadedPlugin.run`` is the one
way a CNI command reaches a hook, whether the request came from an exec
(``skel``), from corecni's runtime in-process, or from a delegating plugin.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

import attrs
import pluggy

from corecni import hookspecs
from corecni.request import COMMANDS, Attachment, Delegate, Request
from corecni.spec import version as versions
from corecni.spec.errors import CNIError, ErrorCode
from corecni.spec.result import Result

if TYPE_CHECKING:
    from corecni.net.base import NetBackend
    from corecni.spec.version import VersionInfo

#: re-exported for plugins written against corecni 0.1 (``from corecni.plugin import
#: Request``); new code imports them from ``corecni.kit`` or ``corecni.request``.
__all__ = ["COMMANDS", "FAMILIES", "Attachment", "Delegate", "LoadedPlugin", "PluginLoadError",
           "Request", "as_cni_error", "import_target", "load_plugin"]

#: hook names per family, in (add, del, check) order
FAMILIES: Mapping[str, tuple[str, str, str]] = {
    "interface": ("cni_add", "cni_del", "cni_check"),
    "ipam": ("ipam_add", "ipam_del", "ipam_check"),
    "meta": ("meta_add", "meta_del", "meta_check"),
}


def as_cni_error(exc: BaseException) -> CNIError:
    """Any failure as a spec error: ``CNIError`` as is, anything else code 999."""
    if isinstance(exc, CNIError):
        return exc
    text = str(exc) or type(exc).__name__
    return CNIError(ErrorCode.INTERNAL, text, type(exc).__name__)


class PluginLoadError(CNIError):
    """A Python plugin that cannot be used: import failure or broken hooks."""

    def __init__(self, plugin_type: str, target: str, reason: str) -> None:
        super().__init__(ErrorCode.INVALID_NETWORK_CONFIG,
                         f"plugin {plugin_type!r} ({target}) failed to load", reason)


def import_target(target: str) -> Any:
    """``pkg.mod`` or ``pkg.mod:attr`` -> the module or object."""
    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


@attrs.define
class LoadedPlugin:
    """A Python plugin in its own validated ``PluginManager``."""

    type: str
    target: str
    family: str
    manager: pluggy.PluginManager = attrs.field(repr=False)

    @property
    def hook(self) -> Any:
        return self.manager.hook

    def supported_versions(self) -> tuple[str, ...]:
        listed = self.hook.plugin_supported_versions() or \
            self.hook.cni_supported_versions()  # the 0.1 name, deprecated
        return tuple(listed) if listed else versions.SUPPORTED

    def version_info(self) -> VersionInfo:
        from corecni.spec.version import VersionInfo

        return VersionInfo(cni_version=versions.CURRENT,
                           supported_versions=self.supported_versions())

    def run(self, request: Request) -> Result | None:
        """Run ``request.command`` through the plugin's hooks.

        The result comes back converted to the config's ``cniVersion``, just as
        it would after a round trip through an exec'd plugin's stdout.
        """
        if request.config.cni_version and \
                request.config.cni_version not in self.supported_versions():
            raise CNIError(ErrorCode.INCOMPATIBLE_VERSION, "incompatible CNI versions",
                           f"config is {request.config.cni_version!r}, plugin {self.type!r} "
                           f"supports {list(self.supported_versions())}")
        _require_version_for(request.command, request.config.cni_version)
        if request.net_backend is None:
            request = attrs.evolve(request, net=_node_backend())
        add, delete, check = FAMILIES[self.family]
        hook = self.hook
        command = request.command
        meta = self.family == "meta"
        if command == "ADD":
            kwargs: dict[str, Any] = {"request": request}
            if meta:
                if request.prev_result is None:
                    raise CNIError(ErrorCode.INVALID_NETWORK_CONFIG,
                                   f"plugin {self.type!r} must be chained after an interface "
                                   "plugin (no prevResult)")
                kwargs["prev_result"] = request.prev_result
            result = getattr(hook, add)(**kwargs)
            if not isinstance(result, Result):
                raise CNIError(ErrorCode.INTERNAL, f"plugin {self.type!r} returned no result",
                               f"{add} returned {type(result).__name__}")
            return result.as_version(request.config.cni_version or result.cni_version)
        if command in ("DEL", "CHECK"):
            name = delete if command == "DEL" else check
            kwargs = {"request": request}
            if meta:
                if command == "CHECK" and request.prev_result is None:
                    raise CNIError(ErrorCode.INVALID_NETWORK_CONFIG,
                                   f"plugin {self.type!r}: CHECK needs prevResult")
                kwargs["prev_result"] = request.prev_result
            getattr(hook, name)(**kwargs)
            return None
        if command == "STATUS":
            hook.plugin_status(request=request)
            hook.cni_status(request=request)  # the 0.1 name, deprecated
            return None
        if command == "GC":
            hook.plugin_gc(request=request)
            hook.cni_gc(request=request)  # the 0.1 name, deprecated
            return None
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT, f"unknown CNI_COMMAND: {command}")


class _NodeBackend:
    """The node's configured link layer (``corecni.net.get_backend()``), chosen on first
    use: an IPAM plugin that never touches a link never imports the link layer."""

    def __init__(self) -> None:
        self._backend: NetBackend | None = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if self._backend is None:
            from corecni.net import get_backend

            self._backend = get_backend()
        return getattr(self._backend, name)


def _node_backend() -> NetBackend:
    return cast("NetBackend", _NodeBackend())


#: the first spec version that has each command (Go's skel refuses earlier ones)
_SINCE = {"CHECK": "0.4.0", "GC": "1.1.0", "STATUS": "1.1.0"}


def _require_version_for(command: str, cni_version: str) -> None:
    since = _SINCE.get(command)
    if since and cni_version and not versions.at_least(cni_version, since):
        raise CNIError(ErrorCode.INCOMPATIBLE_VERSION,
                       f"config version does not allow {command}",
                       f"{command} needs cniVersion {since} or later, config is {cni_version}")


def _family_of(plugin_type: str, target: str, impl_names: set[str]) -> str:
    found = [fam for fam, hooks in FAMILIES.items() if impl_names & set(hooks)]
    if not found:
        raise PluginLoadError(plugin_type, target,
                              "implements none of cni_add, ipam_add or meta_add")
    if len(found) > 1:
        raise PluginLoadError(plugin_type, target,
                              f"mixes hook families {found}: a plugin is one of interface, "
                              "ipam or meta")
    family = found[0]
    missing = [h for h in FAMILIES[family] if h not in impl_names]
    if missing:
        raise PluginLoadError(plugin_type, target,
                              f"{family} plugin lacks required hooks: {', '.join(missing)}")
    return family


def load_plugin(plugin_type: str, target: str | ModuleType | object,
                observers: Sequence[str | object] = ()) -> LoadedPlugin:
    """Import and validate one plugin (with the given observers) in its own manager."""
    label = target if isinstance(target, str) else getattr(target, "__name__", repr(target))
    try:
        obj = import_target(target) if isinstance(target, str) else target
    except Exception as exc:  # an import error of a third-party plugin is its load failure
        raise PluginLoadError(plugin_type, label, f"{type(exc).__name__}: {exc}") from exc
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    try:
        manager.register(obj, name=f"plugin:{plugin_type}")
        impl_names = {caller.name for caller in manager.get_hookcallers(obj) or ()}
        family = _family_of(plugin_type, label, impl_names)
        for observer in observers:
            watcher = import_target(observer) if isinstance(observer, str) else observer
            manager.register(watcher)
        manager.check_pending()
    except CNIError:
        raise
    except Exception as exc:  # pluggy's validation errors name the bad hook
        raise PluginLoadError(plugin_type, label, f"{type(exc).__name__}: {exc}") from exc
    return LoadedPlugin(type=plugin_type, target=label, family=family, manager=manager)
