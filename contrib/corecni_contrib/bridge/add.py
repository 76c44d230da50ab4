"""bridge ADD: Go's ``cmdAdd``, ordered so that what can be refused is refused first.

Go creates the veth pair, then asks IPAM, then finds out that the bridge holds
a conflicting address. Here the checks that need no kernel change come first
(config, CNI_IFNAME free, bridge name usable, gateway address conflicts), and
every later step registers its undo, so a failure leaves no veth, no rules and
no IP reserved. IPAM is asked before the bridge is made, so a bad IPAM section
never leaves one behind; a bridge this ADD created goes if a later step fails. A
bridge that was there before is shared infrastructure and stays, as in Go.

An IPAM that works on the container interface itself (``dhcp``, see
``_veth.ipam_needs_link``) is asked in Go's order instead: once the veth is a port
of the bridge; a failure then releases it (while the veth is still there), removes
the veth and a bridge this ADD created.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress

import attrs

from corecni.kit import (
    Request,
    UndoStack,
    config_error,
    configure_iface,
    create_veth,
    delete_link_here,
    ensure_ifname_free,
    ipam_released_on_failure,
    kernel_step,
    net_failure,
    random_mac,
    random_veth_name,
    require_ips,
    undo_on_failure,
)
from corecni.net import Link, NetBackend, NetError
from corecni.spec.errors import CNIError, ErrorCode
from corecni.spec.result import Interface, IPConfig, Result, Route
from corecni.spec.version import CURRENT
from corecni_contrib import _masq
from corecni_contrib._veth import ipam_needs_link
from corecni_contrib.bridge import owner, ports
from corecni_contrib.bridge.config import BridgeConf

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
CONTAINER_INDEX = 2  # Go's result: bridge, host veth, container interface
DEFAULT_DST = {4: "0.0.0.0/0", 6: "::/0"}
FORWARDING = {4: "ipv4/ip_forward", 6: "ipv6/conf/all/forwarding"}


def cmd_add(request: Request) -> Result:
    """Everything that can be refused is refused before the node changes: the config,
    CNI_IFNAME, a non-bridge link under the bridge's name, then the IPAM allocation (a
    bad ``ipam`` section, ``IP=`` argument or store fails here). Only then the bridge;
    if a later step fails, a bridge this ADD created goes again (one that was there
    before is shared with other pods and stays, as in Go). An IPAM that needs the
    container link (``dhcp``) is asked inside ``_attach``, once the veth exists."""
    conf = BridgeConf.from_request(request)
    conf.check_for_add()
    backend = request.net
    ensure_ifname_free(backend, request.netns, request.ifname)
    _refuse_non_bridge(backend, conf.bridge)
    mark = owner.mark_of(request, conf.network)
    if not conf.layer3 or ipam_needs_link(conf.ipam_type):
        with undo_on_failure() as undo, owner.attaching():
            bridge = ensure_bridge(backend, conf, undo, mark)
            return _attach(backend, request, conf, bridge, None, ipam_on_link=conf.layer3)
    ipam = request.ipam_add()
    with ipam_released_on_failure(request), undo_on_failure() as undo:
        require_ips(ipam)
        addressing = with_gateways(ipam, conf)
        with owner.attaching():  # released before the undo, which may remove the bridge
            bridge = ensure_bridge(backend, conf, undo, mark)
            return _attach(backend, request, conf, bridge, addressing)


def _refuse_non_bridge(backend: NetBackend, name: str) -> None:
    with kernel_step(f"look up bridge {name}"):
        link = backend.link(name)
    if link is not None and link.kind != "bridge":
        raise config_error(f'"{name}" already exists but is not a bridge',
                           f"{name} is a {link.kind or 'plain'} link")


def ensure_bridge(backend: NetBackend, conf: BridgeConf, undo: UndoStack | None = None,
                  mark: str = "") -> Link:
    """The bridge, created on first use (Go's ``ensureBridge``), set up (and promiscuous
    when asked); a non-bridge link under its name is refused before anything changes.
    When this call creates it, it carries ``mark`` (the creator, see ``owner``) and
    ``undo`` learns to remove it again unless a concurrent ADD has put a port on it."""
    name = conf.bridge
    with kernel_step(f"look up bridge {name}"):
        link = backend.link(name)
    if link is None:
        try:
            # An explicit MAC is one the kernel keeps: a bridge without one takes the
            # lowest MAC of its ports and changes it as pods come and go, so the MAC a
            # concurrent ADD reported would no longer CHECK.
            batch = backend.batch(None).add_bridge(
                name, mtu=conf.mtu or None, mac=random_mac(),
                vlan_filtering=conf.vlan_filtering or None)
            if mark:
                batch.set_link(name, alias=mark)
            batch.commit()
            if undo is not None:
                undo.push(lambda: owner.release(backend, name, mark))
        except NetError as exc:
            if exc.errno != errno.EEXIST:  # EEXIST: a concurrent ADD made it first
                raise net_failure(f"failed to create bridge {name!r}", exc) from None
        with kernel_step(f"look up bridge {name}"):
            link = backend.link(name)
    if link is None or link.kind != "bridge":
        kind = f"a {link.kind or 'plain'} link" if link is not None else "gone"
        raise config_error(f'"{name}" already exists but is not a bridge', f"{name} is {kind}")
    with contextlib.suppress(NetError):  # we want to own the bridge's routes (Go: best effort)
        if backend.sysctl_get(f"ipv6/conf/{name}/accept_ra") != "0":  # one netlink read
            backend.sysctl_set(f"ipv6/conf/{name}/accept_ra", "0")
    with kernel_step(f"set bridge {name} up"):
        backend.batch(None).set_link(name, up=True,
                                     promisc=True if conf.promisc_mode else None).commit()
    return link


def with_gateways(ipam: Result, conf: BridgeConf) -> Result:
    """Go's ``calcGateways``: ips point at the container interface, a missing gateway is
    the subnet's first address (``isGateway``), and ``isDefaultGateway`` adds one
    default route per family unless IPAM gave one with a gateway."""
    ips: list[IPConfig] = []
    routes = list(ipam.routes)
    for ip in ipam.ips:
        gateway = ip.gateway
        if gateway is None and conf.is_gateway:
            gateway = str(ipaddress.ip_interface(ip.address).network.network_address + 1)
        ips.append(IPConfig(address=ip.address, gateway=gateway, interface=CONTAINER_INDEX))
        default = ipaddress.ip_network(DEFAULT_DST[ip.family])
        if conf.is_default_gateway and not any(
                r.gw and ipaddress.ip_network(r.dst, strict=False) == default for r in routes):
            routes.append(Route(dst=DEFAULT_DST[ip.family], gw=gateway))
    return Result(cni_version=CURRENT, ips=tuple(ips), routes=tuple(routes), dns=ipam.dns)


def gateway_addresses(addressing: Result) -> list[IPInterface]:
    """The bridge's addresses: each gateway with its subnet's prefix, IPv4 first."""
    out = []
    for family in (4, 6):
        for ip in addressing.ips:
            if ip.family == family and ip.gateway:
                prefix = ipaddress.ip_interface(ip.address).network.prefixlen
                out.append(ipaddress.ip_interface(f"{ip.gateway}/{prefix}"))
    return out


def plan_addresses(target: str, present: list[str], wanted: list[IPInterface],
                   force: bool) -> tuple[list[IPInterface], list[IPInterface]]:
    """Go's ``ensureAddr`` as a plan: (to delete, to add).

    An IPv4 link holds one address; IPv6 addresses may coexist unless their
    subnets overlap. A different address in the way is an error unless
    ``forceAddress``, which replaces it.
    """
    have = [ipaddress.ip_interface(a) for a in present]
    delete: list[IPInterface] = []
    add: list[IPInterface] = []
    for gw in wanted:
        if gw in have:
            continue
        for old in [a for a in have if a.version == gw.version]:
            if gw.version == 4 or gw.ip in old.network or old.ip in gw.network:
                if not force:
                    raise CNIError(ErrorCode.INTERNAL,
                                   f'"{target}" already has an IP address different from {gw}',
                                   f"it has {old}; set forceAddress to replace it")
                delete.append(old)
                have.remove(old)
        add.append(gw)
        have.append(gw)
    return delete, add


def _attach(backend: NetBackend, request: Request, conf: BridgeConf, bridge: Link,
            addressing: Result | None, ipam_on_link: bool = False) -> Result:
    """The veth on the bridge, then the addressing (``ipam_on_link``: asked here, once
    the port exists), gateways, masquerade; every step undone if a later one fails."""
    netns, ifname = request.netns, request.ifname
    owner = _masq.Owner(conf.network, request.container_id, ifname)
    gateways = gateway_addresses(addressing) if addressing is not None and conf.is_gateway \
        else []
    gw_link = bridge
    if gateways and not conf.vlan:  # refuse a conflicting bridge address before creating
        _check_gateway_plan(backend, conf, bridge.name, gateways)
    with undo_on_failure() as undo:
        host = create_veth(backend, netns, ifname, mtu=conf.mtu, mac=conf.mac,
                           master=conf.bridge, hairpin=conf.hairpin_mode)
        undo.append(lambda: delete_link_here(backend, host))
        ports.configure_port(host, conf)
        container = _read_link(backend, ifname, netns)
        if conf.mac_spoof_check:
            undo.append(lambda: ports.spoof_teardown(owner))
            ports.spoof_setup(owner, host, container.mac)
        if ipam_on_link:
            addressing, gateways = _ipam_on_link(backend, request, conf, bridge, undo)
        extra: list[Interface] = []
        if addressing is not None:
            _container_sysctls(backend, netns, ifname, conf.enable_dad)
            configure_iface(backend, netns, ifname,
                            _result(conf, bridge, host, container, netns, addressing, ()),
                            dad=conf.enable_dad)
            if gateways:
                if conf.vlan:
                    gw_link = _vlan_gateway(backend, conf, bridge, undo)
                    extra.append(Interface(name=gw_link.name, mac=gw_link.mac))
                _set_gateways(backend, conf, gw_link, gateways)
                _enable_forwarding(backend, {gw.version for gw in gateways})
            if conf.ip_masq:
                undo.append(lambda: _masq.teardown(conf.ip_masq_backend, owner))
                _masq.setup(conf.ip_masq_backend, owner, [ip.address for ip in addressing.ips])
        elif not conf.disable_container_interface:
            with kernel_step(f"set {ifname} up in {netns}"):
                backend.batch(netns).set_link(ifname, up=True).commit()
        # the bridge's MAC may change when its first port joins: report it as it is now
        bridge_now = _read_link(backend, conf.bridge, None)
        host_now = _read_link(backend, host, None)
        return _result(conf, bridge_now, host_now.name, container, netns, addressing,
                       tuple(extra), host_mac=host_now.mac)


def _ipam_on_link(backend: NetBackend, request: Request, conf: BridgeConf, bridge: Link,
                  undo: UndoStack) -> tuple[Result, list[IPInterface]]:
    """Go's order for an IPAM that works on CNI_IFNAME: asked now that the veth is a port
    of the bridge, and released first (the veth still there) if a later step fails.
    The bridge's gateway address is checked here, as it is known only now."""
    ipam = request.ipam_add()
    undo.push(request.ipam_del)
    require_ips(ipam)
    addressing = with_gateways(ipam, conf)
    gateways = gateway_addresses(addressing) if conf.is_gateway else []
    if gateways and not conf.vlan:
        _check_gateway_plan(backend, conf, bridge.name, gateways)
    return addressing, gateways


def _result(conf: BridgeConf, bridge: Link, host: str, container: Link, netns: str,
            addressing: Result | None, extra: tuple[Interface, ...],
            host_mac: str = "") -> Result:
    interfaces = (Interface(name=bridge.name, mac=bridge.mac), Interface(name=host, mac=host_mac),
                  Interface(name=container.name, mac=container.mac, sandbox=netns), *extra)
    if addressing is None:
        return Result(cni_version=CURRENT, interfaces=interfaces, dns=conf.dns)
    dns = addressing.dns if conf.dns.is_empty() else conf.dns
    return Result(cni_version=CURRENT, interfaces=interfaces, ips=addressing.ips,
                  routes=addressing.routes, dns=dns)


def _read_link(backend: NetBackend, name: str, netns: str | None) -> Link:
    with kernel_step(f"look up {name}"):
        link = backend.link(name, netns)
    if link is None:
        raise CNIError(ErrorCode.INTERNAL, f"link {name} vanished during ADD",
                       netns or "node namespace")
    return link


def _container_sysctls(backend: NetBackend, netns: str, ifname: str, dad: bool) -> None:
    """Go's settings, best effort as in Go: DAD only with ``enabledad``; arp_notify so
    neighbours learn the new MAC at once."""
    values = [(f"ipv6/conf/{ifname}/enhanced_dad", "1"), (f"ipv6/conf/{ifname}/accept_dad", "1")] \
        if dad else [(f"ipv6/conf/{ifname}/accept_dad", "0")]
    values.append((f"ipv4/conf/{ifname}/arp_notify", "1"))
    for key, value in values:
        with contextlib.suppress(NetError):
            backend.sysctl_set(key, value, netns)


def _present(backend: NetBackend, name: str) -> list[str]:
    with kernel_step(f"list addresses of {name}"):
        return [a.address for a in backend.addresses(None, name)]


def _check_gateway_plan(backend: NetBackend, conf: BridgeConf, target: str,
                        gateways: list[IPInterface]) -> None:
    plan_addresses(target, _present(backend, target), gateways, conf.force_address)


def _set_gateways(backend: NetBackend, conf: BridgeConf, link: Link,
                  gateways: list[IPInterface]) -> None:
    """Put the gateways on ``link`` and, when an address is added, pin its MAC as Go
    does (else a bridge takes the lowest port MAC and changes it as ports come and
    go; a bridge this plugin created has a MAC set from the start). The MAC pinned
    is the one the link has now, re-read here: concurrent ADDs then all pin the same
    one, never one that a port joining since this ADD looked the bridge up has
    already replaced. The gateways in place (every ADD but the first): nothing is
    written - setting even the same MAC notifies the whole namespace (ARP flushes
    the bridge's neighbours, the route cache is invalidated), work that grows with
    the pods. A concurrent ADD adding the same address first (EEXIST) is met by
    planning once more."""
    for attempt in (1, 2):
        delete, add = plan_addresses(link.name, _present(backend, link.name), gateways,
                                     conf.force_address)
        if not delete and not add:
            return
        with kernel_step(f"look up {link.name}"):
            now = backend.link(link.name)
        mac = now.mac if now is not None else link.mac
        batch = backend.batch(None)
        for old in delete:
            batch.del_address(link.name, str(old), missing_ok=True)
        for gw in add:
            batch.add_address(link.name, str(gw), nodad=gw.version == 6)
        if mac:
            batch.set_link(link.name, mac=mac)
        try:
            batch.commit()
            return
        except NetError as exc:
            if exc.errno != errno.EEXIST or attempt == 2:
                raise net_failure(f"failed to set {link.name} address", exc) from None


def _enable_forwarding(backend: NetBackend, families: set[int]) -> None:
    """ip_forward in the node namespace (the plugin's own), written only when off."""
    for family in sorted(families):
        key = FORWARDING[family]
        with kernel_step("failed to enable forwarding"):
            if backend.sysctl_get(key) != "1":
                backend.sysctl_set(key, "1")


def _vlan_gateway(backend: NetBackend, conf: BridgeConf, bridge: Link,
                  undo: UndoStack) -> Link:
    """Go's ``ensureVlanInterface``: with ``vlan`` and ``isGateway`` the gateway lives on
    ``<bridge>.<vlan>``, one end of a veth whose other end is an access port of that
    VLAN. Shared by every container of the VLAN, so never removed by DEL (as in Go)."""
    name = f"{conf.bridge}.{conf.vlan}"
    with kernel_step(f"look up {name}"):
        link = backend.link(name)
    if link is not None:
        return link
    port = random_veth_name()
    with kernel_step(f"failed to create vlan gateway {name}"):
        (backend.batch(None)
         .add_veth(port, name, mtu=bridge.mtu or None)
         .set_link(port, master=conf.bridge, hairpin=False, up=True)
         .set_link(name, up=True)
         .commit())
    undo.push(lambda: delete_link_here(backend, port))  # made by this ADD: goes if it fails
    ports.configure_port(port, attrs.evolve(conf, vlan_trunk=(), vlan_trunk_set=False,
                                            port_isolation=False))
    return _read_link(backend, name, None)
