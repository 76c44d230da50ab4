"""What the link-layer backends share: mode tables, object names, checks, filters.

Both ``native_backend`` and ``pyroute2_backend`` import this; it imports
neither pyroute2 nor the compiled extension, so either backend stays as cheap
to load as it was.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from types import TracebackType
from typing import TypeVar

from corecni.net.base import Address, Neighbour, NetError, Route

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
    if route.table != RT_TABLE_MAIN:
        text += f" table {route.table}"
    return text


def neighbour_obj(neigh: Neighbour) -> str:
    """How a neighbour entry is named in ``NetError``."""
    return f"{neigh.address} lladdr {neigh.lladdr} dev {neigh.ifname}"


# --- sysctls -------------------------------------------------------------------

def sysctl_path(op: str, key: str) -> str:
    """/proc/sys/net is resolved by the opening thread's namespace: open it inside."""
    parts = key.strip("/").split("/")
    if not key or any(p in ("", ".", "..") for p in parts):
        raise NetError(errno.EINVAL, op, key, "key must be a path below /proc/sys/net")
    return "/proc/sys/net/" + "/".join(parts)


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
