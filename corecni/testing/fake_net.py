"""A recording link layer for unit tests of plugins: no kernel behind it.

``FakeBackend`` keeps links, addresses and routes per namespace, logs every
committed request as ``(netns, op, args, kwargs)`` and can refuse a request
with an errno (``fake.refuse[("add_macvlan", "eth0")] = errno.ENODEV``). Hand
it to a plugin with ``Request(..., net=FakeBackend())`` (or
``corecni.testing.plugin_request``): plugins reach the link layer only
through ``request.net``, so a test that forgets it fails instead of touching
the kernel.

Requests the fake does not model (qdiscs, rules...) are still logged, so a
test can assert a plugin asked for them; ``apply`` models links (a veth pair is
created in two namespaces and deleted together), addresses and
routes, which is what CHECK and DEL read back.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

import attrs

from corecni.net.base import (
    Address,
    FdbEntry,
    Filter,
    Link,
    Neighbour,
    NetError,
    Qdisc,
    Route,
    Rule,
)
from corecni.request import Request
from corecni.spec.errors import CNIError
from corecni.spec.result import Result

#: the container namespace of unit tests: a real path (DEL checks it exists), never changed
CTR = "/proc/self/ns/net"
NODE = None

Op = tuple[str | None, str, tuple[Any, ...], dict[str, Any]]


class FakeBatch:
    """Queues requests; ``commit`` hands them to the backend in order."""

    def __init__(self, backend: FakeBackend, netns: str | None) -> None:
        self.backend = backend
        self.netns = netns
        self.queued: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def _q(self, op: str, *args: Any, **kw: Any) -> FakeBatch:
        self.queued.append((op, args, {k: v for k, v in kw.items() if v is not None}))
        return self

    def add_veth(self, name: str, peer: str, **kw: Any) -> FakeBatch:
        return self._q("add_veth", name, peer, **kw)

    def add_bridge(self, name: str, **kw: Any) -> FakeBatch:
        return self._q("add_bridge", name, **kw)

    def add_macvlan(self, name: str, master: str, **kw: Any) -> FakeBatch:
        return self._q("add_macvlan", name, master, **kw)

    def add_ipvlan(self, name: str, master: str, **kw: Any) -> FakeBatch:
        return self._q("add_ipvlan", name, master, **kw)

    def add_vlan(self, name: str, master: str, vlan_id: int, **kw: Any) -> FakeBatch:
        return self._q("add_vlan", name, master, vlan_id, **kw)

    def set_link(self, name: str, **kw: Any) -> FakeBatch:
        return self._q("set_link", name, **{k: v for k, v in kw.items() if v is not False})

    def del_link(self, name: str, **kw: Any) -> FakeBatch:
        return self._q("del_link", name, **kw)

    def add_address(self, ifname: str, address: str, **kw: Any) -> FakeBatch:
        return self._q("add_address", ifname, address, **kw)

    def del_address(self, ifname: str, address: str, **kw: Any) -> FakeBatch:
        return self._q("del_address", ifname, address, **kw)

    def add_route(self, route: Route, **kw: Any) -> FakeBatch:
        return self._q("add_route", route, **kw)

    def del_route(self, route: Route, **kw: Any) -> FakeBatch:
        return self._q("del_route", route, **kw)

    def add_neighbour(self, neigh: Neighbour, **kw: Any) -> FakeBatch:
        return self._q("add_neighbour", neigh, **kw)

    def commit(self) -> None:
        queued, self.queued = self.queued, []
        self.backend.run(self.netns, queued)

    def __getattr__(self, op: str) -> Any:
        """Any other request of the contract is queued (and logged) as it is."""
        if op.startswith("_"):
            raise AttributeError(op)
        return lambda *args, **kw: self._q(op, *args, **kw)


def make_link(name: str, kind: str = "veth", mtu: int = 1500, index: int = 2) -> Link:
    return Link(index=index, name=name, kind=kind, mtu=mtu, mac=f"02:00:00:00:00:{index:02x}",
                up=True)


class FakeBackend:
    """Link state per namespace, a log of committed requests, injectable refusals."""

    name = "fake"

    def __init__(self) -> None:
        self.state: dict[str | None, dict[str, Link]] = {
            NODE: {"lo": make_link("lo", "", 65536, 1),
                   "phys0": make_link("phys0", "veth", 1500, 2)},
            CTR: {"lo": make_link("lo", "", 65536, 1)},
        }
        self.default_routes = [Route(dst="0.0.0.0/0", gateway="192.0.2.1", ifname="phys0")]
        self.addrs: dict[str | None, list[Address]] = {}
        self.rts: dict[str | None, list[Route]] = {}
        self.log: list[Op] = []
        self.refuse: dict[tuple[str, str], int] = {}  # (op, first arg) -> errno
        self.next_index = 10

    @staticmethod
    def _key(netns: str | None) -> str | None:
        return NODE if netns is not None and netns.startswith("/proc/self/fd/") else netns

    def ns(self, netns: str | None) -> dict[str, Link]:
        return self.state.setdefault(self._key(netns), {})

    def batch(self, netns: str | None = None) -> FakeBatch:
        return FakeBatch(self, netns)

    def links(self, netns: str | None = None) -> list[Link]:
        return list(self.ns(netns).values())

    def link(self, name: str, netns: str | None = None) -> Link | None:
        return self.ns(netns).get(name)

    def addresses(self, netns: str | None = None, ifname: str | None = None,
                  family: int | None = None) -> list[Address]:
        return [a for a in self.addrs.get(self._key(netns), []) if ifname in (None, a.ifname)]

    def routes(self, netns: str | None = None, family: int | None = None,
               table: int | None = 254) -> list[Route]:
        if family == socket.AF_INET6:
            return []
        node = self.default_routes if self._key(netns) is NODE else []
        return [*node, *self.rts.get(self._key(netns), [])]

    def neighbours(self, netns: str | None = None, ifname: str | None = None) -> list[Neighbour]:
        return []

    # rules, qdiscs and filters are logged when requested, not modelled: none read back
    def rules(self, netns: str | None = None, family: int | None = None) -> list[Rule]:
        return []

    def fdb(self, ifname: str, netns: str | None = None) -> list[FdbEntry]:
        return []

    def qdiscs(self, netns: str | None = None, ifname: str | None = None) -> list[Qdisc]:
        return []

    def filters(self, ifname: str, parent: int, netns: str | None = None) -> list[Filter]:
        return []

    def sysctl_get(self, key: str, netns: str | None = None) -> str:
        return "0"

    def sysctl_set(self, key: str, value: str, netns: str | None = None) -> None:
        self.log.append((netns, "sysctl", (key, value), {}))

    # -- what a commit does to the state
    def run(self, netns: str | None, queued: list[tuple[str, tuple[Any, ...], dict[str, Any]]]) \
            -> None:
        created: list[tuple[str | None, str]] = []
        for op, args, kw in queued:
            self.log.append((netns, op, args, kw))
            try:
                refused = self.refuse.pop((op, str(args[0])), None)
                if refused is not None:
                    raise NetError(refused, op, str(args[0]))
                made = self.apply(netns, op, args, kw)
                if made is not None:
                    created.append(made)
            except NetError:
                for where, name in reversed(created):  # the contract: created links go again
                    self.drop(where, name)
                raise

    def drop(self, netns: str | None, name: str) -> Link | None:
        """Remove a link; a veth takes its peer with it, wherever the peer is (the kernel's
        rule, which DEL of a veth plugin relies on)."""
        link = self.ns(netns).pop(name, None)
        if link is not None and link.kind == "veth" and link.peer_index is not None:
            for links in self.state.values():
                for peer in [p for p in links.values() if p.index == link.peer_index
                             and p.kind == "veth" and p.peer_index == link.index]:
                    del links[peer.name]
        return link

    def apply(self, netns: str | None, op: str, args: tuple[Any, ...],
              kw: dict[str, Any]) -> tuple[str | None, str] | None:
        here = self.ns(netns)
        if op == "add_veth":
            name, peer = args[0], args[1]
            target = kw.get("peer_netns", netns)
            if name in here or peer in self.ns(target):
                raise NetError(errno.EEXIST, op, name if name in here else peer)
            index, peer_index = self.next_index + 1, self.next_index + 2
            self.next_index += 2
            mtu = kw.get("mtu", 1500)
            here[name] = Link(index=index, name=name, kind="veth", mtu=mtu, up=False,
                              mac=kw.get("mac") or f"02:00:00:00:01:{index:02x}",
                              peer_index=peer_index)
            self.ns(target)[peer] = Link(index=peer_index, name=peer, kind="veth", mtu=mtu,
                                         up=False, peer_index=index,
                                         mac=kw.get("peer_mac") or
                                         f"02:00:00:00:01:{peer_index:02x}")
            return netns, name
        if op == "add_vxlan":  # a link of its own: the underlay is a plain attribute
            name = args[0]
            if name in here:
                raise NetError(errno.EEXIST, op, name)
            self.next_index += 1
            here[name] = Link(index=self.next_index, name=name, kind="vxlan",
                              mtu=kw.get("mtu", 1450), up=False,
                              mac=kw.get("mac") or f"02:00:00:00:01:{self.next_index:02x}")
            return netns, name
        if op in ("add_macvlan", "add_ipvlan", "add_vlan"):
            name, master = args[0], args[1]
            if master not in here:
                raise NetError(errno.ENODEV, op, name)
            target = kw.get("netns", netns)
            self.next_index += 1
            mac = kw.get("mac") or f"02:00:00:00:01:{self.next_index:02x}"
            self.ns(target)[name] = Link(index=self.next_index, name=name, kind=op[4:],
                                         mtu=kw.get("mtu", here[master].mtu), mac=mac, up=False,
                                         mode=kw.get("mode"),
                                         vlan_id=args[2] if op == "add_vlan" else None)
            return target, name
        if op == "set_link":
            link = here.get(args[0])
            if link is None:
                raise NetError(errno.ENODEV, op, args[0])
            if "rename" in kw:
                if kw["rename"] in here:
                    raise NetError(errno.EEXIST, op, args[0])
                del here[link.name]
                link = attrs.evolve(link, name=kw["rename"])
            link = _changed(link, kw)
            here[link.name] = link
            if "netns" in kw:
                target = self.ns(kw["netns"])
                if link.name in target:
                    raise NetError(errno.EEXIST, op, link.name)
                del here[link.name]
                target[link.name] = _changed(link, {"up": False})
            return None
        if op == "del_link":
            if self.drop(netns, args[0]) is None and not kw.get("missing_ok"):
                raise NetError(errno.ENODEV, op, args[0])
            return None
        if op in ("add_address", "add_route"):
            ifname = args[0] if op == "add_address" else args[0].ifname
            if ifname not in here:
                raise NetError(errno.ENODEV, op, ifname)
            if op == "add_address":
                self.addrs.setdefault(self._key(netns), []).append(
                    Address(ifname=ifname, address=args[1], family=socket.AF_INET))
            else:
                self.rts.setdefault(self._key(netns), []).append(args[0])
        return None

    def ops(self, *names: str) -> list[Op]:
        """The log, or only the entries for the given request names."""
        return [e for e in self.log if not names or e[1] in names]


def _changed(link: Link, kw: dict[str, Any]) -> Link:
    changes: dict[str, Any] = {}
    if "up" in kw:
        changes["up"] = kw["up"]
    if "alias" in kw:
        changes["alias"] = kw["alias"]
    if "mtu" in kw:
        changes["mtu"] = kw["mtu"]
    return attrs.evolve(link, **changes)


class FakeDelegate:
    """The IPAM plugin: records (type, command), answers ADD with ``result``."""

    def __init__(self, result: Result | None = None, fail: tuple[str, ...] = ()) -> None:
        self.result = result
        self.fail = fail
        self.calls: list[tuple[str, str]] = []

    def call(self, plugin_type: str, command: str, request: Request,
             config: Any = None) -> Result | None:
        self.calls.append((plugin_type, command))
        if command in self.fail:
            raise CNIError(999, f"IPAM {command} failed")
        return self.result if command == "ADD" else None
