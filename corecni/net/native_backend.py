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

import errno as _errno
import os
import socket
import struct
from collections.abc import Callable
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, TypeVar

from corecni._native import ffi, lib
from corecni.net._common import (
    AF_BRIDGE,
    IPVLAN_FLAGS,
    IPVLAN_MODES,
    MACVLAN_MODES,
    NUD_PERMANENT,
    devconf_of,
    fdb_obj,
    filter_obj,
    in_table,
    invalid,
    mode_code,
    mode_name,
    neighbour_obj,
    on_link,
    os_failure,
    qdisc_obj,
    route_obj,
    rule_family,
    rule_obj,
    sysctl_path,
    tbf_burst,
    tbf_params,
)
from corecni.net.base import (
    TC_H_ROOT,
    Address,
    Batch,
    FdbEntry,
    Filter,
    Link,
    Neighbour,
    NetBackend,
    NetError,
    Qdisc,
    Route,
    Rule,
)

__all__ = ["NativeBackend", "NativeBatch"]

# --- the serialized batch (layout in native/corecni_native.h) ---------------
# Op codes, flags and attribute types are declared once, in native/cn_abi.def,
# and read here from the compiled module: ``OP.ADD_VETH`` is ``lib.CN_OP_ADD_VETH``.


def _from_lib(prefix: str) -> SimpleNamespace:
    """Every ``lib.<prefix>NAME`` constant as attribute ``NAME``."""
    return SimpleNamespace(**{name[len(prefix):]: getattr(lib, name)
                              for name in dir(lib) if name.startswith(prefix)})


OP = _from_lib("CN_OP_")
F = _from_lib("CN_F_")
A = _from_lib("CN_A_")

IFNAMSIZ = 16
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


def _str(atype: int, value: str, data: bytes | None = None) -> bytes:
    """``data``: ``value`` already encoded."""
    if data is None:
        data = value.encode()
    if b"\0" in data:
        raise ValueError(f"NUL in {value!r}")
    return _attr(atype, data + b"\0")


def _ifname(atype: int, name: str) -> bytes:
    data = name.encode() if name else b""
    if not data or len(data) >= IFNAMSIZ:
        raise ValueError(f"invalid interface name {name!r}")
    return _str(atype, name, data)


def _mac(atype: int, mac: str) -> bytes:
    parts = mac.split(":")
    try:
        data = bytes(int(p, 16) for p in parts)
    except ValueError:
        raise ValueError(f"invalid MAC address {mac!r}") from None
    if not 1 <= len(data) <= 32 or any(not 1 <= len(p) <= 2 for p in parts):
        raise ValueError(f"invalid MAC address {mac!r}")
    return _attr(atype, data)


def _u64(atype: int, value: int) -> bytes:
    if not 0 <= value <= 0xFFFFFFFFFFFFFFFF:
        raise ValueError(f"value out of range: {value}")
    return _attr(atype, struct.pack("=Q", value))


# How each attribute type is encoded (and checked): by its class, which the C
# table in cn_abi.def gives (``lib.cn_attr_class``), so the C parser and this
# encoder cannot disagree. IP payloads are packed by the callers.
_Encoder = Callable[[int, Any], bytes]
_BY_CLASS: dict[int, _Encoder] = {
    lib.CN_AC_IFNAME: _ifname, lib.CN_AC_STR: _str, lib.CN_AC_IP: _attr, lib.CN_AC_HW: _mac,
    lib.CN_AC_U32: _u32, lib.CN_AC_U64: _u64,
}
_ENCODERS: dict[int, _Encoder] = {
    t: _BY_CLASS[lib.cn_attr_class(t)] for t in range(1, lib.CN_A_MAX + 1)}


# (Plain loops: cheaper than comprehensions on 3.11, and this runs per request.)
def _encode(*fields: tuple[int, Any]) -> list[bytes]:
    """The attributes for ``(type, value)`` pairs, checked and encoded in order."""
    out = []
    for atype, value in fields:
        out.append(_ENCODERS[atype](atype, value))
    return out


def _encode_given(*fields: tuple[int, Any]) -> list[bytes]:
    """As ``_encode`` for optional attributes: a value of ``None`` is left out."""
    out = []
    for atype, value in fields:
        if value is not None:
            out.append(_ENCODERS[atype](atype, value))
    return out


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


def _ip_like(family: int, value: str | None, dst: str) -> bytes | None:
    """``value`` (a route's gateway or source) packed; it must be of ``dst``'s family."""
    if value is None:
        return None
    vfam, packed = _ip(value)
    if vfam != family:
        raise ValueError(f"{value} is not in the family of {dst}")
    return packed


def _vlan_id(vlan_id: int) -> int:
    if not 1 <= vlan_id <= 4094:
        raise ValueError(f"invalid VLAN id {vlan_id}")
    return vlan_id


def _ns(netns: str | None) -> Any:
    return ffi.NULL if netns is None else os.fsencode(netns)


def _where(netns: str | None) -> str:
    return f"netns {netns}" if netns is not None else "current netns"


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
        with invalid(op, obj):
            attrs = _encode((A.NAME, name), (A.PEER, peer)) + _encode_given(
                (A.PEER_NETNS, peer_netns), (A.MTU, mtu), (A.MAC, mac), (A.PEER_MAC, peer_mac))
        return self._add(OP.ADD_VETH, op, obj, attrs)

    def add_bridge(self, name: str, *, mtu: int | None = None, mac: str | None = None,
                   vlan_filtering: bool | None = None) -> NativeBatch:
        """``vlan_filtering=False`` is the kernel default and is not sent (kernels built
        without bridge VLAN filtering reject the attribute even when off)."""
        op, obj = "add_bridge", name
        with invalid(op, obj):
            attrs = _encode((A.NAME, name)) + _encode_given(
                (A.MTU, mtu), (A.MAC, mac), (A.VLAN_FILTERING, True if vlan_filtering else None))
        return self._add(OP.ADD_BRIDGE, op, obj, attrs)

    @staticmethod
    def _lower(name: str, master: str, netns: str | None, mtu: int | None,
               *kind_fields: tuple[int, Any]) -> list[bytes]:
        """A link created on ``master``: the common attributes, then the kind's own
        (each kind's required values are never ``None``)."""
        return _encode((A.NAME, name), (A.MASTER, master)) + _encode_given(
            (A.NETNS, netns), (A.MTU, mtu), *kind_fields)

    def add_macvlan(self, name: str, master: str, *, mode: str = "bridge",
                    netns: str | None = None, mtu: int | None = None,
                    mac: str | None = None) -> NativeBatch:
        """Created on ``master`` (here) directly inside ``netns``."""
        op, obj = "add_macvlan", f"{name} on {master}"
        with invalid(op, obj):
            attrs = self._lower(name, master, netns, mtu, (A.MAC, mac),
                                (A.MODE, mode_code(MACVLAN_MODES, "macvlan mode", mode)))
        return self._add(OP.ADD_MACVLAN, op, obj, attrs)

    def add_ipvlan(self, name: str, master: str, *, mode: str = "l2",
                   flag: str = "bridge", netns: str | None = None,
                   mtu: int | None = None) -> NativeBatch:
        op, obj = "add_ipvlan", f"{name} on {master}"
        with invalid(op, obj):
            attrs = self._lower(name, master, netns, mtu,
                                (A.MODE, mode_code(IPVLAN_MODES, "ipvlan mode", mode)),
                                (A.IPVLAN_FLAG, mode_code(IPVLAN_FLAGS, "ipvlan flag", flag)))
        return self._add(OP.ADD_IPVLAN, op, obj, attrs)

    def add_vlan(self, name: str, master: str, vlan_id: int, *,
                 netns: str | None = None, mtu: int | None = None) -> NativeBatch:
        op, obj = "add_vlan", f"{name} on {master}"
        with invalid(op, obj):
            attrs = self._lower(name, master, netns, mtu, (A.VLAN_ID, _vlan_id(vlan_id)))
        return self._add(OP.ADD_VLAN, op, obj, attrs)

    def _add_link(self, op: str, name: str, kind: str, netns: str | None,
                  *fields: tuple[int, Any]) -> NativeBatch:
        """A link of ``kind`` with no lower link, here or directly in ``netns``."""
        with invalid(op, name):
            attrs = _encode((A.NAME, name), (A.KIND, kind)) + _encode_given(
                (A.NETNS, netns), *fields)
        return self._add(OP.ADD_LINK, op, name, attrs)

    def add_ifb(self, name: str, *, mtu: int | None = None) -> NativeBatch:
        return self._add_link("add_ifb", name, "ifb", None, (A.MTU, mtu))

    def add_dummy(self, name: str, *, netns: str | None = None, mtu: int | None = None,
                  mac: str | None = None) -> NativeBatch:
        return self._add_link("add_dummy", name, "dummy", netns, (A.MTU, mtu), (A.MAC, mac))

    def add_vrf(self, name: str, table: int, *, netns: str | None = None) -> NativeBatch:
        return self._add_link("add_vrf", name, "vrf", netns, (A.TABLE, table))

    def add_tap(self, name: str, *, mtu: int | None = None, mac: str | None = None,
                multi_queue: bool = False, owner: int | None = None,
                group: int | None = None) -> NativeBatch:
        """The ioctl runs in C, in order with the batch's netlink requests; MTU and MAC
        follow as a netlink request."""
        op = "add_tap"
        with invalid(op, name):
            attrs = _encode((A.NAME, name)) + _encode_given(
                (A.MTU, mtu), (A.MAC, mac), (A.OWNER, owner), (A.GROUP, group))
        return self._add(OP.ADD_TAP, op, name, attrs, F.MULTI_QUEUE if multi_queue else 0)

    def set_link(self, name: str, *, up: bool | None = None, mtu: int | None = None,
                 mac: str | None = None, master: str | None = None,
                 nomaster: bool = False, rename: str | None = None,
                 netns: str | None = None, promisc: bool | None = None,
                 hairpin: bool | None = None, alias: str | None = None,
                 allmulti: bool | None = None, txqlen: int | None = None) -> NativeBatch:
        """One request for mac/mtu/txqlen/rename/alias/promisc/allmulti/master/up (the
        kernel applies them in that order), then hairpin (a bridge-port setting:
        needs the master set), then the move to ``netns``, which sets the link down."""
        op, obj = "set_link", name
        with invalid(op, obj):
            attrs = _encode((A.NAME, name)) + _encode_given(
                (A.UP, up), (A.MTU, mtu), (A.MAC, mac), (A.MASTER, master),
                (A.RENAME, rename), (A.NETNS, netns), (A.PROMISC, promisc),
                (A.HAIRPIN, hairpin), (A.ALIAS, alias),  # alias "" removes the alias
                (A.ALLMULTI, allmulti), (A.TXQLEN, txqlen))
        flags = F.NOMASTER if master is None and nomaster else 0
        return self._add(OP.SET_LINK, op, obj, attrs, flags)

    def del_link(self, name: str, *, missing_ok: bool = False) -> NativeBatch:
        with invalid("del_link", name):
            attrs = _encode((A.NAME, name))
        return self._add(OP.DEL_LINK, "del_link", name, attrs, F.MISSING_OK if missing_ok else 0)

    def _address(self, code: int, op: str, ifname: str, address: str,
                 flags: int) -> NativeBatch:
        obj = f"{ifname} {address}"
        with invalid(op, obj):
            family, packed, plen = _cidr(address)
            attrs = _encode((A.IFNAME, ifname), (A.FAMILY, family), (A.ADDR, packed),
                            (A.PREFIXLEN, plen))
        return self._add(code, op, obj, attrs, flags)

    def add_address(self, ifname: str, address: str, *, nodad: bool = False) -> NativeBatch:
        """IPv4 gets the broadcast address set, as the Go plugins do; ``nodad`` is IPv6 only."""
        return self._address(OP.ADD_ADDR, "add_address", ifname, address,
                             F.NODAD if nodad else 0)

    def del_address(self, ifname: str, address: str, *,
                    missing_ok: bool = False) -> NativeBatch:
        """``missing_ok`` also accepts a missing link: its addresses are gone with it."""
        return self._address(OP.DEL_ADDR, "del_address", ifname, address,
                             F.MISSING_OK if missing_ok else 0)

    def _route(self, code: int, op: str, route: Route, flags: int) -> NativeBatch:
        """Checked in attribute order, so the first bad one is reported: the gateway
        and the source are parsed just before the attributes that follow them.
        Metrics are sent with an add only."""
        add = code == OP.ADD_ROUTE
        obj = route_obj(route)
        with invalid(op, obj):
            family, dst, plen = _cidr(route.dst, network=True)
            attrs = _encode((A.FAMILY, family), (A.DST, dst), (A.PREFIXLEN, plen),
                            (A.TABLE, route.table))
            attrs += _encode_given((A.GATEWAY, _ip_like(family, route.gateway, route.dst)),
                                   (A.IFNAME, route.ifname), (A.PRIORITY, route.priority),
                                   (A.SCOPE, route.scope))
            attrs += _encode_given((A.SRC, _ip_like(family, route.src, route.dst)),
                                   (A.PROTO, route.proto),
                                   (A.MTU, route.mtu if add else None),
                                   (A.ADVMSS, route.advmss if add else None))
        return self._add(code, op, obj, attrs, flags)

    def add_route(self, route: Route, *, replace: bool = False) -> NativeBatch:
        """Without a gateway an IPv4 route gets link scope (as ``ip route`` does);
        the protocol defaults to ``boot`` (3) like iproute2's."""
        flags = (F.REPLACE if replace else 0) | (F.ONLINK if route.onlink else 0)
        return self._route(OP.ADD_ROUTE, "add_route", route, flags)

    def del_route(self, route: Route, *, missing_ok: bool = False) -> NativeBatch:
        """Matches on the fields given (metrics are not matched); unset scope/proto
        match any route."""
        return self._route(OP.DEL_ROUTE, "del_route", route, F.MISSING_OK if missing_ok else 0)

    def add_neighbour(self, neigh: Neighbour, *, replace: bool = True) -> NativeBatch:
        """A non-permanent entry is added as REACHABLE and ages like a learned one."""
        op, obj = "add_neighbour", neighbour_obj(neigh)
        with invalid(op, obj):
            family, packed = _ip(neigh.address)
            attrs = _encode((A.IFNAME, neigh.ifname), (A.FAMILY, family), (A.ADDR, packed),
                            (A.LLADDR, neigh.lladdr))
        flags = (F.REPLACE if replace else 0) | (F.PERMANENT if neigh.permanent else 0)
        return self._add(OP.ADD_NEIGH, op, obj, attrs, flags)

    def del_neighbour(self, neigh: Neighbour, *, missing_ok: bool = False) -> NativeBatch:
        op, obj = "del_neighbour", neighbour_obj(neigh)
        with invalid(op, obj):
            family, packed = _ip(neigh.address)
            attrs = _encode((A.IFNAME, neigh.ifname), (A.FAMILY, family), (A.ADDR, packed))
        return self._add(OP.DEL_NEIGH, op, obj, attrs, F.MISSING_OK if missing_ok else 0)

    # -- VXLAN and its forwarding database -----------------------------------
    def add_vxlan(self, name: str, vni: int, *, local: str | None = None, port: int = 4789,
                  dev: str | None = None, learning: bool = True, mtu: int | None = None,
                  mac: str | None = None) -> NativeBatch:
        op, obj = "add_vxlan", f"{name} on {dev}" if dev else name
        with invalid(op, obj):
            attrs = _encode((A.NAME, name), (A.VNI, vni), (A.PORT, port))
            attrs += _encode_given((A.SRC, _ip(local)[1] if local else None),
                                   (A.MASTER, dev), (A.MTU, mtu), (A.MAC, mac))
        return self._add(OP.ADD_VXLAN, op, obj, attrs, 0 if learning else F.NOLEARNING)

    def _fdb(self, code: int, op: str, entry: FdbEntry, flags: int) -> NativeBatch:
        obj = fdb_obj(entry)
        with invalid(op, obj):
            attrs = _encode((A.IFNAME, entry.ifname), (A.LLADDR, entry.mac))
            attrs += _encode_given((A.DST, _ip(entry.dst)[1] if entry.dst else None))
        return self._add(code, op, obj, attrs, flags)

    def add_fdb(self, entry: FdbEntry, *, replace: bool = True) -> NativeBatch:
        return self._fdb(OP.ADD_FDB, "add_fdb", entry, F.REPLACE if replace else 0)

    def del_fdb(self, entry: FdbEntry, *, missing_ok: bool = False) -> NativeBatch:
        return self._fdb(OP.DEL_FDB, "del_fdb", entry, F.MISSING_OK if missing_ok else 0)

    # -- rules ------------------------------------------------------------
    def _rule(self, code: int, op: str, rule: Rule, flags: int) -> NativeBatch:
        obj = rule_obj(rule)
        with invalid(op, obj):
            family, src, dst = rule_family(rule)
            attrs = _encode((A.FAMILY, family), (A.TABLE, rule.table)) + _encode_given(
                (A.PRIORITY, rule.priority),
                (A.SRC, src[0] if src else None), (A.SRC_LEN, src[1] if src else None),
                (A.DST, dst[0] if dst else None), (A.PREFIXLEN, dst[1] if dst else None),
                (A.IIFNAME, rule.iif), (A.OIFNAME, rule.oif))
        return self._add(code, op, obj, attrs, flags)

    def add_rule(self, rule: Rule) -> NativeBatch:
        return self._rule(OP.ADD_RULE, "add_rule", rule, 0)

    def del_rule(self, rule: Rule, *, missing_ok: bool = False) -> NativeBatch:
        return self._rule(OP.DEL_RULE, "del_rule", rule, F.MISSING_OK if missing_ok else 0)

    # -- traffic control --------------------------------------------------
    def add_qdisc(self, qdisc: Qdisc, *, replace: bool = False) -> NativeBatch:
        """tbf as Go's bandwidth plugin sends it (rate, buffer, limit; no rate table)."""
        op, obj = "add_qdisc", qdisc_obj(qdisc.ifname, qdisc.kind, qdisc.parent)
        tbf: tuple[tuple[int, Any], ...] = ()
        if qdisc.kind == "tbf":
            rate, buffer, limit = tbf_params(op, qdisc)
            tbf = ((A.RATE, rate), (A.BUFFER, buffer), (A.LIMIT, limit))
        with invalid(op, obj):
            attrs = _encode((A.IFNAME, qdisc.ifname), (A.KIND, qdisc.kind),
                            (A.PARENT, qdisc.parent), (A.HANDLE, qdisc.handle), *tbf)
        return self._add(OP.ADD_QDISC, op, obj, attrs, F.REPLACE if replace else 0)

    def del_qdisc(self, ifname: str, *, parent: int = TC_H_ROOT,
                  missing_ok: bool = False) -> NativeBatch:
        op, obj = "del_qdisc", qdisc_obj(ifname, "", parent)
        with invalid(op, obj):
            attrs = _encode((A.IFNAME, ifname), (A.PARENT, parent))
        return self._add(OP.DEL_QDISC, op, obj, attrs, F.MISSING_OK if missing_ok else 0)

    def _filter(self, code: int, op: str, flt: Filter, flags: int) -> NativeBatch:
        obj = filter_obj(flt)
        add = code == OP.ADD_FILTER
        with invalid(op, obj):
            if not 0 <= flt.priority <= 0xFFFF or not 0 <= flt.protocol <= 0xFFFF:
                raise ValueError("priority and protocol are 16-bit")
            attrs = _encode((A.IFNAME, flt.ifname), (A.PARENT, flt.parent),
                            (A.PRIORITY, flt.priority), (A.ETH_PROTO, flt.protocol))
            if add:
                attrs += _encode((A.KIND, flt.kind)) + _encode_given(
                    (A.CLASSID, flt.classid), (A.TARGET, flt.redirect))
        return self._add(code, op, obj, attrs, flags)

    def add_filter(self, flt: Filter) -> NativeBatch:
        return self._filter(OP.ADD_FILTER, "add_filter", flt, 0)

    def del_filter(self, flt: Filter, *, missing_ok: bool = False) -> NativeBatch:
        return self._filter(OP.DEL_FILTER, "del_filter", flt, F.MISSING_OK if missing_ok else 0)

    # -- sending ----------------------------------------------------------
    def serialize(self) -> bytes:
        """The buffer handed to C (also what the valgrind driver replays)."""
        return _HDR.pack(lib.CN_BATCH_MAGIC, len(self._ops)) + b"".join(self._ops)

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


T = TypeVar("T")


def _dump(op: str, netns: str | None, struct_name: str, dump: Callable[[Any, Any, Any], int],
          arg: Any, convert: Callable[[Any], T]) -> list[T]:
    """Run ``dump(netns, arg, out)`` (a ``cn_dump_*``) and convert every record."""
    out = ffi.new(f"struct {struct_name} **")
    rc = dump(_ns(netns), arg, out)
    if rc < 0:
        raise NetError(-rc, op, _where(netns))
    try:
        return [convert(out[0][i]) for i in range(rc)]
    finally:
        lib.cn_free(out[0])


def _text(chars: Any) -> str:
    """Kernel names are bytes; a non-UTF-8 name must not break a whole dump."""
    return ffi.string(chars).decode(errors="surrogateescape")  # type: ignore[no-any-return]


def _link_of(r: Any) -> Link:
    kind = _text(r.kind)
    return Link(
        index=r.index,
        name=_text(r.name),
        kind=kind,
        mtu=r.mtu,
        mac=_text(r.mac),
        up=bool(r.up),
        master=_text(r.master) or None,
        peer_index=r.link if r.has_link and kind == "veth" else None,
        link_netnsid=(r.link_netnsid if r.has_link_netnsid and r.link_netnsid >= 0
                      else None),
        promisc=bool(r.promisc),
        hairpin=None if r.hairpin < 0 else bool(r.hairpin),
        vlan_filtering=None if r.vlan_filtering < 0 else bool(r.vlan_filtering),
        alias=ffi.string(r.alias).decode(errors="replace"),
        mode=mode_name(kind, r.mode if r.has_mode else None),
        vlan_id=r.vlan_id if r.has_vlan_id and kind == "vlan" else None,
        allmulti=bool(r.allmulti),
        txqlen=r.txqlen,
        vrf_table=r.table if r.has_table and kind == "vrf" else None,
    )


def parse_link_message(data: bytes) -> Link:
    """The ``Link`` of one RTM_NEWLINK message as a dump returns it (``master`` stays
    ``None``: resolving it needs the namespace). For unit tests of the C parser."""
    out = ffi.new("struct cn_link *")
    rc = lib.cn_parse_link(data, len(data), out)
    if rc < 0:
        raise NetError(-rc, "parse", "link message")
    return _link_of(out[0])


def _address_of(r: Any) -> Address:
    return Address(ifname=_text(r.ifname), address=f"{_text(r.addr)}/{r.prefixlen}",
                   family=r.family, scope=r.scope)


def _route_of(r: Any) -> Route:
    return Route(
        dst=f"{_text(r.dst)}/{r.dst_len}",
        gateway=_text(r.gateway) or None,
        ifname=_text(r.ifname) or None,
        table=r.table,
        priority=r.priority if r.has_priority else None,
        scope=r.scope,
        mtu=r.mtu or None,
        advmss=r.advmss or None,
        src=_text(r.src) or None,
        proto=r.proto,
    )


def _neighbour_of(r: Any) -> Neighbour:
    return Neighbour(ifname=_text(r.ifname), address=_text(r.dst), lladdr=_text(r.lladdr),
                     permanent=bool(r.state & NUD_PERMANENT))


def _fdb_of(r: Any) -> FdbEntry:
    return FdbEntry(ifname=_text(r.ifname), mac=_text(r.lladdr), dst=_text(r.dst) or None)


def _rule_of(r: Any) -> Rule:
    return Rule(table=r.table, priority=r.priority if r.has_priority else 0,
                src=f"{_text(r.src)}/{r.src_len}" if r.src_len else None,
                dst=f"{_text(r.dst)}/{r.dst_len}" if r.dst_len else None,
                iif=_text(r.iifname) or None, oif=_text(r.oifname) or None, family=r.family)


def _qdisc_of(r: Any) -> Qdisc:
    tbf = bool(r.has_tbf)
    return Qdisc(ifname=_text(r.ifname), kind=_text(r.kind), handle=r.handle, parent=r.parent,
                 rate=r.rate if tbf else None,
                 burst=tbf_burst(r.rate, r.buffer) if tbf else None,
                 limit=r.limit if tbf else None, buffer=r.buffer if tbf else None)


def _filter_of(r: Any) -> Filter:
    return Filter(ifname=_text(r.ifname), parent=r.parent, kind=_text(r.kind),
                  priority=r.priority, protocol=r.protocol, classid=r.classid or None,
                  redirect=_text(r.redirect) or None, handle=r.handle)


class NativeBackend:
    """``NetBackend`` over ``corecni._native``."""

    name = "native"

    def __init__(self, rcvbuf: int = 0) -> None:
        # rcvbuf > 0 forces the ACK socket's SO_RCVBUF (tests provoke ENOBUFS).
        self.rcvbuf = rcvbuf

    def batch(self, netns: str | None = None) -> NativeBatch:
        return NativeBatch(netns, self.rcvbuf)

    # -- reads --------------------------------------------------------------
    def links(self, netns: str | None = None) -> list[Link]:
        return _dump("links", netns, "cn_link", lib.cn_dump_links, ffi.NULL, _link_of)

    def link(self, name: str, netns: str | None = None) -> Link | None:
        if not name or len(name.encode()) >= IFNAMSIZ:
            return None
        found = _dump("links", netns, "cn_link", lib.cn_dump_links, name.encode(), _link_of)
        return found[0] if found else None

    def addresses(self, netns: str | None = None, ifname: str | None = None,
                  family: int | None = None) -> list[Address]:
        if ifname is not None:  # that link alone, filtered by the kernel
            return on_link(_dump("addresses", netns, "cn_addr",
                                 lambda ns, fam, out: int(lib.cn_dump_addrs_of(
                                     ns, fam, os.fsencode(ifname), out)),
                                 family or 0, _address_of), ifname)
        return _dump("addresses", netns, "cn_addr", lib.cn_dump_addrs, family or 0, _address_of)

    def routes(self, netns: str | None = None, family: int | None = None,
               table: int | None = 254) -> list[Route]:
        return in_table(_dump("routes", netns, "cn_route", lib.cn_dump_routes, family or 0,
                              _route_of), table)

    def neighbours(self, netns: str | None = None,
                   ifname: str | None = None) -> list[Neighbour]:
        return on_link(_dump("neighbours", netns, "cn_neigh", lib.cn_dump_neighs, 0,
                             _neighbour_of), ifname)

    def fdb(self, ifname: str, netns: str | None = None) -> list[FdbEntry]:
        found = _dump("fdb", netns, "cn_neigh", lib.cn_dump_neighs, AF_BRIDGE, _fdb_of)
        return [e for e in found if e.ifname == ifname and e.dst]

    def rules(self, netns: str | None = None, family: int | None = None) -> list[Rule]:
        return _dump("rules", netns, "cn_rule", lib.cn_dump_rules, family or 0, _rule_of)

    def qdiscs(self, netns: str | None = None, ifname: str | None = None) -> list[Qdisc]:
        found = _dump("qdiscs", netns, "cn_qdisc",
                      lambda ns, _arg, out: int(lib.cn_dump_qdiscs(ns, out)), None, _qdisc_of)
        return [q for q in found if ifname is None or q.ifname == ifname]

    def filters(self, ifname: str, parent: int, netns: str | None = None) -> list[Filter]:
        out = ffi.new("struct cn_filter **")
        if not ifname or len(os.fsencode(ifname)) >= IFNAMSIZ:
            raise NetError(_errno.ENODEV, "filters", ifname)
        rc = lib.cn_dump_filters(_ns(netns), os.fsencode(ifname), parent, out)
        if rc < 0:
            raise NetError(-rc, "filters", f"dev {ifname} in {_where(netns)}")
        try:
            return [_filter_of(out[0][i]) for i in range(rc)]
        finally:
            lib.cn_free(out[0])

    # -- sysctl -------------------------------------------------------------
    @staticmethod
    def _open(op: str, obj: str, key: str, netns: str | None, flags: int) -> int:
        """/proc/sys/net is resolved by the opening thread's namespace: opened inside it."""
        path = sysctl_path(op, key)
        if netns is not None and not os.path.exists(netns):
            raise NetError(_errno.ENOENT, op, f"netns {netns}", "network namespace does not exist")
        fd = int(lib.cn_open_in_netns(_ns(netns), path.encode(), flags))
        if fd < 0:
            raise NetError(-fd, op, obj)
        return fd

    def sysctl_get(self, key: str, netns: str | None = None) -> str:
        """A per-device IP setting is asked of netlink with its link, the rest read
        from /proc/sys/net. The netlink answer is the same number, and it costs the
        same whatever the machine holds: resolving a /proc/sys/net path walks one
        cached entry per network namespace that ever looked there, ~0.06 ms per
        open with 1000 namespaces (a node with 500 pods) - paid by every plugin
        that reads a setting before writing it."""
        found = devconf_of(key)
        if found is not None and (netns is None or os.path.exists(netns)):
            family, ifname, index = found
            values = ffi.new("int[]", 128)
            n = int(lib.cn_link_conf(_ns(netns), os.fsencode(ifname), family, values, 128))
            if index < n:
                return str(values[index])
            # no such link (ENODEV), or the kernel did not report it: the file answers
        fd = self._open("sysctl_get", key, key, netns, os.O_RDONLY)
        try:
            with os.fdopen(fd, "r") as fh:
                return fh.read().strip()
        except OSError as exc:
            raise os_failure(exc, "sysctl_get", key) from exc

    def sysctl_set(self, key: str, value: str, netns: str | None = None) -> None:
        obj = f"{key}={value}"
        fd = self._open("sysctl_set", obj, key, netns, os.O_WRONLY)
        try:
            os.write(fd, value.encode())
        except OSError as exc:
            raise os_failure(exc, "sysctl_set", obj) from exc
        finally:
            os.close(fd)


if TYPE_CHECKING:  # both satisfy the contract (checked by mypy, never run)
    _backend: NetBackend = NativeBackend()
    _batch: Batch = NativeBatch(None)
