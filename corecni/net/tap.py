"""Persistent tap devices through ``/dev/net/tun`` (the pyroute2 backend's path).

Netlink cannot create tun/tap devices: the kernel's tun driver refuses
RTM_NEWLINK ("tun/tap creation via rtnetlink is not supported"), so, like
``ip tuntap add`` and Go's netlink library, the device is made with the
TUNSETIFF ioctl and kept with TUNSETPERSIST. The device lands in the network
namespace of the thread that opens ``/dev/net/tun``: call this inside
``corecni.netns.entered``. (The native backend does the same in C, in order
with its batch.)
"""

from __future__ import annotations

import fcntl
import os
import struct

TUNSETIFF = 0x400454CA
TUNSETPERSIST = 0x400454CB
TUNSETOWNER = 0x400454CC
TUNSETGROUP = 0x400454CE
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_MULTI_QUEUE = 0x0100
IFNAMSIZ = 16


def create_tap(name: str, *, multi_queue: bool = False, owner: int | None = None,
               group: int | None = None) -> None:
    """Create persistent tap ``name`` in the calling thread's namespace; OSError on failure
    (closing the file before TUNSETPERSIST succeeded removes the device again)."""
    data = name.encode()
    if not data or len(data) >= IFNAMSIZ:
        raise OSError(22, f"invalid interface name {name!r}")
    flags = IFF_TAP | IFF_NO_PI | (IFF_MULTI_QUEUE if multi_queue else 0)
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", data, flags))
        if owner is not None:
            fcntl.ioctl(fd, TUNSETOWNER, owner)
        if group is not None:
            fcntl.ioctl(fd, TUNSETGROUP, group)
        fcntl.ioctl(fd, TUNSETPERSIST, 1)
    finally:
        os.close(fd)
