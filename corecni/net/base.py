"""The link-layer contract every backend implements.

Plugins never talk netlink themselves: they describe what the kernel should hold
(links, addresses, routes, neighbours, policy rules, qdiscs and filters,
sysctls) through this small interface and
a backend (pure pyroute2, or the cffi-compiled native batcher) does the work.
Keeping the interface name-based and namespace-explicit is what lets the native
backend send a whole container attach as one batch: nothing here needs an
ifindex round trip between two requests.

Nothing in this package knows about CNI JSON. Errors are ``NetError`` (errno +
the operation + the object), which the CNI layer maps to a CNI error code.

Namespaces are named by path (``/var/run/netns/x``, ``/proc/<pid>/ns/net``);
``None`` means the namespace of the calling thread. A backend never changes the
calling thread's namespace permanently.
"""

from __future__ import annotations

import errno as _errno
import socket as _socket
from typing import Protocol

import attrs


@attrs.frozen
class Link:
    """A link as read back from the kernel (for CHECK and for tests)."""

    index: int
    name: str
    kind: str  # "veth", "bridge", "macvlan", ... or "" for a plain device (lo, eth)
    mtu: int
    mac: str  # lower-case "aa:bb:cc:dd:ee:ff", "" when the link has none
    up: bool  # IFF_UP is set
    master: str | None = None  # name of the master (bridge) link, if any
    peer_index: int | None = None  # for veth: IFLA_LINK (peer ifindex, maybe in another netns)
    link_netnsid: int | None = None
    promisc: bool = False
    hairpin: bool | None = None  # bridge port hairpin mode, None when not a bridge port
    vlan_filtering: bool | None = None  # bridges only
    alias: str = ""
    # macvlan: "private"/"vepa"/"bridge"/"passthru"/"source"; ipvlan: "l2"/"l3"/"l3s";
    # None for other kinds (a number the tables in ``_common`` do not know: its digits)
    mode: str | None = None
    vlan_id: int | None = None  # vlan links only: the 802.1Q VLAN ID
    allmulti: bool = False  # IFF_ALLMULTI as set by the user
    txqlen: int = 0
    vrf_table: int | None = None  # vrf links only: their routing table


@attrs.frozen
class Address:
    ifname: str
    address: str  # interface form, "10.1.2.3/24" or "fd00::3/64"
    family: int  # socket.AF_INET / AF_INET6
    scope: int = 0


@attrs.frozen
class Route:
    dst: str  # CIDR; "0.0.0.0/0" or "::/0" for a default route
    gateway: str | None = None
    ifname: str | None = None
    table: int = 254  # RT_TABLE_MAIN
    priority: int | None = None  # metric
    scope: int | None = None  # RT_SCOPE_*; None lets the kernel/backend choose (link if no gw)
    mtu: int | None = None
    advmss: int | None = None
    src: str | None = None
    proto: int | None = None
    onlink: bool = False  # the gateway is on the link even with no route to it (RTNH_F_ONLINK)


@attrs.frozen
class Neighbour:
    ifname: str
    address: str  # IP
    lladdr: str  # MAC
    permanent: bool = True


@attrs.frozen
class FdbEntry:
    """A forwarding-database entry of a VXLAN (or bridge) port: frames for ``mac`` go
    to the remote tunnel endpoint ``dst`` (``bridge fdb ... dst``); permanent."""

    ifname: str
    mac: str  # lower-case
    dst: str | None = None  # remote VTEP IP; None for a plain bridge entry


# tc handles are "major:minor" packed in 32 bits: tc_handle(1, 0) is "1:".
TC_H_ROOT = 0xFFFFFFFF  # parent of a root qdisc
TC_H_INGRESS = 0xFFFFFFF1  # parent of the ingress and clsact qdiscs
TC_H_INGRESS_HANDLE = 0xFFFF0000  # "ffff:", the ingress qdisc's handle (parent of its filters)
ETH_P_ALL = 0x0003  # a filter's protocol: every packet


def tc_handle(major: int, minor: int = 0) -> int:
    """The 32-bit tc handle ``major:minor`` (both hexadecimal in ``tc``'s notation)."""
    if not (0 <= major <= 0xFFFF and 0 <= minor <= 0xFFFF):
        raise ValueError(f"tc handle {major:x}:{minor:x} out of range")
    return (major << 16) | minor


@attrs.frozen
class Qdisc:
    """A queueing discipline on a link.

    Queued with ``Batch.add_qdisc``: ``kind`` "tbf" (token bucket: ``rate``,
    ``burst`` and ``limit`` in bytes; sent as Go's bandwidth plugin sends it),
    "ingress" or "clsact" (parent ``TC_H_INGRESS``, handle "ffff:"), or any kind
    that takes no options. Read back by ``NetBackend.qdiscs`` with ``buffer``,
    the bucket as the kernel keeps it (psched ticks, see ``tbf_buffer``); the
    ``burst`` read back is derived from it and may differ by rounding.
    """

    ifname: str
    kind: str
    handle: int = 0  # 0: the kernel picks one
    parent: int = TC_H_ROOT
    rate: int | None = None  # tbf: bytes per second
    burst: int | None = None  # tbf: bytes
    limit: int | None = None  # tbf: bytes that may wait in the queue
    buffer: int | None = None  # tbf: psched ticks (read-back; used on add when burst is None)


@attrs.frozen
class Filter:
    """A tc filter matching every packet, optionally redirecting it.

    ``kind`` "u32" (one empty key, as Go's bandwidth plugin builds it) or
    "matchall"; ``redirect`` adds a mirred action sending the packet to the
    egress of that link (e.g. an ifb device) and stealing it. ``parent`` is the
    qdisc's handle (``TC_H_INGRESS_HANDLE`` for the ingress qdisc).
    """

    ifname: str
    parent: int
    kind: str = "u32"
    priority: int = 1  # the filter's preference
    protocol: int = ETH_P_ALL  # ethernet protocol, host order
    classid: int | None = None
    redirect: str | None = None
    handle: int = 0  # read-back only


@attrs.frozen
class Rule:
    """A policy routing rule: packets matching go to ``table``.

    ``src``/``dst`` are CIDRs; ``iif``/``oif`` interface names (a rule may name
    a link that does not exist yet). ``family`` follows ``src``/``dst`` when
    they are given. ``priority`` None lets the kernel choose (the next free one
    below the first rule's).
    """

    table: int
    priority: int | None = None
    src: str | None = None
    dst: str | None = None
    iif: str | None = None
    oif: str | None = None
    family: int = _socket.AF_INET


class NetError(Exception):
    """A netlink request failed: ``errno`` plus which operation on which object."""

    def __init__(self, err: int, op: str, obj: str, detail: str = "") -> None:
        self.errno = err
        self.op = op
        self.obj = obj
        self.detail = detail
        name = _errno.errorcode.get(err, str(err))
        text = f"{op} {obj}: {name} ({_strerror(err)})"
        if detail:
            text += f": {detail}"
        super().__init__(text)


def _strerror(err: int) -> str:
    import os

    return os.strerror(err)


class Batch(Protocol):
    """Requests queued against one namespace and sent together by ``commit``.

    Requests run in the order queued. A later request may name a link that an
    earlier one in the same batch creates. If request N fails, ``commit`` removes
    every link the batch created (in reverse order) and raises ``NetError`` for
    request N; changes to pre-existing objects are not undone.
    Every method returns ``self`` so calls can be chained.
    """

    def add_veth(self, name: str, peer: str, *, peer_netns: str | None = None,
                 mtu: int | None = None, mac: str | None = None,
                 peer_mac: str | None = None) -> Batch:
        """Create veth ``name`` here and its peer ``peer`` directly in ``peer_netns``."""

    def add_bridge(self, name: str, *, mtu: int | None = None, mac: str | None = None,
                   vlan_filtering: bool | None = None) -> Batch: ...

    def add_macvlan(self, name: str, master: str, *, mode: str = "bridge",
                    netns: str | None = None, mtu: int | None = None,
                    mac: str | None = None) -> Batch:
        """Create on ``master`` (in this batch's namespace) and place it in ``netns``."""

    def add_ipvlan(self, name: str, master: str, *, mode: str = "l2",
                   flag: str = "bridge", netns: str | None = None,
                   mtu: int | None = None) -> Batch: ...

    def add_vlan(self, name: str, master: str, vlan_id: int, *,
                 netns: str | None = None, mtu: int | None = None) -> Batch: ...

    def add_ifb(self, name: str, *, mtu: int | None = None) -> Batch:
        """An ifb device (intermediate functional block: shapes what is redirected to it)."""

    def add_dummy(self, name: str, *, netns: str | None = None, mtu: int | None = None,
                  mac: str | None = None) -> Batch:
        """A dummy link, created here or directly in ``netns``."""

    def add_vrf(self, name: str, table: int, *, netns: str | None = None) -> Batch:
        """A VRF device bound to routing ``table``, created here or directly in ``netns``."""

    def add_tap(self, name: str, *, mtu: int | None = None, mac: str | None = None,
                multi_queue: bool = False, owner: int | None = None,
                group: int | None = None) -> Batch:
        """A persistent tap device in this batch's namespace (made with the TUNSETIFF
        ioctl: netlink cannot create tun/tap devices). A name in use is EEXIST."""

    def set_link(self, name: str, *, up: bool | None = None, mtu: int | None = None,
                 mac: str | None = None, master: str | None = None,
                 nomaster: bool = False, rename: str | None = None,
                 netns: str | None = None, promisc: bool | None = None,
                 hairpin: bool | None = None, alias: str | None = None,
                 allmulti: bool | None = None, txqlen: int | None = None) -> Batch:
        """Change an existing link; ``netns`` moves it into that namespace (last)."""

    def del_link(self, name: str, *, missing_ok: bool = False) -> Batch: ...

    def add_address(self, ifname: str, address: str, *, nodad: bool = False) -> Batch:
        """Add ``address`` (interface form). ``nodad`` skips IPv6 duplicate detection."""

    def del_address(self, ifname: str, address: str, *, missing_ok: bool = False) -> Batch: ...

    def add_route(self, route: Route, *, replace: bool = False) -> Batch: ...

    def del_route(self, route: Route, *, missing_ok: bool = False) -> Batch: ...

    def add_neighbour(self, neigh: Neighbour, *, replace: bool = True) -> Batch: ...

    def del_neighbour(self, neigh: Neighbour, *, missing_ok: bool = False) -> Batch:
        """By address and link; the lladdr is not compared."""
        ...

    def add_vxlan(self, name: str, vni: int, *, local: str | None = None, port: int = 4789,
                  dev: str | None = None, learning: bool = True, mtu: int | None = None,
                  mac: str | None = None) -> Batch:
        """A VXLAN link: ``vni``, the local tunnel IP, the UDP port, the underlay link."""
        ...

    def add_fdb(self, entry: FdbEntry, *, replace: bool = True) -> Batch:
        """A permanent FDB entry (``NTF_SELF``: the VXLAN device's own table)."""
        ...

    def del_fdb(self, entry: FdbEntry, *, missing_ok: bool = False) -> Batch: ...

    def add_rule(self, rule: Rule) -> Batch:
        """An identical rule already there is EEXIST."""

    def del_rule(self, rule: Rule, *, missing_ok: bool = False) -> Batch:
        """Deletes the first rule matching the fields given."""

    def add_qdisc(self, qdisc: Qdisc, *, replace: bool = False) -> Batch: ...

    def del_qdisc(self, ifname: str, *, parent: int = TC_H_ROOT,
                  missing_ok: bool = False) -> Batch:
        """Remove the qdisc at ``parent`` (and its filters); ``missing_ok`` also accepts a
        missing link and a link with only its default qdisc."""

    def add_filter(self, flt: Filter) -> Batch: ...

    def del_filter(self, flt: Filter, *, missing_ok: bool = False) -> Batch:
        """Removes the filters of ``flt.parent`` with its priority and protocol."""

    def commit(self) -> None: ...


class NetBackend(Protocol):
    """A link-layer implementation. Reads are immediate; writes go through batches."""

    name: str

    def batch(self, netns: str | None = None) -> Batch: ...

    def links(self, netns: str | None = None) -> list[Link]: ...

    def link(self, name: str, netns: str | None = None) -> Link | None: ...

    def addresses(self, netns: str | None = None, ifname: str | None = None,
                  family: int | None = None) -> list[Address]: ...

    def routes(self, netns: str | None = None, family: int | None = None,
               table: int | None = 254) -> list[Route]: ...

    def neighbours(self, netns: str | None = None,
                   ifname: str | None = None) -> list[Neighbour]: ...

    def fdb(self, ifname: str, netns: str | None = None) -> list[FdbEntry]:
        """The FDB entries of ``ifname`` that name a remote endpoint (VXLAN)."""
        ...

    def rules(self, netns: str | None = None, family: int | None = None) -> list[Rule]:
        """Every rule of ``family`` (both IPv4 and IPv6 when None), the kernel's own too."""

    def qdiscs(self, netns: str | None = None, ifname: str | None = None) -> list[Qdisc]: ...

    def filters(self, ifname: str, parent: int, netns: str | None = None) -> list[Filter]:
        """The filters of ``ifname`` below the qdisc whose handle is ``parent``."""

    def sysctl_get(self, key: str, netns: str | None = None) -> str:
        """``key`` as a /proc/sys path below net, e.g. ``ipv4/ip_forward``; the text
        its file shows. A backend may answer a per-device setting
        (``ipv4/conf/DEV/route_localnet``) from netlink: same value, a cost that does
        not grow with the namespaces on the machine, so read-before-write is cheap."""

    def sysctl_set(self, key: str, value: str, netns: str | None = None) -> None: ...


