"""A minimal netlink reader of what a plugin may change, for checking state after every call.

Neither of corecni's link layers (the code under test) nor a process per read: dumps
(links, addresses, routes, rules, qdiscs) on a raw socket opened inside the
namespace, parsed only as far as the fields compared. A whole read costs about a
millisecond, where ``ip -j`` or pyroute2 cost ~10 ms per object type. Two writes
(delete a link, set one up) serve the fuzz suite's resets between cases.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterator

NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_NEWADDR, RTM_GETADDR = 16, 17, 18, 20, 22
RTM_NEWROUTE, RTM_GETROUTE, RTM_NEWRULE, RTM_GETRULE = 24, 26, 32, 34
RTM_NEWQDISC, RTM_GETQDISC = 36, 38
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_LINKINFO, IFLA_INFO_KIND = 3, 4, 10, 18, 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_PREFSRC, RTA_TABLE = 1, 4, 5, 6, 7, 15
FRA_DST, FRA_SRC, FRA_IIFNAME, FRA_PRIORITY, FRA_TABLE, FRA_OIFNAME = 1, 2, 3, 6, 15, 17
TCA_KIND = 1
IFF_UP = 0x1
RT_SCOPE_LINK = 253
RT_TABLE_LOCAL = 255

Row = list[object]


def _attrs(data: bytes, offset: int) -> Iterator[tuple[int, bytes]]:
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("HH", data, offset)
        if length < 4:
            return
        yield kind & 0x3FFF, data[offset + 4:offset + length]
        offset += (length + 3) & ~3


def _text(value: bytes) -> str:
    return value.split(b"\0", 1)[0].decode("utf-8", "replace")


def _u32(value: bytes) -> int:
    return int(struct.unpack_from("I", value)[0])


class Reader:
    """Links, addresses, routes, rules and qdiscs of the namespace the socket was
    opened in."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)  # NETLINK_ROUTE
        self.seq = 0

    def _dump(self, msg_type: int, header: bytes) -> Iterator[tuple[int, bytes]]:
        self.seq += 1
        self.sock.send(struct.pack("IHHII", 16 + len(header), msg_type,
                                   NLM_F_REQUEST | NLM_F_DUMP, self.seq, 0) + header)
        while True:
            data = self.sock.recv(1 << 20)
            offset = 0
            while offset + 16 <= len(data):
                length, kind, _flags, _seq, _pid = struct.unpack_from("IHHII", data, offset)
                if kind == NLMSG_DONE:
                    return
                if kind == NLMSG_ERROR:
                    raise OSError("netlink dump failed")
                yield kind, data[offset + 16:offset + length]
                offset += (length + 3) & ~3

    def _request(self, msg_type: int, body: bytes) -> None:
        """One change, acknowledged (an error is an OSError with the kernel's errno)."""
        self.seq += 1
        self.sock.send(struct.pack("IHHII", 16 + len(body), msg_type, NLM_F_REQUEST | NLM_F_ACK,
                                   self.seq, 0) + body)
        data = self.sock.recv(1 << 16)
        _length, kind = struct.unpack_from("IH", data, 0)
        if kind == NLMSG_ERROR:
            error = struct.unpack_from("i", data, 16)[0]
            if error:
                raise OSError(-error, f"netlink request {msg_type} failed")

    def _names(self) -> dict[int, dict[str, object]]:
        rows: dict[int, dict[str, object]] = {}
        for kind, body in self._dump(RTM_GETLINK, struct.pack("Bxxx", socket.AF_UNSPEC)):
            if kind != RTM_NEWLINK:
                continue
            _family, _type, index, flags, _change = struct.unpack_from("BxHiII", body, 0)
            row: dict[str, object] = {"up": bool(flags & IFF_UP), "kind": "", "master": 0,
                                      "addresses": []}
            for attr, value in _attrs(body, 16):
                if attr == IFLA_IFNAME:
                    row["name"] = _text(value)
                elif attr == IFLA_MTU:
                    row["mtu"] = _u32(value)
                elif attr == IFLA_MASTER:
                    row["master"] = _u32(value)
                elif attr == IFLA_LINKINFO:
                    for sub, text in _attrs(value, 0):
                        if sub == IFLA_INFO_KIND:
                            row["kind"] = _text(text)
            rows[index] = row
        return rows

    def links(self) -> list[Row]:
        """Each link: name, kind, master's name, MTU, up, its addresses (not
        link-scoped ones; not ifindex or MAC, which re-creating a shared device may
        legitimately change)."""
        return self.snapshot()["links"]

    def snapshot(self) -> dict[str, list[Row]]:
        """Everything compared, in one pass: links (with addresses), routes of every
        table but ``local`` (which only mirrors the addresses; nor ``fe80::/64``, which
        mirrors the link-local ones), rules, qdiscs."""
        rows = self._names()
        name = {index: str(row.get("name", "")) for index, row in rows.items()}
        for kind, body in self._dump(RTM_GETADDR, struct.pack("Bxxx", socket.AF_UNSPEC)):
            if kind != RTM_NEWADDR:
                continue
            _family, prefixlen, _flags, scope, index = struct.unpack_from("BBBBI", body, 0)
            if scope == RT_SCOPE_LINK or index not in rows:
                continue
            found: dict[int, bytes] = dict(_attrs(body, 8))
            raw = found.get(IFA_LOCAL) or found.get(IFA_ADDRESS)
            if raw is None:
                continue
            addresses = rows[index]["addresses"]
            assert isinstance(addresses, list)
            addresses.append(f"{ipaddress.ip_address(raw)}/{prefixlen}")
        links = []
        for row in rows.values():
            master = row["master"]
            addresses = row["addresses"]
            assert isinstance(addresses, list)
            links.append([row.get("name", ""), row["kind"],
                          name.get(master, "") if isinstance(master, int) else "",
                          row.get("mtu"), row["up"], sorted(addresses)])
        return {"links": sorted(links, key=repr), "routes": self._routes(name),
                "rules": self._rules(), "qdiscs": self._qdiscs(name)}

    def _rtmsg_dump(self, request: int, reply: int) -> Iterator[tuple[tuple[int, ...],
                                                                   dict[int, bytes]]]:
        """Every ``reply`` of a dump whose messages start with the 12-byte header that
        routes (``rtmsg``) and rules (``fib_rule_hdr``) share: its fields and attributes."""
        header = struct.pack("BBBBBBBBI", socket.AF_UNSPEC, 0, 0, 0, 0, 0, 0, 0, 0)
        for kind, body in self._dump(request, header):
            if kind == reply:
                yield struct.unpack_from("BBBBBBBBI", body, 0), dict(_attrs(body, 12))

    def _routes(self, name: dict[int, str]) -> list[Row]:
        out = []
        for head, found in self._rtmsg_dump(RTM_GETROUTE, RTM_NEWROUTE):
            family, dst_len, _src, _tos, table, _proto, scope, rtype, _flags = head
            if RTA_TABLE in found:
                table = _u32(found[RTA_TABLE])
            dst = f"{ipaddress.ip_address(found[RTA_DST])}/{dst_len}" if RTA_DST in found \
                else f"default/{family}"
            if table == RT_TABLE_LOCAL or dst == "fe80::/64":  # mirrors of addresses (and
                continue  # the link-local one comes when the carrier does: asynchronously)
            gateway = str(ipaddress.ip_address(found[RTA_GATEWAY])) \
                if RTA_GATEWAY in found else ""
            oif = name.get(_u32(found[RTA_OIF]), "?") if RTA_OIF in found else ""
            metric = _u32(found[RTA_PRIORITY]) if RTA_PRIORITY in found else 0
            out.append([table, dst, gateway, oif, metric, scope, rtype])
        return sorted(out, key=repr)

    def _rules(self) -> list[Row]:
        out = []
        for head, found in self._rtmsg_dump(RTM_GETRULE, RTM_NEWRULE):
            family, dst_len, src_len, _tos, table, _r1, _r2, action, _flags = head
            if FRA_TABLE in found:
                table = _u32(found[FRA_TABLE])
            out.append([family, table, action,
                        _u32(found[FRA_PRIORITY]) if FRA_PRIORITY in found else 0,
                        f"{ipaddress.ip_address(found[FRA_SRC])}/{src_len}"
                        if FRA_SRC in found else "",
                        f"{ipaddress.ip_address(found[FRA_DST])}/{dst_len}"
                        if FRA_DST in found else "",
                        _text(found.get(FRA_IIFNAME, b"")), _text(found.get(FRA_OIFNAME, b""))])
        return sorted(out, key=repr)

    def _qdiscs(self, name: dict[int, str]) -> list[Row]:
        out = []
        for kind, body in self._dump(RTM_GETQDISC, struct.pack("BxxxiIII", socket.AF_UNSPEC,
                                                                 0, 0, 0, 0)):
            if kind != RTM_NEWQDISC:
                continue
            _family, index, handle, parent, _info = struct.unpack_from("BxxxiIII", body, 0)
            found: dict[int, bytes] = dict(_attrs(body, 20))
            out.append([name.get(index, "?"), _text(found.get(TCA_KIND, b"")), handle, parent])
        return sorted(out, key=repr)

    # --- the resets' writes --------------------------------------------------------------

    def delete_link(self, name: str) -> None:
        self._request(RTM_DELLINK, struct.pack("BxHiII", socket.AF_UNSPEC, 0, 0, 0, 0)
                      + _attr(IFLA_IFNAME, name.encode() + b"\0"))

    def set_up(self, name: str) -> None:
        self._request(RTM_NEWLINK, struct.pack("BxHiII", socket.AF_UNSPEC, 0, 0, IFF_UP, IFF_UP)
                      + _attr(IFLA_IFNAME, name.encode() + b"\0"))


def _attr(kind: int, value: bytes) -> bytes:
    raw = struct.pack("HH", 4 + len(value), kind) + value
    return raw + b"\0" * (-len(raw) % 4)
