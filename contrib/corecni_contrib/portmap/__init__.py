"""The ``portmap`` meta plugin: host ports forwarded to a container (Go's portmap).

Chained after an interface plugin, it reads the container's addresses from
``prevResult`` (the first IPv4 and the first IPv6 address of the sandbox
interface) and the ``portMappings`` capability from ``runtimeConfig``, and
forwards each host port to the container: from other hosts, from the node
itself (``localhost:hostPort``, which needs ``route_localnet`` on the interface
routing to the container, set as Go sets it) and from the container to its own
host port (hairpin, masqueraded so the reply comes back through the NAT).

Backends (``backend``, Go's default rule: iptables unless only nftables is
installed): ``corecni_contrib.portmap.iptables`` keeps Go's chains so a node can
switch between Go's and corecni's portmap with live pods;
``corecni_contrib.portmap.nftables`` is one table where a container is a few
map elements. Either way a container's rules land in one transaction per call
(iptables: per address family), never one process per rule.

DEL needs no ``prevResult``: rules are found by network and container ID. GC
(SPEC 1.1) removes the rules of the network's containers not in the valid list.
"""

from __future__ import annotations

import ipaddress
import socket

from corecni.kit import CNIError, Request, Result, hookimpl, kernel_step
from corecni_contrib.portmap import iptables, nftables
from corecni_contrib.portmap.config import (
    IPInterface,
    PortMapConf,
    container_ips,
    default_backend,
)


def _ips(conf: PortMapConf, request: Request, result: Result | None) -> list[IPInterface]:
    v4, v6 = container_ips(result, request.ifname)
    return [ip for ip in (v4, v6) if ip is not None]


def _routing_ifname(request: Request, ip: IPInterface) -> str | None:
    """Go's ``getRoutableHostIF``: the node interface of the most specific route to ``ip``."""
    best: tuple[int, str] | None = None
    with kernel_step(f"find the node interface routing to {ip.ip}"):
        routes = request.net.routes(None, socket.AF_INET)
    for route in routes:
        if not route.ifname:
            continue
        net = ipaddress.ip_network(route.dst, strict=False)
        if ip.ip in net and (best is None or net.prefixlen > best[0]):
            best = (net.prefixlen, route.ifname)
    return best[1] if best else None


def enable_localnet(request: Request, ip: IPInterface) -> None:
    """127.0.0.1:hostPort must cross a routing boundary to reach the container.

    Read first, written only when off (Go writes on every ADD): after a network's
    first container it is on, and the read is one netlink answer while opening the
    file costs more the more namespaces the node has."""
    ifname = _routing_ifname(request, ip)
    if ifname is not None:
        key = f"ipv4/conf/{ifname}/route_localnet"
        with kernel_step(f"enable route_localnet on {ifname}"):
            if request.net.sysctl_get(key) != "1":
                request.net.sysctl_set(key, "1")


@hookimpl
def meta_add(request: Request, prev_result: Result) -> Result:
    conf = PortMapConf.from_request(request)
    if not conf.mappings:
        return prev_result
    ips = _ips(conf, request, prev_result)
    if conf.backend == "nftables":
        nftables.add(conf, ips)
    else:
        iptables.add(conf, ips)
    if conf.snat:
        for ip in ips:
            if ip.version == 4:
                enable_localnet(request, ip)
    return prev_result


@hookimpl
def meta_del(request: Request, prev_result: Result | None) -> None:
    """By network and container ID: no ``prevResult`` and no ``portMappings`` needed
    (Go skips DEL without ``portMappings``; a runtime that lost them would leak)."""
    try:
        conf = PortMapConf.from_request(request)
    except CNIError:
        # DEL must clean up even when the mappings are bad; the backend key still counts
        backend = request.config.raw.get("backend")
        conf = PortMapConf(request.config.name, request.container_id,
                           backend if backend in ("iptables", "nftables") else "iptables")
    if conf.backend == "nftables":
        # the exact elements are deleted without a read only when one of them is the
        # container's own (its masquerade pair): a host port key alone may belong to
        # another container, the one whose mapping made this container's ADD fail
        known = (conf, _ips(conf, request, prev_result)) \
            if prev_result is not None and conf.snat and conf.mappings else None
        nftables.remove(conf.network, drop={request.container_id}, known=known)
    else:
        # with a previous result only its families can hold rules (ADD writes no other)
        families = tuple(sorted({ip.version for ip in _ips(conf, request, prev_result)})) \
            if prev_result is not None else (4, 6)
        iptables.remove(conf.network, [request.container_id], families or (4, 6), conf=conf)


@hookimpl
def meta_check(request: Request, prev_result: Result) -> None:
    conf = PortMapConf.from_request(request)
    if not conf.mappings:
        return
    ips = _ips(conf, request, prev_result)
    if conf.backend == "nftables":
        nftables.check(conf, ips)
    else:
        iptables.check(conf, ips)


@hookimpl
def plugin_gc(request: Request) -> None:
    keep = {a.container_id for a in request.valid_attachments}
    backend = request.config.raw.get("backend") or default_backend()
    if backend == "nftables":
        nftables.remove(request.config.name, keep=keep)
    elif backend == "iptables":
        iptables.gc(request.config.name, keep)
