"""Links a plugin creates, checks and deletes: veth pairs (Go's ``ip.SetupVeth``) and
links made on a master device and moved into the container (macvlan, ipvlan, vlan).

Every creator here leaves nothing behind when it fails, and every deleter
succeeds when there is nothing to delete (DEL may come twice, without an
ADD, or after the container's namespace is gone) and only removes links it
recognises as the plugin's own.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
from collections.abc import Callable, Iterator

from corecni.kit.addressing import announce_addresses, attached_result, configure_iface
from corecni.kit.config import config_error
from corecni.kit.errors import kernel_step, net_failure
from corecni.kit.ipam import ipam_released_on_failure, release_ipam, require_ips
from corecni.net.base import Batch, Link, NetBackend, NetError
from corecni.request import Request, netns_gone
from corecni.spec.errors import CNIError, ErrorCode
from corecni.spec.result import DNS, Interface, Result

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
    raise config_error("no default route interface found",
                    "set \"master\": there is no default route to take it from")


def lookup_master(backend: NetBackend, master: str, netns: str | None) -> Link:
    """The master link; code 7 naming it when it does not exist."""
    with kernel_step(f"look up master {master}"):
        link = backend.link(master, netns)
    if link is None:
        where = f"the container namespace {netns}" if netns else "the node namespace"
        raise config_error(f'failed to lookup master "{master}": link not found',
                        f"there is no link {master!r} in {where}")
    return link


def check_mtu_fits(mtu: int, master: Link) -> None:
    """Go's rule for macvlan and vlan: 0 (kernel default) up to the master's MTU."""
    if mtu < 0 or mtu > master.mtu:
        raise config_error(f"invalid MTU {mtu}, must be [0, master MTU({master.mtu})]",
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
    # a request the link layer refuses while the batch is built (a value out of range)
    # is a NetError too: it becomes a CNI error like a kernel refusal, never a bare 999
    if master_in_container:
        batch = backend.batch(netns)
        with _creating(kind, ifname):
            create(batch, tmp, None)
            batch.set_link(tmp, rename=ifname).commit()
    else:
        batch = backend.batch(None)
        with _creating(kind, ifname):
            create(batch, tmp, netns)
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
            raise config_error(f"failed to create {kind}: master link not found",
                               str(exc)) from None
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


def delete_container_link(backend: NetBackend, request: Request, kind: str) -> None:
    """DEL's kernel half: delete CNI_IFNAME from the container if it is a ``kind`` link.

    Succeeds when there is nothing to do: no netns given, the netns is gone, the link
    is gone - DEL may come twice, without an ADD, or after the container died. A link
    of another kind under that name is not ours (e.g. it made our ADD fail) and stays.
    """
    _delete_if_ours(backend, request, lambda link: link.kind == kind)


def detach_lower_link(request: Request, kind: str) -> None:
    """DEL of a single-link plugin (macvlan, ipvlan, vlan, dummy, tap...): release IPAM
    when the config names one, then delete CNI_IFNAME when it is a ``kind`` link."""
    release_ipam(request)
    delete_container_link(request.net, request, kind)


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
        raise config_error("required prevResult missing", "CHECK needs the result of the ADD")
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


_VETH_NAME_TRIES = 8


MAX_VETH_MTU = 65535


def random_mac() -> str:
    """A random locally administered unicast MAC (for a bridge or VTEP to keep)."""
    raw = bytearray(os.urandom(6))
    raw[0] = (raw[0] & 0xFE) | 0x02
    return ":".join(f"{b:02x}" for b in raw)


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
                raise config_error(f"failed to connect {host} to bridge {master}: not found",
                                str(exc)) from None
            raise net_failure(f"create veth pair {host}/{ifname}", exc) from None
    raise CNIError(ErrorCode.INTERNAL, "failed to find a free veth name",
                   f"{_VETH_NAME_TRIES} random names were taken")


def delete_link_here(backend: NetBackend, name: str) -> None:
    """Remove a link of the node namespace (best effort: for undo after a failure)."""
    with contextlib.suppress(Exception):
        backend.batch(None).del_link(name, missing_ok=True).commit()


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
