"""The ``ptp`` interface plugin: a routed veth pair per container, no bridge.

Go's ptp (containernetworking/plugins) makes a point-to-point link out of a
veth, which cannot be IFF_POINTOPOINT: the container gets its IPAM address
with the subnet prefix, but its on-link subnet route is replaced by
``<gw>/32 dev <if> scope link`` and ``<subnet> via <gw>``, so everything,
neighbours included, goes through the gateway. The host end ("veth" + 8 hex)
holds every gateway as ``/32`` (``/128``) and a host route to each container
address; forwarding is enabled in the plugin's (node) namespace. The result
lists host veth then container interface, with the ips on the container one.

Each side is one ``corecni.net`` batch. IPv6 addresses skip DAD: IPAM
assigned them, and a tentative address could neither source the routes nor
answer for the gateway for a second or more.
"""

from __future__ import annotations

import ipaddress

import attrs

from corecni.kit import (
    Request,
    UndoStack,
    bool_key,
    check_container_link,
    check_iface,
    config_error,
    create_veth,
    delete_link_here,
    delete_own_veth,
    dns_key,
    ensure_ifname_free,
    hookimpl,
    ipam_gc,
    ipam_released_on_failure,
    ipam_status,
    ipam_type,
    ips_for,
    kernel_step,
    net_routes,
    prev_container_interface,
    require_ips,
    undo_on_failure,
)
from corecni.net import NetBackend
from corecni.net import Route as NetRoute
from corecni.spec.errors import CNIError, ErrorCode
from corecni.spec.result import DNS, Interface, Result
from corecni.spec.version import CURRENT
from corecni_contrib import _masq
from corecni_contrib._veth import cfg_masq_backend, cfg_veth_mtu, ipam_needs_link

HOST_INDEX, CONTAINER_INDEX = 0, 1  # Go's result: host veth, container interface
FORWARDING = {4: "ipv4/ip_forward", 6: "ipv6/conf/all/forwarding"}
RT_SCOPE_LINK, RT_SCOPE_HOST = 253, 254


@attrs.frozen
class PtpConf:
    """Go's ptp ``NetConf``: ``ipMasq``, ``ipMasqBackend``, ``mtu``, ``dns``, ``ipam``."""

    network: str
    ip_masq: bool = False
    ip_masq_backend: str | None = None
    mtu: int = 0
    ipam_type: str = ""
    dns: DNS = attrs.Factory(DNS)

    @classmethod
    def from_request(cls, request: Request) -> PtpConf:
        raw = request.config.raw
        mtu = cfg_veth_mtu(raw)
        backend = cfg_masq_backend(raw, _masq.BACKENDS)
        return cls(network=request.config.name, ip_masq=bool_key(raw, "ipMasq"),
                   ip_masq_backend=backend, mtu=mtu, ipam_type=ipam_type(raw),
                   dns=dns_key(raw))

    def owner(self, request: Request) -> _masq.Owner:
        return _masq.Owner(self.network, request.container_id, request.ifname)


def _max_prefix(family: int) -> int:
    return 32 if family == 4 else 128


def container_batch_routes(result: Result, ifname: str) -> tuple[list[NetRoute], list[NetRoute]]:
    """(routes to delete, routes to add) in the container, Go's ptp trick per address:
    drop the kernel's on-link subnet route, reach the gateway as a /32 on the link,
    the subnet via the gateway; then the IPAM routes."""
    delete, add = [], []
    for ip in result.ips:
        iface = ipaddress.ip_interface(ip.address)
        v4 = iface.version == 4
        delete.append(NetRoute(dst=str(iface.network), ifname=ifname))
        add.append(NetRoute(dst=f"{ip.gateway}/{_max_prefix(iface.version)}", ifname=ifname,
                            scope=RT_SCOPE_LINK if v4 else None, src=str(iface.ip)))
        add.append(NetRoute(dst=str(iface.network), gateway=ip.gateway, ifname=ifname,
                            scope=0 if v4 else None, src=str(iface.ip)))
    for route in net_routes(result, ifname):
        if route not in add:
            add.append(route)
    return delete, add


def _configure_container(backend: NetBackend, netns: str, ifname: str, result: Result) -> None:
    if any(ip.family == 6 for ip in result.ips):
        with kernel_step(f"enable IPv6 on {ifname}"):
            backend.sysctl_set(f"ipv6/conf/{ifname}/disable_ipv6", "0", netns)
    delete, add = container_batch_routes(result, ifname)
    batch = backend.batch(netns)
    for ip in result.ips:
        batch.add_address(ifname, ip.address, nodad=ip.family == 6)
    batch.set_link(ifname, up=True)
    for route in delete:
        batch.del_route(route, missing_ok=True)
    for route in add:
        batch.add_route(route)
    with kernel_step(f"configure {ifname} in {netns}"):
        batch.commit()


def _configure_host(backend: NetBackend, host: str, result: Result) -> None:
    """Gateways as host addresses on the host end, and a host-scope route to each
    container address through it (Go's ``setupHostVeth``)."""
    batch = backend.batch(None)
    for ip in result.ips:
        bits = _max_prefix(ip.family)
        batch.add_address(host, f"{ip.gateway}/{bits}", nodad=ip.family == 6)
    for ip in result.ips:
        bits = _max_prefix(ip.family)
        address = ipaddress.ip_interface(ip.address).ip
        batch.add_route(NetRoute(dst=f"{address}/{bits}", ifname=host,
                                 scope=RT_SCOPE_HOST if ip.family == 4 else None))
    with kernel_step(f"configure host end {host}"):
        batch.commit()


def _enable_forwarding(backend: NetBackend, families: set[int]) -> None:
    for family in sorted(families):
        with kernel_step("could not enable IP forwarding"):
            if backend.sysctl_get(FORWARDING[family]) != "1":
                backend.sysctl_set(FORWARDING[family], "1")


@hookimpl
def cni_add(request: Request) -> Result:
    """IPAM first, so that its errors are refused before the node changes; an IPAM that
    works on the container interface (``dhcp``) in Go's order instead: asked once the
    veth exists, and released (before the veth goes) if a later step fails."""
    conf = PtpConf.from_request(request)
    backend = request.net
    ensure_ifname_free(backend, request.netns, request.ifname)
    if ipam_needs_link(conf.ipam_type):
        with undo_on_failure() as undo:
            host = _create_pair(backend, request, conf, undo)
            ipam = request.ipam_add()
            undo.push(request.ipam_del)
            return _configure(backend, request, conf, _checked(ipam), host, undo)
    ipam = request.ipam_add()
    with ipam_released_on_failure(request), undo_on_failure() as undo:
        _checked(ipam)
        host = _create_pair(backend, request, conf, undo)
        return _configure(backend, request, conf, ipam, host, undo)


def _checked(ipam: Result) -> Result:
    """``ipam``, refused unless it has addresses, each with a gateway."""
    require_ips(ipam)
    missing = [ip.address for ip in ipam.ips if not ip.gateway]
    if missing:
        raise config_error("ptp needs a gateway for every address",
                           f"IPAM gave none for {', '.join(missing)}")
    return ipam


def _create_pair(backend: NetBackend, request: Request, conf: PtpConf, undo: UndoStack) -> str:
    host = create_veth(backend, request.netns, request.ifname, mtu=conf.mtu)
    undo.push(lambda: delete_link_here(backend, host))
    return host


def _configure(backend: NetBackend, request: Request, conf: PtpConf, ipam: Result, host: str,
               undo: UndoStack) -> Result:
    """Forwarding, both ends' addresses and routes, masquerade; the result."""
    netns, ifname = request.netns, request.ifname
    _enable_forwarding(backend, {ip.family for ip in ipam.ips})
    with kernel_step(f"look up veth pair {host}/{ifname}"):
        host_link, container = backend.link(host), backend.link(ifname, netns)
    if host_link is None or container is None:
        raise CNIError(ErrorCode.INTERNAL, f"veth pair {host}/{ifname} vanished during ADD")
    result = Result(
        cni_version=CURRENT,
        interfaces=(Interface(name=host, mac=host_link.mac),
                    Interface(name=ifname, mac=container.mac, sandbox=netns)),
        ips=ips_for(ipam, CONTAINER_INDEX),
        routes=ipam.routes,
        dns=ipam.dns if conf.dns.is_empty() else conf.dns,
    )
    _configure_container(backend, netns, ifname, result)
    _configure_host(backend, host, result)
    if conf.ip_masq:
        owner = conf.owner(request)
        undo.push(lambda: _masq.teardown(conf.ip_masq_backend, owner))
        _masq.setup(conf.ip_masq_backend, owner, [ip.address for ip in result.ips])
    return result


@hookimpl
def cni_del(request: Request) -> None:
    """Go's order is IPAM, the container's veth (the host end and its routes go with
    it), masquerade. Here the masquerade goes first, while IPAM still holds the
    addresses (see ``_masq.teardown``), and even when the namespace is gone (Go
    skips it then)."""
    conf = PtpConf.from_request(request)
    if conf.ip_masq:  # while IPAM still holds the addresses
        _masq.teardown(conf.ip_masq_backend, conf.owner(request),
                       _masq.result_addresses(request.prev_result))
    request.ipam_del()
    if request.netns:
        delete_own_veth(request.net, request)


@hookimpl
def cni_check(request: Request) -> None:
    """Go's checks (IPAM, the container veth and its MAC, addresses, routes), plus the
    host end: it must still be the container interface's peer in this namespace."""
    PtpConf.from_request(request)
    request.ipam_check()
    backend = request.net
    prev, iface = prev_container_interface(request)
    container = check_container_link(backend, request, iface, "veth")
    host = next((i for i in prev.interfaces if not i.sandbox), None)
    if host is not None:
        with kernel_step(f"look up {host.name}"):
            link = backend.link(host.name)
        if link is None or link.peer_index != container.index \
                or container.peer_index != link.index:
            raise CNIError(ErrorCode.INTERNAL,
                           f"host veth {host.name} from prevResult not found",
                           f"the peer of {container.name} is gone or is another link")
    check_iface(backend, request.netns, request.ifname, prev)


@hookimpl
def plugin_status(request: Request) -> None:
    """Go's ptp asks its IPAM plugin."""
    PtpConf.from_request(request)
    ipam_status(request)


@hookimpl
def plugin_gc(request: Request) -> None:
    """Go's ptp has no GC: here IPAM collects, and stale nftables masquerade elements go."""
    conf = PtpConf.from_request(request)
    ipam_gc(request)
    if conf.ip_masq:
        _masq.gc(conf.ip_masq_backend, conf.network,
                 [(a.container_id, a.ifname) for a in request.valid_attachments])
