"""The native backend: ``corecni._native`` (cffi, C) speaks rtnetlink.

Python only serializes the queued requests into one compact buffer (layout in
``native/corecni_native.h``) and makes one cffi call per commit; the C side
resolves link names inside the target namespace, builds every request, sends
them with one ``sendmsg`` per phase, maps each ACK back to its request and
rolls back the links it created when one fails. Errors come back as
``(index, errno, message)`` and are raised as ``NetError`` naming that
request. Reads (links, addresses, routes, neighbours) are netlink dumps done in
C as well; sysctls are files under ``/proc/sys/net`` opened inside the
namespace.

This module must not import pyroute2 (a plugin using the native backend never
pays for it).
"""

from __future__ import annotations

import contextlib
import errno as _errno
import os
import socket
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from corecni._native import ffi, lib
from corecni.net.base import Address, Batch, Link, Neighbour, NetBackend, NetError, Route

__all__ = ["NativeBackend", "NativeBatch"]

# --- the serialized batch (mirrors native/corecni_native.h) -----------------
BATCH_MAGIC = 0x31424E43

OP_ADD_VETH = 1
OP_ADD_BRIDGE = 2
OP_ADD_MACVLAN = 3
OP_ADD_IPVLAN = 4
OP_ADD_VLAN = 5
OP_SET_LINK = 6
OP_DEL_LINK = 7
OP_ADD_ADDR = 8
OP_DEL_ADDR = 9
OP_ADD_ROUTE = 10
OP_DEL_ROUTE = 11
OP_ADD_NEIGH = 12

F_MISSING_OK = 1
F_REPLACE = 2
F_NODAD = 4
F_NOMASTER = 8
F_PERMANENT = 16

A_NAME = 1
A_PEER = 2
A_PEER_NETNS = 3
A_NETNS = 4
A_MTU = 5
A_MAC = 6
A_PEER_MAC = 7
A_MASTER = 8
A_MODE = 9
A_IPVLAN_FLAG = 10
A_VLAN_ID = 11
A_VLAN_FILTERING = 12
A_UP = 13
A_RENAME = 14
A_PROMISC = 15
A_HAIRPIN = 16
A_ALIAS = 17
A_FAMILY = 18
A_ADDR = 19
A_PREFIXLEN = 20
A_GATEWAY = 21
A_TABLE = 22
A_PRIORITY = 23
A_SCOPE = 24
A_ADVMSS = 25
A_SRC = 26
A_PROTO = 27
A_LLADDR = 28
A_DST = 29
A_IFNAME = 30

MACVLAN_MODES = {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8, "source": 16}
IPVLAN_MODES = {"l2": 0, "l3": 1, "l3s": 2}
IPVLAN_FLAGS = {"bridge": 0, "private": 1, "vepa": 2}

IFNAMSIZ = 16
NUD_PERMANENT = 0x80
STATS_FIELDS = ("phases", "messages", "sendmsgs", "recvs", "resolves", "rolled_back")

_HDR = struct.Struct("=II")
_OPHDR = struct.Struct("=IHH")
_ATTR = struct.Struct("=HH")
_U32 = struct.Struct("=HHI")


def _attr(atype: int, payload: bytes) -> bytes:
    n = 4 + len(payload)
    return _ATTR.pack(n, atype) + payload + b"\0" * (-n % 4)


def _u32(atype: int, value: int) -> bytes:
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"value out of range: {value}")
    return _U32.pack(8, atype, value)


def _str(atype: int, value: str) -> bytes:
    data = value.encode()
    if b"\0" in data:
        raise ValueError(f"NUL in {value!r}")
    return _attr(atype, data + b"\0")


def _ifname(atype: int, name: str) -> bytes:
    if not name or len(name.encode()) >= IFNAMSIZ:
        raise ValueError(f"invalid interface name {name!r}")
    return _str(atype, name)


def _bool(atype: int, value: bool) -> bytes:
    return _u32(atype, 1 if value else 0)


def _mac(atype: int, mac: str) -> bytes:
    parts = mac.split(":")
    try:
        data = bytes(int(p, 16) for p in parts)
    except ValueError:
        raise ValueError(f"invalid MAC address {mac!r}") from None
    if not 1 <= len(data) <= 32 or any(not 1 <= len(p) <= 2 for p in parts):
        raise ValueError(f"invalid MAC address {mac!r}")
    return _attr(atype, data)


def _ip(value: str) -> tuple[int, bytes]:
    family = socket.AF_INET6 if ":" in value else socket.AF_INET
    try:
        return family, socket.inet_pton(family, value)
    except OSError:
        raise ValueError(f"invalid IP address {value!r}") from None


def _cidr(value: str, network: bool = False) -> tuple[int, bytes, int]:
    """``"10.1.2.3/24"`` -> (family, packed address, prefix); no prefix: a host.

    ``network``: the address must be the network itself (no host bits set).
    """
    addr, sep, plen = value.partition("/")
    family, packed = _ip(addr)
    full = len(packed) * 8
    if not sep:
        return family, packed, full
    if not plen.isdigit() or not 0 <= int(plen) <= full:
        raise ValueError(f"invalid prefix length in {value!r}")
    prefix = int(plen)
    if network and int.from_bytes(packed, "big") & ((1 << (full - prefix)) - 1):
        raise ValueError(f"{value} has host bits set")
    return family, packed, prefix


@contextlib.contextmanager
def _invalid(op: str, obj: str) -> Iterator[None]:
    """Bad arguments are refused when queued, as ``NetError(EINVAL)`` for that request."""
    try:
        yield
    except ValueError as exc:
        raise NetError(_errno.EINVAL, op, obj, str(exc)) from None


def _ns(netns: str | None) -> Any:
    return ffi.NULL if netns is None else os.fsencode(netns)


def _where(netns: str | None) -> str:
    return f"netns {netns}" if netns is not None else "current netns"


def _route_obj(route: Route) -> str:
    text = route.dst
    if route.gateway:
        text += f" via {route.gateway}"
    if route.ifname:
        text += f" dev {route.ifname}"
    if route.table != 254:
        text += f" table {route.table}"
    return text


class NativeBatch:
    """Requests for one namespace, serialized as they are queued."""

    def __init__(self, netns: str | None, rcvbuf: int = 0) -> None:
        self.netns = netns
        self.rcvbuf = rcvbuf
        self._ops: list[bytes] = []
        self._desc: list[tuple[str, str]] = []  # (operation, object) per op
        self.stats: dict[str, int] = {}

    # -- queueing ---------------------------------------------------------
    def _add(self, code: int, op: str, obj: str, attrs: list[bytes], flags: int = 0) -> NativeBatch:
        body = b"".join(attrs)
        self._ops.append(_OPHDR.pack(_OPHDR.size + len(body), code, flags) + body)
        self._desc.append((op, obj))
        return self

    def add_veth(self, name: str, peer: str, *, peer_netns: str | None = None,
                 mtu: int | None = None, mac: str | None = None,
                 peer_mac: str | None = None) -> NativeBatch:
        """The peer is created directly in ``peer_netns`` (IFLA_NET_NS_FD); ``mtu``
        applies to both ends."""
        op, obj = "add_veth", f"{name} peer {peer}"
        with _invalid(op, obj):
            attrs = [_ifname(A_NAME, name), _ifname(A_PEER, peer)]
            if peer_netns is not None:
                attrs.append(_str(A_PEER_NETNS, peer_netns))
            if mtu is not None:
                attrs.append(_u32(A_MTU, mtu))
            if mac is not None:
                attrs.append(_mac(A_MAC, mac))
            if peer_mac is not None:
                attrs.append(_mac(A_PEER_MAC, peer_mac))
        return self._add(OP_ADD_VETH, op, obj, attrs)

    def add_bridge(self, name: str, *, mtu: int | None = None, mac: str | None = None,
                   vlan_filtering: bool | None = None) -> NativeBatch:
        """``vlan_filtering=False`` is the kernel default and is not sent (kernels built
        without bridge VLAN filtering reject the attribute even when off)."""
        op, obj = "add_bridge", name
        with _invalid(op, obj):
            attrs = [_ifname(A_NAME, name)]
            if mtu is not None:
                attrs.append(_u32(A_MTU, mtu))
            if mac is not None:
                attrs.append(_mac(A_MAC, mac))
            if vlan_filtering:
                attrs.append(_bool(A_VLAN_FILTERING, True))
        return self._add(OP_ADD_BRIDGE, op, obj, attrs)

    @staticmethod
    def _lower(name: str, master: str, netns: str | None, mtu: int | None,
               mac: str | None) -> list[bytes]:
        attrs = [_ifname(A_NAME, name), _ifname(A_MASTER, master)]
        if netns is not None:
            attrs.append(_str(A_NETNS, netns))
        if mtu is not None:
            attrs.append(_u32(A_MTU, mtu))
        if mac is not None:
            attrs.append(_mac(A_MAC, mac))
        return attrs

    def add_macvlan(self, name: str, master: str, *, mode: str = "bridge",
                    netns: str | None = None, mtu: int | None = None,
                    mac: str | None = None) -> NativeBatch:
        """Created on ``master`` (here) directly inside ``netns``."""
        op, obj = "add_macvlan", f"{name} on {master}"
        with _invalid(op, obj):
            if mode not in MACVLAN_MODES:
                raise ValueError(f"unknown macvlan mode {mode!r}")
            attrs = self._lower(name, master, netns, mtu, mac)
            attrs.append(_u32(A_MODE, MACVLAN_MODES[mode]))
        return self._add(OP_ADD_MACVLAN, op, obj, attrs)

    def add_ipvlan(self, name: str, master: str, *, mode: str = "l2",
                   flag: str = "bridge", netns: str | None = None,
                   mtu: int | None = None) -> NativeBatch:
        op, obj = "add_ipvlan", f"{name} on {master}"
        with _invalid(op, obj):
            if mode not in IPVLAN_MODES:
                raise ValueError(f"unknown ipvlan mode {mode!r}")
            if flag not in IPVLAN_FLAGS:
                raise ValueError(f"unknown ipvlan flag {flag!r}")
            attrs = self._lower(name, master, netns, mtu, None)
            attrs += [_u32(A_MODE, IPVLAN_MODES[mode]), _u32(A_IPVLAN_FLAG, IPVLAN_FLAGS[flag])]
        return self._add(OP_ADD_IPVLAN, op, obj, attrs)

    def add_vlan(self, name: str, master: str, vlan_id: int, *,
                 netns: str | None = None, mtu: int | None = None) -> NativeBatch:
        op, obj = "add_vlan", f"{name} on {master}"
        with _invalid(op, obj):
            if not 1 <= vlan_id <= 4094:
                raise ValueError(f"invalid VLAN id {vlan_id}")
            attrs = self._lower(name, master, netns, mtu, None)
            attrs.append(_u32(A_VLAN_ID, vlan_id))
        return self._add(OP_ADD_VLAN, op, obj, attrs)

    def set_link(self, name: str, *, up: bool | None = None, mtu: int | None = None,
                 mac: str | None = None, master: str | None = None,
                 nomaster: bool = False, rename: str | None = None,
                 netns: str | None = None, promisc: bool | None = None,
                 hairpin: bool | None = None, alias: str | None = None) -> NativeBatch:
        """One request for mac/mtu/rename/alias/promisc/master/up (the kernel applies
        them in that order), then hairpin (a bridge-port setting: needs the master
        set), then the move to ``netns``, which sets the link down."""
        op, obj = "set_link", name
        with _invalid(op, obj):
            attrs = [_ifname(A_NAME, name)]
            flags = 0
            if up is not None:
                attrs.append(_bool(A_UP, up))
            if mtu is not None:
                attrs.append(_u32(A_MTU, mtu))
            if mac is not None:
                attrs.append(_mac(A_MAC, mac))
            if master is not None:
                attrs.append(_ifname(A_MASTER, master))
            elif nomaster:
                flags |= F_NOMASTER
            if rename is not None:
                attrs.append(_ifname(A_RENAME, rename))
            if netns is not None:
                attrs.append(_str(A_NETNS, netns))
            if promisc is not None:
                attrs.append(_bool(A_PROMISC, promisc))
            if hairpin is not None:
                attrs.append(_bool(A_HAIRPIN, hairpin))
            if alias is not None:
                attrs.append(_str(A_ALIAS, alias))  # "" removes the alias
        return self._add(OP_SET_LINK, op, obj, attrs, flags)

    def del_link(self, name: str, *, missing_ok: bool = False) -> NativeBatch:
        with _invalid("del_link", name):
            attrs = [_ifname(A_NAME, name)]
        return self._add(OP_DEL_LINK, "del_link", name, attrs, F_MISSING_OK if missing_ok else 0)

    @staticmethod
    def _address(ifname: str, address: str) -> list[bytes]:
        family, packed, plen = _cidr(address)
        return [_ifname(A_IFNAME, ifname), _u32(A_FAMILY, family), _attr(A_ADDR, packed),
                _u32(A_PREFIXLEN, plen)]

    def add_address(self, ifname: str, address: str, *, nodad: bool = False) -> NativeBatch:
        """IPv4 gets the broadcast address set, as the Go plugins do; ``nodad`` is IPv6 only."""
        op, obj = "add_address", f"{ifname} {address}"
        with _invalid(op, obj):
            attrs = self._address(ifname, address)
        return self._add(OP_ADD_ADDR, op, obj, attrs, F_NODAD if nodad else 0)

    def del_address(self, ifname: str, address: str, *,
                    missing_ok: bool = False) -> NativeBatch:
        """``missing_ok`` also accepts a missing link: its addresses are gone with it."""
        op, obj = "del_address", f"{ifname} {address}"
        with _invalid(op, obj):
            attrs = self._address(ifname, address)
        return self._add(OP_DEL_ADDR, op, obj, attrs, F_MISSING_OK if missing_ok else 0)

    @staticmethod
    def _route(route: Route, add: bool) -> list[bytes]:
        family, dst, plen = _cidr(route.dst, network=True)
        attrs = [_u32(A_FAMILY, family), _attr(A_DST, dst), _u32(A_PREFIXLEN, plen),
                 _u32(A_TABLE, route.table)]
        if route.gateway is not None:
            gfam, gw = _ip(route.gateway)
            if gfam != family:
                raise ValueError(f"{route.gateway} is not in the family of {route.dst}")
            attrs.append(_attr(A_GATEWAY, gw))
        if route.ifname is not None:
            attrs.append(_ifname(A_IFNAME, route.ifname))
        if route.priority is not None:
            attrs.append(_u32(A_PRIORITY, route.priority))
        if route.scope is not None:
            attrs.append(_u32(A_SCOPE, route.scope))
        if route.src is not None:
            sfam, src = _ip(route.src)
            if sfam != family:
                raise ValueError(f"{route.src} is not in the family of {route.dst}")
            attrs.append(_attr(A_SRC, src))
        if route.proto is not None:
            attrs.append(_u32(A_PROTO, route.proto))
        if add and route.mtu is not None:
            attrs.append(_u32(A_MTU, route.mtu))
        if add and route.advmss is not None:
            attrs.append(_u32(A_ADVMSS, route.advmss))
        return attrs

    def add_route(self, route: Route, *, replace: bool = False) -> NativeBatch:
        """Without a gateway an IPv4 route gets link scope (as ``ip route`` does);
        the protocol defaults to ``boot`` (3) like iproute2's."""
        op, obj = "add_route", _route_obj(route)
        with _invalid(op, obj):
            attrs = self._route(route, add=True)
        return self._add(OP_ADD_ROUTE, op, obj, attrs, F_REPLACE if replace else 0)

    def del_route(self, route: Route, *, missing_ok: bool = False) -> NativeBatch:
        """Matches on the fields given (metrics are not matched); unset scope/proto
        match any route."""
        op, obj = "del_route", _route_obj(route)
        with _invalid(op, obj):
            attrs = self._route(route, add=False)
        return self._add(OP_DEL_ROUTE, op, obj, attrs, F_MISSING_OK if missing_ok else 0)

    def add_neighbour(self, neigh: Neighbour, *, replace: bool = True) -> NativeBatch:
        """A non-permanent entry is added as REACHABLE and ages like a learned one."""
        op, obj = "add_neighbour", f"{neigh.address} lladdr {neigh.lladdr} dev {neigh.ifname}"
        with _invalid(op, obj):
            family, packed = _ip(neigh.address)
            attrs = [_ifname(A_IFNAME, neigh.ifname), _u32(A_FAMILY, family),
                     _attr(A_ADDR, packed), _mac(A_LLADDR, neigh.lladdr)]
        flags = (F_REPLACE if replace else 0) | (F_PERMANENT if neigh.permanent else 0)
        return self._add(OP_ADD_NEIGH, op, obj, attrs, flags)

    # -- sending ----------------------------------------------------------
    def serialize(self) -> bytes:
        """The buffer handed to C (also what the valgrind driver replays)."""
        return _HDR.pack(BATCH_MAGIC, len(self._ops)) + b"".join(self._ops)

    def _stats(self, st: Any) -> dict[str, int]:
        return {k: int(getattr(st, k)) for k in STATS_FIELDS}

    def _raise(self, errs: Any, count: int, rolled_back: int) -> None:
        first = errs[0]
        op, obj = self._desc[first.index]
        detail = ffi.string(first.msg).decode(errors="replace")
        notes = [detail] if detail else []
        if count > 1:
            later = ", ".join(
                f"{self._desc[errs[i].index][0]} {self._desc[errs[i].index][1]}: "
                f"{_errno.errorcode.get(errs[i].err, errs[i].err)}"
                for i in range(1, min(count, 4)))
            more = f" and {count - 4} more" if count > 4 else ""
            notes.append(f"also failed: {later}{more}")
        if rolled_back:
            notes.append(f"rolled back {rolled_back} created link(s)")
        raise NetError(int(first.err), op, obj, "; ".join(notes))

    def commit(self) -> None:
        if not self._ops:
            return
        buf = self.serialize()
        n = len(self._ops)
        errs = ffi.new("struct cn_err[]", n)
        st = ffi.new("struct cn_stats *")
        rc = lib.cn_batch_commit(_ns(self.netns), buf, len(buf), self.rcvbuf, errs, n, st)
        self.stats = self._stats(st)
        self._ops.clear()
        desc, self._desc = self._desc, []
        if rc < 0:
            raise NetError(-rc, "commit", _where(self.netns), "batch could not be run")
        if rc > 0:
            self._desc = desc
            try:
                self._raise(errs, rc, self.stats["rolled_back"])
            finally:
                self._desc = []

    def render(self, names: dict[str, int] | None = None) -> bytes:
        """Dry run for tests: the netlink requests the batch would send.

        ``names`` stands in for the namespace's links (name -> ifindex);
        namespace file descriptors are encoded as 0xffffffff.
        """
        buf = self.serialize()
        n = max(len(self._ops), 1)
        errs = ffi.new("struct cn_err[]", n)
        st = ffi.new("struct cn_stats *")
        out = ffi.new("unsigned char **")
        outlen = ffi.new("size_t *")
        table = ",".join(f"{k}={v}" for k, v in (names or {}).items()).encode()
        rc = lib.cn_batch_render(buf, len(buf), table, out, outlen, errs, n, st)
        self.stats = self._stats(st)
        if rc < 0:
            raise NetError(-rc, "render", "batch")
        try:
            if rc > 0:
                self._raise(errs, rc, 0)
            return bytes(ffi.buffer(out[0], outlen[0]))
        finally:
            lib.cn_free(out[0])


def _sysctl_path(op: str, key: str) -> str:
    """/proc/sys/net is resolved by the opening thread's namespace: opened inside it."""
    parts = key.strip("/").split("/")
    if not key or any(p in ("", ".", "..") for p in parts):
        raise NetError(_errno.EINVAL, op, key, "key must be a path below /proc/sys/net")
    return "/proc/sys/net/" + "/".join(parts)


class NativeBackend:
    """``NetBackend`` over ``corecni._native``."""

    name = "native"

    def __init__(self, rcvbuf: int = 0) -> None:
        # rcvbuf > 0 forces the ACK socket's SO_RCVBUF (tests provoke ENOBUFS).
        self.rcvbuf = rcvbuf

    def batch(self, netns: str | None = None) -> NativeBatch:
        return NativeBatch(netns, self.rcvbuf)

    # -- reads --------------------------------------------------------------
    def _links(self, netns: str | None, name: str | None) -> list[Link]:
        out = ffi.new("struct cn_link **")
        rc = lib.cn_dump_links(_ns(netns), ffi.NULL if name is None else name.encode(), out)
        if rc < 0:
            raise NetError(-rc, "links", _where(netns))
        s = ffi.string
        try:
            links = []
            for i in range(rc):
                r = out[0][i]
                kind = s(r.kind).decode()
                links.append(Link(
                    index=r.index,
                    name=s(r.name).decode(),
                    kind=kind,
                    mtu=r.mtu,
                    mac=s(r.mac).decode(),
                    up=bool(r.up),
                    master=s(r.master).decode() or None,
                    peer_index=r.link if r.has_link and kind == "veth" else None,
                    link_netnsid=(r.link_netnsid if r.has_link_netnsid and r.link_netnsid >= 0
                                  else None),
                    promisc=bool(r.promisc),
                    hairpin=None if r.hairpin < 0 else bool(r.hairpin),
                    vlan_filtering=None if r.vlan_filtering < 0 else bool(r.vlan_filtering),
                    alias=s(r.alias).decode(errors="replace"),
                ))
            return links
        finally:
            lib.cn_free(out[0])

    def links(self, netns: str | None = None) -> list[Link]:
        return self._links(netns, None)

    def link(self, name: str, netns: str | None = None) -> Link | None:
        if not name or len(name.encode()) >= IFNAMSIZ:
            return None
        found = self._links(netns, name)
        return found[0] if found else None

    def addresses(self, netns: str | None = None, ifname: str | None = None,
                  family: int | None = None) -> list[Address]:
        out = ffi.new("struct cn_addr **")
        rc = lib.cn_dump_addrs(_ns(netns), family or 0, out)
        if rc < 0:
            raise NetError(-rc, "addresses", _where(netns))
        s = ffi.string
        try:
            result = []
            for i in range(rc):
                r = out[0][i]
                name = s(r.ifname).decode()
                if ifname is not None and name != ifname:
                    continue
                result.append(Address(ifname=name, address=f"{s(r.addr).decode()}/{r.prefixlen}",
                                      family=r.family, scope=r.scope))
            return result
        finally:
            lib.cn_free(out[0])

    def routes(self, netns: str | None = None, family: int | None = None,
               table: int | None = 254) -> list[Route]:
        out = ffi.new("struct cn_route **")
        rc = lib.cn_dump_routes(_ns(netns), family or 0, out)
        if rc < 0:
            raise NetError(-rc, "routes", _where(netns))
        s = ffi.string
        try:
            result = []
            for i in range(rc):
                r = out[0][i]
                if table is not None and r.table != table:
                    continue
                result.append(Route(
                    dst=f"{s(r.dst).decode()}/{r.dst_len}",
                    gateway=s(r.gateway).decode() or None,
                    ifname=s(r.ifname).decode() or None,
                    table=r.table,
                    priority=r.priority if r.has_priority else None,
                    scope=r.scope,
                    mtu=r.mtu or None,
                    advmss=r.advmss or None,
                    src=s(r.src).decode() or None,
                    proto=r.proto,
                ))
            return result
        finally:
            lib.cn_free(out[0])

    def neighbours(self, netns: str | None = None,
                   ifname: str | None = None) -> list[Neighbour]:
        out = ffi.new("struct cn_neigh **")
        rc = lib.cn_dump_neighs(_ns(netns), 0, out)
        if rc < 0:
            raise NetError(-rc, "neighbours", _where(netns))
        s = ffi.string
        try:
            result = []
            for i in range(rc):
                r = out[0][i]
                name = s(r.ifname).decode()
                if ifname is not None and name != ifname:
                    continue
                result.append(Neighbour(ifname=name, address=s(r.dst).decode(),
                                        lladdr=s(r.lladdr).decode(),
                                        permanent=bool(r.state & NUD_PERMANENT)))
            return result
        finally:
            lib.cn_free(out[0])

    # -- sysctl -------------------------------------------------------------
    @staticmethod
    def _open(op: str, obj: str, key: str, netns: str | None, flags: int) -> int:
        path = _sysctl_path(op, key)
        if netns is not None and not os.path.exists(netns):
            raise NetError(_errno.ENOENT, op, f"netns {netns}", "network namespace does not exist")
        fd = int(lib.cn_open_in_netns(_ns(netns), path.encode(), flags))
        if fd < 0:
            raise NetError(-fd, op, obj)
        return fd

    def sysctl_get(self, key: str, netns: str | None = None) -> str:
        fd = self._open("sysctl_get", key, key, netns, os.O_RDONLY)
        try:
            with os.fdopen(fd, "r") as fh:
                return fh.read().strip()
        except OSError as exc:
            raise NetError(exc.errno or _errno.EIO, "sysctl_get", key,
                           exc.strerror or "") from exc

    def sysctl_set(self, key: str, value: str, netns: str | None = None) -> None:
        obj = f"{key}={value}"
        fd = self._open("sysctl_set", obj, key, netns, os.O_WRONLY)
        try:
            os.write(fd, value.encode())
        except OSError as exc:
            raise NetError(exc.errno or _errno.EIO, "sysctl_set", obj,
                           exc.strerror or "") from exc
        finally:
            os.close(fd)


if TYPE_CHECKING:  # both satisfy the contract (checked by mypy, never run)
    _backend: NetBackend = NativeBackend()
    _batch: Batch = NativeBatch(None)
