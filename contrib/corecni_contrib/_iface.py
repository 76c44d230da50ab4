"""What every interface plugin does with an IPAM result, in one place.

Go's plugins share ``ipam.ConfigureIface`` and the ``ip.ValidateExpected*``
helpers; these are their corecni counterparts over the link-layer contract
(``corecni.net``), so a plugin never speaks netlink itself and the native
backend can send the whole configuration as one batch.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import socket
from collections.abc import Iterator

import attrs

from corecni.net import NetBackend, NetError
from corecni.net import Route as NetRoute
from corecni.plugin import Request
from corecni.spec.errors import CNIError, ErrorCode
from corecni.spec.result import IPConfig, Result


def net_failure(what: str, exc: NetError) -> CNIError:
    """A kernel refusal as a CNI error naming what the plugin was doing."""
    return CNIError(ErrorCode.INTERNAL, f"{what}: {exc}", errno.errorcode.get(exc.errno, ""))


@contextlib.contextmanager
def kernel_step(what: str) -> Iterator[None]:
    try:
        yield
    except NetError as exc:
        raise net_failure(what, exc) from None


@contextlib.contextmanager
def ipam_released_on_failure(request: Request) -> Iterator[None]:
    """Release the IPAM allocation if anything after it fails: no IP stays reserved."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            request.ipam_del()
        raise


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


def configure_iface(backend: NetBackend, netns: str, ifname: str, result: Result) -> None:
    """Addresses, link up, routes - one batch in the container's namespace.

    IPv6 addresses skip duplicate address detection: the address came from IPAM,
    and DAD would hold the container for seconds.
    """
    ips = _ips_on(result, ifname)
    if any(ip.family == 6 for ip in ips):
        with kernel_step(f"enable IPv6 on {ifname}"):
            backend.sysctl_set(f"ipv6/conf/{ifname}/disable_ipv6", "0", netns)
    batch = backend.batch(netns)
    for ip in ips:
        batch.add_address(ifname, ip.address, nodad=ip.family == 6)
    batch.set_link(ifname, up=True)
    for route in net_routes(result, ifname):
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


def prev_interface(request: Request) -> int | None:
    """Index of ``request.ifname`` among the previous result's interfaces in the sandbox."""
    prev = request.prev_result
    if prev is None:
        return None
    for index, iface in enumerate(prev.interfaces):
        if iface.name == request.ifname and iface.sandbox:
            return index
    return None
