"""The netlink requests the native batcher builds, checked byte by byte.

``NativeBatch.render`` runs the C batcher without a socket (names resolve from a
table, namespace fds are encoded as 0xffffffff), so these tests need neither
root nor kernel support: the kernel here cannot create ipvlan or vlan links,
but the requests for them are still checked, field by field, against the
kernel's UAPI layout and cross-checked with pyroute2's independent decoder.
"""

from __future__ import annotations

import errno
import os
import random
import socket
import struct
from dataclasses import dataclass, field

import pytest

native = pytest.importorskip("corecni.net.native_backend")

from corecni.net import (  # noqa: E402
    TC_H_INGRESS,
    TC_H_INGRESS_HANDLE,
    TC_H_ROOT,
    Filter,
    Qdisc,
    Rule,
    tbf_buffer,
    tbf_burst,
    tc_handle,
)
from corecni.net.base import Neighbour, NetError, Route  # noqa: E402
from corecni.net.native_backend import NativeBatch  # noqa: E402

ffi, lib = native.ffi, native.lib

# linux/rtnetlink.h, if_link.h, if_addr.h, neighbour.h, veth.h
RTM_NEWLINK, RTM_DELLINK = 16, 17
RTM_NEWADDR, RTM_DELADDR = 20, 21
RTM_NEWROUTE, RTM_DELROUTE = 24, 25
RTM_NEWNEIGH, RTM_DELNEIGH = 28, 29
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE, NLM_F_REPLACE = 1, 4, 0x200, 0x400, 0x100
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER = 1, 3, 4, 5, 10
IFLA_LINKINFO, IFLA_NET_NS_FD, IFLA_IFALIAS = 18, 28, 20
IFLA_INFO_KIND, IFLA_INFO_DATA, IFLA_INFO_SLAVE_KIND, IFLA_INFO_SLAVE_DATA = 1, 2, 4, 5
VETH_INFO_PEER = 1
IFLA_IPVLAN_MODE, IFLA_IPVLAN_FLAGS = 1, 2
IFLA_VLAN_ID = 1
IFLA_MACVLAN_MODE = 1
IFLA_BR_VLAN_FILTERING = 7
IFLA_BRPORT_MODE = 4
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST, IFA_FLAGS = 1, 2, 4, 8
IFA_F_NODAD = 0x02
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_PREFSRC, RTA_METRICS, RTA_TABLE = (
    1, 4, 5, 6, 7, 8, 15)
RTAX_MTU, RTAX_ADVMSS = 2, 8
NDA_DST, NDA_LLADDR = 1, 2
NUD_REACHABLE, NUD_PERMANENT = 0x02, 0x80
IFF_UP, IFF_PROMISC = 0x1, 0x100
NLA_F_NESTED = 0x8000
NO_FD = 0xFFFFFFFF

NAMES = {"lo": 1, "eth0": 2, "br0": 3, "phys0": 4}


@dataclass
class Msg:
    type: int
    flags: int
    seq: int
    header: bytes
    attrs: list[tuple[int, bytes]] = field(default_factory=list)
    raw: bytes = b""

    def attr(self, atype: int) -> bytes:
        found = [v for t, v in self.attrs if t & 0x3FFF == atype]
        assert len(found) == 1, f"attribute {atype}: {len(found)} found in {self.attrs}"
        return found[0]

    def has(self, atype: int) -> bool:
        return any(t & 0x3FFF == atype for t, _ in self.attrs)


# linux/pkt_sched.h, pkt_cls.h, tc_act/tc_mirred.h, fib_rules.h
RTM_NEWRULE, RTM_DELRULE = 32, 33
RTM_NEWQDISC, RTM_DELQDISC = 36, 37
RTM_NEWTFILTER, RTM_DELTFILTER = 44, 45
IFLA_TXQLEN, IFF_ALLMULTI, IFLA_VRF_TABLE = 13, 0x200, 1
TCA_KIND, TCA_OPTIONS, TCA_TBF_PARMS, TCA_TBF_RATE64 = 1, 2, 1, 4
TCA_U32_CLASSID, TCA_U32_SEL, TCA_U32_ACT = 1, 5, 7
TCA_MATCHALL_CLASSID, TCA_MATCHALL_ACT = 1, 2
TCA_ACT_KIND, TCA_ACT_OPTIONS, TCA_MIRRED_PARMS = 1, 2, 2
TC_ACT_STOLEN, TCA_EGRESS_REDIR, TC_U32_TERMINAL = 4, 1, 1
FRA_DST, FRA_SRC, FRA_IIFNAME, FRA_PRIORITY, FRA_TABLE, FRA_OIFNAME = 1, 2, 3, 6, 15, 17
FR_ACT_TO_TBL = 1

HDRLEN = {RTM_NEWLINK: 16, RTM_DELLINK: 16, RTM_NEWADDR: 8, RTM_DELADDR: 8,
          RTM_NEWROUTE: 12, RTM_DELROUTE: 12, RTM_NEWNEIGH: 12, RTM_DELNEIGH: 12,
          RTM_NEWQDISC: 20,
          RTM_DELQDISC: 20, RTM_NEWTFILTER: 20, RTM_DELTFILTER: 20, RTM_NEWRULE: 12,
          RTM_DELRULE: 12}


def parse_attrs(data: bytes) -> list[tuple[int, bytes]]:
    out = []
    pos = 0
    while pos < len(data):
        alen, atype = struct.unpack_from("=HH", data, pos)
        assert alen >= 4 and pos + alen <= len(data), "attribute overruns its container"
        out.append((atype, data[pos + 4:pos + alen]))
        pos += (alen + 3) & ~3
    assert pos == len(data), "trailing bytes after the last attribute"
    return out


def nested(value: bytes) -> dict[int, bytes]:
    return {t & 0x3FFF: v for t, v in parse_attrs(value)}


def parse(data: bytes) -> list[Msg]:
    msgs = []
    pos = 0
    while pos < len(data):
        mlen, mtype, flags, seq, pid = struct.unpack_from("=IHHII", data, pos)
        assert mlen >= 16 and pos + mlen <= len(data) and pid == 0
        body = data[pos + 16:pos + mlen]
        hl = HDRLEN[mtype]
        msgs.append(Msg(mtype, flags, seq, body[:hl], parse_attrs(body[hl:]),
                        data[pos:pos + mlen]))
        pos += (mlen + 3) & ~3
    return msgs


def render(batch: NativeBatch, names: dict[str, int] | None = None) -> list[Msg]:
    return parse(batch.render(NAMES if names is None else names))


def u32(v: bytes) -> int:
    return int(struct.unpack("=I", v)[0])


def u16(v: bytes) -> int:
    return int(struct.unpack("=H", v)[0])


def cstr(v: bytes) -> str:
    assert v.endswith(b"\0")
    return v[:-1].decode()


def ifinfo(m: Msg) -> tuple[int, int, int, int, int]:
    family, _pad, itype, index, flags, change = struct.unpack("=BBHiII", m.header)
    return family, itype, index, flags, change


# --- ABI ---------------------------------------------------------------------

def test_abi_constants_come_from_the_one_declaration() -> None:
    """cn_abi.def is the only place op codes, flags and attribute types are written:
    Python reads every one of them from the compiled module, codes run from 1
    without gaps (the C tables are indexed by them), and every attribute has a
    class, hence an encoder."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "native" / "cn_abi.def").read_text()
    entries = re.findall(r"^CN_(OP|FLAG|ATTR)\((\w+), (\w+)", text, re.MULTILINE)
    ops = [(n, int(v)) for k, n, v in entries if k == "OP"]
    attrs = [(n, int(v)) for k, n, v in entries if k == "ATTR"]
    flags = [(n, int(v)) for k, n, v in entries if k == "FLAG"]
    assert [v for _, v in ops] == list(range(1, len(ops) + 1)) == list(range(1, lib.CN_OP_MAX + 1))
    assert [v for _, v in attrs] == list(range(1, lib.CN_A_MAX + 1))
    for name, value in ops:
        assert getattr(native.OP, name) == value == getattr(lib, f"CN_OP_{name}")
    for name, value in attrs:
        assert getattr(native.A, name) == value
        assert lib.cn_attr_class(value) != 0
        assert value in native._ENCODERS
    for name, value in flags:
        assert getattr(native.F, name) == value
    assert lib.cn_attr_class(0) == lib.cn_attr_class(lib.CN_A_MAX + 1) == 0
    # nothing in the Python module restates a code
    source = Path(native.__file__).read_text()
    assert not re.search(r"^(OP|A|F)_[A-Z_]+ = \d", source, re.MULTILINE)


def test_serialized_layout() -> None:
    data = NativeBatch(None).del_link("eth0", missing_ok=True).serialize()
    magic, nops, oplen, code, flags = struct.unpack_from("=IIIHH", data)
    assert (magic, nops, code, flags) == (0x31424E43, 1, native.OP.DEL_LINK, native.F.MISSING_OK)
    assert oplen == len(data) - 8 and oplen % 4 == 0
    assert parse_attrs(data[16:]) == [(native.A.NAME, b"eth0\0")]


# --- links -------------------------------------------------------------------

def test_veth_with_peer_in_another_namespace() -> None:
    [m] = render(NativeBatch(None).add_veth("veth1", "eth0", peer_netns="/run/netns/x",
                                            mtu=1450, mac="02:00:00:00:00:01",
                                            peer_mac="02:00:00:00:00:02"))
    assert m.type == RTM_NEWLINK
    assert m.flags == NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
    assert ifinfo(m) == (0, 0, 0, 0, 0)
    assert cstr(m.attr(IFLA_IFNAME)) == "veth1"
    assert u32(m.attr(IFLA_MTU)) == 1450
    assert m.attr(IFLA_ADDRESS) == bytes.fromhex("020000000001")
    info = nested(m.attr(IFLA_LINKINFO))
    assert cstr(info[IFLA_INFO_KIND]) == "veth"
    peer = nested(info[IFLA_INFO_DATA])[VETH_INFO_PEER]
    assert peer[:16] == bytes(16)  # struct ifinfomsg of the peer
    pattrs = dict(parse_attrs(peer[16:]))
    assert cstr(pattrs[IFLA_IFNAME]) == "eth0"
    assert u32(pattrs[IFLA_NET_NS_FD]) == NO_FD
    assert u32(pattrs[IFLA_MTU]) == 1450
    assert pattrs[IFLA_ADDRESS] == bytes.fromhex("020000000002")
    # nests carry NLA_F_NESTED, as the kernel's strict validation wants
    assert any(t == IFLA_LINKINFO | NLA_F_NESTED for t, _ in m.attrs)


def test_ipvlan_request_layout() -> None:
    [m] = render(NativeBatch(None).add_ipvlan("ipv0", "phys0", mode="l3", flag="private",
                                              netns="/run/netns/ctr", mtu=1400))
    assert m.type == RTM_NEWLINK
    assert m.flags == NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
    assert cstr(m.attr(IFLA_IFNAME)) == "ipv0"
    assert u32(m.attr(IFLA_LINK)) == NAMES["phys0"]  # the lower link, resolved to its index
    assert u32(m.attr(IFLA_NET_NS_FD)) == NO_FD  # created directly in the container
    assert u32(m.attr(IFLA_MTU)) == 1400
    info = nested(m.attr(IFLA_LINKINFO))
    assert cstr(info[IFLA_INFO_KIND]) == "ipvlan"
    data = parse_attrs(info[IFLA_INFO_DATA])
    # both u16 (+2 bytes padding each): IPVLAN_MODE_L3 = 1, IPVLAN_F_PRIVATE = 1
    assert [(t, len(v)) for t, v in data] == [(IFLA_IPVLAN_MODE, 2), (IFLA_IPVLAN_FLAGS, 2)]
    assert [u16(v) for _, v in data] == [1, 1]
    # exact bytes of the IFLA_INFO_DATA nest
    assert info[IFLA_INFO_DATA] == struct.pack("=HHHxxHHHxx", 6, IFLA_IPVLAN_MODE, 1,
                                               6, IFLA_IPVLAN_FLAGS, 1)


@pytest.mark.parametrize(("mode", "flag", "want"), [
    ("l2", "bridge", (0, 0)), ("l3", "vepa", (1, 2)), ("l3s", "private", (2, 1))])
def test_ipvlan_modes(mode: str, flag: str, want: tuple[int, int]) -> None:
    [m] = render(NativeBatch(None).add_ipvlan("ipv0", "phys0", mode=mode, flag=flag))
    data = nested(nested(m.attr(IFLA_LINKINFO))[IFLA_INFO_DATA])
    assert (u16(data[IFLA_IPVLAN_MODE]), u16(data[IFLA_IPVLAN_FLAGS])) == want
    assert not m.has(IFLA_NET_NS_FD)


def test_vlan_request_layout() -> None:
    [m] = render(NativeBatch(None).add_vlan("phys0.42", "phys0", 42, netns="/run/netns/ctr"))
    assert cstr(m.attr(IFLA_IFNAME)) == "phys0.42"
    assert u32(m.attr(IFLA_LINK)) == NAMES["phys0"]
    info = nested(m.attr(IFLA_LINKINFO))
    assert cstr(info[IFLA_INFO_KIND]) == "vlan"
    assert info[IFLA_INFO_DATA] == struct.pack("=HHHxx", 6, IFLA_VLAN_ID, 42)


def test_pyroute2_decodes_ipvlan_and_vlan_the_same_way() -> None:
    """An independent decoder (pyroute2's ifinfmsg) reads what the C code wrote."""
    ifinfmsg = pytest.importorskip("pyroute2.netlink.rtnl.ifinfmsg").ifinfmsg
    ipv, vlan, mvl = render(NativeBatch(None)
                            .add_ipvlan("ipv0", "phys0", mode="l3s")
                            .add_vlan("vl0", "phys0", 7)
                            .add_macvlan("mv0", "phys0", mode="vepa"))
    for m, kind in ((ipv, "ipvlan"), (vlan, "vlan"), (mvl, "macvlan")):
        msg = ifinfmsg(m.raw)
        msg.decode()
        assert msg.get_attr("IFLA_IFNAME") == cstr(m.attr(IFLA_IFNAME))
        assert msg.get_attr("IFLA_LINK") == NAMES["phys0"]
        info = msg.get_attr("IFLA_LINKINFO")
        assert info.get_attr("IFLA_INFO_KIND") == kind
    data = ifinfmsg(ipv.raw)
    data.decode()
    assert data.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA").get_attr(
        "IFLA_IPVLAN_MODE") == 2
    data = ifinfmsg(vlan.raw)
    data.decode()
    assert data.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA").get_attr(
        "IFLA_VLAN_ID") == 7
    data = ifinfmsg(mvl.raw)
    data.decode()
    assert data.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA").get_attr(
        "IFLA_MACVLAN_MODE") == "vepa"  # pyroute2 prints the mode by name (2)


# --- link read-back: dump messages parsed by the C code ---------------------------

def nla(atype: int, payload: bytes) -> bytes:
    alen = 4 + len(payload)
    return struct.pack("=HH", alen, atype) + payload + b"\0" * (-alen % 4)


def link_message(kind: str, data: bytes | None, *, index: int = 7,
                 name: str = "sub0") -> bytes:
    """An RTM_NEWLINK message as a link dump returns it: ``kind`` with IFLA_INFO_DATA
    ``data`` (none when ``None``)."""
    info = nla(IFLA_INFO_KIND, kind.encode() + b"\0")
    if data is not None:
        info += nla(IFLA_INFO_DATA | NLA_F_NESTED, data)
    body = (struct.pack("=BxHiII", socket.AF_UNSPEC, 1, index, IFF_UP, 0)
            + nla(IFLA_IFNAME, name.encode() + b"\0") + nla(IFLA_MTU, struct.pack("=I", 1400))
            + nla(IFLA_ADDRESS, bytes.fromhex("020000005b01"))
            + nla(IFLA_LINK, struct.pack("=I", 2))
            + nla(IFLA_LINKINFO | NLA_F_NESTED, info))
    return struct.pack("=IHHII", 16 + len(body), RTM_NEWLINK, 2, 1, 0) + body


@pytest.mark.parametrize(("kind", "data", "mode", "vlan_id"), [
    ("ipvlan", nla(IFLA_IPVLAN_MODE, struct.pack("=H", 0)), "l2", None),
    ("ipvlan", nla(IFLA_IPVLAN_MODE, struct.pack("=H", 1)), "l3", None),
    ("ipvlan", nla(IFLA_IPVLAN_MODE, struct.pack("=H", 2)) + nla(IFLA_IPVLAN_FLAGS,
                                                               struct.pack("=H", 1)), "l3s", None),
    ("ipvlan", nla(IFLA_IPVLAN_MODE, struct.pack("=H", 9)), "9", None),  # unknown: its digits
    ("vlan", nla(IFLA_VLAN_ID, struct.pack("=H", 42)), None, 42),
    ("vlan", nla(IFLA_VLAN_ID, struct.pack("=H", 4094)), None, 4094),
    ("vlan", nla(IFLA_VLAN_ID, struct.pack("=H", 0)), None, 0),
    ("macvlan", nla(IFLA_MACVLAN_MODE, struct.pack("=I", 1)), "private", None),
    ("macvlan", nla(IFLA_MACVLAN_MODE, struct.pack("=I", 2)), "vepa", None),
    ("macvlan", nla(IFLA_MACVLAN_MODE, struct.pack("=I", 4)), "bridge", None),
    ("macvlan", nla(IFLA_MACVLAN_MODE, struct.pack("=I", 8)), "passthru", None),
    ("macvlan", nla(IFLA_MACVLAN_MODE, struct.pack("=I", 16)), "source", None),
    ("macvlan", nla(IFLA_MACVLAN_MODE, struct.pack("=I", 0)), "0", None),
    ("macvlan", b"", None, None),      # data without a mode
    ("ipvlan", None, None, None),      # no IFLA_INFO_DATA at all
    ("vlan", None, None, None),
    ("veth", b"", None, None),         # attribute 1 of another kind means nothing here
    ("dummy", nla(1, struct.pack("=I", 4)), None, None),
])
def test_dumped_link_mode_and_vlan_id(kind: str, data: bytes | None, mode: str | None,
                                      vlan_id: int | None) -> None:
    """The native parser reads the mode/ID from IFLA_INFO_DATA by kind, names the mode
    from corecni.net._common's tables, and pyroute2's decoder agrees on the whole Link."""
    raw = link_message(kind, data)
    link = native.parse_link_message(raw)
    assert (link.kind, link.mode, link.vlan_id) == (kind, mode, vlan_id)
    assert (link.index, link.name, link.mtu, link.mac, link.up, link.master) == (
        7, "sub0", 1400, "02:00:00:00:5b:01", True, None)
    pytest.importorskip("pyroute2")
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    from corecni.net.pyroute2_backend import _link_from_msg
    msg = ifinfmsg(raw)
    msg.decode()
    assert _link_from_msg(msg, {}) == link


def test_dumped_link_messages_are_checked_not_trusted() -> None:
    good = link_message("vlan", nla(IFLA_VLAN_ID, struct.pack("=H", 42)))
    assert native.parse_link_message(good).vlan_id == 42
    for data in (b"", good[:-1], good + b"\0" * 4, good[:16],
                 struct.pack("=I", len(good)) + struct.pack("=H", RTM_NEWADDR) + good[6:]):
        with pytest.raises(NetError) as info:
            native.parse_link_message(data)
        assert info.value.errno == errno.EINVAL
    rng = random.Random(4321)
    out = ffi.new("struct cn_link *")
    cases = [good[:n] for n in range(len(good))]
    for _ in range(2000):
        data = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(0, len(data))] = rng.randrange(256)
        cases.append(bytes(data))
    for data in cases:  # the C side alone: a corrupted name need not be UTF-8
        assert lib.cn_parse_link(data, len(data), out) in (0, -errno.EINVAL)


def test_bridge_vlan_filtering_only_when_asked() -> None:
    plain, filtering = render(NativeBatch(None).add_bridge("b0", vlan_filtering=False)
                              .add_bridge("b1", vlan_filtering=True))
    assert IFLA_INFO_DATA not in nested(plain.attr(IFLA_LINKINFO))
    data = nested(nested(filtering.attr(IFLA_LINKINFO))[IFLA_INFO_DATA])
    assert data[IFLA_BR_VLAN_FILTERING] == b"\x01"


def test_set_link_splits_master_hairpin_and_move() -> None:
    """Bridge-port data cannot ride with IFLA_MASTER, and a move goes last."""
    main, hairpin, move = render(NativeBatch(None).set_link(
        "eth0", up=True, mtu=1400, master="br0", hairpin=True, promisc=False,
        alias="pod", netns="/run/netns/ctr"))
    assert main.type == hairpin.type == move.type == RTM_NEWLINK
    assert main.flags == NLM_F_REQUEST | NLM_F_ACK  # no CREATE: ENODEV when missing
    _, _, index, flags, change = ifinfo(main)
    assert index == 0 and cstr(main.attr(IFLA_IFNAME)) == "eth0"  # addressed by name
    assert (flags, change) == (IFF_UP, IFF_UP | IFF_PROMISC)
    assert u32(main.attr(IFLA_MASTER)) == NAMES["br0"]
    assert u32(main.attr(IFLA_MTU)) == 1400
    assert main.attr(IFLA_IFALIAS) == b"pod"
    assert not main.has(IFLA_NET_NS_FD)
    info = nested(hairpin.attr(IFLA_LINKINFO))
    assert cstr(info[IFLA_INFO_SLAVE_KIND]) == "bridge"
    assert nested(info[IFLA_INFO_SLAVE_DATA])[IFLA_BRPORT_MODE] == b"\x01"
    assert cstr(move.attr(IFLA_IFNAME)) == "eth0" and u32(move.attr(IFLA_NET_NS_FD)) == NO_FD
    assert [main.seq, hairpin.seq, move.seq] == [1, 2, 3]


def test_rename_uses_the_index_and_nomaster_sends_zero() -> None:
    [m] = render(NativeBatch(None).set_link("eth0", rename="net1", nomaster=True))
    assert ifinfo(m)[2] == NAMES["eth0"]
    assert cstr(m.attr(IFLA_IFNAME)) == "net1"
    assert u32(m.attr(IFLA_MASTER)) == 0


def test_del_link_by_name() -> None:
    [m] = render(NativeBatch(None).del_link("veth9", missing_ok=True))
    assert (m.type, m.flags) == (RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK)
    assert cstr(m.attr(IFLA_IFNAME)) == "veth9"


def test_set_link_allmulti_and_txqlen() -> None:
    [m] = render(NativeBatch(None).set_link("eth0", allmulti=True, promisc=False, txqlen=77))
    _, _, _, flags, change = ifinfo(m)
    assert (flags, change) == (IFF_ALLMULTI, IFF_ALLMULTI | IFF_PROMISC)
    assert u32(m.attr(IFLA_TXQLEN)) == 77
    [m] = render(NativeBatch(None).set_link("eth0", allmulti=False))
    assert ifinfo(m)[3:] == (0, IFF_ALLMULTI)


def test_ifb_dummy_vrf_requests() -> None:
    """One op (ADD_LINK) for the kinds without a lower link; the kernel here has no
    dummy or vrf module, so these bytes are what their support is tested by."""
    ifb, dummy, vrf = render(NativeBatch(None)
                             .add_ifb("ifb0", mtu=1400)
                             .add_dummy("dum0", netns="/run/netns/ctr", mac="02:00:00:00:00:03")
                             .add_vrf("vrf0", 1001, netns="/run/netns/ctr"))
    for m, kind in ((ifb, "ifb"), (dummy, "dummy"), (vrf, "vrf")):
        assert m.type == RTM_NEWLINK
        assert m.flags == NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
        assert cstr(nested(m.attr(IFLA_LINKINFO))[IFLA_INFO_KIND]) == kind
        assert not m.has(IFLA_LINK)
    assert u32(ifb.attr(IFLA_MTU)) == 1400 and not ifb.has(IFLA_NET_NS_FD)
    assert dummy.attr(IFLA_ADDRESS) == bytes.fromhex("020000000003")
    assert u32(dummy.attr(IFLA_NET_NS_FD)) == NO_FD
    data = nested(nested(vrf.attr(IFLA_LINKINFO))[IFLA_INFO_DATA])
    assert u32(data[IFLA_VRF_TABLE]) == 1001
    assert u32(vrf.attr(IFLA_NET_NS_FD)) == NO_FD


def test_tap_is_an_ioctl_then_a_netlink_set() -> None:
    """No netlink request creates a tap; MTU and MAC follow as an RTM_NEWLINK by name."""
    assert render(NativeBatch(None).add_tap("tap0")) == []
    [m] = render(NativeBatch(None).add_tap("tap0", mtu=1300, mac="02:00:00:00:00:07"))
    assert (m.type, m.flags) == (RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK)
    assert cstr(m.attr(IFLA_IFNAME)) == "tap0" and u32(m.attr(IFLA_MTU)) == 1300
    with pytest.raises(NetError) as info:  # the name is taken: EEXIST, not an attach
        NativeBatch(None).add_tap("eth0").render(NAMES)
    assert info.value.errno == errno.EEXIST


# --- traffic control and rules ---------------------------------------------------

def tcmsg(m: Msg) -> tuple[int, int, int, int, int]:
    family, _, _, index, handle, parent, info = struct.unpack("=BBHiIII", m.header)
    return family, index, handle, parent, info


def test_tbf_as_go_bandwidth_sends_it() -> None:
    """rate 1 Mbit/s, burst 125 kbit (Go's config is in bits; the contract in bytes)."""
    rate, burst, limit = 125_000, 15_625, 128_125
    [m] = render(NativeBatch(None).add_qdisc(
        Qdisc("eth0", "tbf", handle=tc_handle(1), rate=rate, burst=burst, limit=limit)))
    assert m.type == RTM_NEWQDISC
    assert m.flags == NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
    assert tcmsg(m) == (0, NAMES["eth0"], 0x10000, TC_H_ROOT, 0)
    assert cstr(m.attr(TCA_KIND)) == "tbf"
    opts = nested(m.attr(TCA_OPTIONS))
    assert set(opts) == {TCA_TBF_PARMS}  # no rate table, no rate64
    fields = struct.unpack("=BBHhHI" "BBHhHI" "III", opts[TCA_TBF_PARMS])
    assert fields[5] == rate and fields[11] == 0  # rate, no peak rate
    assert fields[12:] == (limit, tbf_buffer(rate, burst), 0)
    # Go: time2Tick(uint32(burst * 1e6 / rate)) with 15.625 ticks per microsecond
    assert tbf_buffer(rate, burst) == 1_953_125 and tbf_burst(rate, 1_953_125) == burst


def test_tbf_rate_beyond_32_bits_and_replace() -> None:
    rate = 10 * 2**32
    [m] = render(NativeBatch(None).add_qdisc(
        Qdisc("eth0", "tbf", rate=rate, burst=2**20, limit=2**24), replace=True))
    assert m.flags == NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
    opts = nested(m.attr(TCA_OPTIONS))
    assert struct.unpack_from("=I", opts[TCA_TBF_PARMS], 8)[0] == 0xFFFFFFFF
    assert struct.unpack("=Q", opts[TCA_TBF_RATE64])[0] == rate


def test_ingress_and_delete_qdisc() -> None:
    add, gone = render(NativeBatch(None)
                       .add_qdisc(Qdisc("eth0", "ingress", handle=TC_H_INGRESS_HANDLE,
                                        parent=TC_H_INGRESS))
                       .del_qdisc("eth0", parent=TC_H_INGRESS))
    assert tcmsg(add) == (0, NAMES["eth0"], 0xFFFF0000, 0xFFFFFFF1, 0)
    assert cstr(add.attr(TCA_KIND)) == "ingress" and not add.has(TCA_OPTIONS)
    assert (gone.type, gone.flags) == (RTM_DELQDISC, NLM_F_REQUEST | NLM_F_ACK)
    assert tcmsg(gone) == (0, NAMES["eth0"], 0, 0xFFFFFFF1, 0) and not gone.has(TCA_KIND)


def test_u32_redirect_filter_as_go_bandwidth_builds_it() -> None:
    [m] = render(NativeBatch(None).add_filter(
        Filter("eth0", TC_H_INGRESS_HANDLE, classid=tc_handle(1, 1), redirect="br0")))
    assert m.type == RTM_NEWTFILTER
    assert m.flags == NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
    _, index, handle, parent, info = tcmsg(m)
    assert (index, handle, parent) == (NAMES["eth0"], 0, 0xFFFF0000)
    assert info == (1 << 16) | socket.htons(0x0003)  # pref 1, protocol all (network order)
    assert cstr(m.attr(TCA_KIND)) == "u32"
    opts = nested(m.attr(TCA_OPTIONS))
    sel = struct.unpack_from("=BBBxHHhhI", opts[TCA_U32_SEL])  # flags, offshift, nkeys, ...
    assert sel == (TC_U32_TERMINAL, 0, 1, 0, 0, 0, 0, 0) and len(opts[TCA_U32_SEL]) == 32
    assert opts[TCA_U32_SEL][16:] == bytes(16)  # one key matching everything
    assert u32(opts[TCA_U32_CLASSID]) == 0x10001
    act = nested(nested(opts[TCA_U32_ACT])[1])
    assert cstr(act[TCA_ACT_KIND]) == "mirred"
    parms = struct.unpack("=IIiiiiI", nested(act[TCA_ACT_OPTIONS])[TCA_MIRRED_PARMS])
    assert parms == (0, 0, TC_ACT_STOLEN, 0, 0, TCA_EGRESS_REDIR, NAMES["br0"])


def test_matchall_filter_and_filter_delete() -> None:
    add, gone = render(NativeBatch(None)
                       .add_filter(Filter("eth0", 0xFFFFFFF2, kind="matchall", priority=3))
                       .del_filter(Filter("eth0", TC_H_INGRESS_HANDLE, priority=1)))
    opts = nested(add.attr(TCA_OPTIONS))
    assert opts == {}  # neither class nor action
    assert tcmsg(add)[4] >> 16 == 3
    assert (gone.type, gone.flags) == (RTM_DELTFILTER, NLM_F_REQUEST | NLM_F_ACK)
    assert tcmsg(gone)[3:] == (0xFFFF0000, (1 << 16) | socket.htons(3))
    with pytest.raises(NetError) as info:
        NativeBatch(None).add_filter(Filter("eth0", 0, kind="bpf")).render(NAMES)
    assert info.value.errno == errno.EOPNOTSUPP


def test_pyroute2_decodes_tc_requests_the_same_way() -> None:
    pytest.importorskip("pyroute2")
    from pyroute2.netlink.rtnl.tcmsg import tcmsg as p2tcmsg

    qd, flt = render(NativeBatch(None)
                     .add_qdisc(Qdisc("eth0", "tbf", handle=tc_handle(1), rate=125_000,
                                      burst=15_625, limit=128_125))
                     .add_filter(Filter("eth0", TC_H_INGRESS_HANDLE, redirect="br0")))
    msg = p2tcmsg(qd.raw)
    msg.decode()
    parms = msg.get_attr("TCA_OPTIONS").get_attr("TCA_TBF_PARMS")
    assert (parms["rate"], parms["limit"], parms["buffer"]) == (125_000, 128_125, 1_953_125)
    msg = p2tcmsg(flt.raw)
    msg.decode()
    assert msg.get_attr("TCA_KIND") == "u32" and msg["parent"] == 0xFFFF0000
    act = msg.get_attr("TCA_OPTIONS").get_attr("TCA_U32_ACT").get_attr("TCA_ACT_PRIO_1")
    mirred = act.get_attr("TCA_ACT_OPTIONS").get_attr("TCA_MIRRED_PARMS")
    assert (mirred["eaction"], mirred["action"], mirred["ifindex"]) == (1, 4, NAMES["br0"])


def fib(m: Msg) -> tuple[int, ...]:
    return struct.unpack("=BBBBBBBBI", m.header)


def test_rules() -> None:
    src, dst6, by_if, big, gone = render(NativeBatch(None)
        .add_rule(Rule(table=100, src="10.1.2.3/32"))
        .add_rule(Rule(table=101, priority=1000, dst="fd00::/64"))
        .add_rule(Rule(table=102, iif="eth0", oif="ghost0"))  # names, not resolved
        .add_rule(Rule(table=1000, priority=5))
        .del_rule(Rule(table=100, src="10.1.2.3/32")))
    assert (src.type, src.flags) == (RTM_NEWRULE,
                                     NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
    family, dlen, slen, tos, table, _, _, action, flags = fib(src)
    assert (family, dlen, slen, tos, table, action, flags) == (
        socket.AF_INET, 0, 32, 0, 100, FR_ACT_TO_TBL, 0)
    assert src.attr(FRA_SRC) == socket.inet_aton("10.1.2.3") and not src.has(FRA_PRIORITY)
    assert u32(src.attr(FRA_TABLE)) == 100 and not src.has(FRA_DST)
    family, dlen, slen, *_ = fib(dst6)
    assert (family, dlen, slen) == (socket.AF_INET6, 64, 0)
    assert dst6.attr(FRA_DST) == socket.inet_pton(socket.AF_INET6, "fd00::")
    assert u32(dst6.attr(FRA_PRIORITY)) == 1000
    assert cstr(by_if.attr(FRA_IIFNAME)) == "eth0" and cstr(by_if.attr(FRA_OIFNAME)) == "ghost0"
    assert fib(big)[4] == 0 and u32(big.attr(FRA_TABLE)) == 1000  # > 255: only FRA_TABLE
    assert (gone.type, gone.flags) == (RTM_DELRULE, NLM_F_REQUEST | NLM_F_ACK)
    assert gone.attr(FRA_SRC) == src.attr(FRA_SRC)


# --- addresses, routes, neighbours -------------------------------------------------

def test_addresses() -> None:
    v4, v6, gone = render(NativeBatch(None)
                          .add_address("eth0", "10.1.2.3/24", nodad=True)
                          .add_address("eth0", "fd00::3/64", nodad=True)
                          .del_address("eth0", "10.1.2.3/24"))
    family, plen, flags, scope, index = struct.unpack("=BBBBI", v4.header)
    assert (family, plen, flags, scope, index) == (socket.AF_INET, 24, 0, 0, NAMES["eth0"])
    assert v4.flags == NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
    assert v4.attr(IFA_LOCAL) == v4.attr(IFA_ADDRESS) == socket.inet_aton("10.1.2.3")
    assert v4.attr(IFA_BROADCAST) == socket.inet_aton("10.1.2.255")
    assert not v4.has(IFA_FLAGS)  # nodad is IPv6 only
    family, plen, flags, scope, index = struct.unpack("=BBBBI", v6.header)
    assert (family, plen, flags) == (socket.AF_INET6, 64, IFA_F_NODAD)
    assert u32(v6.attr(IFA_FLAGS)) == IFA_F_NODAD
    assert v6.attr(IFA_ADDRESS) == socket.inet_pton(socket.AF_INET6, "fd00::3")
    assert not v6.has(IFA_BROADCAST)
    assert (gone.type, gone.flags) == (RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK)
    assert not gone.has(IFA_BROADCAST)


def test_point_to_point_prefixes_get_no_broadcast() -> None:
    for addr in ("10.0.0.1/31", "10.0.0.1/32", "10.0.0.1"):
        [m] = render(NativeBatch(None).add_address("eth0", addr))
        assert not m.has(IFA_BROADCAST), addr


def test_default_route_and_options() -> None:
    default, full, big, onlink6 = render(NativeBatch(None)
        .add_route(Route(dst="0.0.0.0/0", gateway="10.1.2.1", ifname="eth0"))
        .add_route(Route(dst="10.9.0.0/16", gateway="10.1.2.1", table=100, priority=7,
                         mtu=1300, advmss=1260, src="10.1.2.3", proto=4, scope=0),
                   replace=True)
        .add_route(Route(dst="10.8.0.0/16", ifname="eth0", table=1000))
        .add_route(Route(dst="fd09::/64", ifname="eth0")))
    family, dlen, _, _, table, proto, scope, rtype, _ = struct.unpack(
        "=BBBBBBBBI", default.header)
    assert (family, dlen, table, proto, scope, rtype) == (socket.AF_INET, 0, 254, 3, 0, 1)
    assert default.flags == NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
    assert not default.has(RTA_DST)
    assert default.attr(RTA_GATEWAY) == socket.inet_aton("10.1.2.1")
    assert u32(default.attr(RTA_OIF)) == NAMES["eth0"]
    assert u32(default.attr(RTA_TABLE)) == 254

    assert full.flags == NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
    _, dlen, _, _, table, proto, scope, _, _ = struct.unpack("=BBBBBBBBI", full.header)
    assert (dlen, table, proto, scope) == (16, 100, 4, 0)
    assert full.attr(RTA_DST) == socket.inet_aton("10.9.0.0")
    assert u32(full.attr(RTA_PRIORITY)) == 7
    assert full.attr(RTA_PREFSRC) == socket.inet_aton("10.1.2.3")
    metrics = nested(full.attr(RTA_METRICS))
    assert (u32(metrics[RTAX_MTU]), u32(metrics[RTAX_ADVMSS])) == (1300, 1260)

    _, _, _, _, table, _, scope, _, _ = struct.unpack("=BBBBBBBBI", big.header)
    assert table == 0 and u32(big.attr(RTA_TABLE)) == 1000  # > 255 only fits RTA_TABLE
    assert scope == 253  # IPv4 without gateway: link scope, as ip route does
    scope6 = struct.unpack("=BBBBBBBBI", onlink6.header)[6]
    assert scope6 == 0


def test_route_delete_matches_any_scope() -> None:
    [m] = render(NativeBatch(None).del_route(Route(dst="10.9.0.0/16", mtu=1300)))
    _, dlen, _, _, table, proto, scope, rtype, _ = struct.unpack("=BBBBBBBBI", m.header)
    assert (m.type, dlen, table, proto, scope, rtype) == (RTM_DELROUTE, 16, 254, 0, 255, 0)
    assert not m.has(RTA_METRICS)


def test_neighbours() -> None:
    perm, reach = render(NativeBatch(None)
                         .add_neighbour(Neighbour("eth0", "10.1.2.9", "02:AA:bb:00:00:09"))
                         .add_neighbour(Neighbour("eth0", "fd00::9", "02:aa:bb:00:00:0a",
                                                  permanent=False), replace=False))
    family, _, _, index, state, _, _ = struct.unpack("=BBHiHBB", perm.header)
    assert (family, index, state) == (socket.AF_INET, NAMES["eth0"], NUD_PERMANENT)
    assert perm.flags == NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
    assert perm.attr(NDA_DST) == socket.inet_aton("10.1.2.9")
    assert perm.attr(NDA_LLADDR) == bytes.fromhex("02aabb000009")
    family, _, _, _, state, _, _ = struct.unpack("=BBHiHBB", reach.header)
    assert (family, state) == (socket.AF_INET6, NUD_REACHABLE)
    assert reach.flags == NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL


# --- phases: how many round trips a batch costs ----------------------------------

def test_container_attach_is_one_phase() -> None:
    batch = (NativeBatch(None)
             .add_veth("veth1", "eth0", peer_netns="/run/netns/ctr")
             .set_link("veth1", master="br0", up=True))
    assert len(render(batch)) == 2
    assert batch.stats["phases"] == 1 and batch.stats["messages"] == 2


def test_a_link_created_in_the_batch_is_resolved_after_a_flush() -> None:
    """add_address needs the new bridge's ifindex: the requests before it go first."""
    batch = (NativeBatch(None)
             .add_bridge("br9")
             .set_link("br9", up=True)            # by name: same phase
             .add_address("br9", "10.9.0.1/24"))  # needs the index: next phase
    with pytest.raises(NetError) as info:  # the dry run has no kernel to create br9
        batch.render()
    assert (info.value.op, info.value.errno) == ("add_address", errno.ENODEV)
    assert batch.stats["phases"] == 1 and batch.stats["messages"] == 2
    batch = (NativeBatch(None).add_bridge("br9").set_link("br9", up=True)
             .add_address("br9", "10.9.0.1/24"))
    msgs = render(batch, {**NAMES, "br9": 9})
    assert batch.stats["phases"] == 2 and len(msgs) == 3
    assert struct.unpack("=BBBBI", msgs[2].header)[4] == 9


def test_unknown_link_is_named_in_the_error() -> None:
    with pytest.raises(NetError) as info:
        NativeBatch(None).add_route(Route(dst="10.0.0.0/8", ifname="ghost0")).render()
    assert (info.value.op, info.value.obj, info.value.errno) == (
        "add_route", "10.0.0.0/8 dev ghost0", errno.ENODEV)
    assert "ghost0" in str(info.value)
    # missing_ok deletes of a missing link are no-ops, not requests
    batch = (NativeBatch(None).del_address("ghost0", "10.0.0.1/24", missing_ok=True)
             .del_route(Route(dst="10.0.0.0/8", ifname="ghost0"), missing_ok=True))
    assert render(batch) == []


# --- input checks --------------------------------------------------------------

@pytest.mark.parametrize(("call", "op"), [
    (lambda b: b.add_veth("x" * 16, "p"), "add_veth"),
    (lambda b: b.add_address("eth0", "10.0.0.300/24"), "add_address"),
    (lambda b: b.add_address("eth0", "10.0.0.1/33"), "add_address"),
    (lambda b: b.add_route(Route(dst="10.1.2.3/16")), "add_route"),  # host bits set
    (lambda b: b.add_route(Route(dst="10.0.0.0/8", gateway="fd00::1")), "add_route"),
    (lambda b: b.set_link("eth0", mac="02:00:zz:00:00:01"), "set_link"),
    (lambda b: b.add_macvlan("m0", "eth0", mode="nope"), "add_macvlan"),
    (lambda b: b.add_ipvlan("i0", "eth0", mode="l4"), "add_ipvlan"),
    (lambda b: b.add_vlan("v0", "eth0", 5000), "add_vlan"),
    (lambda b: b.add_neighbour(Neighbour("eth0", "nope", "02:00:00:00:00:01")),
     "add_neighbour"),
    (lambda b: b.set_link("eth0", txqlen=-1), "set_link"),
    (lambda b: b.add_vrf("vrf0", 2**32), "add_vrf"),
    (lambda b: b.add_tap("t" * 16), "add_tap"),
    (lambda b: b.add_qdisc(Qdisc("eth0", "tbf", rate=1000, limit=100)), "add_qdisc"),
    (lambda b: b.add_qdisc(Qdisc("eth0", "tbf", rate=0, burst=1, limit=100)), "add_qdisc"),
    (lambda b: b.add_filter(Filter("eth0", 0, priority=70000)), "add_filter"),
    (lambda b: b.add_rule(Rule(table=1, src="10.0.0.0/8", dst="fd00::/8")), "add_rule"),
    (lambda b: b.del_rule(Rule(table=1, src="10.0.0.1/8")), "del_rule"),
])
def test_bad_arguments_are_refused_when_queued(call, op) -> None:  # type: ignore[no-untyped-def]
    batch = NativeBatch(None)
    with pytest.raises(NetError) as info:
        call(batch)
    assert (info.value.op, info.value.errno) == (op, errno.EINVAL)
    assert batch.serialize() == struct.pack("=II", 0x31424E43, 0)  # nothing queued


def test_malformed_buffers_are_rejected_not_trusted() -> None:
    """The C parser must refuse (-EINVAL), never read past the buffer, for any input."""
    good = (NativeBatch(None)
            .add_veth("veth1", "eth0", peer_netns="/run/netns/ctr", mtu=1400)
            .set_link("veth1", master="br0", up=True, alias="x")
            .add_route(Route(dst="0.0.0.0/0", gateway="10.0.0.1", ifname="eth0"))
            .add_qdisc(Qdisc("eth0", "tbf", rate=2**33, burst=1000, limit=2000))
            .add_filter(Filter("eth0", TC_H_INGRESS_HANDLE, redirect="br0"))
            .add_rule(Rule(table=7, src="10.0.0.0/8", iif="eth0"))
            .serialize())
    rng = random.Random(1234)
    cases = [good[:n] for n in range(len(good))]  # every truncation
    for _ in range(2000):
        data = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(8, len(data))] = rng.randrange(256)
        cases.append(bytes(data))
    cases += [os.urandom(rng.randint(0, 200)) for _ in range(200)]
    out = ffi.new("unsigned char **")
    outlen = ffi.new("size_t *")
    errs = ffi.new("struct cn_err[]", 16)
    st = ffi.new("struct cn_stats *")
    table = b"br0=3,eth0=2"
    for data in cases:
        rc = lib.cn_batch_render(data, len(data), table, out, outlen, errs, 16, st)
        assert rc >= -errno.EINVAL or rc == -errno.ENOMEM
        if out[0] != ffi.NULL:
            lib.cn_free(out[0])
    rc = lib.cn_batch_render(good, len(good), table, out, outlen, errs, 16, st)
    assert rc == 0 and outlen[0] > 0
    lib.cn_free(out[0])
