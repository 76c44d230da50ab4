"""flannel's network config (``<prefix>/config`` in etcd) and its subnet arithmetic.

The same JSON flannel reads: ``Network``, ``SubnetLen`` (default 24, or the
network's length + 2 when that is longer than /24 would allow), ``SubnetMin``
and ``SubnetMax`` (default: the second and the last subnet), ``Backend``
(``Type`` "vxlan" with ``VNI`` default 1 and ``Port`` default 8472, the Linux
kernel's VXLAN port, as flannel). Leases are keyed ``<a.b.c.d>-<len>``.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from typing import Any

import attrs

DEFAULT_PREFIX = "/coreos.com/network"
VXLAN_OVERHEAD = 50  # outer IPv4 + UDP + VXLAN + inner Ethernet headers


class NetConfigError(ValueError):
    """``<prefix>/config`` is missing or malformed (the message says what)."""


@attrs.frozen
class NetConfig:
    network: ipaddress.IPv4Network
    subnet_len: int
    subnet_min: ipaddress.IPv4Network
    subnet_max: ipaddress.IPv4Network
    backend_type: str = "vxlan"
    vni: int = 1
    port: int = 8472

    @classmethod
    def from_json(cls, text: str | None) -> NetConfig:
        if text is None:
            raise NetConfigError("no network config in etcd (write <prefix>/config first)")
        try:
            obj: Any = json.loads(text)
            network = ipaddress.IPv4Network(obj["Network"])
        except (ValueError, KeyError, TypeError) as exc:
            raise NetConfigError(f"invalid network config: {exc}") from None
        default_len = 24 if network.prefixlen < 24 else network.prefixlen + 2
        subnet_len = int(obj.get("SubnetLen") or default_len)
        if not network.prefixlen < subnet_len <= 30:
            raise NetConfigError(f"SubnetLen {subnet_len} does not fit {network}")
        subnets = list(network.subnets(new_prefix=subnet_len))
        lo = _subnet_at(obj.get("SubnetMin"), subnet_len) or subnets[1 if len(subnets) > 1 else 0]
        hi = _subnet_at(obj.get("SubnetMax"), subnet_len) or subnets[-1]
        backend = obj.get("Backend") or {}
        kind = str(backend.get("Type", "vxlan"))
        if kind != "vxlan":
            raise NetConfigError(f"backend {kind!r} is not supported (vxlan only)")
        return cls(network, subnet_len, lo, hi, kind, int(backend.get("VNI", 1)),
                   int(backend.get("Port", 8472)))

    def subnets(self) -> Iterator[ipaddress.IPv4Network]:
        """Every subnet a node may lease, SubnetMin to SubnetMax."""
        for subnet in self.network.subnets(new_prefix=self.subnet_len):
            if self.subnet_min.network_address <= subnet.network_address \
                    <= self.subnet_max.network_address:
                yield subnet

    @property
    def device(self) -> str:
        return f"flannel.{self.vni}"


def _subnet_at(value: Any, length: int) -> ipaddress.IPv4Network | None:
    if not value:
        return None
    return ipaddress.IPv4Network(f"{value}/{length}", strict=False)


def lease_key(subnet: ipaddress.IPv4Network) -> str:
    """flannel's ``10.5.34.0-24``."""
    return f"{subnet.network_address}-{subnet.prefixlen}"


def subnet_of_key(key: str) -> ipaddress.IPv4Network | None:
    address, _, length = key.rpartition("/")[2].partition("-")
    try:
        return ipaddress.IPv4Network(f"{address}/{length}")
    except ValueError:
        return None
