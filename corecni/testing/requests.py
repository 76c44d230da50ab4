"""``plugin_request``: a ``Request`` for a hook, built from a config and a few keywords.

Like rscni-plugin's args builder: a unit test says only what matters to it and
gets the spec's parameters filled with sensible values:

    req = plugin_request(type="macvlan", master="phys0", ipam={"type": "static"})
    result = macvlan.cni_add(req)
    assert req.net.ops("add_macvlan")      # the recording FakeBackend

The defaults: ``cniVersion`` 1.1.0 (every command allowed), network name
``testnet``, command ADD, container ID ``c1``, CNI_IFNAME ``eth0``, CNI_NETNS
the test process' own namespace (``fake_net.CTR``: a real path, never changed
through the fake), and a fresh ``FakeBackend`` as ``request.net``. Pass
``net=None`` to hand in no link layer (a runner then uses the node's).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from corecni.request import Attachment, Delegate, Request
from corecni.spec.config import PluginConfig
from corecni.spec.result import Result
from corecni.spec.version import CURRENT
from corecni.testing.fake_net import CTR, FakeBackend

if TYPE_CHECKING:
    from corecni.net.base import NetBackend


class _Fresh:
    """The default of ``net``: a new FakeBackend per request."""

    def __repr__(self) -> str:
        return "FakeBackend()"


FRESH_FAKE: Any = _Fresh()


def plugin_request(config: Mapping[str, Any] | None = None, /, *, command: str = "ADD",
                   container_id: str = "c1", netns: str = CTR, ifname: str = "eth0",
                   args: Mapping[str, str] | Iterable[tuple[str, str]] = (),
                   path: Iterable[str] = (), prev_result: Result | Mapping[str, Any] | None = None,
                   valid_attachments: Iterable[Attachment | tuple[str, str]] = (),
                   delegate: Delegate | None = None,
                   net: NetBackend | None = FRESH_FAKE, **keys: Any) -> Request:
    """One CNI call as a hook receives it.

    ``config`` (a plugin's JSON object) and ``keys`` (more config keys, winning
    over ``config``'s) make the plugin config; ``cniVersion`` and ``name`` are
    filled in when missing. ``prev_result`` (a ``Result`` or its JSON) becomes
    the config's ``prevResult``, as a runtime writes it; ``valid_attachments``
    (GC) become ``cni.dev/valid-attachments``. ``args`` are the CNI_ARGS pairs
    and ``path`` the CNI_PATH directories. ``delegate`` serves IPAM and
    delegate calls (a ``fake_net.FakeDelegate`` records them).
    """
    raw: dict[str, Any] = {"cniVersion": CURRENT, "name": "testnet", **(config or {}), **keys}
    if prev_result is not None:
        raw["prevResult"] = prev_result.to_dict() if isinstance(prev_result, Result) \
            else dict(prev_result)
    attachments = [a if isinstance(a, Attachment) else Attachment(*a) for a in valid_attachments]
    if attachments:
        raw["cni.dev/valid-attachments"] = [a.to_dict() for a in attachments]
    pairs = tuple(args.items()) if isinstance(args, Mapping) else tuple(args)
    request = Request.for_config(
        command, PluginConfig.from_dict(raw), container_id=container_id, netns=netns,
        ifname=ifname, args=pairs, path=tuple(path),
        net=FakeBackend() if net is FRESH_FAKE else net)
    return attrs.evolve(request, delegate=delegate) if delegate is not None else request
