"""What macvlan, ipvlan and vlan share beyond ``corecni.kit.links``.

The three make a link on a master device and place it in the container; Go
repeats their common config keys and CHECK in each plugin. Here they are once:
the keys read after each plugin's own (``mtu``, ``linkInContainer``, ``ipam``,
``dns``), where the master lives, and CHECK after the master. Each plugin
gets its backend from the request (``request.net``) and passes
it in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

from corecni import kit
from corecni.kit import Request
from corecni.net import NetBackend
from corecni.spec.errors import CNIError, ErrorCode
from corecni.spec.result import DNS


class LinkKeys(TypedDict):
    """The config keys every lower-link plugin reads, as its config's field names."""

    mtu: int
    link_in_container: bool
    ipam_type: str
    dns: DNS


def link_keys(raw: Mapping[str, Any]) -> LinkKeys:
    """``mtu``, ``linkInContainer``, ``ipam.type`` and ``dns``, read in that order (a
    plugin reads its own keys first, so the first bad key is the one reported)."""
    return LinkKeys(mtu=kit.int_key(raw, "mtu"),
                    link_in_container=kit.bool_key(raw, "linkInContainer"),
                    ipam_type=kit.ipam_type(raw), dns=kit.dns_key(raw))


class LowerLinkConfig:
    """Base of the plugins' (attrs) config classes: what follows from ``link_in_container``."""

    __slots__ = ()
    link_in_container: bool

    def master_netns(self, request: Request) -> str | None:
        """Where the master lives: the container with ``linkInContainer``, else the node."""
        return request.netns if self.link_in_container else None


def check_lower_link(backend: NetBackend, request: Request, kind: str, ipam_type: str,
                     mtu: int = 0, *, mode: str | None = None,
                     vlan_id: int | None = None) -> None:
    """CHECK once the master is checked: IPAM (when configured), the container link
    (a ``kind`` link with the result's MAC, the ``mtu`` when one is given and non-zero,
    the ``mode`` / ``vlan_id`` when given and the backend read one back), then its
    addresses and routes."""
    if ipam_type:
        request.ipam_check()
    prev, iface = kit.prev_container_interface(request)
    link = kit.check_container_link(backend, request, iface, kind)
    if mtu and link.mtu != mtu:
        raise CNIError(ErrorCode.INTERNAL, f"configured MTU of {iface.name} is {mtu}, "
                       f"current value is {link.mtu}")
    if mode is not None and link.mode is not None and link.mode != mode:
        raise CNIError(ErrorCode.INTERNAL, f"configured {kind} mode of {iface.name} is "
                       f"{mode!r}, current mode is {link.mode!r}")
    if vlan_id is not None and link.vlan_id is not None and link.vlan_id != vlan_id:
        raise CNIError(ErrorCode.INTERNAL, f"configured VLAN ID of {iface.name} is {vlan_id}, "
                       f"current VLAN ID is {link.vlan_id}")
    kit.check_iface(backend, request.netns, request.ifname, prev)
