"""The runtime library: libcni's ``CNIConfig`` in Python.

One small type whose public methods are the spec's operations over a network
configuration list; the list operations are loops over one private
single-plugin call. What corecni adds to libcni:

* plugins run in-process when they are Python plugins (same Request, same
  Result as an exec), exec'd from CNI_PATH otherwise;
* arguments are validated before any plugin runs, so a bad container ID,
  ifname or netns never reaches (and never half-configures) a plugin;
* a failed ADD is rolled back: DEL runs, in reverse, over the plugins that
  were reached, before the error is raised (``rollback=False`` gives libcni's
  behaviour of leaving that to the caller);
* every error is a ``CNIError`` carrying the plugin's code, msg and details
  plus which plugin failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from corecni.cache import DEFAULT_DIR, CachedAttachment, ResultCache
from corecni.invoke import DEFAULT_TIMEOUT, Invoker
from corecni.registry import Registry
from corecni.request import Attachment, Request, validate_netns_path
from corecni.spec import version as versions
from corecni.spec.config import (
    NetworkConfigList,
    PluginConfig,
    RuntimeConf,
    validate_attachment,
    validate_container_id,
    validate_ifname,
    validate_network_name,
)
from corecni.spec.errors import CNIError, ErrorCode
from corecni.spec.result import Result
from corecni.spec.version import VersionInfo


def _fail(plugin: PluginConfig, action: str, exc: CNIError) -> CNIError:
    return CNIError(exc.code, f"plugin {plugin.describe()} failed ({action}): {exc.msg}",
                    exc.details, plugin=plugin.type)


@attrs.define
class CNIRuntime:
    """Run network configuration lists against containers."""

    path: tuple[str, ...] = ()
    cache_dir: str = DEFAULT_DIR
    registry: Registry | None = None
    timeout: float | None = DEFAULT_TIMEOUT
    rollback: bool = True
    _invoker: Invoker = attrs.field(init=False, alias="_invoker")

    def __attrs_post_init__(self) -> None:
        # One plugin path: the one plugins are found on is the CNI_PATH they are given.
        if self.registry is None:
            self.registry = Registry(path=tuple(self.path))
        elif not self.path:
            self.path = tuple(self.registry.path)
        elif tuple(self.path) != tuple(self.registry.path):
            raise ValueError(f"CNIRuntime path {list(self.path)} differs from its registry's "
                             f"{list(self.registry.path)}: plugins would get a CNI_PATH other "
                             "than the one they were found on")
        self._invoker = Invoker(self.registry, self.timeout)

    # ---- helpers ------------------------------------------------------------
    def _cache(self, rt: RuntimeConf) -> ResultCache:
        return ResultCache(rt.cache_dir or self.cache_dir)

    @staticmethod
    def _validate(net: NetworkConfigList, rt: RuntimeConf, needs_netns: bool) -> None:
        validate_container_id(rt.container_id)
        validate_network_name(net.name)
        validate_ifname(rt.ifname)
        validate_attachment(net.name, rt.container_id, rt.ifname)  # the cache file name fits
        if needs_netns:
            if not rt.netns:
                raise CNIError(ErrorCode.INVALID_ENVIRONMENT, "missing network namespace path")
            validate_netns_path(rt.netns)

    @staticmethod
    def _build_config(net: NetworkConfigList, plugin: PluginConfig, prev: Result | None,
                      rt: RuntimeConf | None) -> PluginConfig:
        """libcni's ``buildOneConfig``: name, version, prevResult, runtimeConfig."""
        inject: dict[str, Any] = {"name": net.name, "cniVersion": net.cni_version}
        if prev is not None:
            inject["prevResult"] = prev.as_version(net.cni_version).to_dict()
        if rt is not None:
            runtime_config = {cap: rt.capability_args[cap]
                              for cap, on in plugin.capabilities.items()
                              if on and cap in rt.capability_args}
            if runtime_config:
                inject["runtimeConfig"] = runtime_config
        return plugin.inject(**inject)

    def _call(self, command: str, net: NetworkConfigList, plugin: PluginConfig,
              prev: Result | None, rt: RuntimeConf | None,
              extra: dict[str, Any] | None = None) -> Result | None:
        config = self._build_config(net, plugin, prev, rt)
        if extra:
            config = config.inject(**extra)
        request = Request.for_config(
            command,
            config,
            container_id=rt.container_id if rt else "",
            netns=rt.netns if rt else "",
            ifname=rt.ifname if rt else "",
            args=rt.args if rt else (),
            path=tuple(self.path),
        )
        return self._invoker.run(request)

    def _cached_result(self, net: NetworkConfigList, rt: RuntimeConf) -> Result | None:
        """libcni's ``getCachedResult``: None when nothing is cached; an unreadable entry or
        one that cannot be converted to the list's version raises."""
        try:
            result = self._cache(rt).get_result(net.name, rt)
            return result.as_version(net.cni_version) if result is not None else None
        except CNIError as exc:
            raise CNIError(exc.code, f"failed to get network {net.name!r} cached result: "
                           f"{exc.msg}", exc.details) from None

    # ---- the spec's operations over a list ---------------------------------
    def add_network_list(self, net: NetworkConfigList, rt: RuntimeConf) -> Result:
        self._validate(net, rt, needs_netns=True)
        result: Result | None = None
        for index, plugin in enumerate(net.plugins):
            try:
                result = self._call("ADD", net, plugin, result, rt)
            except CNIError as exc:
                if self.rollback:
                    self._rollback(net, rt, index, result)
                raise _fail(plugin, "add", exc) from None
        assert result is not None  # every ADD returns a result or raises
        try:
            self._cache(rt).add(net.name, rt, net.raw_bytes, result)
        except OSError as exc:
            if self.rollback:  # an attachment the runtime cannot remember is a leak
                self._rollback(net, rt, len(net.plugins) - 1, result)
            raise CNIError(ErrorCode.IO_FAILURE,
                           f"failed to set network {net.name!r} cached result",
                           f"{exc.filename}: {exc.strerror}") from None
        return result

    def _rollback(self, net: NetworkConfigList, rt: RuntimeConf, failed: int,
                  prev: Result | None) -> None:
        """Undo a failed ADD: DEL the plugins reached (the failed one too), in reverse."""
        for plugin in reversed(net.plugins[: failed + 1]):
            try:
                self._call("DEL", net, plugin, prev, rt)
            except CNIError:
                continue  # best effort; the ADD error is what the caller must see

    def check_network_list(self, net: NetworkConfigList, rt: RuntimeConf) -> None:
        if not versions.at_least(net.cni_version, "0.4.0"):
            raise CNIError(ErrorCode.INCOMPATIBLE_VERSION,
                           f"configuration version {net.cni_version!r} does not support "
                           "the CHECK command")
        if net.disable_check:
            return
        self._validate(net, rt, needs_netns=True)
        cached = self._cached_result(net, rt)  # none cached: the plugins get no prevResult
        for plugin in net.plugins:
            try:
                self._call("CHECK", net, plugin, cached, rt)
            except CNIError as exc:
                raise _fail(plugin, "check", exc) from None

    def del_network_list(self, net: NetworkConfigList, rt: RuntimeConf) -> None:
        self._validate(net, rt, needs_netns=False)
        cached: Result | None = None
        if versions.at_least(net.cni_version, "0.4.0"):
            try:
                cached = self._cached_result(net, rt)
            except CNIError:  # libcni: an unusable entry is dropped and DEL goes on without it
                self._cache(rt).delete(net.name, rt)
        for plugin in reversed(net.plugins):
            try:
                self._call("DEL", net, plugin, cached, rt)
            except CNIError as exc:
                raise _fail(plugin, "delete", exc) from None
        self._cache(rt).delete(net.name, rt)

    def gc_network_list(self, net: NetworkConfigList,
                        valid_attachments: Sequence[Attachment] = ()) -> None:
        """SPEC 1.1.0 GC, best effort as libcni: DEL every cached attachment not in
        ``valid_attachments`` (and drop cache files a killed writer left), then let every
        plugin collect what belongs to no valid attachment. Failures are collected, never
        stop the rest, and are raised together at the end (the first failure's code)."""
        if net.disable_gc:
            return
        valid = {(a.container_id, a.ifname) for a in valid_attachments}
        failures: list[CNIError] = []
        cache = ResultCache(self.cache_dir)
        cache.sweep_stale_writes()
        for entry in cache.attachments():
            if entry.network != net.name or (entry.container_id, entry.ifname) in valid:
                continue
            try:
                self.del_network_list(net, entry.runtime_conf(self.cache_dir))
            except CNIError as exc:
                failures.append(CNIError(exc.code, f"failed to delete stale attachment "
                                         f"{entry.container_id} {entry.ifname}: {exc}"))
        if versions.at_least(net.cni_version, "1.1.0"):
            listed = [a.to_dict() for a in valid_attachments]
            # libcni >= 1.2.3 sends both: SPEC 1.1.0 first named the key cni.dev/attachments
            extra = {"cni.dev/valid-attachments": listed, "cni.dev/attachments": listed}
            for plugin in net.plugins:
                try:
                    self._call("GC", net, plugin, None, None, extra)
                except CNIError as exc:
                    failures.append(_fail(plugin, "gc", exc))
        if failures:
            raise CNIError(failures[0].code,
                           f"GC of network {net.name!r} failed: "
                           + "; ".join(str(f) for f in failures),
                           plugin=failures[0].plugin)

    def get_status_network_list(self, net: NetworkConfigList) -> None:
        """SPEC 1.1.0 STATUS: raises the first plugin's 50/51 error, if any."""
        if not versions.at_least(net.cni_version, "1.1.0"):
            return
        for plugin in net.plugins:
            try:
                self._call("STATUS", net, plugin, None, None)
            except CNIError as exc:
                raise _fail(plugin, "status", exc) from None

    def validate_network_list(self, net: NetworkConfigList) -> list[str]:
        """Every plugin found and speaking the list's version; returns the capabilities."""
        errors = []
        caps: set[str] = set()
        for plugin in net.plugins:
            try:
                info = self.get_version_info(plugin.type)
                if net.cni_version not in info.supported_versions:
                    errors.append(f"plugin {plugin.type} does not support config version "
                                  f"{net.cni_version!r}")
            except CNIError as exc:
                errors.append(str(exc))
            caps.update(c for c, on in plugin.capabilities.items() if on)
        if errors:
            raise CNIError(ErrorCode.INVALID_NETWORK_CONFIG,
                           f"network {net.name!r} is not valid", "; ".join(errors))
        return sorted(caps)

    # ---- single-plugin forms (libcni's AddNetwork & co.) -------------------
    def add_network(self, plugin: PluginConfig, rt: RuntimeConf) -> Result:
        return self.add_network_list(NetworkConfigList.from_plugin(plugin), rt)

    def check_network(self, plugin: PluginConfig, rt: RuntimeConf) -> None:
        self.check_network_list(NetworkConfigList.from_plugin(plugin), rt)

    def del_network(self, plugin: PluginConfig, rt: RuntimeConf) -> None:
        self.del_network_list(NetworkConfigList.from_plugin(plugin), rt)

    # ---- queries -------------------------------------------------------------
    def get_version_info(self, plugin_type: str) -> VersionInfo:
        return self._invoker.version_info(plugin_type)

    def get_cached_result(self, net: NetworkConfigList, rt: RuntimeConf) -> Result | None:
        return self._cached_result(net, rt)

    def get_cached_config(self, net: NetworkConfigList,
                          rt: RuntimeConf) -> tuple[bytes, RuntimeConf] | None:
        """libcni's ``GetNetworkListCachedConfig``: the list bytes cached by ADD and ``rt``
        with the cached CNI_ARGS and capability args; None when nothing is cached."""
        entry = self._cache(rt).get(net.name, rt)
        if entry is None:
            return None
        return entry.config, attrs.evolve(rt, args=entry.args or rt.args,
                                          capability_args=dict(entry.capability_args))

    def get_cached_attachments(self, container_id: str = "") -> list[CachedAttachment]:
        return ResultCache(self.cache_dir).attachments(container_id)
