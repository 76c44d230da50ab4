"""The corecni plugin contract: pluggy hookspecs for interface, IPAM and meta plugins.

A CNI plugin is a module (or object) with hookimpls, published under the
entry-point group ``corecni.plugins``; the entry point's name is its CNI
``type``::

    [project.entry-points."corecni.plugins"]
    bridge = "corecni_contrib.bridge"

A plugin belongs to exactly one *family*, told by the hooks it implements:

* **interface** plugins (``cni_add``/``cni_del``/``cni_check``) create the
  container's interface; they may delegate addressing to an IPAM plugin with
  ``request.delegate``;
* **IPAM** plugins (``ipam_add``/``ipam_del``/``ipam_check``) hand out
  addresses, routes and DNS and touch no interface;
* **meta** plugins (``meta_add``/``meta_del``/``meta_check``) come later in a
  chain and amend the previous plugin's result (``prev_result``).

Separate hook names, not one set of hooks with a flag, so that pluggy itself
validates each family's signature at load time and a reader can tell the
family from the ``def`` lines. ``cni_status``, ``cni_gc`` and
``cni_supported_versions`` are optional and shared by all families.

Every hook gets a frozen ``corecni.plugin.Request`` (command, container ID,
netns, ifname, CNI_ARGS, CNI_PATH, the parsed ``PluginConfig``, the previous
result) and raises ``corecni.spec.CNIError`` to fail with a spec error code;
any other exception becomes code 999 with its message. The same hook call
serves an exec'd plugin (``skel``), corecni's in-process runtime and a
delegating plugin: there is one run path.

*Observers* (entry-point group ``corecni.observers``) are registered beside
every plugin and may wrap any hook with ``@hookimpl(wrapper=True)`` for
logging, metrics, tracing or policy, without the plugin knowing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from corecni.plugin import Request
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
    with ``request.delegate.ipam_add()``; on failure after delegating, release
    it again (``ipam_del``) so nothing stays half-configured.
    ``request.prev_result`` is set when the plugin is not first in the chain.
    """


@hookspec(firstresult=True)
def cni_del(request: Request) -> None:
    """Detach the container; must succeed when things are already gone.

    Called in reverse chain order, possibly twice, possibly without an ADD,
    and possibly with ``request.netns`` empty or pointing at a removed
    namespace. ``request.prev_result`` is the cached result when there is one.
    """


@hookspec(firstresult=True)
def cni_check(request: Request) -> None:
    """Verify that what ADD set up is still there (``request.prev_result`` says
    what that was); raise ``CNIError`` naming the first drift found."""


# ---------------------------------------------------------------------------
# IPAM plugins: addresses, routes and DNS, no interfaces
# ---------------------------------------------------------------------------


@hookspec(firstresult=True)
def ipam_add(request: Request) -> Result:  # type: ignore[empty-body]
    """Allocate for ``(request.container_id, request.ifname)``; return a Result
    with ``ips``, ``routes`` and ``dns`` (no ``interfaces``). Allocations are
    idempotent for the same attachment."""


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
    unchanged or amended)."""


@hookspec(firstresult=True)
def meta_del(request: Request, prev_result: Result | None) -> None:
    """Undo ``meta_add``; ``prev_result`` is the cached result, or ``None``."""


@hookspec(firstresult=True)
def meta_check(request: Request, prev_result: Result) -> None:
    """Raise ``CNIError`` when the plugin's effect has drifted."""


# ---------------------------------------------------------------------------
# every family, optional
# ---------------------------------------------------------------------------


@hookspec(firstresult=True)
def cni_status(request: Request) -> None:
    """SPEC 1.1.0 STATUS: raise ``CNIError`` with code 50 (cannot serve ADD) or
    51 (and existing containers may have limited connectivity) when the
    plugin is not ready. Not implementing it means "always ready"."""


@hookspec(firstresult=True)
def cni_gc(request: Request) -> None:
    """SPEC 1.1.0 GC: release every resource that does not belong to one of
    ``request.valid_attachments`` (container ID + ifname pairs)."""


@hookspec(firstresult=True)
def cni_supported_versions() -> Sequence[str] | None:
    """The spec versions the plugin speaks; not implementing it means every
    version corecni supports."""
