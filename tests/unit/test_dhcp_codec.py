"""dhcp IPAM's DHCPv4 codec, IPv4/UDP framing and the lease's CNI meaning (no privileges)."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from corecni_contrib.dhcp import codec, transport
from corecni_contrib.dhcp.client import Binding, ClientOptions
from corecni_contrib.dhcp.lease import DEFAULT_LEASE_TIME, Holder, Lease

IP = ipaddress.IPv4Address
NET = ipaddress.IPv4Network
MAC = bytes.fromhex("020000000001")


def ack(**options: bytes) -> codec.Message:
    opts = {codec.OPT_MESSAGE_TYPE: bytes([codec.ACK]), codec.OPT_SERVER_ID: IP("10.0.0.1").packed,
            **{int(k.removeprefix("o")): v for k, v in options.items()}}
    return codec.Message(op=codec.BOOTREPLY, xid=7, chaddr=MAC, yiaddr=IP("10.0.0.5"),
                         options=opts)


def test_roundtrip_keeps_every_field() -> None:
    msg = codec.Message(op=codec.BOOTREQUEST, xid=0xDEADBEEF, chaddr=MAC, secs=3,
                        flags=codec.FLAG_BROADCAST, ciaddr=IP("10.0.0.9"),
                        yiaddr=IP("10.0.0.5"), siaddr=IP("10.0.0.1"), giaddr=IP("10.0.0.2"),
                        options={codec.OPT_MESSAGE_TYPE: b"\x03", codec.OPT_CLIENT_ID: b"\0x",
                                 codec.OPT_PARAM_REQUEST: bytes([3, 1])})
    data = codec.encode(msg)
    assert len(data) >= 300  # BOOTP minimum size
    assert codec.decode(data) == msg


def test_wire_layout_matches_rfc_2131() -> None:
    """Fixed offsets: op at 0, xid at 4, flags at 10, yiaddr at 16, chaddr at 28, the
    magic cookie at 236, options after it, END last."""
    msg = codec.Message(op=1, xid=0x01020304, chaddr=MAC, flags=0x8000, yiaddr=IP("1.2.3.4"),
                        options={53: b"\x01"})
    data = codec.encode(msg)
    assert data[0] == 1 and data[1] == 1 and data[2] == 6
    assert data[4:8] == b"\x01\x02\x03\x04" and data[10:12] == b"\x80\x00"
    assert data[16:20] == bytes([1, 2, 3, 4]) and data[28:34] == MAC
    assert data[236:240] == bytes([99, 130, 83, 99])
    assert data[240:244] == bytes([53, 1, 1, 255])


def test_long_options_split_and_joined() -> None:
    """RFC 3396: an option longer than 255 bytes is several instances, joined on decode."""
    value = bytes(range(256)) * 2
    data = codec.encode(codec.Message(op=1, xid=1, chaddr=MAC, options={77: value}))
    assert data.count(bytes([77, 255])) == 2
    assert codec.decode(data).options[77] == value


@pytest.mark.parametrize("data", [b"", b"\x01" * 239, bytes(236) + b"nope" + b"\xff"])
def test_not_a_message(data: bytes) -> None:
    with pytest.raises(codec.DecodeError):
        codec.decode(data)


def test_truncated_option_refused() -> None:
    data = codec.encode(codec.Message(op=1, xid=1, chaddr=MAC))[:240] + bytes([53, 4, 1])
    with pytest.raises(codec.DecodeError, match="option 53"):
        codec.decode(data)


def test_pad_skipped() -> None:
    data = codec.encode(codec.Message(op=1, xid=1, chaddr=MAC))[:240] + bytes([0, 0, 53, 1, 5,
                                                                               255])
    assert codec.decode(data).message_type == codec.ACK


def test_classless_routes_rfc_3442_examples() -> None:
    """The RFC's width/significant-octets encoding, both ways."""
    routes = [(NET("0.0.0.0/0"), IP("10.0.0.1")), (NET("10.17.0.0/16"), IP("10.0.0.2")),
              (NET("10.27.129.0/24"), IP("0.0.0.0")), (NET("10.229.0.128/25"), IP("10.0.0.3"))]
    encoded = codec.encode_classless_routes(routes)
    assert encoded == bytes([0, 10, 0, 0, 1,
                             16, 10, 17, 10, 0, 0, 2,
                             24, 10, 27, 129, 0, 0, 0, 0,
                             25, 10, 229, 0, 128, 10, 0, 0, 3])
    assert codec.decode_classless_routes(encoded) == routes
    assert codec.decode_classless_routes(encoded + bytes([33, 1])) == routes  # bad tail dropped


def test_client_id_is_gos() -> None:
    assert codec.client_id("ctr", "net", "eth0") == "ctr/net/eth0"
    assert codec.client_id_option("ctr/net/eth0") == b"\0ctr/net/eth0"
    assert len(codec.client_id_option(codec.client_id("x" * 300, "n", "e"))) == 255


def test_frame_and_unframe() -> None:
    payload = codec.encode(codec.Message(op=2, xid=9, chaddr=MAC, options={53: b"\x02"}))
    packet = transport.frame(payload, IP("10.0.0.1"), IP("255.255.255.255"), 67, 68)
    assert transport.checksum(packet[:20]) == 0  # the IPv4 header checksum verifies
    pseudo = packet[12:20] + struct.pack("!BBH", 0, 17, len(packet) - 20)
    assert transport.checksum(pseudo + packet[20:]) == 0  # and the UDP checksum
    assert transport.unframe(packet) == (IP("10.0.0.1"), payload)
    assert transport.unframe(packet, dport=67) is None
    tcp = packet[:9] + b"\x06" + packet[10:]
    assert transport.unframe(tcp) is None
    assert transport.unframe(packet[:20]) is None


def lease(msg: codec.Message) -> Lease:
    holder = Holder("c1", "net", "eth0", "/run/netns/x", 3, 4)
    return Lease.from_binding(holder, ClientOptions(holder.client_id), Binding(msg, MAC, 1000.0))


def test_lease_times_default_as_go() -> None:
    plain = lease(ack(o1=IP("255.255.255.0").packed))
    assert (plain.lease_time, plain.t1, plain.t2) == (DEFAULT_LEASE_TIME, 1800, 3060)
    timed = lease(ack(o1=IP("255.255.255.0").packed, o51=(120).to_bytes(4, "big"),
                      o58=(30).to_bytes(4, "big")))
    assert (timed.lease_time, timed.t1, timed.t2) == (120, 30, 102)
    assert timed.renew_at() == 1030 and timed.renew_at(cap=5) == 1005
    assert timed.rebind_at == 1102 and timed.expires_at == 1120


def test_result_router_and_static_routes() -> None:
    got = lease(ack(o1=IP("255.255.0.0").packed, o3=IP("10.0.0.1").packed + IP("10.0.0.9").packed,
                    o33=IP("192.168.1.0").packed + IP("10.0.0.7").packed))
    assert got.ip_config().to_dict() == {"address": "10.0.0.5/16", "gateway": "10.0.0.1"}
    assert [r.to_dict() for r in got.routes(priority=5)] == [
        {"dst": "192.168.1.0/24", "gw": "10.0.0.7", "priority": 5},
        {"dst": "0.0.0.0/0", "gw": "10.0.0.1", "priority": 5}]


def test_result_classless_routes_win() -> None:
    """RFC 3442: with option 121 the router option and option 33 are ignored; a
    0.0.0.0 router is an on-link route (scope link), as in Go."""
    got = lease(ack(o1=IP("255.255.255.0").packed, o3=IP("10.0.0.1").packed,
                    o33=IP("192.168.1.0").packed + IP("10.0.0.7").packed,
                    o121=codec.encode_classless_routes([(NET("10.9.0.0/16"), IP("0.0.0.0")),
                                                        (NET("0.0.0.0/0"), IP("10.0.0.254"))])))
    assert [r.to_dict() for r in got.routes()] == [{"dst": "10.9.0.0/16", "scope": 253},
                                                   {"dst": "0.0.0.0/0", "gw": "10.0.0.254"}]


def test_result_needs_a_subnet_mask() -> None:
    with pytest.raises(ValueError, match="Subnet Mask"):
        lease(ack()).ip_config()


def test_lease_record_roundtrip() -> None:
    original = lease(ack(o1=IP("255.255.255.0").packed, o51=(120).to_bytes(4, "big")))
    original = Lease(**{**{f: getattr(original, f) for f in (
        "holder", "ip", "server", "server_mac", "ack_options", "bound_at", "lease_time", "t1",
        "t2")}, "options": ClientOptions("c1/net/eth0", (3, 1, 42), {12: b"host"}, True, 2.5)})
    assert Lease.from_json(original.to_json()) == original
    with pytest.raises(ValueError):
        Lease.from_json({**original.to_json(), "version": 2})
