"""The VXLAN, FDB, neighbour-delete and onlink-route requests, byte by byte.

The byte-level twin of tests/integration/test_net_vxlan.py: what the native
batcher sends, checked against the kernel's UAPI layout (if_link.h,
neighbour.h, rtnetlink.h) without a socket.
"""

from __future__ import annotations

import socket
import struct

import pytest

from tests.unit.test_native_messages import (
    IFLA_ADDRESS,
    IFLA_INFO_DATA,
    IFLA_INFO_KIND,
    IFLA_LINKINFO,
    IFLA_MTU,
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_REPLACE,
    NLM_F_REQUEST,
    NUD_PERMANENT,
    RTM_NEWNEIGH,
    RTM_NEWROUTE,
    cstr,
    nested,
    render,
    u32,
)

native = pytest.importorskip("corecni.net.native_backend")
from corecni.net.base import FdbEntry, Neighbour, Route  # noqa: E402
from corecni.net.native_backend import NativeBatch  # noqa: E402

IFLA_VXLAN_ID, IFLA_VXLAN_LINK, IFLA_VXLAN_LOCAL, IFLA_VXLAN_LEARNING = 1, 3, 4, 7
IFLA_VXLAN_PORT = 15
NDA_DST, NDA_LLADDR = 1, 2
NTF_SELF, AF_BRIDGE = 0x02, 7
RTM_DELNEIGH = 29
RTNH_F_ONLINK = 4
NAMES = {"lo": 1, "uplink": 2, "flannel.1": 9}


def test_vxlan_link_request() -> None:
    [m] = render(NativeBatch(None).add_vxlan("flannel.1", 1, local="198.18.0.1", port=8472,
                                              dev="uplink", learning=False,
                                              mac="02:00:00:00:00:09", mtu=1450), NAMES)
    assert cstr(m.attr(3)) == "flannel.1" and u32(m.attr(IFLA_MTU)) == 1450
    assert m.attr(IFLA_ADDRESS) == bytes.fromhex("020000000009")
    info = nested(m.attr(IFLA_LINKINFO))
    assert cstr(info[IFLA_INFO_KIND]) == "vxlan"
    data = nested(info[IFLA_INFO_DATA])
    assert u32(data[IFLA_VXLAN_ID]) == 1
    assert data[IFLA_VXLAN_LOCAL] == socket.inet_aton("198.18.0.1")
    assert u32(data[IFLA_VXLAN_LINK]) == 2  # the underlay, inside the data (not IFLA_LINK)
    assert data[IFLA_VXLAN_PORT] == struct.pack("!H", 8472)  # network byte order
    assert data[IFLA_VXLAN_LEARNING] == b"\0"


def test_fdb_entries_are_bridge_neighbours_of_the_device_itself() -> None:
    add, delete = render(NativeBatch(None)
                         .add_fdb(FdbEntry("flannel.1", "02:00:00:00:00:0a", "198.18.0.2"))
                         .del_fdb(FdbEntry("flannel.1", "02:00:00:00:00:0a", "198.18.0.2"),
                                  missing_ok=True), NAMES)
    assert add.type == RTM_NEWNEIGH
    assert add.flags == NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
    family, _p1, _p2, index, state, flags, _ntype = struct.unpack("=BBHiHBB", add.header)
    assert (family, index, state, flags) == (AF_BRIDGE, 9, NUD_PERMANENT, NTF_SELF)
    assert add.attr(NDA_LLADDR) == bytes.fromhex("02000000000a")
    assert add.attr(NDA_DST) == socket.inet_aton("198.18.0.2")
    assert delete.type == RTM_DELNEIGH and delete.attr(NDA_DST) == add.attr(NDA_DST)


def test_neighbour_delete_and_onlink_route() -> None:
    neigh, route = render(NativeBatch(None)
                          .del_neighbour(Neighbour("flannel.1", "10.60.2.0", "02:00:00:00:00:0a"))
                          .add_route(Route(dst="10.60.2.0/24", gateway="10.60.2.0",
                                           ifname="flannel.1", onlink=True), replace=True),
                          NAMES)
    assert neigh.type == RTM_DELNEIGH and neigh.attr(NDA_DST) == socket.inet_aton("10.60.2.0")
    assert not neigh.has(NDA_LLADDR)
    assert route.type == RTM_NEWROUTE
    _family, _dl, _sl, _tos, _table, _proto, _scope, _type, flags = \
        struct.unpack("=BBBBBBBBI", route.header)
    assert flags & RTNH_F_ONLINK
