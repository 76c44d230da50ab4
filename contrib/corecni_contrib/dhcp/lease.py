"""A lease as the service keeps and persists it, and the CNI result it gives.

``Lease`` is plain data (attrs, frozen): who holds it (the attachment and its
client identifier), where (the namespace, by path and by inode, and the
interface), what the server said (the ACK's options, its address and MAC), and
when (bind time, lease time, T1, T2). Renewal replaces it with a new one.

Times follow RFC 2131 4.4.5 and Go's daemon: lease time from option 51 (60 min
when absent), T1 from option 58 (half the lease), T2 from option 59 (85%).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

import attrs

from corecni.spec.result import IPConfig, Route
from corecni_contrib.dhcp import codec
from corecni_contrib.dhcp.client import Binding, ClientOptions

DEFAULT_LEASE_TIME = 3600
SCOPE_LINK = 253


@attrs.frozen
class Holder:
    """The attachment a lease belongs to, and where its interface is."""

    container_id: str
    network: str
    ifname: str
    netns: str  # the path the runtime gave (kept to find the namespace after a restart)
    netns_dev: int = 0
    netns_ino: int = 0

    @property
    def client_id(self) -> str:
        return codec.client_id(self.container_id, self.network, self.ifname)


@attrs.frozen
class Lease:
    holder: Holder
    options: ClientOptions
    ip: ipaddress.IPv4Address
    server: ipaddress.IPv4Address
    server_mac: bytes
    ack_options: Mapping[int, bytes]
    bound_at: float  # wall clock (time.time()): survives a restart
    lease_time: int
    t1: int
    t2: int

    @classmethod
    def from_binding(cls, holder: Holder, options: ClientOptions, binding: Binding,
                     previous_server: ipaddress.IPv4Address | None = None) -> Lease:
        ack = binding.ack
        lease_time = ack.lease_time or DEFAULT_LEASE_TIME
        t2 = ack.rebinding_time or lease_time * 85 // 100
        t1 = ack.renewal_time or lease_time // 2
        server = ack.server_id or previous_server or codec.ZERO
        return cls(holder=holder, options=options, ip=ack.yiaddr, server=server,
                   server_mac=binding.server_mac, ack_options=dict(ack.options),
                   bound_at=binding.at, lease_time=lease_time, t1=min(t1, t2),
                   t2=min(t2, lease_time))

    # ---- timing ----------------------------------------------------------------
    def renew_at(self, cap: float | None = None) -> float:
        """When to renew: T1 after binding, or sooner with ``cap`` (seconds)."""
        return self.bound_at + (min(self.t1, cap) if cap is not None else self.t1)

    @property
    def rebind_at(self) -> float:
        return self.bound_at + self.t2

    @property
    def expires_at(self) -> float:
        return self.bound_at + self.lease_time

    # ---- what the ACK means for CNI ---------------------------------------------
    def _ack(self) -> codec.Message:
        return codec.Message(op=codec.BOOTREPLY, xid=0, chaddr=b"", options=self.ack_options)

    @property
    def interface(self) -> ipaddress.IPv4Interface:
        mask = self._ack().subnet_mask
        if mask is None:  # Go: "DHCP option Subnet Mask not found in DHCPACK"
            raise ValueError("DHCP option Subnet Mask not found in DHCPACK")
        return ipaddress.IPv4Interface(f"{self.ip}/{mask}")

    @property
    def gateway(self) -> ipaddress.IPv4Address | None:
        routers = self._ack().routers
        return routers[0] if routers else None

    def routes(self, priority: int = 0) -> list[Route]:
        """Go's ``Routes``: option 121 alone when present (RFC 3442; a 0.0.0.0 router is
        an on-link route, scope link), else option 33 plus a default route via the
        first router."""
        ack = self._ack()
        out: list[Route] = []
        classless = ack.classless_routes
        if classless:
            for net, router in classless:
                on_link = router == codec.ZERO
                out.append(Route(dst=str(net), gw=None if on_link else str(router),
                                 scope=SCOPE_LINK if on_link else None,
                                 priority=priority or None))
            return out
        for net, router in ack.static_routes:
            out.append(Route(dst=str(net), gw=str(router), priority=priority or None))
        if self.gateway is not None:
            out.append(Route(dst="0.0.0.0/0", gw=str(self.gateway), priority=priority or None))
        return out

    def ip_config(self) -> IPConfig:
        gw = self.gateway
        return IPConfig(address=str(self.interface), gateway=str(gw) if gw else None)

    # ---- persistence ---------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "clientId": self.holder.client_id,
            "containerID": self.holder.container_id, "network": self.holder.network,
            "ifname": self.holder.ifname, "netns": self.holder.netns,
            "netnsDev": self.holder.netns_dev, "netnsIno": self.holder.netns_ino,
            "request": list(self.options.request),
            "provide": {str(k): v.hex() for k, v in self.options.provide.items()},
            "broadcast": self.options.broadcast, "timeout": self.options.timeout,
            "ip": str(self.ip), "server": str(self.server), "serverMac": self.server_mac.hex(),
            "ack": {str(k): v.hex() for k, v in self.ack_options.items()},
            "boundAt": self.bound_at, "leaseTime": self.lease_time, "t1": self.t1, "t2": self.t2,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Lease:
        """The lease a ``to_json`` wrote; KeyError/ValueError/TypeError when it is not one."""
        if data.get("version") != 1:
            raise ValueError(f"unknown lease record version {data.get('version')!r}")
        holder = Holder(str(data["containerID"]), str(data["network"]), str(data["ifname"]),
                        str(data["netns"]), int(data["netnsDev"]), int(data["netnsIno"]))
        options = ClientOptions(
            client_id=holder.client_id, request=tuple(int(c) for c in data["request"]),
            provide={int(k): bytes.fromhex(v) for k, v in data["provide"].items()},
            broadcast=bool(data["broadcast"]), timeout=float(data["timeout"]))
        return cls(holder=holder, options=options, ip=ipaddress.IPv4Address(data["ip"]),
                   server=ipaddress.IPv4Address(data["server"]),
                   server_mac=bytes.fromhex(data["serverMac"]),
                   ack_options={int(k): bytes.fromhex(v) for k, v in data["ack"].items()},
                   bound_at=float(data["boundAt"]), lease_time=int(data["leaseTime"]),
                   t1=int(data["t1"]), t2=int(data["t2"]))
