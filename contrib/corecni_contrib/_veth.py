"""What bridge and ptp share: the veth ``mtu`` and ``ipMasqBackend`` keys, and which
IPAM types need the container link before they are asked."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from corecni.kit import config_error, int_key

MAX_VETH_MTU = 65535


def cfg_veth_mtu(raw: Mapping[str, Any]) -> int:
    """``mtu`` of bridge and ptp: 0 (kernel default) up to 65535."""
    mtu = int_key(raw, "mtu")
    if not 0 <= mtu <= MAX_VETH_MTU:
        raise config_error(f"invalid MTU {mtu}", f"must be 0 (kernel default) to {MAX_VETH_MTU}")
    return mtu


def cfg_masq_backend(raw: Mapping[str, Any], backends: Sequence[str]) -> str | None:
    """``ipMasqBackend`` of bridge and ptp: absent (``None``: the default) or one of
    ``backends`` (``_masq.BACKENDS``, passed in: ``_iface`` does not import ``_masq``)."""
    backend = raw.get("ipMasqBackend")
    if backend is not None and backend not in backends:
        raise config_error(f"unknown ipmasq backend {backend!r}",
                        f"expected one of {', '.join(backends)}")
    return backend


#: IPAM types that work on CNI_IFNAME itself: ``dhcp`` runs its exchange (and its
#: DHCPRELEASE) on the container interface, so bridge and ptp create the veth before
#: asking it and release it before deleting the veth - Go's order. Every other IPAM is
#: asked first, so that its errors are refused before the node changes.
LINK_FIRST_IPAM = frozenset({"dhcp"})


def ipam_needs_link(ipam_type: str) -> bool:
    """Whether the IPAM plugin ``ipam_type`` needs the container link to exist."""
    return ipam_type in LINK_FIRST_IPAM
