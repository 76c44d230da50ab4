"""The link-layer contract every backend implements.

Plugins never talk netlink themselves: they describe what the kernel should hold
(links, addresses, routes, neighbours, sysctls) through this small interface and
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


@attrs.frozen
class Neighbour:
    ifname: str
    address: str  # IP
    lladdr: str  # MAC
    permanent: bool = True


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

    def set_link(self, name: str, *, up: bool | None = None, mtu: int | None = None,
                 mac: str | None = None, master: str | None = None,
                 nomaster: bool = False, rename: str | None = None,
                 netns: str | None = None, promisc: bool | None = None,
                 hairpin: bool | None = None, alias: str | None = None) -> Batch:
        """Change an existing link; ``netns`` moves it into that namespace (last)."""

    def del_link(self, name: str, *, missing_ok: bool = False) -> Batch: ...

    def add_address(self, ifname: str, address: str, *, nodad: bool = False) -> Batch:
        """Add ``address`` (interface form). ``nodad`` skips IPv6 duplicate detection."""

    def del_address(self, ifname: str, address: str, *, missing_ok: bool = False) -> Batch: ...

    def add_route(self, route: Route, *, replace: bool = False) -> Batch: ...

    def del_route(self, route: Route, *, missing_ok: bool = False) -> Batch: ...

    def add_neighbour(self, neigh: Neighbour, *, replace: bool = True) -> Batch: ...

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

    def sysctl_get(self, key: str, netns: str | None = None) -> str:
        """``key`` as a /proc/sys path below net, e.g. ``ipv4/ip_forward``."""

    def sysctl_set(self, key: str, value: str, netns: str | None = None) -> None: ...


