"""Running a plugin the ways a node runs it, and comparing what came out.

* ``run_in_process(request)``: the plugin's hooks called through corecni's one
  run path (``corecni.plugin.load_plugin`` + ``LoadedPlugin.run``, with an
  ``Invoker`` as the delegate for its IPAM / delegate calls).
* ``run_exec(binary, request)``: the plugin exec'd (its launcher, or any CNI
  binary such as Go's) with the request's CNI_* environment and config on stdin.

Both return an ``Outcome`` - the result or the CNI error - so a test can run
one request both ways (each in its own container namespace) and compare the
outcomes (``normalise_result`` drops what differs by design) and the kernel
state (``corecni.testing.kernel.netns_state``).

``plugin_runtime`` and ``NodeCni`` run whole network configuration lists
through ``CNIRuntime`` from a node namespace, the way a container runtime does.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import attrs
import pytest

from corecni import netns
from corecni.invoke import DEFAULT_TIMEOUT, Invoker, exec_plugin, exec_with_result
from corecni.registry import Registry
from corecni.request import NETNS_OVERRIDE, Request
from corecni.runtime import CNIRuntime
from corecni.spec.config import NetworkConfigList, RuntimeConf
from corecni.spec.errors import CNIError
from corecni.spec.result import Result
from corecni.testing.fake_net import CTR
from corecni.testing.plugins import cni_bin_dir, install_launchers, plugin_target

Mode = Literal["in-process", "exec", "path"]
#: the two ways corecni runs a Python plugin
MODES: tuple[Mode, Mode] = ("in-process", "exec")


@attrs.frozen
class Outcome:
    """What one plugin call gave: its result (ADD), nothing (DEL/CHECK/...), or its error."""

    result: Result | None = None
    error: CNIError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def code(self) -> int:
        """0 on success, else the CNI error code."""
        return 0 if self.error is None else int(self.error.code)

    def to_json(self) -> dict[str, Any] | None:
        """The JSON a runtime would read: the result, the error object, or None."""
        if self.error is not None:
            return dict(self.error.to_dict())
        return None if self.result is None else dict(self.result.to_dict())

    def unwrap(self) -> Result | None:
        """The result; the error raised."""
        if self.error is not None:
            raise self.error
        return self.result


@contextlib.contextmanager
def _in(ns: str | None) -> Iterator[None]:
    if ns is None:
        yield
    else:
        with netns.entered(ns):
            yield


def run_in_process(request: Request, target: str | object | None = None, *,
                   node: str | None = None, timeout: float | None = DEFAULT_TIMEOUT) -> Outcome:
    """Run ``request`` through the plugin of ``request.config.type`` in this process.

    ``target`` is the plugin (import target, module or object); default: the
    installed plugin of that type. Delegates are found on ``request.path``
    (corecni launchers there run in-process too, anything else is exec'd).
    With ``node``, the call runs with the thread inside that namespace.
    """
    plugin_type = request.config.type
    registry = Registry(path=request.path, entry_points=False)
    registry.register(plugin_type, plugin_target(plugin_type) if target is None else target)
    try:
        with _in(node):
            return Outcome(result=Invoker(registry, timeout).run(request))
    except CNIError as exc:
        return Outcome(error=exc)


def run_exec(binary: str, request: Request, *, node: str | None = None,
             timeout: float | None = DEFAULT_TIMEOUT) -> Outcome:
    """Exec ``binary`` for ``request`` as a runtime would (CNI_* variables from the
    request, its config on stdin), from ``node``'s namespace when given."""
    env = request.environ()
    if request.netns == CTR:  # the test's own namespace stands in for a container's:
        env[NETNS_OVERRIDE] = "1"  # an exec'd plugin refuses its own one otherwise (Go)
    stdin = request.config.to_bytes()
    try:
        with _in(node):
            if request.command == "ADD":
                return Outcome(result=exec_with_result(binary, stdin, env, timeout))
            exec_plugin(binary, stdin, env, timeout)
            return Outcome()
    except CNIError as exc:
        return Outcome(error=exc)


def normalise_result(result: Mapping[str, Any] | Outcome | None) -> dict[str, Any] | None:
    """A result's JSON without what differs between two runs by design: MACs,
    sandbox paths and random host-side names (``veth*``)."""
    if isinstance(result, Outcome):
        result = result.to_json()
    if result is None:
        return None
    out: dict[str, Any] = json.loads(json.dumps(result))
    for iface in out.get("interfaces", []):
        iface.pop("mac", None)
        iface.pop("sandbox", None)
        if str(iface.get("name", "")).startswith("veth"):
            iface["name"] = "veth*"
    return out


@contextlib.contextmanager
def expect_error(code: int, *words: str) -> Iterator[pytest.ExceptionInfo[CNIError]]:
    """The block raises a CNIError of ``code`` whose text names every one of ``words``."""
    with pytest.raises(CNIError) as info:
        yield info
    assert info.value.code == code, repr(info.value)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


# --- whole configuration lists through corecni's runtime --------------------------------

def plugin_runtime(mode: Mode, tmp: Path, ours: Mapping[str, str | object], *,
                   partners: Mapping[str, str | object] | None = None,
                   search: tuple[str, ...] = (), rollback: bool = True) -> CNIRuntime:
    """A ``CNIRuntime`` caching under ``tmp/cache`` that runs the ``ours`` plugins
    (CNI type -> plugin) the way ``mode`` says:

    * ``"in-process"``: ``ours`` and ``partners`` registered (called in-process);
      every other type is exec'd from ``search``;
    * ``"exec"``: launchers for ``ours`` installed in ``tmp/bin``, searched
      first; nothing runs in-process (``partners`` come from ``search``);
    * ``"path"``: nothing of ``ours``: only the binaries on ``search`` (Go's
      reference plugins, for a comparison) are exec'd.
    """
    path = search
    if mode == "exec":
        targets = {t: v for t, v in ours.items() if isinstance(v, str)}
        if len(targets) != len(ours):
            raise TypeError("exec mode needs import targets (str) to write launchers")
        install_launchers(tmp / "bin", targets)
        path = (str(tmp / "bin"), *search)
    if mode == "in-process":
        registry = Registry(path=path, entry_points=False)
        for name, target in {**ours, **(partners or {})}.items():
            registry.register(name, target)
    else:
        registry = Registry(path=path, entry_points=False, in_process=False)
    return CNIRuntime(cache_dir=str(tmp / "cache"), registry=registry, rollback=rollback)


def chain_runtime(mode: Mode, tmp: Path, ours: Mapping[str, str], chain_partners: str, *,
                  needs: Iterable[str] = ()) -> CNIRuntime:
    """A ``CNIRuntime`` running ``ours`` the way ``mode`` says, inside a chain whose
    other plugins come from a node-like plugin directory - what a plugin's own tests
    want to run it both roads, in-process and exec'd, with the same test body.

    In-process, the partners are ``chain_partners`` (the fixture: launchers for the
    installed corecni plugins, plus Go's for the types corecni lacks). Exec'd - as on
    a node where everything is exec'd - Go's reference plugins come first where both
    exist. A type in ``needs`` that neither serves skips the test (with the reason),
    rather than failing it on a machine without Go's plugins.
    """
    partners = (chain_partners if mode == "in-process"
                else cni_bin_dir(tmp / "partners", prefer="go"))
    runtime = plugin_runtime(mode, tmp, ours, search=(partners,))
    assert runtime.registry is not None
    for partner in needs:
        try:
            runtime.registry.resolve(partner)
        except CNIError as exc:
            pytest.skip(f"chain partner {partner!r} not found: {exc}")
    return runtime


def conflist(plugin: Mapping[str, Any], name: str = "testnet",
             version: str = "1.0.0") -> dict[str, Any]:
    """A network configuration list of the one ``plugin``."""
    return {"cniVersion": version, "name": name, "plugins": [dict(plugin)]}


@attrs.define
class NodeCni:
    """A runtime bound to a node namespace: every call runs with the thread inside it.

    ``conf`` is a whole network configuration list (a dict); ``kw`` goes to
    ``RuntimeConf`` (``args``, ``capability_args``).
    """

    runtime: CNIRuntime
    node: str

    def net(self, conf: Mapping[str, Any]) -> NetworkConfigList:
        return NetworkConfigList.from_dict(dict(conf))

    def add(self, conf: Mapping[str, Any], ctr: str, cid: str = "c1", ifname: str = "eth0",
            **kw: Any) -> dict[str, Any]:
        with netns.entered(self.node):
            result = self.runtime.add_network_list(self.net(conf),
                                                   RuntimeConf(cid, ifname, ctr, **kw))
        return dict(result.to_dict())

    def check(self, conf: Mapping[str, Any], ctr: str, cid: str = "c1", ifname: str = "eth0",
              **kw: Any) -> None:
        with netns.entered(self.node):
            self.runtime.check_network_list(self.net(conf), RuntimeConf(cid, ifname, ctr, **kw))

    def delete(self, conf: Mapping[str, Any], ctr: str, cid: str = "c1", ifname: str = "eth0",
               **kw: Any) -> None:
        with netns.entered(self.node):
            self.runtime.del_network_list(self.net(conf), RuntimeConf(cid, ifname, ctr, **kw))

    def status(self, conf: Mapping[str, Any]) -> None:
        with netns.entered(self.node):
            self.runtime.get_status_network_list(self.net(conf))


class PluginCni(NodeCni):
    """``NodeCni`` for one plugin's config: each call wraps it into a list ("testnet")
    of cniVersion 1.0.0 (1.1.0 for STATUS, which needs it)."""

    def net(self, conf: Mapping[str, Any], version: str = "1.0.0") -> NetworkConfigList:
        return NetworkConfigList.from_dict(conflist(conf, version=version))

    def status(self, conf: Mapping[str, Any]) -> None:
        with netns.entered(self.node):
            self.runtime.get_status_network_list(self.net(conf, version="1.1.0"))
