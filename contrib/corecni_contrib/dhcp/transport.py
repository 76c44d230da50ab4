"""Sending and receiving DHCP messages on one interface with an AF_PACKET socket.

Why a packet socket: before the lease is bound the interface has no address,
so the kernel's UDP stack would neither send from 0.0.0.0 on that interface
reliably nor deliver a unicast OFFER addressed to the not-yet-configured
``yiaddr``. A cooked (``SOCK_DGRAM``) packet socket bound to the interface and
to ETH_P_IP sees every IPv4 frame the interface receives, and sends IPv4
frames to a link-layer address we name: broadcast for DISCOVER/REQUEST/REBIND,
the server's MAC (learnt from its ACK) for RENEW and RELEASE. The IPv4 and UDP
headers are built here; received UDP checksums are not verified (a veth peer
hands frames over with offloaded, not yet computed, checksums).

The socket is created inside the container's namespace (the caller enters it)
and stays bound to it: the object can then be used from any thread.

Cost: the kernel waits for an RCU grace period (``synchronize_net``, ~10 ms)
whenever a packet socket's protocol hook is unregistered. The socket is
therefore created with protocol 0 (no hook) and hooked once by ``bind``, and
closed by a background thread, so neither wait is on a CNI call's path.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import ipaddress
import queue
import select
import socket
import struct
import threading
import time

from corecni_contrib.dhcp import codec

ETH_P_IP = 0x0800
BROADCAST_MAC = b"\xff" * 6
CLIENT_PORT, SERVER_PORT = 68, 67
_IP = struct.Struct("!BBHHHBBH4s4s")
_UDP = struct.Struct("!HHHH")
BROADCAST = ipaddress.IPv4Address("255.255.255.255")


_closing: queue.SimpleQueue[socket.socket] = queue.SimpleQueue()
_closer: list[threading.Thread] = []
_closer_lock = threading.Lock()


def _close_queued() -> None:
    while True:
        _closing.get().close()


def _close_later(sock: socket.socket) -> None:
    """Close ``sock`` on the closer thread (its unhooking waits for an RCU grace period)."""
    with _closer_lock:
        if not _closer:
            _closer.append(threading.Thread(target=_close_queued, daemon=True,
                                            name="dhcp-closer"))
            _closer[0].start()
    _closing.put(sock)


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def frame(payload: bytes, src: ipaddress.IPv4Address, dst: ipaddress.IPv4Address,
          sport: int = CLIENT_PORT, dport: int = SERVER_PORT) -> bytes:
    """An IPv4 + UDP packet carrying ``payload`` (TTL 64, DF clear, checksums set)."""
    udp_len = _UDP.size + len(payload)
    pseudo = src.packed + dst.packed + struct.pack("!BBH", 0, socket.IPPROTO_UDP, udp_len)
    udp_sum = checksum(pseudo + _UDP.pack(sport, dport, udp_len, 0) + payload) or 0xFFFF
    header = _IP.pack(0x45, 0x10, _IP.size + udp_len, 0, 0, 64, socket.IPPROTO_UDP, 0,
                      src.packed, dst.packed)
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + _UDP.pack(sport, dport, udp_len, udp_sum) + payload


def unframe(packet: bytes, dport: int = CLIENT_PORT) -> tuple[ipaddress.IPv4Address, bytes] | None:
    """(source IP, UDP payload) of an IPv4/UDP packet to ``dport``; None for anything else."""
    if len(packet) < _IP.size + _UDP.size or packet[0] >> 4 != 4:
        return None
    ihl = (packet[0] & 0x0F) * 4
    if packet[9] != socket.IPPROTO_UDP or len(packet) < ihl + _UDP.size:
        return None
    if struct.unpack_from("!H", packet, 6)[0] & 0x3FFF:  # a fragment: DHCP never needs one
        return None
    _sport, port, length, _sum = _UDP.unpack_from(packet, ihl)
    if port != dport or length < _UDP.size:
        return None
    return (ipaddress.IPv4Address(packet[12:16]),
            packet[ihl + _UDP.size:ihl + length])


class PacketTransport:
    """One interface's DHCP messages. Create it inside the interface's namespace."""

    def __init__(self, ifname: str) -> None:
        self.ifname = ifname
        self.ifindex = socket.if_nametoindex(ifname)
        # protocol 0: no hook yet, so bind does not unhook (an RCU wait) before hooking
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, 0)
        try:
            self.sock.bind((ifname, ETH_P_IP))
            self.mac = hardware_address(ifname)
        except BaseException:
            self.sock.close()
            raise

    def close(self) -> None:
        _close_later(self.sock)

    def __enter__(self) -> PacketTransport:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def send(self, msg: codec.Message, src: ipaddress.IPv4Address = codec.ZERO,
             dst: ipaddress.IPv4Address = BROADCAST, dst_mac: bytes = BROADCAST_MAC) -> None:
        data = frame(codec.encode(msg), src, dst)
        self.sock.sendto(data, (self.ifname, ETH_P_IP, 0, 1, dst_mac))

    def receive(self, deadline: float) -> tuple[codec.Message, bytes] | None:
        """The next DHCP reply (message, sender MAC) before ``deadline`` (monotonic);
        None when the time is up. Anything that is not a DHCP reply is skipped."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.sock], [], [], left)
            if not ready:
                return None
            try:
                packet, addr = self.sock.recvfrom(65535)
            except OSError as exc:
                if exc.errno in (errno.EINTR, errno.EAGAIN):
                    continue
                raise
            if addr[2] == socket.PACKET_OUTGOING:
                continue
            parsed = unframe(packet)
            if parsed is None:
                continue
            with contextlib.suppress(codec.DecodeError):
                msg = codec.decode(parsed[1])
                if msg.op == codec.BOOTREPLY:
                    return msg, bytes(addr[4][:6])


SIOCGIFFLAGS, SIOCSIFFLAGS, SIOCGIFHWADDR = 0x8913, 0x8914, 0x8927
IFF_UP = 0x1
_IFREQ = struct.Struct("16sH22x")  # name, flags (or sa_family of an address) + padding


def _ifreq(sock: socket.socket, request: int, ifname: str, flags: int = 0) -> bytes:
    arg = _IFREQ.pack(ifname.encode(), flags)
    return bytes(fcntl.ioctl(sock.fileno(), request, arg))


def hardware_address(ifname: str) -> bytes:
    """The interface's MAC, asked through a socket of the calling thread's namespace
    (sysfs would show the namespace it was mounted in, not the thread's)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        return _ifreq(sock, SIOCGIFHWADDR, ifname)[18:24]


def ensure_up(ifname: str) -> bool:
    """Set the interface up (as Go's daemon does before DISCOVER); True if it was down."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        flags = struct.unpack_from("H", _ifreq(sock, SIOCGIFFLAGS, ifname), 16)[0]
        if flags & IFF_UP:
            return False
        _ifreq(sock, SIOCSIFFLAGS, ifname, flags | IFF_UP)
        return True


def set_down(ifname: str) -> None:
    """Set the interface down (a lease that expired: the address is no longer ours)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        flags = struct.unpack_from("H", _ifreq(sock, SIOCGIFFLAGS, ifname), 16)[0]
        _ifreq(sock, SIOCSIFFLAGS, ifname, flags & ~IFF_UP)


def link_exists(ifname: str) -> bool:
    """Whether ``ifname`` exists in the calling thread's namespace."""
    try:
        socket.if_nametoindex(ifname)
    except OSError:
        return False
    return True
