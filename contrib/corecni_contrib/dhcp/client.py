"""The DHCPv4 client exchanges (RFC 2131 section 4.4) over a ``PacketTransport``.

* ``acquire``: DISCOVER -> OFFER -> REQUEST -> ACK (a NAK starts over), the
  INIT/SELECTING/REQUESTING states; ``requested`` asks for a known address
  again (option 50) after a restart or a lost lease;
* ``renew``: REQUEST with ``ciaddr`` unicast to the server (RENEWING), or
  broadcast to any server (``rebind=True``, REBINDING);
* ``release``: one DHCPRELEASE unicast to the server, no answer expected.

Every exchange retransmits with a doubling wait (1, 2, 4, 8, 8... seconds) until
its ``timeout``; the caller enters the namespace and owns the transport.
"""

from __future__ import annotations

import ipaddress
import random
import time
from collections.abc import Mapping

import attrs

from corecni_contrib.dhcp import codec
from corecni_contrib.dhcp.transport import BROADCAST, BROADCAST_MAC, PacketTransport

#: Go's default parameter request list (routers, subnet mask)
DEFAULT_REQUEST = (codec.OPT_ROUTER, codec.OPT_SUBNET_MASK)
RESEND_FIRST, RESEND_MAX = 1.0, 8.0


class DhcpTimeout(Exception):
    """No (acceptable) answer before the exchange's timeout."""


class DhcpNak(Exception):
    """The server refused the address (DHCPNAK)."""


@attrs.frozen
class ClientOptions:
    """What every message of one lease carries: the client identifier (option 61),
    the parameter request list (55), the ``provide`` options, the broadcast flag."""

    client_id: str
    request: tuple[int, ...] = DEFAULT_REQUEST
    provide: Mapping[int, bytes] = attrs.field(factory=dict)
    broadcast: bool = False
    timeout: float = 10.0

    def base(self, kind: int) -> dict[int, bytes]:
        options = {codec.OPT_MESSAGE_TYPE: bytes([kind]),
                   codec.OPT_CLIENT_ID: codec.client_id_option(self.client_id)}
        if self.request and kind in (codec.DISCOVER, codec.REQUEST):
            options[codec.OPT_PARAM_REQUEST] = bytes(self.request)
        if kind in (codec.DISCOVER, codec.REQUEST):
            options.update(self.provide)  # a provided option wins, as in Go's daemon
        return options


@attrs.frozen
class Binding:
    """An ACK and where it came from: what a lease is built from."""

    ack: codec.Message
    server_mac: bytes
    at: float  # time.time() when the ACK arrived


def _new_xid() -> int:
    return random.getrandbits(32)


def _message(kind: int, xid: int, mac: bytes, opts: ClientOptions,
             extra: Mapping[int, bytes] | None = None,
             ciaddr: ipaddress.IPv4Address = codec.ZERO) -> codec.Message:
    options = opts.base(kind)
    options.update(extra or {})
    flags = codec.FLAG_BROADCAST if opts.broadcast and ciaddr == codec.ZERO else 0
    return codec.Message(op=codec.BOOTREQUEST, xid=xid, chaddr=mac, options=options,
                         flags=flags, ciaddr=ciaddr)


def _exchange(transport: PacketTransport, msg: codec.Message, want: set[int], deadline: float,
              src: ipaddress.IPv4Address = codec.ZERO,
              dst: ipaddress.IPv4Address = BROADCAST,
              dst_mac: bytes = BROADCAST_MAC) -> tuple[codec.Message, bytes]:
    """Send ``msg`` (again after each wait) until a reply of a ``want`` type with its
    xid and our hardware address arrives; DhcpTimeout at ``deadline``."""
    wait = RESEND_FIRST
    while time.monotonic() < deadline:
        transport.send(msg, src, dst, dst_mac)
        attempt_end = min(deadline, time.monotonic() + wait)
        while True:
            got = transport.receive(attempt_end)
            if got is None:
                break
            reply, mac = got
            if reply.xid == msg.xid and reply.chaddr == msg.chaddr \
                    and reply.message_type in want:
                return reply, mac
        wait = min(wait * 2, RESEND_MAX)
    raise DhcpTimeout(f"no {'/'.join(codec.TYPE_NAMES[t] for t in sorted(want))} "
                      f"on {transport.ifname}")


def acquire(transport: PacketTransport, opts: ClientOptions,
            requested: ipaddress.IPv4Address | None = None) -> Binding:
    """A new binding (INIT -> BOUND), within ``opts.timeout`` seconds."""
    deadline = time.monotonic() + opts.timeout
    naks = 0
    while True:
        xid = _new_xid()
        extra = {codec.OPT_REQUESTED_IP: requested.packed} if requested else {}
        discover = _message(codec.DISCOVER, xid, transport.mac, opts, extra)
        offer, _ = _exchange(transport, discover, {codec.OFFER}, deadline)
        server = offer.server_id
        if server is None or offer.yiaddr == codec.ZERO:
            continue  # not a usable offer: ask again
        request = _message(codec.REQUEST, xid, transport.mac, opts,
                           {codec.OPT_REQUESTED_IP: offer.yiaddr.packed,
                            codec.OPT_SERVER_ID: server.packed})
        reply, mac = _exchange(transport, request, {codec.ACK, codec.NAK}, deadline)
        if reply.message_type == codec.ACK:
            return Binding(reply, mac, time.time())
        naks += 1
        requested = None  # the server refused it: take what it offers
        if naks >= 3:
            raise DhcpNak(f"{codec.TYPE_NAMES[codec.NAK]} from {server}: "
                          f"{reply.text_option(codec.OPT_MESSAGE) or 'no reason given'}")


def renew(transport: PacketTransport, opts: ClientOptions, ip: ipaddress.IPv4Address,
          server: ipaddress.IPv4Address, server_mac: bytes, rebind: bool = False) -> Binding:
    """Extend the binding of ``ip``: unicast to ``server`` (RENEWING) or broadcast
    (REBINDING). DhcpNak when refused, DhcpTimeout when nobody answers."""
    deadline = time.monotonic() + opts.timeout
    request = _message(codec.REQUEST, _new_xid(), transport.mac, opts, ciaddr=ip)
    if rebind:
        reply, mac = _exchange(transport, request, {codec.ACK, codec.NAK}, deadline, src=ip)
    else:
        reply, mac = _exchange(transport, request, {codec.ACK, codec.NAK}, deadline, src=ip,
                               dst=server, dst_mac=server_mac)
    if reply.message_type == codec.NAK:
        raise DhcpNak(f"DHCPNAK from {reply.server_id or server}: "
                      f"{reply.text_option(codec.OPT_MESSAGE) or 'no reason given'}")
    return Binding(reply, mac, time.time())


def release(transport: PacketTransport, opts: ClientOptions, ip: ipaddress.IPv4Address,
            server: ipaddress.IPv4Address, server_mac: bytes) -> None:
    """DHCPRELEASE (RFC 2131 4.4.6: unicast, with ciaddr and the server identifier)."""
    msg = _message(codec.RELEASE, _new_xid(), transport.mac, opts,
                   {codec.OPT_SERVER_ID: server.packed}, ciaddr=ip)
    transport.send(msg, ip, server, server_mac)
