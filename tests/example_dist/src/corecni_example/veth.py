"""``example-veth``: an interface plugin - a veth pair, IPAM on the container end.

The container end is created inside CNI_NETNS under CNI_IFNAME and gets the
IPAM plugin's addresses and routes; the node end ("veth" + 8 hex) gets each
gateway with the subnet's prefix, so the container reaches the node through it.
Only ``corecni.kit`` is imported: the link layer is ``request.net``.

Config keys: ``ipam`` (required), ``mtu`` (optional, the pair's MTU).
"""

from __future__ import annotations

import ipaddress

from corecni.kit import (
    CNI_VERSION,
    CNIError,
    ErrorCode,
    Interface,
    Request,
    Result,
    check_container_link,
    check_iface,
    config_error,
    configure_iface,
    create_veth,
    delete_link_here,
    delete_own_veth,
    ensure_ifname_free,
    hookimpl,
    int_key,
    ipam_gc,
    ipam_released_on_failure,
    ipam_status,
    ips_for,
    kernel_step,
    prev_container_interface,
    require_ips,
    undo_on_failure,
)

HOST, CONTAINER = 0, 1  # result interface indexes


@hookimpl
def cni_add(request: Request) -> Result:
    mtu = int_key(request.config.raw, "mtu")
    net, netns, ifname = request.net, request.netns, request.ifname
    ensure_ifname_free(net, netns, ifname)
    ipam = request.ipam_add()
    with ipam_released_on_failure(request), undo_on_failure() as undo:
        require_ips(ipam)
        missing = [ip.address for ip in ipam.ips if not ip.gateway]
        if missing:
            raise config_error("example-veth needs a gateway for every address",
                               ", ".join(missing))
        host = create_veth(net, netns, ifname, mtu=mtu)
        undo.append(lambda: delete_link_here(net, host))
        with kernel_step(f"look up veth pair {host}/{ifname}"):
            host_link, container = net.link(host), net.link(ifname, netns)
        if host_link is None or container is None:
            raise CNIError(ErrorCode.INTERNAL, f"veth pair {host}/{ifname} vanished during ADD")
        result = Result(cni_version=CNI_VERSION,
                        interfaces=(Interface(name=host, mac=host_link.mac),
                                    Interface(name=ifname, mac=container.mac, sandbox=netns)),
                        ips=ips_for(ipam, CONTAINER), routes=ipam.routes, dns=ipam.dns)
        configure_iface(net, netns, ifname, result)
        batch = net.batch(None)
        for ip in result.ips:
            prefix = ipaddress.ip_interface(ip.address).network.prefixlen
            batch.add_address(host, f"{ip.gateway}/{prefix}", nodad=True)
        with kernel_step(f"give {host} the gateway addresses"):
            batch.commit()
        return result


@hookimpl
def cni_del(request: Request) -> None:
    """IPAM first, then the container end (the node end goes with it). Idempotent:
    no netns, a netns that is gone, a link that is gone - nothing to do."""
    request.ipam_del()
    if request.netns:
        delete_own_veth(request.net, request)


@hookimpl
def cni_check(request: Request) -> None:
    request.ipam_check()
    prev, iface = prev_container_interface(request)
    check_container_link(request.net, request, iface, "veth")
    check_iface(request.net, request.netns, request.ifname, prev)


@hookimpl
def plugin_status(request: Request) -> None:
    """Ready when the IPAM plugin is."""
    ipam_status(request)


@hookimpl
def plugin_gc(request: Request) -> None:
    """Nothing of its own to collect; the IPAM plugin's leases are."""
    ipam_gc(request)
