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
import os
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from corecni import netns as netns_mod
from corecni.net import Batch, Link, NetBackend, NetError
from corecni.net import Route as NetRoute
from corecni.plugin import Request
from corecni.spec.errors import CNIError, ErrorCode
from corecni.spec.result import DNS, Interface, IPConfig, Result
from corecni.spec.version import CURRENT
from corecni_contrib import _config_keys


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


# ---------------------------------------------------------------------------
# Plugin config keys read the way Go's json.Unmarshal reads them (the rule is
# ``_config_keys``'): an absent or null key is the zero value, a key of the
# wrong JSON type is a config error naming the key, quoted.
# (Added with macvlan/ipvlan/vlan/host-device.)
# ---------------------------------------------------------------------------

#: Code 7: the network configuration cannot be served as written.
cfg_error = _config_keys.config_error


def cfg_str(raw: Mapping[str, Any], key: str) -> str:
    return _config_keys.optional(raw, key, str, "", repr(key))


def cfg_int(raw: Mapping[str, Any], key: str) -> int:
    return _config_keys.optional(raw, key, int, 0, repr(key))


def cfg_bool(raw: Mapping[str, Any], key: str) -> bool:
    return _config_keys.optional(raw, key, bool, False, repr(key))


def cfg_list(raw: Mapping[str, Any], key: str) -> list[Any]:
    return _config_keys.optional(raw, key, list, [], repr(key))


def cfg_dns(raw: Mapping[str, Any]) -> DNS:
    """The config's own ``dns`` key: what Go's interface plugins put in their result."""
    return _config_keys.parse_dns(raw.get("dns"), "'dns'")


def cfg_ipam_type(raw: Mapping[str, Any]) -> str:
    """``ipam.type``, "" when there is no IPAM (Go's ``n.IPAM.Type == ""``)."""
    return cfg_str(_config_keys.optional(raw, "ipam", dict, {}, "'ipam'"), "type")


def cfg_mac(value: str, what: str) -> str:
    """A 6-byte MAC (``:`` or ``-`` separated) in the kernel's lower-case form."""
    parts = value.replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(p) == 2 and _is_hex(p) for p in parts):
        raise cfg_error(f"invalid {what} {value!r}", "expected a MAC such as 02:42:ac:11:00:02")
    return ":".join(parts).lower()


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


# ---------------------------------------------------------------------------
# A link made on a master device and placed in the container: what macvlan,
# ipvlan and vlan share (Go repeats it in each plugin).
# ---------------------------------------------------------------------------

#: Queues the creation of the link: ``(batch, name, netns)``; ``netns`` is where the
#: link must end up, ``None`` for the batch's own namespace.
CreateLink = Callable[[Batch, str, str | None], object]


def temp_link_name() -> str:
    """Go's trick: create under a random name and rename inside the container, so the
    final name never has to be free in the node namespace too."""
    return "cni" + os.urandom(4).hex()


def default_route_interface(backend: NetBackend, netns: str | None) -> str:
    """The link of the first default route (IPv4 first), as Go's plugins default ``master``."""
    with kernel_step("list routes to find the default route interface"):
        for family in (socket.AF_INET, socket.AF_INET6):
            for route in backend.routes(netns, family=family):
                if route.ifname and ipaddress.ip_network(route.dst, strict=False).prefixlen == 0:
                    return route.ifname
    raise cfg_error("no default route interface found",
                    "set \"master\": there is no default route to take it from")


def lookup_master(backend: NetBackend, master: str, netns: str | None) -> Link:
    """The master link; code 7 naming it when it does not exist."""
    with kernel_step(f"look up master {master}"):
        link = backend.link(master, netns)
    if link is None:
        where = f"the container namespace {netns}" if netns else "the node namespace"
        raise cfg_error(f'failed to lookup master "{master}": link not found',
                        f"there is no link {master!r} in {where}")
    return link


def check_mtu_fits(mtu: int, master: Link) -> None:
    """Go's rule for macvlan and vlan: 0 (kernel default) up to the master's MTU."""
    if mtu < 0 or mtu > master.mtu:
        raise cfg_error(f"invalid MTU {mtu}, must be [0, master MTU({master.mtu})]",
                        f"master {master.name}")


def ensure_ifname_free(backend: NetBackend, netns: str, ifname: str) -> None:
    """Refuse before touching anything when CNI_IFNAME is taken in the container."""
    with kernel_step(f"look up {ifname} in {netns}"):
        taken = backend.link(ifname, netns) is not None
    if taken:
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT,
                       f"interface {ifname} already exists in the container",
                       f"CNI_IFNAME {ifname!r} is taken in {netns}")


def create_lower_link(backend: NetBackend, request: Request, kind: str, create: CreateLink,
                      master_in_container: bool) -> Interface:
    """Create the ``kind`` link under a temporary name in the container, rename it to
    CNI_IFNAME and return its result interface. Nothing is left when this fails.

    With the master in the node namespace the link is created there and placed in
    the container by the same request (IFLA_NET_NS_FD); with ``linkInContainer``
    both the creation and the rename are one batch in the container.
    """
    netns, ifname = request.netns, request.ifname
    ensure_ifname_free(backend, netns, ifname)
    tmp = temp_link_name()
    if master_in_container:
        batch = backend.batch(netns)
        create(batch, tmp, None)
        with _creating(kind, ifname):
            batch.set_link(tmp, rename=ifname).commit()
    else:
        batch = backend.batch(None)
        create(batch, tmp, netns)
        with _creating(kind, ifname):
            batch.commit()
        try:
            with _creating(kind, ifname):
                backend.batch(netns).set_link(tmp, rename=ifname).commit()
        except BaseException:
            with contextlib.suppress(Exception):
                backend.batch(netns).del_link(tmp, missing_ok=True).commit()
            raise
    with link_removed_on_failure(backend, netns, ifname), kernel_step(f"read back {ifname}"):
        link = backend.link(ifname, netns)
        if link is None:
            raise CNIError(ErrorCode.INTERNAL, f"failed to refetch {kind} {ifname!r}", netns)
    return Interface(name=ifname, mac=link.mac, sandbox=netns)


#: link kinds whose kernel module is named otherwise
_KERNEL_MODULES = {"vlan": "8021q"}


@contextlib.contextmanager
def _creating(kind: str, ifname: str) -> Iterator[None]:
    try:
        yield
    except NetError as exc:
        if exc.errno == errno.EEXIST and exc.op == "set_link":
            raise CNIError(ErrorCode.INVALID_ENVIRONMENT,
                           f"interface {ifname} already exists in the container",
                           str(exc)) from None
        if exc.errno == errno.ENODEV and exc.op.startswith("add_"):
            raise cfg_error(f"failed to create {kind}: master link not found", str(exc)) from None
        module = _KERNEL_MODULES.get(kind, kind)
        hint = f" (is the {module} kernel module available?)" \
            if exc.errno in (errno.EOPNOTSUPP, errno.EAFNOSUPPORT) else ""
        raise CNIError(ErrorCode.INTERNAL, f"failed to create {kind}{hint}: {exc}",
                       errno.errorcode.get(exc.errno, "")) from None


@contextlib.contextmanager
def link_removed_on_failure(backend: NetBackend, netns: str, ifname: str) -> Iterator[None]:
    """Delete the container link when anything after its creation fails (Go's deferred
    LinkDel), so a failed ADD leaves no half-configured interface behind."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            backend.batch(netns).del_link(ifname, missing_ok=True).commit()
        raise


def require_ips(result: Result) -> None:
    if not result.ips:
        raise CNIError(ErrorCode.INTERNAL, "IPAM plugin returned missing IP config")


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


def address_lower_link(backend: NetBackend, request: Request, iface: Interface,
                       addressing: Result | None, dns: DNS, *, use_ipam: bool) -> Result:
    """Everything after the link exists: IPAM ADD (when ``use_ipam``) or the given
    ``addressing`` (a chained prevResult), then addresses, up and routes. L2 only
    when there is neither. The link is deleted and IPAM released on any failure."""
    netns, ifname = request.netns, request.ifname
    with link_removed_on_failure(backend, netns, ifname):
        if use_ipam:
            addressing = request.ipam_add()
            with ipam_released_on_failure(request):
                return _configure(backend, netns, ifname, iface, addressing, dns)
        if addressing is not None:
            return _configure(backend, netns, ifname, iface, addressing, dns)
        with kernel_step(f"set {ifname} up in {netns}"):
            backend.batch(netns).set_link(ifname, up=True).commit()
        return attached_result(iface, None, dns)


def _configure(backend: NetBackend, netns: str, ifname: str, iface: Interface,
               addressing: Result, dns: DNS) -> Result:
    require_ips(addressing)
    result = attached_result(iface, addressing, dns)
    announce_addresses(backend, netns, ifname)
    configure_iface(backend, netns, ifname, result)
    return result


def netns_gone(netns: str) -> bool:
    """DEL's test: a namespace that no longer exists means its links are gone too."""
    try:
        netns_mod.check_netns(netns)
    except netns_mod.NetnsError as exc:
        if exc.errno == errno.ENOENT:
            return True
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT, "CNI_NETNS is not a network namespace",
                       f"{netns}: {exc.strerror}") from None
    return False


def release_ipam(request: Request) -> None:
    """DEL's IPAM half: release when the config names an IPAM plugin."""
    if cfg_ipam_type(request.config.raw):
        request.ipam_del()


def delete_container_link(backend: NetBackend, request: Request, kind: str) -> None:
    """DEL's kernel half: delete CNI_IFNAME from the container if it is a ``kind`` link.

    Succeeds when there is nothing to do: no netns given, the netns is gone, the link
    is gone - DEL may come twice, without an ADD, or after the container died. A link
    of another kind under that name is not ours (e.g. it made our ADD fail) and stays.
    """
    _delete_if_ours(backend, request, lambda link: link.kind == kind)


def _delete_if_ours(backend: NetBackend, request: Request, ours: Callable[[Link], bool]) -> None:
    """DEL's kernel half: delete CNI_IFNAME from the container when ``ours(link)``.
    No netns, a netns that is gone, a link that is gone: nothing to do."""
    netns, ifname = request.netns, request.ifname
    if not netns or netns_gone(netns):
        return
    try:
        link = backend.link(ifname, netns)
        if link is None or not ours(link):
            return
        backend.batch(netns).del_link(ifname, missing_ok=True).commit()
    except NetError as exc:
        if exc.errno == errno.ENOENT:  # the namespace went away meanwhile
            return
        raise net_failure(f"delete {ifname} in {netns}", exc) from None


def prev_container_interface(request: Request) -> tuple[Result, Interface]:
    """CHECK: the previous result and its entry for CNI_IFNAME in CNI_NETNS."""
    prev = request.prev_result
    if prev is None:
        raise cfg_error("required prevResult missing", "CHECK needs the result of the ADD")
    for iface in prev.interfaces:
        if iface.name == request.ifname and iface.sandbox == request.netns:
            return prev, iface
    raise CNIError(ErrorCode.INTERNAL,
                   f"sandbox in prevResult doesn't match configured netns: {request.netns}",
                   f"prevResult has no interface {request.ifname!r} in that sandbox")


def check_container_link(backend: NetBackend, request: Request, iface: Interface,
                         kind: str | None) -> Link:
    """CHECK: the container link exists, is a ``kind`` link (any kind for ``None``)
    and still has the MAC the result reported."""
    with kernel_step(f"look up {iface.name} in {request.netns}"):
        link = backend.link(iface.name, request.netns)
    if link is None:
        raise CNIError(ErrorCode.INTERNAL,
                       f"container interface {iface.name} from prevResult not found",
                       request.netns)
    if kind is not None and link.kind != kind:
        raise CNIError(ErrorCode.INTERNAL,
                       f"container interface {iface.name} is not of type {kind}",
                       f"it is a {link.kind or 'plain'} link")
    if iface.mac and iface.mac.lower() != link.mac:
        raise CNIError(ErrorCode.INTERNAL,
                       f"interface {iface.name} MAC {iface.mac} doesn't match container MAC "
                       f"{link.mac}")
    return link


def ipam_status(request: Request) -> None:
    """STATUS: an interface plugin is as ready as its IPAM plugin (Go >= 1.5 asks it)."""
    ptype = cfg_ipam_type(request.config.raw)
    if ptype and request.delegate is not None:
        request.delegate.call(ptype, "STATUS", request)


# ---------------------------------------------------------------------------
# veth pairs: what bridge and ptp share (Go's ip.SetupVeth), plus the undo list
# and the GC forwarding their multi-step ADDs need. (Added with bridge/ptp.)
# ---------------------------------------------------------------------------

_VETH_NAME_TRIES = 8
MAX_VETH_MTU = 65535


def cfg_veth_mtu(raw: Mapping[str, Any]) -> int:
    """``mtu`` of bridge and ptp: 0 (kernel default) up to 65535."""
    mtu = cfg_int(raw, "mtu")
    if not 0 <= mtu <= MAX_VETH_MTU:
        raise cfg_error(f"invalid MTU {mtu}", f"must be 0 (kernel default) to {MAX_VETH_MTU}")
    return mtu


def cfg_masq_backend(raw: Mapping[str, Any], backends: Sequence[str]) -> str | None:
    """``ipMasqBackend`` of bridge and ptp: absent (``None``: the default) or one of
    ``backends`` (``_masq.BACKENDS``, passed in: ``_iface`` does not import ``_masq``)."""
    backend = raw.get("ipMasqBackend")
    if backend is not None and backend not in backends:
        raise cfg_error(f"unknown ipmasq backend {backend!r}",
                        f"expected one of {', '.join(backends)}")
    return backend


def random_veth_name() -> str:
    """Go's ``ip.RandomVethName``: "veth" and 8 hex digits (4 random bytes)."""
    return "veth" + os.urandom(4).hex()


def create_veth(backend: NetBackend, netns: str, ifname: str, *, mtu: int = 0, mac: str = "",
                master: str | None = None, hairpin: bool | None = None) -> str:
    """Create the pair in one batch and return the host end's name.

    The host end ("veth" + 8 hex) is made in the calling thread's namespace (the
    node), the container end is created directly inside ``netns`` under
    CNI_IFNAME, so it never exists under a temporary name anywhere. The host end
    is put on ``master`` (with ``hairpin``) and set up in the same batch, whose
    rollback removes the pair when any step fails.
    """
    ensure_ifname_free(backend, netns, ifname)
    for _ in range(_VETH_NAME_TRIES):
        host = random_veth_name()
        batch = backend.batch(None)
        batch.add_veth(host, ifname, peer_netns=netns, mtu=mtu or None, peer_mac=mac or None)
        batch.set_link(host, master=master, hairpin=hairpin, up=True)
        try:
            batch.commit()
            return host
        except NetError as exc:
            if exc.errno == errno.EEXIST and backend.link(host) is not None:
                continue  # the random host name is taken: draw another
            if exc.errno == errno.EEXIST:
                raise CNIError(ErrorCode.INVALID_ENVIRONMENT,
                               f"interface {ifname} already exists in the container",
                               str(exc)) from None
            if exc.errno == errno.ENODEV and master is not None and exc.op == "set_link":
                raise cfg_error(f"failed to connect {host} to bridge {master}: not found",
                                str(exc)) from None
            raise net_failure(f"create veth pair {host}/{ifname}", exc) from None
    raise CNIError(ErrorCode.INTERNAL, "failed to find a free veth name",
                   f"{_VETH_NAME_TRIES} random names were taken")


def delete_link_here(backend: NetBackend, name: str) -> None:
    """Remove a link of the node namespace (best effort: for undo after a failure)."""
    with contextlib.suppress(Exception):
        backend.batch(None).del_link(name, missing_ok=True).commit()


@contextlib.contextmanager
def undo_on_failure() -> Iterator[list[Callable[[], object]]]:
    """Collect undo steps while an ADD proceeds; run them newest first if it fails.

    Undo steps are best effort (their own errors are dropped): the caller must
    see the error that made the ADD fail, not one from cleaning up after it.
    """
    steps: list[Callable[[], object]] = []
    try:
        yield steps
    except BaseException:
        for step in reversed(steps):
            with contextlib.suppress(Exception):
                step()
        raise


def _predates_command(exc: CNIError) -> bool:
    """An IPAM plugin older than SPEC 1.1.0 answers STATUS/GC with "unknown command"
    (Go's 1.1.1 skel asks for a container ID first): nothing to check or collect."""
    return (exc.code == ErrorCode.INVALID_ENVIRONMENT and "unknown CNI_COMMAND" in exc.msg) \
        or (exc.code == ErrorCode.UNKNOWN_CONTAINER and "missing containerID" in exc.msg)


def ipam_gc(request: Request) -> None:
    """GC: forward to the IPAM plugin (only the interface plugin can reach it)."""
    ptype = cfg_ipam_type(request.config.raw)
    if not ptype or request.delegate is None:
        return
    try:
        request.delegate.call(ptype, "GC", request)
    except CNIError as exc:
        if not _predates_command(exc):
            raise


def delete_own_veth(backend: NetBackend, request: Request) -> None:
    """DEL's kernel half for the veth plugins (bridge, ptp): remove CNI_IFNAME from the
    container when it is our kind of link - a veth whose peer is in this (node)
    namespace; the peer goes with it.

    A foreign interface under that name stays: it is what made our ADD fail, and
    the runtime rolls back with DEL. No netns, a netns that is gone, a link that
    is gone: nothing to do, not an error (DEL may come twice or without an ADD).
    """
    def ours(link: Link) -> bool:
        return link.kind == "veth" and any(
            n.index == link.peer_index and n.kind == "veth" and n.peer_index == link.index
            for n in backend.links(None))

    _delete_if_ours(backend, request, ours)
