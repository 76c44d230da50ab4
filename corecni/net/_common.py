"""What the link-layer backends share: mode tables, object names, checks, filters.

Both ``native_backend`` and ``pyroute2_backend`` import this; it imports
neither pyroute2 nor the compiled extension, so either backend stays as cheap
to load as it was.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Iterable
from types import TracebackType
from typing import TypeVar

from corecni.net.base import (
    Address,
    FdbEntry,
    Filter,
    Neighbour,
    NetError,
    Qdisc,
    Route,
    Rule,
)

# Kernel values of the mode names the contract accepts (IFLA_MACVLAN_MODE bits,
# IFLA_IPVLAN_MODE, IFLA_IPVLAN_FLAGS).
MACVLAN_MODES = {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8, "source": 16}
IPVLAN_MODES = {"l2": 0, "l3": 1, "l3s": 2}
IPVLAN_FLAGS = {"bridge": 0, "private": 1, "vepa": 2}

# The same tables inverted, per link kind: what a read-back reports as ``Link.mode``.
_MODE_NAMES = {"macvlan": {code: name for name, code in MACVLAN_MODES.items()},
               "ipvlan": {code: name for name, code in IPVLAN_MODES.items()}}

RT_TABLE_MAIN = 254
NUD_PERMANENT = 0x80
AF_BRIDGE = 7  # socket.AF_BRIDGE: the FDB's neighbour family


class invalid:  # lower-case: used like a function, ``with invalid(op, obj):``
    """Bad arguments are refused when queued, as ``NetError(EINVAL)`` for that request:
    a ``ValueError`` raised inside the block becomes ``NetError(EINVAL, op, obj, str(exc))``.

    A class, not ``@contextmanager``: it runs for every queued request, and a
    generator costs about a microsecond more each time.
    """

    __slots__ = ("obj", "op")

    def __init__(self, op: str, obj: str) -> None:
        self.op = op
        self.obj = obj

    def __enter__(self) -> None:
        return None

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if isinstance(exc, ValueError):
            raise NetError(errno.EINVAL, self.op, self.obj, str(exc)) from None


def mode_code(table: dict[str, int], what: str, name: str) -> int:
    """``table[name]``; ``ValueError("unknown <what> 'name'")`` when it has none."""
    if name not in table:
        raise ValueError(f"unknown {what} {name!r}")
    return table[name]


def mode_name(kind: str, code: int | None) -> str | None:
    """``Link.mode`` of a ``kind`` link whose kernel mode number is ``code``: its name
    in ``MACVLAN_MODES``/``IPVLAN_MODES``, the digits of a number the table lacks,
    ``None`` for other kinds or when the kernel reported no mode."""
    names = _MODE_NAMES.get(kind)
    if names is None or code is None:
        return None
    return names.get(code, str(code))


def route_obj(route: Route) -> str:
    """How a route is named in ``NetError`` (``ip route``-like)."""
    text = route.dst
    if route.gateway:
        text += f" via {route.gateway}"
    if route.ifname:
        text += f" dev {route.ifname}"
    if route.onlink:
        text += " onlink"
    if route.table != RT_TABLE_MAIN:
        text += f" table {route.table}"
    return text


def neighbour_obj(neigh: Neighbour) -> str:
    """How a neighbour entry is named in ``NetError``."""
    return f"{neigh.address} lladdr {neigh.lladdr} dev {neigh.ifname}"


def fdb_obj(entry: FdbEntry) -> str:
    """How an FDB entry is named in ``NetError`` (``bridge fdb``-like)."""
    return f"{entry.mac} dev {entry.ifname}" + (f" dst {entry.dst}" if entry.dst else "")


def rule_obj(rule: Rule) -> str:
    """How a rule is named in ``NetError`` (``ip rule``-like)."""
    parts = [f"pref {rule.priority}"] if rule.priority is not None else []
    parts += [f"{k} {v}" for k, v in (("from", rule.src), ("to", rule.dst), ("iif", rule.iif),
                                      ("oif", rule.oif)) if v is not None]
    return " ".join([*parts, f"table {rule.table}"])


def qdisc_obj(ifname: str, kind: str, parent: int) -> str:
    """How a qdisc is named in ``NetError`` (``tc``-like)."""
    where = {0xFFFFFFFF: "root", 0xFFFFFFF1: "ingress"}.get(parent, f"parent {parent:x}")
    return f"{kind} {where} dev {ifname}".replace("  ", " ").strip()


def filter_obj(flt: Filter) -> str:
    text = f"{flt.kind} dev {flt.ifname} parent {flt.parent >> 16:x}: pref {flt.priority}"
    return text + (f" redirect {flt.redirect}" if flt.redirect else "")


def rule_family(rule: Rule) -> tuple[int, tuple[bytes, int] | None, tuple[bytes, int] | None]:
    """(family, (src, len) or None, (dst, len) or None) of ``rule``: the family of its
    CIDRs when it has any, else ``rule.family``. ``ValueError`` for a bad CIDR (host
    bits set too) or mixed families."""
    families = set()
    nets: list[tuple[bytes, int] | None] = []
    for cidr in (rule.src, rule.dst):
        if cidr is None:
            nets.append(None)
            continue
        net = ipaddress.ip_network(cidr)
        families.add(socket.AF_INET if net.version == 4 else socket.AF_INET6)
        nets.append((net.network_address.packed, net.prefixlen))
    if len(families) > 1:
        raise ValueError("source and destination are of different families")
    family = families.pop() if families else rule.family
    if family not in (socket.AF_INET, socket.AF_INET6):
        raise ValueError(f"unknown address family {family}")
    if not 0 <= rule.table < 1 << 32 or (rule.priority is not None
                                         and not 0 <= rule.priority < 1 << 32):
        raise ValueError("table and priority must be 32-bit unsigned")
    return family, nets[0], nets[1]


# --- traffic control -------------------------------------------------------------

TIME_UNITS_PER_SEC = 1_000_000  # tc's time unit: microseconds


def _tick_in_usec() -> float:
    """psched ticks per microsecond, read from /proc/net/psched as tc and Go's netlink
    library do (15.625 on every kernel since 2.6.x)."""
    try:
        with open("/proc/net/psched") as fh:
            t2us, us2t, clock_res, _ = (int(x, 16) for x in fh.read().split())
        return t2us / us2t * (clock_res / TIME_UNITS_PER_SEC)
    except (OSError, ValueError, ZeroDivisionError):
        return 15.625


TICK_IN_USEC = _tick_in_usec()


def tbf_buffer(rate: int, burst: int) -> int:
    """The tbf bucket (psched ticks) for ``burst`` bytes at ``rate`` bytes/s, computed
    exactly as Go's bandwidth plugin does (and ``tc``), so CHECK can compare it."""
    usec = int(float(burst) * TIME_UNITS_PER_SEC / float(rate)) & 0xFFFFFFFF
    return int(float(usec) * TICK_IN_USEC) & 0xFFFFFFFF


def tbf_burst(rate: int, buffer: int) -> int:
    """The burst (bytes) a tbf bucket of ``buffer`` ticks holds at ``rate`` (as ``tc``
    prints it)."""
    return int(rate * (buffer / TICK_IN_USEC) / TIME_UNITS_PER_SEC)


def tbf_params(op: str, qdisc: Qdisc) -> tuple[int, int, int]:
    """(rate, buffer ticks, limit) of a tbf qdisc to add; ``NetError(EINVAL)`` when one
    is missing or out of range."""
    obj = qdisc_obj(qdisc.ifname, qdisc.kind, qdisc.parent)
    rate, limit = qdisc.rate, qdisc.limit
    if rate is None or rate <= 0 or rate >= 1 << 64:
        raise NetError(errno.EINVAL, op, obj, f"tbf needs a positive rate, not {rate}")
    if limit is None or not 0 < limit < 1 << 32:
        raise NetError(errno.EINVAL, op, obj, f"tbf needs a limit of 1..2^32-1 bytes, not {limit}")
    if qdisc.burst is not None:
        if not 0 < qdisc.burst < 1 << 32:
            raise NetError(errno.EINVAL, op, obj, f"tbf burst out of range: {qdisc.burst}")
        buffer = tbf_buffer(rate, qdisc.burst)
    elif qdisc.buffer is not None and 0 < qdisc.buffer < 1 << 32:
        buffer = qdisc.buffer
    else:
        raise NetError(errno.EINVAL, op, obj, "tbf needs a burst")
    return rate, buffer, limit


# --- sysctls -------------------------------------------------------------------

def sysctl_path(op: str, key: str) -> str:
    """/proc/sys/net is resolved by the opening thread's namespace: open it inside."""
    parts = key.strip("/").split("/")
    if not key or any(p in ("", ".", "..") for p in parts):
        raise NetError(errno.EINVAL, op, key, "key must be a path below /proc/sys/net")
    return "/proc/sys/net/" + "/".join(parts)


#: Per-device settings netlink reports with each link (``IFLA_AF_SPEC``), by the
#: name of their file under /proc/sys/net/ipv{4,6}/conf/DEV and their index in the
#: kernel's numbering (linux/ip.h ``IPV4_DEVCONF_*``, linux/ipv6.h ``DEVCONF_*``;
#: both are append-only UAPI). Only settings whose file shows the plain number are
#: listed (``mtu``, ``stable_secret`` print otherwise).
DEVCONF_INDEX: dict[str, dict[str, int]] = {
    "ipv4": {"forwarding": 1, "mc_forwarding": 2, "proxy_arp": 3, "accept_redirects": 4,
             "secure_redirects": 5, "send_redirects": 6, "shared_media": 7, "rp_filter": 8,
             "accept_source_route": 9, "bootp_relay": 10, "log_martians": 11, "tag": 12,
             "arp_filter": 13, "medium_id": 14, "disable_xfrm": 15, "disable_policy": 16,
             "force_igmp_version": 17, "arp_announce": 18, "arp_ignore": 19,
             "promote_secondaries": 20, "arp_accept": 21, "arp_notify": 22, "accept_local": 23,
             "src_valid_mark": 24, "proxy_arp_pvlan": 25, "route_localnet": 26},
    "ipv6": {"forwarding": 0, "hop_limit": 1, "accept_ra": 3, "accept_redirects": 4,
             "autoconf": 5, "dad_transmits": 6, "router_solicitations": 7,
             "use_tempaddr": 10, "max_addresses": 15, "force_mld_version": 16,
             "accept_ra_defrtr": 17, "accept_ra_pinfo": 18, "proxy_ndp": 22,
             "accept_source_route": 24, "mc_forwarding": 25, "disable_ipv6": 26,
             "accept_dad": 27, "ndisc_notify": 29, "keep_addr_on_down": 42,
             "enhanced_dad": 46, "addr_gen_mode": 47},
}


def devconf_of(key: str) -> tuple[int, str, int] | None:
    """(address family, device, index) when ``key`` is a per-device setting netlink
    reports (``ipv4/conf/eth0/arp_notify``), else None (``all``/``default`` have no
    link to ask; every other key is read from its file)."""
    parts = key.strip("/").split("/")
    if len(parts) != 4 or parts[1] != "conf" or parts[2] in ("all", "default", "", ".", ".."):
        return None
    index = DEVCONF_INDEX.get(parts[0], {}).get(parts[3])
    if index is None:
        return None
    return (socket.AF_INET if parts[0] == "ipv4" else socket.AF_INET6), parts[2], index


def os_failure(exc: OSError, op: str, obj: str) -> NetError:
    """``exc`` (reading or writing a sysctl) as the ``NetError`` to raise from it."""
    return NetError(exc.errno or errno.EIO, op, obj, exc.strerror or "")


# --- read filters --------------------------------------------------------------

OnLink = TypeVar("OnLink", Address, Neighbour)


def on_link(items: Iterable[OnLink], ifname: str | None) -> list[OnLink]:
    """The addresses or neighbours of link ``ifname``; all of them when ``None``."""
    return [x for x in items if ifname is None or x.ifname == ifname]


def in_table(routes: Iterable[Route], table: int | None) -> list[Route]:
    """The routes of ``table``; all tables when ``None``."""
    return [r for r in routes if table is None or r.table == table]
