"""A minimal netlink reader of links and addresses, for checking state after every call.

Neither of corecni's link layers (the code under test) nor a process per read: two
dumps (RTM_GETLINK, RTM_GETADDR) on a raw socket opened inside the namespace, parsed
only as far as the fields compared (name, kind, master, MTU, up, addresses). A read
costs well under a millisecond, where ``ip -j`` or pyroute2 cost ~10 ms.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterator

NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWLINK, RTM_GETLINK, RTM_NEWADDR, RTM_GETADDR = 16, 18, 20, 22
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_LINKINFO, IFLA_INFO_KIND = 3, 4, 10, 18, 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
IFF_UP = 0x1
RT_SCOPE_LINK = 253


def _attrs(data: bytes, offset: int) -> Iterator[tuple[int, bytes]]:
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("HH", data, offset)
        if length < 4:
            return
        yield kind & 0x3FFF, data[offset + 4:offset + length]
        offset += (length + 3) & ~3


def _dump(sock: socket.socket, msg_type: int, seq: int) -> Iterator[tuple[int, bytes]]:
    request = struct.pack("IHHII", 20, msg_type, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + \
        struct.pack("Bxxx", socket.AF_UNSPEC)
    sock.send(request)
    while True:
        data = sock.recv(1 << 20)
        offset = 0
        while offset + 16 <= len(data):
            length, kind, _flags, _seq, _pid = struct.unpack_from("IHHII", data, offset)
            if kind == NLMSG_DONE:
                return
            if kind == NLMSG_ERROR:
                raise OSError("netlink dump failed")
            yield kind, data[offset + 16:offset + length]
            offset += (length + 3) & ~3


class Reader:
    """Links and addresses of the namespace the socket was opened in."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)  # NETLINK_ROUTE
        self.seq = 0

    def links(self) -> list[list[object]]:
        self.seq += 1
        rows: dict[int, dict[str, object]] = {}
        for kind, body in _dump(self.sock, RTM_GETLINK, self.seq):
            if kind != RTM_NEWLINK:
                continue
            _family, _type, index, flags, _change = struct.unpack_from("BxHiII", body, 0)
            row: dict[str, object] = {"up": bool(flags & IFF_UP), "kind": "", "master": 0,
                                      "addresses": []}
            for attr, value in _attrs(body, 16):
                if attr == IFLA_IFNAME:
                    row["name"] = value.split(b"\0", 1)[0].decode("utf-8", "replace")
                elif attr == IFLA_MTU:
                    row["mtu"] = struct.unpack_from("I", value)[0]
                elif attr == IFLA_MASTER:
                    row["master"] = struct.unpack_from("I", value)[0]
                elif attr == IFLA_LINKINFO:
                    for sub, text in _attrs(value, 0):
                        if sub == IFLA_INFO_KIND:
                            row["kind"] = text.split(b"\0", 1)[0].decode()
            rows[index] = row
        self.seq += 1
        for kind, body in _dump(self.sock, RTM_GETADDR, self.seq):
            if kind != RTM_NEWADDR:
                continue
            _family, prefixlen, _flags, scope, index = struct.unpack_from("BBBBI", body, 0)
            if scope == RT_SCOPE_LINK or index not in rows:
                continue
            found: dict[int, bytes] = dict(_attrs(body, 8))
            raw = found.get(IFA_LOCAL) or found.get(IFA_ADDRESS)
            if raw is None:
                continue
            address = ipaddress.ip_address(raw)
            addresses = rows[index]["addresses"]
            assert isinstance(addresses, list)
            addresses.append(f"{address}/{prefixlen}")
        out = []
        for row in rows.values():
            master = row["master"]
            master_name = rows[master]["name"] if isinstance(master, int) and master in rows \
                else ""
            addresses = row["addresses"]
            assert isinstance(addresses, list)
            out.append([row.get("name", ""), row["kind"], master_name, row.get("mtu"),
                        row["up"], sorted(addresses)])
        return sorted(out, key=repr)
