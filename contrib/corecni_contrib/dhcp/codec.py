"""DHCPv4 messages (RFC 2131) and the options this client speaks (RFC 2132, 3442).

A ``Message`` is the BOOTP header plus an ordered mapping of option code ->
raw bytes; helpers read the options the client needs as typed values. The
codec knows nothing about sockets or leases: ``decode(encode(m)) == m``.

Only what a client needs is here: the fixed header, the magic cookie, options
with long-option concatenation (RFC 3396: one code split over several
instances is joined on decode), pad/end, and typed views of options 1, 3, 6,
15, 33, 51, 53, 54, 58, 59, 61 and 121.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Mapping

import attrs

BOOTREQUEST, BOOTREPLY = 1, 2
MAGIC = b"\x63\x82\x53\x63"
FLAG_BROADCAST = 0x8000
#: op htype hlen hops xid secs flags ciaddr yiaddr siaddr giaddr chaddr(16) sname(64) file(128)
HEADER = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")
MIN_LEN = HEADER.size + len(MAGIC)

# option codes (RFC 2132 names)
OPT_PAD, OPT_END = 0, 255
OPT_SUBNET_MASK = 1
OPT_ROUTER = 3
OPT_DNS = 6
OPT_HOST_NAME = 12
OPT_DOMAIN_NAME = 15
OPT_STATIC_ROUTES = 33
OPT_REQUESTED_IP = 50
OPT_LEASE_TIME = 51
OPT_MESSAGE_TYPE = 53
OPT_SERVER_ID = 54
OPT_PARAM_REQUEST = 55
OPT_MESSAGE = 56
OPT_MAX_SIZE = 57
OPT_RENEWAL_TIME = 58
OPT_REBINDING_TIME = 59
OPT_VENDOR_CLASS = 60
OPT_CLIENT_ID = 61
OPT_USER_CLASS = 77
OPT_CLASSLESS_ROUTES = 121

# message types (option 53)
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = range(1, 9)
TYPE_NAMES = {DISCOVER: "DHCPDISCOVER", OFFER: "DHCPOFFER", REQUEST: "DHCPREQUEST",
              DECLINE: "DHCPDECLINE", ACK: "DHCPACK", NAK: "DHCPNAK",
              RELEASE: "DHCPRELEASE", INFORM: "DHCPINFORM"}

ZERO = ipaddress.IPv4Address(0)


class DecodeError(ValueError):
    """Bytes that are not a DHCPv4 message (callers drop the packet)."""


@attrs.frozen
class Message:
    """One DHCPv4 message. ``options`` keeps insertion order (encoding order)."""

    op: int
    xid: int
    chaddr: bytes  # the hardware address (hlen bytes, 6 for Ethernet)
    options: Mapping[int, bytes] = attrs.field(factory=dict)
    secs: int = 0
    flags: int = 0
    ciaddr: ipaddress.IPv4Address = ZERO
    yiaddr: ipaddress.IPv4Address = ZERO
    siaddr: ipaddress.IPv4Address = ZERO
    giaddr: ipaddress.IPv4Address = ZERO
    htype: int = 1
    hops: int = 0

    # ---- typed views ---------------------------------------------------------
    @property
    def message_type(self) -> int | None:
        value = self.options.get(OPT_MESSAGE_TYPE)
        return value[0] if value and len(value) == 1 else None

    def ip_option(self, code: int) -> ipaddress.IPv4Address | None:
        ips = self.ip_list(code)
        return ips[0] if ips else None

    def ip_list(self, code: int) -> list[ipaddress.IPv4Address]:
        value = self.options.get(code, b"")
        return [ipaddress.IPv4Address(value[i:i + 4]) for i in range(0, len(value) - 3, 4)]

    def u32_option(self, code: int) -> int | None:
        value = self.options.get(code)
        return int.from_bytes(value, "big") if value is not None and len(value) == 4 else None

    def text_option(self, code: int) -> str | None:
        value = self.options.get(code)
        return value.decode("utf-8", "replace").rstrip("\0") if value is not None else None

    @property
    def server_id(self) -> ipaddress.IPv4Address | None:
        return self.ip_option(OPT_SERVER_ID)

    @property
    def subnet_mask(self) -> ipaddress.IPv4Address | None:
        return self.ip_option(OPT_SUBNET_MASK)

    @property
    def routers(self) -> list[ipaddress.IPv4Address]:
        return self.ip_list(OPT_ROUTER)

    @property
    def lease_time(self) -> int | None:
        return self.u32_option(OPT_LEASE_TIME)

    @property
    def renewal_time(self) -> int | None:
        return self.u32_option(OPT_RENEWAL_TIME)

    @property
    def rebinding_time(self) -> int | None:
        return self.u32_option(OPT_REBINDING_TIME)

    @property
    def classless_routes(self) -> list[tuple[ipaddress.IPv4Network, ipaddress.IPv4Address]]:
        value = self.options.get(OPT_CLASSLESS_ROUTES)
        return decode_classless_routes(value) if value else []

    @property
    def static_routes(self) -> list[tuple[ipaddress.IPv4Network, ipaddress.IPv4Address]]:
        """Option 33: (classful destination, router) pairs."""
        value = self.options.get(OPT_STATIC_ROUTES, b"")
        out = []
        for i in range(0, len(value) - 7, 8):
            dst = ipaddress.IPv4Address(value[i:i + 4])
            out.append((ipaddress.IPv4Network(f"{dst}/{classful_prefix(dst)}", strict=False),
                        ipaddress.IPv4Address(value[i + 4:i + 8])))
        return out


def classful_prefix(ip: ipaddress.IPv4Address) -> int:
    """Go's ``IP.DefaultMask``: A /8, B /16, C /24 (and /24 above, as Go's /0 is useless)."""
    first = int(ip) >> 24
    return 8 if first < 128 else 16 if first < 192 else 24


def decode_classless_routes(
        value: bytes) -> list[tuple[ipaddress.IPv4Network, ipaddress.IPv4Address]]:
    """RFC 3442: width, significant destination octets, router; a malformed tail is
    dropped (the routes before it are kept)."""
    out = []
    i = 0
    while i < len(value):
        width = value[i]
        size = (width + 7) // 8
        if width > 32 or i + 1 + size + 4 > len(value):
            break
        dst = value[i + 1:i + 1 + size] + bytes(4 - size)
        router = ipaddress.IPv4Address(value[i + 1 + size:i + 5 + size])
        out.append((ipaddress.IPv4Network((dst, width), strict=False), router))
        i += 5 + size
    return out


def encode_classless_routes(
        routes: Iterable[tuple[ipaddress.IPv4Network, ipaddress.IPv4Address]]) -> bytes:
    out = bytearray()
    for net, router in routes:
        size = (net.prefixlen + 7) // 8
        out += bytes([net.prefixlen]) + net.network_address.packed[:size] + router.packed
    return bytes(out)


def encode(msg: Message) -> bytes:
    """The message's wire bytes (options longer than 255 split into instances)."""
    chaddr = msg.chaddr[:16].ljust(16, b"\0")
    head = HEADER.pack(msg.op, msg.htype, len(msg.chaddr), msg.hops, msg.xid, msg.secs,
                       msg.flags, msg.ciaddr.packed, msg.yiaddr.packed, msg.siaddr.packed,
                       msg.giaddr.packed, chaddr, b"", b"")
    out = bytearray(head + MAGIC)
    for code, value in msg.options.items():
        if code in (OPT_PAD, OPT_END):
            continue
        chunks = [value[i:i + 255] for i in range(0, len(value), 255)] or [b""]
        for chunk in chunks:
            out += bytes([code, len(chunk)]) + chunk
    out.append(OPT_END)
    if len(out) < 300:  # BOOTP's minimum: some relays and servers drop shorter messages
        out += bytes(300 - len(out))
    return bytes(out)


def decode(data: bytes) -> Message:
    """A message from its wire bytes; ``DecodeError`` when it is not one."""
    if len(data) < MIN_LEN:
        raise DecodeError(f"{len(data)} bytes is shorter than a DHCP message")
    (op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr,
     _sname, _file) = HEADER.unpack_from(data)
    if data[HEADER.size:MIN_LEN] != MAGIC:
        raise DecodeError("no DHCP magic cookie")
    if hlen > 16:
        raise DecodeError(f"hardware address length {hlen}")
    options: dict[int, bytes] = {}
    i = MIN_LEN
    while i < len(data):
        code = data[i]
        if code == OPT_END:
            break
        if code == OPT_PAD:
            i += 1
            continue
        if i + 1 >= len(data) or i + 2 + data[i + 1] > len(data):
            raise DecodeError(f"option {code} runs past the end of the message")
        size = data[i + 1]
        options[code] = options.get(code, b"") + data[i + 2:i + 2 + size]  # RFC 3396
        i += 2 + size
    return Message(op=op, xid=xid, chaddr=chaddr[:hlen], options=options, secs=secs,
                   flags=flags, ciaddr=ipaddress.IPv4Address(ciaddr),
                   yiaddr=ipaddress.IPv4Address(yiaddr), siaddr=ipaddress.IPv4Address(siaddr),
                   giaddr=ipaddress.IPv4Address(giaddr), htype=htype, hops=hops)


def client_id(container_id: str, network: str, ifname: str) -> str:
    """Go's ``generateClientID``: ``<containerID>/<network>/<ifname>``, at most 254
    characters, so a node switching between Go's daemon and corecni's keeps leases."""
    return f"{container_id}/{network}/{ifname}"[:254]


def client_id_option(ident: str) -> bytes:
    """Option 61 as Go sends it: type 0 (not a hardware address) + the text."""
    return b"\0" + ident.encode()[:254]
