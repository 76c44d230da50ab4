"""The corecni plugin contract: pluggy hookspecs for interface, IPAM and meta plugins.

A CNI plugin is a module (or object) with hookimpls, published under the
entry-point group ``corecni.plugins``; the entry point's name is its CNI
``type``:

    [project.entry-points."corecni.plugins"]
    bridge = "corecni_contrib.bridge"

A plugin belongs to exactly one *family*, told by the hooks it implements:

* **interface** plugins (``cni_add``/``cni_del``/``cni_check``) create the
  container's interface; they may delegate addressing to an IPAM plugin with
  ``request.ipam_add()``;
* **IPAM** plugins (``ipam_add``/``ipam_del``/``ipam_check``) hand out
  addresses, routes and DNS and touch no interface;
* **meta** plugins (``meta_add``/``meta_del``/``meta_check``) come later in a
  chain and amend the previous plugin's result (``prev_result``).

Separate hook names, not one set of hooks with a flag, so that pluggy itself
validates each family's signature at load time and a reader can tell the
family from the ``def`` lines. The ``plugin_*`` hooks (``plugin_status``,
``plugin_gc``, ``plugin_supported_versions``) are optional and shared by all
families; the ``cni_`` prefix belongs to the interface family alone (the 0.1
names ``cni_status``, ``cni_gc`` and ``cni_supported_versions`` still work and
warn with ``DeprecationWarning`` at load).

Every hook gets a frozen ``corecni.request.Request`` (command, container ID,
netns, ifname, CNI_ARGS, CNI_PATH, the parsed ``PluginConfig``, the previous
result, and ``request.net``: the link layer to use) and raises
``corecni.kit.CNIError`` to fail with a spec error code; any other exception
becomes code 999 with its message. The same hook call serves an exec'd plugin
(``skel``), corecni's in-process runtime, the node daemon and a delegating
plugin: there is one run path (``corecni.plugin.LoadedPlugin.run``).

Which ``Request`` fields are set, per command:

| command | container_id | netns | ifname | prev_result  | runtime_config | valid_attachments |
| ------- | ------------ | ----- | ------ | ------------ | -------------- | ----------------- |
| ADD     | yes          | yes   | yes    | when chained | yes            | -                 |
| DEL     | yes          | maybe | yes    | when cached  | yes            | -                 |
| CHECK   | yes          | yes   | yes    | yes          | yes            | -                 |
| STATUS  | -            | -     | -      | -            | -              | -                 |
| GC      | -            | -     | -      | -            | -              | yes               |

*Observers* (entry-point group ``corecni.observers``) are registered beside
every plugin and may wrap any hook with ``@hookimpl(wrapper=True)`` for
logging, metrics, tracing or policy, without the plugin knowing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from corecni.request import Request
    from corecni.spec.result import Result

PROJECT = "corecni"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# ---------------------------------------------------------------------------
# interface plugins: create, verify and remove the container's interface
# ---------------------------------------------------------------------------


@hookspec(firstresult=True)
def cni_add(request: Request) -> Result:  # type: ignore[empty-body]
    """Attach the container: create ``request.ifname`` inside ``request.netns``.

    Return the ``Result`` (interfaces, ips, routes, dns). IPAM is delegated
    with ``request.ipam_add()``; when anything fails after that, release it
    again (``corecni.kit.ipam_released_on_failure``) and remove what this ADD
    created (``corecni.kit.UndoStack``), so nothing stays half-configured.
    ``request.prev_result`` is set when the plugin is not first in the chain.

    Errors: code 7 for a config that cannot be served (name the key), 4 for
    bad CNI_* input, 11 to ask the runtime to retry, 999 for a kernel refusal
    (``corecni.kit.kernel_step`` maps it, naming what was being done).
    """


@hookspec(firstresult=True)
def cni_del(request: Request) -> None:
    """Detach the container; must succeed when things are already gone.

    Called in reverse chain order, possibly twice, possibly without an ADD,
    and possibly with ``request.netns`` empty or pointing at a removed
    namespace (``corecni.kit.netns_gone``). ``request.prev_result`` is the
    cached result when there is one. Release IPAM (``request.ipam_del()``)
    even when the interface is gone. Only remove what is recognisably yours.
    """


@hookspec(firstresult=True)
def cni_check(request: Request) -> None:
    """Verify that what ADD set up is still there (``request.prev_result`` says
    what that was); raise ``CNIError`` naming the first drift found. Call
    ``request.ipam_check()`` when the plugin delegates IPAM."""


# ---------------------------------------------------------------------------
# IPAM plugins: addresses, routes and DNS, no interfaces
# ---------------------------------------------------------------------------


@hookspec(firstresult=True)
def ipam_add(request: Request) -> Result:  # type: ignore[empty-body]
    """Allocate for ``(request.container_id, request.ifname)``; return a Result
    with ``ips``, ``routes`` and ``dns`` (no ``interfaces``). Allocations are
    idempotent for the same attachment and never shared between two; the
    plugin's settings are under ``request.config.ipam``."""


@hookspec(firstresult=True)
def ipam_del(request: Request) -> None:
    """Release what ``ipam_add`` allocated; releasing nothing is not an error."""


@hookspec(firstresult=True)
def ipam_check(request: Request) -> None:
    """Raise ``CNIError`` when the attachment no longer holds its allocation."""


# ---------------------------------------------------------------------------
# meta plugins: amend the result of the chain so far
# ---------------------------------------------------------------------------


@hookspec(firstresult=True)
def meta_add(request: Request, prev_result: Result) -> Result:  # type: ignore[empty-body]
    """Apply the plugin's effect for an attachment whose result so far is
    ``prev_result`` and return the result to pass on (usually ``prev_result``
    unchanged or amended). Never called without a previous result: the core
    refuses a meta plugin first in a chain with code 7."""


@hookspec(firstresult=True)
def meta_del(request: Request, prev_result: Result | None) -> None:
    """Undo ``meta_add``; ``prev_result`` is the cached result, or ``None``
    (a runtime without a cache, a crash before the result was stored): find
    what to remove from the container ID and ifname then."""


@hookspec(firstresult=True)
def meta_check(request: Request, prev_result: Result) -> None:
    """Raise ``CNIError`` when the plugin's effect has drifted."""


# ---------------------------------------------------------------------------
# every family, optional
# ---------------------------------------------------------------------------


@hookspec(firstresult=True)
def plugin_status(request: Request) -> None:
    """SPEC 1.1.0 STATUS: raise ``CNIError`` with code 50 (cannot serve ADD) or
    51 (and existing containers may have limited connectivity) when the
    plugin is not ready. Not implementing it means "always ready"; an
    interface plugin that delegates IPAM asks it (``request.ipam_status()``)."""


@hookspec(firstresult=True)
def plugin_gc(request: Request) -> None:
    """SPEC 1.1.0 GC: release every resource that does not belong to one of
    ``request.valid_attachments`` (container ID + ifname pairs). Best effort
    and idempotent; forward to IPAM with ``request.ipam_gc()``."""


@hookspec(firstresult=True)
def plugin_supported_versions() -> Sequence[str] | None:
    """The spec versions the plugin speaks; not implementing it means every
    version corecni supports."""


# ---------------------------------------------------------------------------
# deprecated 0.1 names of the shared hooks (removed in corecni 1.0)
# ---------------------------------------------------------------------------

_RENAMED = "corecni 0.2 renamed {old} to {new}: the cni_ prefix is the interface family's"


@hookspec(firstresult=True, warn_on_impl=DeprecationWarning(
    _RENAMED.format(old="cni_status", new="plugin_status")))
def cni_status(request: Request) -> None:
    """Deprecated name of ``plugin_status``."""


@hookspec(firstresult=True, warn_on_impl=DeprecationWarning(
    _RENAMED.format(old="cni_gc", new="plugin_gc")))
def cni_gc(request: Request) -> None:
    """Deprecated name of ``plugin_gc``."""


@hookspec(firstresult=True, warn_on_impl=DeprecationWarning(
    _RENAMED.format(old="cni_supported_versions", new="plugin_supported_versions")))
def cni_supported_versions() -> Sequence[str] | None:
    """Deprecated name of ``plugin_supported_versions``."""
