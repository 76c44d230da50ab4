"""What every interface plugin does with an IPAM result: Go's ``ipam.ConfigureIface``
and the ``ip.ValidateExpected*`` helpers over the link layer.

A plugin never speaks netlink itself: addresses, link up and routes of one
interface are one ``corecni.net`` batch, so the native backend sends them in
one message.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket

import attrs

from corecni.kit.errors import kernel_step
from corecni.net.base import NetBackend, NetError
from corecni.net.base import Route as NetRoute
from corecni.spec.errors import CNIError, ErrorCode
from corecni.spec.result import DNS, Interface, IPConfig, Result
from corecni.spec.version import CURRENT


def ips_for(result: Result, index: int) -> tuple[IPConfig, ...]:
    """IPAM ips pointed at interface ``index`` of the result."""
    return tuple(attrs.evolve(ip, interface=index) for ip in result.ips)


def _gateway_for(result: Result, family: int) -> str | None:
    return next((ip.gateway for ip in result.ips if ip.family == family and ip.gateway), None)


def _ips_on(result: Result, ifname: str) -> list[IPConfig]:
    """The ips of ``ifname``: those whose interface index names it (or all, unindexed)."""
    out = []
    for ip in result.ips:
        if ip.interface is None or (0 <= ip.interface < len(result.interfaces) and \
                result.interfaces[ip.interface].name == ifname):
            out.append(ip)
    return out


def net_routes(result: Result, ifname: str) -> list[NetRoute]:
    """Result routes as kernel routes on ``ifname``; a route without ``gw`` uses the
    gateway of the same family, as Go's ConfigureIface does."""
    out = []
    for route in result.routes:
        gw = route.gw or _gateway_for(result, route.family)
        out.append(NetRoute(dst=str(ipaddress.ip_network(route.dst, strict=False)), gateway=gw,
                            ifname=ifname, table=route.table or 254, priority=route.priority,
                            scope=route.scope, mtu=route.mtu, advmss=route.advmss))
    return out


def configure_iface(backend: NetBackend, netns: str, ifname: str, result: Result, *,
                    dad: bool = False) -> None:
    """Addresses, link up, routes - one batch in the container's namespace.

    IPv6 addresses skip duplicate address detection unless ``dad``: the address
    came from IPAM, and DAD would hold the container for seconds. A route listed
    twice (Go's bridge adds a default route beside an IPAM one that has no
    ``gw``) is added once: Go's ConfigureIface skips the duplicate's EEXIST.
    """
    ips = _ips_on(result, ifname)
    if any(ip.family == 6 for ip in ips):
        with kernel_step(f"enable IPv6 on {ifname}"):
            backend.sysctl_set(f"ipv6/conf/{ifname}/disable_ipv6", "0", netns)
    batch = backend.batch(netns)
    for ip in ips:
        batch.add_address(ifname, ip.address, nodad=ip.family == 6 and not dad)
    batch.set_link(ifname, up=True)
    added: set[NetRoute] = set()
    for route in net_routes(result, ifname):
        if route not in added:
            added.add(route)
            batch.add_route(route)
    with kernel_step(f"configure {ifname} in {netns}"):
        batch.commit()


def check_iface(backend: NetBackend, netns: str, ifname: str, result: Result) -> None:
    """CHECK: the interface, every expected address and every expected route exist."""
    if backend.link(ifname, netns) is None:
        raise CNIError(ErrorCode.INTERNAL, f"interface {ifname} not found in {netns}")
    present = {ipaddress.ip_interface(a.address) for a in backend.addresses(netns, ifname)}
    for ip in _ips_on(result, ifname):
        if ipaddress.ip_interface(ip.address) not in present:
            raise CNIError(ErrorCode.INTERNAL,
                           f"{ifname}: expected address {ip.address} is missing")
    for want in net_routes(result, ifname):
        family = socket.AF_INET6 if ":" in want.dst else socket.AF_INET
        have = backend.routes(netns, family=family, table=want.table)
        if not any(_same_route(want, r) for r in have):
            raise CNIError(ErrorCode.INTERNAL,
                           f"{ifname}: expected route to {want.dst}"
                           + (f" via {want.gateway}" if want.gateway else "") + " is missing")


def _same_route(want: NetRoute, have: NetRoute) -> bool:
    if ipaddress.ip_network(want.dst) != ipaddress.ip_network(have.dst, strict=False):
        return False
    if want.gateway and (not have.gateway or
                         ipaddress.ip_address(want.gateway) != ipaddress.ip_address(have.gateway)):
        return False
    return want.ifname is None or have.ifname in (None, want.ifname)


def attached_result(iface: Interface, addressing: Result | None, dns: DNS) -> Result:
    """Go's result shape for a single-interface plugin: that interface, the IPAM (or
    chained) ips pointed at it, their routes, and the ``dns`` of the plugin's config
    (Go drops the IPAM plugin's DNS)."""
    if addressing is None:
        return Result(cni_version=CURRENT, interfaces=(iface,), dns=dns)
    return Result(cni_version=CURRENT, interfaces=(iface,), ips=ips_for(addressing, 0),
                  routes=addressing.routes, dns=dns)


def announce_addresses(backend: NetBackend, netns: str, ifname: str) -> None:
    """arp_notify/ndisc_notify, best effort as in Go: neighbours learn the new MAC at
    once instead of after their ARP/ND entries expire."""
    for key in (f"ipv4/conf/{ifname}/arp_notify", f"ipv6/conf/{ifname}/ndisc_notify"):
        with contextlib.suppress(NetError):
            backend.sysctl_set(key, "1", netns)
