"""The pure-Python backend: every request is one pyroute2 call, sent in order.

pyroute2 is imported only when a batch commits or a read runs (it costs ~200 ms
to import), so selecting this backend is free until it is used.

Namespaces: a netlink socket stays bound to the namespace it was created in,
so a socket for another namespace is created inside a brief per-thread
``setns`` (``corecni.netns.entered``). pyroute2's own ``netns=`` option is not
used: it forks a helper process and creates the namespace when it is missing.
Sockets are used only by the thread that opened them (pyroute2 keeps its
socket per thread, and a new one would be opened in that thread's namespace).

pyroute2 is untyped: every value read from a message is converted to a plain
``int``/``str`` at the boundary (``_attr`` and the ``_*_from_msg`` helpers).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
from collections.abc import Callable, Iterator
from typing import Any

import attrs

from corecni import netns as _netns
from corecni.net._common import (
    AF_BRIDGE,
    IPVLAN_FLAGS,
    IPVLAN_MODES,
    MACVLAN_MODES,
    NUD_PERMANENT,
    RT_TABLE_MAIN,
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
    FdbEntry,
    Filter,
    Link,
    Neighbour,
    NetError,
    Qdisc,
    Route,
    Rule,
)
from corecni.net.tap import create_tap

IFF_UP = 0x1
IFF_PROMISC = 0x100
IFF_ALLMULTI = 0x200
IFA_F_NODAD = 0x02
NUD_REACHABLE = 0x02
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
RT_SCOPE_NOWHERE = 255  # in a delete request: "any scope"
RTPROT_BOOT = 3  # what iproute2 and the Go netlink library put on routes they add
RTNH_F_ONLINK = 4  # a gateway on the link without a route to it
NTF_SELF = 0x02  # an FDB entry of the device itself (a VXLAN remote), not of its bridge

# A pyroute2 IPRoute (untyped).
IPR = Any


# --- sockets and namespaces -------------------------------------------------

def _open_iproute(path: str | None) -> IPR:
    from pyroute2 import IPRoute

    with _netns.entered(path):
        return IPRoute()


@contextlib.contextmanager
def _iproute(path: str | None, op: str) -> Iterator[IPR]:
    """An IPRoute in ``path`` for one read; a bad namespace becomes ``NetError``."""
    with _netns_errors(op, path):
        ipr = _open_iproute(path)
    try:
        yield ipr
    finally:
        ipr.close()


@contextlib.contextmanager
def _netns_errors(op: str, path: str | None) -> Iterator[None]:
    try:
        yield
    except _netns.NetnsError as exc:
        raise NetError(exc.errno or errno.EINVAL, op, f"netns {path}",
                       exc.strerror or "") from exc


@contextlib.contextmanager
def _netns_fd(path: str) -> Iterator[int]:
    """An fd for IFLA_NET_NS_FD, closed as soon as the request is sent."""
    _netns.check_netns(path)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


def _teach_ipvlan_flags() -> None:
    """pyroute2 (0.9) encodes IFLA_IPVLAN_MODE but silently drops IFLA_IPVLAN_FLAGS;
    register (its public extension point) an ipvlan data class that has both."""
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    known = ifinfmsg.ifinfo.data_map.get("ipvlan")
    if known is None or any(spec[0] == "IFLA_IPVLAN_FLAGS" for spec in known.nla_map):
        return

    class ipvlan_data(known):  # type: ignore[misc,valid-type]
        nla_map = (*known.nla_map, ("IFLA_IPVLAN_FLAGS", "uint16"))

    ifinfmsg.ifinfo.register_link_kind(module={"ipvlan": ipvlan_data})


def _attr(msg: Any, name: str) -> Any:
    return msg.get_attr(name)


def _errno_of(exc: BaseException) -> int | None:
    err = _kernel_error(exc)
    return err[0] if err else None


def _kernel_error(exc: BaseException) -> tuple[int, str] | None:
    """(errno, message) when ``exc`` is an error the kernel (or the OS) returned."""
    from pyroute2.netlink.exceptions import NetlinkError

    if isinstance(exc, NetlinkError):
        code = int(exc.code)
        message = str(exc.args[1]) if len(exc.args) > 1 else ""
    elif isinstance(exc, OSError) and exc.errno is not None:
        code, message = exc.errno, exc.strerror or ""
    else:
        return None
    # NetError already prints strerror; keep only what the kernel added (extack).
    return code, "" if message == os.strerror(code) else message


# --- the batch --------------------------------------------------------------

@attrs.define
class _Created:
    """A link this batch created, followed through renames and moves for rollback."""

    netns: str | None
    name: str


class _Session:
    """State of one ``commit``: the sockets it opened and the links it created."""

    def __init__(self, netns: str | None, ipr: IPR) -> None:
        self.netns = netns
        self.ipr = ipr
        self.created: list[_Created] = []
        self._others: dict[str | None, IPR] = {}

    def index(self, name: str) -> int:
        """The ifindex of ``name`` here; ENODEV (from the kernel) when there is none."""
        return int(self.ipr.link("get", ifname=name)[0]["index"])

    def find(self, name: str) -> int | None:
        try:
            return self.index(name)
        except Exception as exc:
            if _errno_of(exc) == errno.ENODEV:
                return None
            raise

    def lookup(self, name: str, missing_ok: bool) -> int | None:
        """``index(name)``; with ``missing_ok``, ``None`` when there is no such link."""
        return self.find(name) if missing_ok else self.index(name)

    def record(self, netns: str | None, name: str) -> None:
        self.created.append(_Created(netns, name))

    def tracked(self, name: str) -> _Created | None:
        for rec in self.created:
            if rec.netns == self.netns and rec.name == name:
                return rec
        return None

    def iproute_in(self, netns: str | None) -> IPR:
        if netns == self.netns:
            return self.ipr
        if netns not in self._others:
            self._others[netns] = _open_iproute(netns)
        return self._others[netns]

    def rollback(self) -> list[str]:
        """Delete the created links, newest first; returns what could not be undone."""
        failures = []
        for rec in reversed(self.created):
            try:
                ipr = self.iproute_in(rec.netns)
                ipr.link("del", index=int(ipr.link("get", ifname=rec.name)[0]["index"]))
            except Exception as exc:
                if _errno_of(exc) != errno.ENODEV:  # gone already is fine
                    failures.append(f"{rec.name}: {exc}")
        return failures

    def close(self) -> None:
        for ipr in (self.ipr, *self._others.values()):
            ipr.close()


@attrs.frozen
class _Request:
    op: str
    obj: str
    run: Callable[[_Session], None]


@contextlib.contextmanager
def _gone_ok(missing_ok: bool, *errnos: int) -> Iterator[None]:
    """With ``missing_ok``, a delete failing with one of ``errnos`` (the object
    is gone already) is no failure."""
    try:
        yield
    except Exception as exc:
        if not (missing_ok and _errno_of(exc) in errnos):
            raise


def _opt(**kwargs: object) -> dict[str, object]:
    """Keyword arguments for pyroute2 without the ones left unset."""
    return {k: v for k, v in kwargs.items() if v is not None}


def _parse_interface(op: str, obj: str, address: str) -> ipaddress.IPv4Interface | \
        ipaddress.IPv6Interface:
    try:
        return ipaddress.ip_interface(address)
    except ValueError as exc:
        raise NetError(errno.EINVAL, op, obj, str(exc)) from exc


def _parse_route(op: str, route: Route) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        net = ipaddress.ip_network(route.dst)
        for other in (route.gateway, route.src):
            if other is not None and ipaddress.ip_address(other).version != net.version:
                raise ValueError(f"{other} is not an IPv{net.version} address")
    except ValueError as exc:
        raise NetError(errno.EINVAL, op, route_obj(route), str(exc)) from exc
    return net


def _route_kwargs(s: _Session, route: Route, net: ipaddress.IPv4Network |
                  ipaddress.IPv6Network) -> dict[str, object]:
    family = socket.AF_INET if net.version == 4 else socket.AF_INET6
    kw: dict[str, object] = {"family": family, "dst_len": net.prefixlen, "table": route.table}
    if net.prefixlen:
        kw["dst"] = str(net.network_address)
    if route.ifname is not None:
        kw["oif"] = s.index(route.ifname)
    return kw | _opt(gateway=route.gateway, priority=route.priority, prefsrc=route.src)


class Pyroute2Batch:
    """Queued requests for one namespace; ``commit`` sends them one by one."""

    def __init__(self, netns: str | None) -> None:
        self._netns = netns
        self._requests: list[_Request] = []

    def _queue(self, op: str, obj: str, run: Callable[[_Session], None]) -> Pyroute2Batch:
        self._requests.append(_Request(op, obj, run))
        return self

    # --- links ---

    def add_veth(self, name: str, peer: str, *, peer_netns: str | None = None,
                 mtu: int | None = None, mac: str | None = None,
                 peer_mac: str | None = None) -> Pyroute2Batch:
        """The peer is created directly in ``peer_netns``: it never appears here."""
        def run(s: _Session) -> None:
            peer_spec: dict[str, object] = {"ifname": peer} | _opt(address=peer_mac, mtu=mtu)
            with contextlib.ExitStack() as stack:
                if peer_netns is not None:
                    peer_spec["net_ns_fd"] = stack.enter_context(_netns_fd(peer_netns))
                s.ipr.link("add", ifname=name, kind="veth", peer=peer_spec,
                           **_opt(mtu=mtu, address=mac))
            s.record(self._netns, name)
        return self._queue("add_veth", f"{name} peer {peer}", run)

    def add_bridge(self, name: str, *, mtu: int | None = None, mac: str | None = None,
                   vlan_filtering: bool | None = None) -> Pyroute2Batch:
        """``vlan_filtering=False`` is the kernel default, so it is not sent (kernels
        built without bridge VLAN filtering reject the attribute even when off)."""
        def run(s: _Session) -> None:
            extra = {"br_vlan_filtering": 1} if vlan_filtering else {}
            s.ipr.link("add", ifname=name, kind="bridge", **extra, **_opt(mtu=mtu, address=mac))
            s.record(self._netns, name)
        return self._queue("add_bridge", name, run)

    def _add_on_master(self, op: str, name: str, master: str, netns: str | None,
                       kind: str, **spec: object) -> Pyroute2Batch:
        """Create ``name`` on ``master`` directly inside ``netns`` (IFLA_NET_NS_FD)."""
        def run(s: _Session) -> None:
            kw = dict(spec)
            with contextlib.ExitStack() as stack:
                if netns is not None:
                    kw["net_ns_fd"] = stack.enter_context(_netns_fd(netns))
                s.ipr.link("add", ifname=name, kind=kind, link=s.index(master), **kw)
            s.record(netns if netns is not None else self._netns, name)
        return self._queue(op, f"{name} on {master}", run)

    def add_macvlan(self, name: str, master: str, *, mode: str = "bridge",
                    netns: str | None = None, mtu: int | None = None,
                    mac: str | None = None) -> Pyroute2Batch:
        with invalid("add_macvlan", name):
            code = mode_code(MACVLAN_MODES, "macvlan mode", mode)
        return self._add_on_master("add_macvlan", name, master, netns, "macvlan",
                                   macvlan_mode=code, **_opt(mtu=mtu, address=mac))

    def add_ipvlan(self, name: str, master: str, *, mode: str = "l2",
                   flag: str = "bridge", netns: str | None = None,
                   mtu: int | None = None) -> Pyroute2Batch:
        if mode not in IPVLAN_MODES or flag not in IPVLAN_FLAGS:
            raise NetError(errno.EINVAL, "add_ipvlan", name,
                           f"unknown ipvlan mode/flag {mode!r}/{flag!r}")
        _teach_ipvlan_flags()
        return self._add_on_master("add_ipvlan", name, master, netns, "ipvlan",
                                   ipvlan_mode=IPVLAN_MODES[mode],
                                   ipvlan_flags=IPVLAN_FLAGS[flag], **_opt(mtu=mtu))

    def add_vlan(self, name: str, master: str, vlan_id: int, *,
                 netns: str | None = None, mtu: int | None = None) -> Pyroute2Batch:
        return self._add_on_master("add_vlan", name, master, netns, "vlan",
                                   vlan_id=vlan_id, **_opt(mtu=mtu))

    def _add_simple(self, op: str, name: str, kind: str, netns: str | None,
                    **spec: object) -> Pyroute2Batch:
        """A link of ``kind`` with no lower link, here or directly in ``netns``."""
        def run(s: _Session) -> None:
            kw = _opt(**spec)
            with contextlib.ExitStack() as stack:
                if netns is not None:
                    kw["net_ns_fd"] = stack.enter_context(_netns_fd(netns))
                s.ipr.link("add", ifname=name, kind=kind, **kw)
            s.record(netns if netns is not None else self._netns, name)
        return self._queue(op, name, run)

    def add_ifb(self, name: str, *, mtu: int | None = None) -> Pyroute2Batch:
        return self._add_simple("add_ifb", name, "ifb", None, mtu=mtu)

    def add_dummy(self, name: str, *, netns: str | None = None, mtu: int | None = None,
                  mac: str | None = None) -> Pyroute2Batch:
        return self._add_simple("add_dummy", name, "dummy", netns, mtu=mtu, address=mac)

    def add_vrf(self, name: str, table: int, *, netns: str | None = None) -> Pyroute2Batch:
        return self._add_simple("add_vrf", name, "vrf", netns, vrf_table=table)

    def add_tap(self, name: str, *, mtu: int | None = None, mac: str | None = None,
                multi_queue: bool = False, owner: int | None = None,
                group: int | None = None) -> Pyroute2Batch:
        """TUNSETIFF from this thread inside the namespace (``corecni.net.tap``)."""
        def run(s: _Session) -> None:
            if s.find(name) is not None:
                raise OSError(errno.EEXIST, "link exists")
            with _netns.entered(self._netns):
                create_tap(name, multi_queue=multi_queue, owner=owner, group=group)
            s.record(self._netns, name)
            changes = _opt(mtu=mtu, address=mac)
            if changes:
                s.ipr.link("set", index=s.index(name), **changes)
        return self._queue("add_tap", name, run)

    def set_link(self, name: str, *, up: bool | None = None, mtu: int | None = None,
                 mac: str | None = None, master: str | None = None,
                 nomaster: bool = False, rename: str | None = None,
                 netns: str | None = None, promisc: bool | None = None,
                 hairpin: bool | None = None, alias: str | None = None,
                 allmulti: bool | None = None, txqlen: int | None = None) -> Pyroute2Batch:
        """Applied in this order: rename/mac/mtu/alias/promisc, master, hairpin, up, netns.

        Rename goes before ``up`` (older kernels refuse to rename a running link),
        hairpin after ``master`` (it is a bridge-port setting), the move last.
        Moving a link to another namespace sets it down, so bring it up there.
        """
        def run(s: _Session) -> None:
            idx = s.index(name)
            current = name
            flags: dict[str, object] = {}
            change = set_bits = 0
            for wanted, bit in ((promisc, IFF_PROMISC), (allmulti, IFF_ALLMULTI)):
                if wanted is not None:
                    change |= bit
                    set_bits |= bit if wanted else 0
            if change:
                flags = {"flags": set_bits, "change": change}
            changes = _opt(ifname=rename, address=mac, mtu=mtu, ifalias=alias,
                           txqlen=txqlen) | flags
            if changes:
                s.ipr.link("set", index=idx, **changes)
            if rename is not None:
                rec = s.tracked(name)
                if rec is not None:
                    rec.name = rename
                current = rename
            if nomaster:
                s.ipr.link("set", index=idx, master=0)
            elif master is not None:
                s.ipr.link("set", index=idx, master=s.index(master))
            if hairpin is not None:
                s.ipr.brport("set", index=idx, mode=int(hairpin))
            if up is not None:
                s.ipr.link("set", index=idx, state="up" if up else "down")
            if netns is not None:
                rec = s.tracked(current)
                with _netns_fd(netns) as fd:
                    s.ipr.link("set", index=idx, net_ns_fd=fd)
                if rec is not None:
                    rec.netns = netns
        return self._queue("set_link", name, run)

    def del_link(self, name: str, *, missing_ok: bool = False) -> Pyroute2Batch:
        def run(s: _Session) -> None:
            idx = s.lookup(name, missing_ok)
            if idx is None:
                return
            with _gone_ok(missing_ok, errno.ENODEV):
                s.ipr.link("del", index=idx)
            rec = s.tracked(name)
            if rec is not None:
                s.created.remove(rec)
        return self._queue("del_link", name, run)

    # --- addresses, routes, neighbours ---

    def add_address(self, ifname: str, address: str, *, nodad: bool = False) -> Pyroute2Batch:
        """IPv4 gets the broadcast address set, as the Go plugins do."""
        obj = f"{ifname} {address}"
        iface = _parse_interface("add_address", obj, address)

        def run(s: _Session) -> None:
            kw: dict[str, object] = {"address": str(iface.ip),
                                     "prefixlen": iface.network.prefixlen}
            if iface.version == 4 and iface.network.prefixlen < 31:
                kw["broadcast"] = str(iface.network.broadcast_address)
            if iface.version == 6 and nodad:
                kw["flags"] = IFA_F_NODAD
            s.ipr.addr("add", index=s.index(ifname), **kw)
        return self._queue("add_address", obj, run)

    def del_address(self, ifname: str, address: str, *,
                    missing_ok: bool = False) -> Pyroute2Batch:
        """``missing_ok`` also accepts a missing link: its addresses are gone with it."""
        obj = f"{ifname} {address}"
        iface = _parse_interface("del_address", obj, address)

        def run(s: _Session) -> None:
            idx = s.lookup(ifname, missing_ok)
            if idx is None:
                return
            with _gone_ok(missing_ok, errno.EADDRNOTAVAIL):
                s.ipr.addr("del", index=idx, address=str(iface.ip),
                           prefixlen=iface.network.prefixlen)
        return self._queue("del_address", obj, run)

    def add_route(self, route: Route, *, replace: bool = False) -> Pyroute2Batch:
        """Without a gateway an IPv4 route gets link scope (as ``ip route`` does)."""
        net = _parse_route("add_route", route)

        def run(s: _Session) -> None:
            kw = _route_kwargs(s, route, net)
            scope = route.scope
            if scope is None and net.version == 4:
                scope = RT_SCOPE_UNIVERSE if route.gateway else RT_SCOPE_LINK
            kw |= _opt(scope=scope)
            kw["proto"] = route.proto if route.proto is not None else RTPROT_BOOT
            if route.onlink:
                kw["flags"] = RTNH_F_ONLINK
            metrics = _opt(mtu=route.mtu, advmss=route.advmss)
            if metrics:
                kw["metrics"] = metrics
            s.ipr.route("replace" if replace else "add", **kw)
        return self._queue("add_route", route_obj(route), run)

    def del_route(self, route: Route, *, missing_ok: bool = False) -> Pyroute2Batch:
        """Matches on the fields given; unset scope/proto match any route."""
        net = _parse_route("del_route", route)

        def run(s: _Session) -> None:
            if route.ifname is not None and missing_ok and s.find(route.ifname) is None:
                return  # the link is gone, and its routes with it
            kw = _route_kwargs(s, route, net)
            kw["scope"] = route.scope if route.scope is not None else RT_SCOPE_NOWHERE
            kw |= _opt(proto=route.proto)
            with _gone_ok(missing_ok, errno.ESRCH, errno.ENOENT):
                s.ipr.route("del", **kw)
        return self._queue("del_route", route_obj(route), run)

    def add_neighbour(self, neigh: Neighbour, *, replace: bool = True) -> Pyroute2Batch:
        """A non-permanent entry is added as REACHABLE and ages like a learned one."""
        obj = neighbour_obj(neigh)
        try:
            ip = ipaddress.ip_address(neigh.address)
        except ValueError as exc:
            raise NetError(errno.EINVAL, "add_neighbour", obj, str(exc)) from exc

        def run(s: _Session) -> None:
            s.ipr.neigh("replace" if replace else "add", ifindex=s.index(neigh.ifname),
                        dst=str(ip), lladdr=neigh.lladdr.lower(),
                        family=socket.AF_INET if ip.version == 4 else socket.AF_INET6,
                        state=NUD_PERMANENT if neigh.permanent else NUD_REACHABLE)
        return self._queue("add_neighbour", obj, run)

    def del_neighbour(self, neigh: Neighbour, *, missing_ok: bool = False) -> Pyroute2Batch:
        obj = neighbour_obj(neigh)
        try:
            ip = ipaddress.ip_address(neigh.address)
        except ValueError as exc:
            raise NetError(errno.EINVAL, "del_neighbour", obj, str(exc)) from exc

        def run(s: _Session) -> None:
            if missing_ok and s.find(neigh.ifname) is None:
                return
            with _gone_ok(missing_ok, errno.ENOENT, errno.ENODEV):
                s.ipr.neigh("del", ifindex=s.index(neigh.ifname), dst=str(ip),
                            family=socket.AF_INET if ip.version == 4 else socket.AF_INET6)
        return self._queue("del_neighbour", obj, run)

    # --- VXLAN and its forwarding database ---

    def add_vxlan(self, name: str, vni: int, *, local: str | None = None, port: int = 4789,
                  dev: str | None = None, learning: bool = True, mtu: int | None = None,
                  mac: str | None = None) -> Pyroute2Batch:
        def run(s: _Session) -> None:
            kw = _opt(vxlan_local=local, mtu=mtu, address=mac)
            if dev is not None:
                kw["vxlan_link"] = s.index(dev)
            s.ipr.link("add", ifname=name, kind="vxlan", vxlan_id=vni, vxlan_port=port,
                       vxlan_learning=1 if learning else 0, **kw)
            s.record(self._netns, name)
        return self._queue("add_vxlan", f"{name} on {dev}" if dev else name, run)

    def _fdb(self, op: str, entry: FdbEntry, command: str, missing_ok: bool) -> Pyroute2Batch:
        def run(s: _Session) -> None:
            if missing_ok and s.find(entry.ifname) is None:
                return
            with _gone_ok(missing_ok, errno.ENOENT, errno.ENODEV):
                s.ipr.fdb(command, ifindex=s.index(entry.ifname), lladdr=entry.mac.lower(),
                          state=NUD_PERMANENT, flags=NTF_SELF, **_opt(dst=entry.dst))
        return self._queue(op, fdb_obj(entry), run)

    def add_fdb(self, entry: FdbEntry, *, replace: bool = True) -> Pyroute2Batch:
        return self._fdb("add_fdb", entry, "replace" if replace else "add", False)

    def del_fdb(self, entry: FdbEntry, *, missing_ok: bool = False) -> Pyroute2Batch:
        return self._fdb("del_fdb", entry, "del", missing_ok)

    # --- rules ---

    def _rule(self, command: str, rule: Rule, missing_ok: bool) -> Pyroute2Batch:
        op = f"{command}_rule"
        obj = rule_obj(rule)
        with invalid(op, obj):
            family, src, dst = rule_family(rule)

        def run(s: _Session) -> None:
            kw: dict[str, object] = {"family": family, "table": rule.table}
            if command == "add":
                kw["action"] = "FR_ACT_TO_TBL"
            for net, key in ((src, "src"), (dst, "dst")):
                if net is not None:
                    kw[key] = socket.inet_ntop(family, net[0])
                    kw[f"{key}_len"] = net[1]
            # pyroute2 puts priority 32000 on a rule without one; None makes it send
            # no FRA_PRIORITY, so the kernel chooses as it does for the native backend.
            kw |= {"priority": rule.priority} | _opt(iifname=rule.iif, oifname=rule.oif)
            with _gone_ok(missing_ok, errno.ENOENT):
                s.ipr.rule(command, **kw)
        return self._queue(op, obj, run)

    def add_rule(self, rule: Rule) -> Pyroute2Batch:
        return self._rule("add", rule, False)

    def del_rule(self, rule: Rule, *, missing_ok: bool = False) -> Pyroute2Batch:
        return self._rule("del", rule, missing_ok)

    # --- traffic control ---

    def add_qdisc(self, qdisc: Qdisc, *, replace: bool = False) -> Pyroute2Batch:
        """tbf goes through pyroute2's tbf module given rate, burst and limit: it computes
        the same bucket (ticks) as Go and tc, and adds a rate table. It has no
        TCA_TBF_RATE64: rates from 2^32 bytes/s up are EOPNOTSUPP here."""
        op = "add_qdisc"
        obj = qdisc_obj(qdisc.ifname, qdisc.kind, qdisc.parent)
        kw: dict[str, object] = {"parent": qdisc.parent}
        if qdisc.kind == "tbf":
            rate, buffer, limit = tbf_params(op, qdisc)
            if rate >= 1 << 32:
                raise NetError(errno.EOPNOTSUPP, op, obj, "pyroute2's tbf has no 64-bit rate "
                               "(above 34 Gbit/s): use the native backend")
            burst = qdisc.burst if qdisc.burst is not None else tbf_burst(rate, buffer)
            kw |= {"rate": rate, "burst": burst, "limit": limit}

        def run(s: _Session) -> None:
            s.ipr.tc("replace" if replace else "add", qdisc.kind, s.index(qdisc.ifname),
                     qdisc.handle, **kw)
        return self._queue(op, obj, run)

    def del_qdisc(self, ifname: str, *, parent: int = TC_H_ROOT,
                  missing_ok: bool = False) -> Pyroute2Batch:
        def run(s: _Session) -> None:
            idx = s.lookup(ifname, missing_ok)
            if idx is None:
                return
            with _gone_ok(missing_ok, errno.ENOENT, errno.EINVAL, errno.ENODEV):
                s.ipr.tc("del", index=idx, parent=parent)
        return self._queue("del_qdisc", qdisc_obj(ifname, "", parent), run)

    def add_filter(self, flt: Filter) -> Pyroute2Batch:
        """u32 gets one empty key (every packet), as Go's bandwidth plugin builds it."""
        op, obj = "add_filter", filter_obj(flt)
        if flt.kind not in ("u32", "matchall"):
            raise NetError(errno.EINVAL, op, obj, "filter kind must be u32 or matchall")

        def run(s: _Session) -> None:
            kw: dict[str, object] = {"parent": flt.parent, "prio": flt.priority,
                                     "protocol": flt.protocol}
            if flt.kind == "u32":
                # pyroute2 always sends a class id; 0 is "none" to the kernel (not dumped)
                kw |= {"keys": ["0x0/0x0+0"], "target": flt.classid or 0}
            elif flt.classid is not None:
                kw["classid"] = flt.classid
            if flt.redirect is not None:
                kw["action"] = [{"kind": "mirred", "direction": "egress", "action": "redirect",
                                 "ifindex": s.index(flt.redirect)}]
            s.ipr.tc("add-filter", flt.kind, s.index(flt.ifname), **kw)
        return self._queue(op, obj, run)

    def del_filter(self, flt: Filter, *, missing_ok: bool = False) -> Pyroute2Batch:
        def run(s: _Session) -> None:
            idx = s.lookup(flt.ifname, missing_ok)
            if idx is None:
                return
            with _gone_ok(missing_ok, errno.ENOENT, errno.EINVAL, errno.ENODEV):
                s.ipr.tc("del-filter", index=idx, parent=flt.parent, prio=flt.priority,
                         protocol=flt.protocol)
        return self._queue("del_filter", filter_obj(flt), run)

    # --- sending ---

    def commit(self) -> None:
        """Send every request; on the first failure undo created links and raise.

        A kernel (or OS) error becomes ``NetError``; anything else is a bug and
        propagates as is, but only after the rollback.
        """
        if not self._requests:
            return
        requests, self._requests = self._requests, []
        with _netns_errors("commit", self._netns):
            session = _Session(self._netns, _open_iproute(self._netns))
        try:
            for req in requests:
                try:
                    req.run(session)
                except Exception as exc:
                    failures = session.rollback()
                    note = f"rollback incomplete: {', '.join(failures)}" if failures else ""
                    err = _kernel_error(exc)
                    if err is None:
                        if note:
                            exc.add_note(note)
                        raise
                    detail = "; ".join(x for x in (err[1], note) if x)
                    raise NetError(err[0], req.op, req.obj, detail) from exc
        finally:
            session.close()




# --- reads ------------------------------------------------------------------

def _link_from_msg(msg: Any, names: dict[int, str]) -> Link:
    flags = int(msg["flags"])
    info = _attr(msg, "IFLA_LINKINFO")
    kind = slave_kind = ""
    data = slave_data = None
    if info is not None:
        kind = str(_attr(info, "IFLA_INFO_KIND") or "")
        slave_kind = str(_attr(info, "IFLA_INFO_SLAVE_KIND") or "")
        data = _attr(info, "IFLA_INFO_DATA")
        slave_data = _attr(info, "IFLA_INFO_SLAVE_DATA")
    hairpin = None
    if slave_kind == "bridge" and slave_data is not None:
        hairpin = bool(_attr(slave_data, "IFLA_BRPORT_MODE"))
    vlan_filtering = None
    if kind == "bridge":
        vlan_filtering = bool(data is not None and _attr(data, "IFLA_BR_VLAN_FILTERING"))
    mode, vlan_id = _kind_data(kind, data)
    vrf_table = None
    if kind == "vrf" and data is not None and _attr(data, "IFLA_VRF_TABLE") is not None:
        vrf_table = int(_attr(data, "IFLA_VRF_TABLE"))
    master = _attr(msg, "IFLA_MASTER")
    peer = _attr(msg, "IFLA_LINK")
    nsid = _attr(msg, "IFLA_LINK_NETNSID")
    return Link(
        index=int(msg["index"]),
        name=str(_attr(msg, "IFLA_IFNAME")),
        kind=kind,
        mtu=int(_attr(msg, "IFLA_MTU") or 0),
        mac=str(_attr(msg, "IFLA_ADDRESS") or "").lower(),
        up=bool(flags & IFF_UP),
        master=names.get(int(master)) if master else None,
        peer_index=int(peer) if kind == "veth" and peer is not None else None,
        link_netnsid=int(nsid) if nsid is not None and nsid >= 0 else None,
        promisc=bool(flags & IFF_PROMISC),
        hairpin=hairpin,
        vlan_filtering=vlan_filtering,
        alias=str(_attr(msg, "IFLA_IFALIAS") or ""),
        mode=mode,
        vlan_id=vlan_id,
        allmulti=bool(flags & IFF_ALLMULTI),
        txqlen=int(_attr(msg, "IFLA_TXQLEN") or 0),
        vrf_table=vrf_table,
    )


def _kind_data(kind: str, data: Any) -> tuple[str | None, int | None]:
    """``Link.mode`` (macvlan, ipvlan) and ``Link.vlan_id`` (vlan) from IFLA_INFO_DATA.

    pyroute2 decodes the macvlan mode to its own name (``value_map``); it is turned
    back into the kernel number so both backends name modes from the same table."""
    if data is None:
        return None, None
    if kind == "macvlan":
        code = _attr(data, "IFLA_MACVLAN_MODE")
        if isinstance(code, str):
            from pyroute2.netlink.rtnl.ifinfmsg import macvx_data

            code = {v: k for k, v in macvx_data.mode.value_map.items()}[code]
        return mode_name(kind, None if code is None else int(code)), None
    if kind == "ipvlan":
        code = _attr(data, "IFLA_IPVLAN_MODE")
        return mode_name(kind, None if code is None else int(code)), None
    if kind == "vlan":
        vid = _attr(data, "IFLA_VLAN_ID")
        return None, None if vid is None else int(vid)
    return None, None


def _names(link_msgs: Any) -> dict[int, str]:
    """ifindex -> name of the links in ``link_msgs``."""
    return {int(m["index"]): str(_attr(m, "IFLA_IFNAME")) for m in link_msgs}


def _links(ipr: IPR) -> list[Link]:
    msgs = list(ipr.get_links())
    names = _names(msgs)
    return [_link_from_msg(m, names) for m in msgs]


def _families(family: int | None) -> tuple[int, ...]:
    """Dumps are per family: AF_UNSPEC would also return bridge FDB entries and
    multicast routing tables."""
    return (socket.AF_INET, socket.AF_INET6) if family is None else (family,)


def _dump(netns: str | None, op: str, method: str,
          family: int | None) -> tuple[dict[int, str], list[Any]]:
    """The link names and the messages of ``ipr.<method>(family=...)``, per family."""
    with _iproute(netns, op) as ipr:
        names = _names(ipr.get_links())
        get = getattr(ipr, method)
        return names, [m for fam in _families(family) for m in get(family=fam)]


def _address_from_msg(msg: Any, names: dict[int, str]) -> Address:
    # IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on p-t-p links.
    ip = _attr(msg, "IFA_LOCAL") or _attr(msg, "IFA_ADDRESS")
    return Address(ifname=names.get(int(msg["index"]), ""),
                   address=f"{ip}/{int(msg['prefixlen'])}",
                   family=int(msg["family"]), scope=int(msg["scope"]))


def _neighbour_from_msg(msg: Any, names: dict[int, str]) -> Neighbour:
    lladdr = _attr(msg, "NDA_LLADDR")
    return Neighbour(ifname=names.get(int(msg["ifindex"]), ""),
                     address=str(_attr(msg, "NDA_DST")),
                     lladdr=str(lladdr or "").lower(),
                     permanent=bool(int(msg["state"]) & NUD_PERMANENT))


def _route_from_msg(msg: Any, names: dict[int, str]) -> Route:
    family = int(msg["family"])
    dst = _attr(msg, "RTA_DST")
    if dst is None:
        dst = "0.0.0.0" if family == socket.AF_INET else "::"
    oif = _attr(msg, "RTA_OIF")
    table = _attr(msg, "RTA_TABLE")
    metrics = _attr(msg, "RTA_METRICS")
    mtu = advmss = None
    if metrics is not None:
        mtu = _attr(metrics, "RTAX_MTU")
        advmss = _attr(metrics, "RTAX_ADVMSS")
    priority = _attr(msg, "RTA_PRIORITY")
    gateway = _attr(msg, "RTA_GATEWAY")
    src = _attr(msg, "RTA_PREFSRC")
    return Route(
        dst=f"{dst}/{int(msg['dst_len'])}",
        gateway=str(gateway) if gateway else None,
        ifname=names.get(int(oif)) if oif is not None else None,
        table=int(table if table is not None else msg["table"]),
        priority=int(priority) if priority is not None else None,
        scope=int(msg["scope"]),
        mtu=int(mtu) if mtu is not None else None,
        advmss=int(advmss) if advmss is not None else None,
        src=str(src) if src else None,
        proto=int(msg["proto"]),
    )


def _rule_from_msg(msg: Any) -> Rule:
    family = int(msg["family"])
    table = _attr(msg, "FRA_TABLE")
    priority = _attr(msg, "FRA_PRIORITY")
    nets = []
    for key in ("src", "dst"):
        addr = _attr(msg, f"FRA_{key.upper()}")
        plen = int(msg[f"{key}_len"])
        nets.append(f"{addr}/{plen}" if addr is not None and plen else None)
    return Rule(table=int(table if table is not None else msg["table"]),
                priority=int(priority) if priority is not None else 0,  # 0 is not sent
                src=nets[0], dst=nets[1], iif=_attr(msg, "FRA_IIFNAME") or None,
                oif=_attr(msg, "FRA_OIFNAME") or None, family=family)


def _qdisc_from_msg(msg: Any, names: dict[int, str]) -> Qdisc:
    kind = str(_attr(msg, "TCA_KIND") or "")
    rate = buffer = limit = None
    options = _attr(msg, "TCA_OPTIONS")
    if kind == "tbf" and options is not None:
        parms = _attr(options, "TCA_TBF_PARMS")
        if parms is not None:
            rate, buffer, limit = int(parms["rate"]), int(parms["buffer"]), int(parms["limit"])
            rate64 = _attr(options, "TCA_TBF_RATE64")
            rate = int(rate64) if rate64 else rate
    return Qdisc(ifname=names.get(int(msg["index"]), ""), kind=kind,
                 handle=int(msg["handle"]), parent=int(msg["parent"]), rate=rate,
                 burst=tbf_burst(rate, buffer) if rate is not None and buffer is not None
                 else None, limit=limit, buffer=buffer)


def _filter_from_msg(msg: Any, names: dict[int, str]) -> Filter | None:
    """A filter with its match; None for a u32 hash-table entry (no selector)."""
    kind = str(_attr(msg, "TCA_KIND") or "")
    options = _attr(msg, "TCA_OPTIONS")
    if options is None or (kind == "u32" and _attr(options, "TCA_U32_SEL") is None):
        return None
    classid = _attr(options, "TCA_U32_CLASSID" if kind == "u32" else "TCA_MATCHALL_CLASSID")
    redirect = None
    acts = _attr(options, "TCA_U32_ACT" if kind == "u32" else "TCA_MATCHALL_ACT")
    for _, act in (acts["attrs"] if acts is not None else []):
        if _attr(act, "TCA_ACT_KIND") == "mirred":
            parms = _attr(_attr(act, "TCA_ACT_OPTIONS"), "TCA_MIRRED_PARMS")
            redirect = names.get(int(parms["ifindex"]))
            break
    info = int(msg["info"])
    return Filter(ifname=names.get(int(msg["index"]), ""), parent=int(msg["parent"]), kind=kind,
                  priority=info >> 16, protocol=socket.ntohs(info & 0xFFFF),
                  classid=int(classid) if classid else None, redirect=redirect,
                  handle=int(msg["handle"]))


class Pyroute2Backend:
    """``NetBackend`` on pyroute2. Stateless: each batch or read opens its own socket."""

    name = "pyroute2"

    def batch(self, netns: str | None = None) -> Pyroute2Batch:
        return Pyroute2Batch(netns)

    def links(self, netns: str | None = None) -> list[Link]:
        with _iproute(netns, "links") as ipr:
            return _links(ipr)

    def link(self, name: str, netns: str | None = None) -> Link | None:
        for link in self.links(netns):
            if link.name == name:
                return link
        return None

    def addresses(self, netns: str | None = None, ifname: str | None = None,
                  family: int | None = None) -> list[Address]:
        names, msgs = _dump(netns, "addresses", "get_addr", family)
        return on_link([_address_from_msg(m, names) for m in msgs], ifname)

    def routes(self, netns: str | None = None, family: int | None = None,
               table: int | None = RT_TABLE_MAIN) -> list[Route]:
        """``table=None`` includes the kernel's local table (255), like ``table all``."""
        names, msgs = _dump(netns, "routes", "get_routes", family)
        return in_table([_route_from_msg(m, names) for m in msgs], table)

    def neighbours(self, netns: str | None = None,
                   ifname: str | None = None) -> list[Neighbour]:
        names, msgs = _dump(netns, "neighbours", "get_neighbours", None)
        return on_link([_neighbour_from_msg(m, names) for m in msgs], ifname)

    def fdb(self, ifname: str, netns: str | None = None) -> list[FdbEntry]:
        names, msgs = _dump(netns, "fdb", "get_neighbours", AF_BRIDGE)
        found = [FdbEntry(ifname=names.get(int(m["ifindex"]), ""),
                          mac=str(_attr(m, "NDA_LLADDR") or "").lower(),
                          dst=_attr(m, "NDA_DST")) for m in msgs]
        return [e for e in found if e.ifname == ifname and e.dst]

    def rules(self, netns: str | None = None, family: int | None = None) -> list[Rule]:
        with _iproute(netns, "rules") as ipr:
            return [_rule_from_msg(m) for fam in _families(family)
                    for m in ipr.get_rules(family=fam)]

    def qdiscs(self, netns: str | None = None, ifname: str | None = None) -> list[Qdisc]:
        with _iproute(netns, "qdiscs") as ipr:
            names = _names(ipr.get_links())
            found = [_qdisc_from_msg(m, names) for m in ipr.get_qdiscs()]
        return [q for q in found if ifname is None or q.ifname == ifname]

    def filters(self, ifname: str, parent: int, netns: str | None = None) -> list[Filter]:
        with _iproute(netns, "filters") as ipr:
            names = _names(ipr.get_links())
            index = {v: k for k, v in names.items()}.get(ifname)
            if index is None:
                raise NetError(errno.ENODEV, "filters", ifname)
            try:
                msgs = list(ipr.get_filters(index=index, parent=parent))
            except Exception as exc:
                if _errno_of(exc) not in (errno.EINVAL, errno.ENOENT):
                    raise
                msgs = []  # no such qdisc: no filters (as the native dump says)
            found = [_filter_from_msg(m, names) for m in msgs]
        return [f for f in found if f is not None]

    # --- sysctls ---

    def sysctl_get(self, key: str, netns: str | None = None) -> str:
        path = sysctl_path("sysctl_get", key)
        with _netns_errors("sysctl_get", netns), _netns.entered(netns):
            try:
                with open(path) as fh:
                    return fh.read().strip()
            except OSError as exc:
                raise os_failure(exc, "sysctl_get", key) from exc

    def sysctl_set(self, key: str, value: str, netns: str | None = None) -> None:
        path = sysctl_path("sysctl_set", key)
        with _netns_errors("sysctl_set", netns), _netns.entered(netns):
            try:
                with open(path, "w") as fh:
                    fh.write(value)
            except OSError as exc:
                raise os_failure(exc, "sysctl_set", f"{key}={value}") from exc
