"""flanneld's pieces without a kernel: flannel's config defaults, lease JSON, the sync plan."""

from __future__ import annotations

import ipaddress
import json

import pytest
from corecni_contrib.flanneld.leases import Lease, random_mac
from corecni_contrib.flanneld.netconfig import NetConfig, NetConfigError, lease_key, subnet_of_key
from corecni_contrib.flanneld.vxlan import VxlanNode

from corecni.net import FdbEntry, Neighbour, Route
from corecni.testing.fake_net import FakeBackend, make_link


def test_network_config_defaults_as_flannel() -> None:
    conf = NetConfig.from_json(json.dumps({"Network": "10.5.0.0/16"}))
    assert conf.subnet_len == 24 and conf.vni == 1 and conf.port == 8472
    subnets = list(conf.subnets())
    assert str(subnets[0]) == "10.5.1.0/24" and str(subnets[-1]) == "10.5.255.0/24"
    assert conf.device == "flannel.1"
    small = NetConfig.from_json(json.dumps({"Network": "10.6.0.0/24",
                                            "Backend": {"Type": "vxlan", "VNI": 4}}))
    assert small.subnet_len == 26 and small.vni == 4
    bounded = NetConfig.from_json(json.dumps({"Network": "10.7.0.0/16", "SubnetMin": "10.7.10.0",
                                              "SubnetMax": "10.7.12.0"}))
    assert [str(s) for s in bounded.subnets()] == ["10.7.10.0/24", "10.7.11.0/24",
                                                    "10.7.12.0/24"]


@pytest.mark.parametrize(("text", "message"), [
    (None, "no network config"),
    ("{}", "invalid network config"),
    ('{"Network": "10.0.0.0/16", "Backend": {"Type": "host-gw"}}', "vxlan only"),
    ('{"Network": "10.0.0.0/16", "SubnetLen": 8}', "does not fit"),
])
def test_bad_network_config(text: str | None, message: str) -> None:
    with pytest.raises(NetConfigError, match=message):
        NetConfig.from_json(text)


def test_lease_keys_and_json_in_flannels_layout() -> None:
    subnet = ipaddress.IPv4Network("10.5.34.0/24")
    assert lease_key(subnet) == "10.5.34.0-24"
    assert subnet_of_key("/coreos.com/network/subnets/10.5.34.0-24") == subnet
    lease = Lease(subnet, "192.0.2.10", "be:ef:00:00:00:01")
    assert json.loads(lease.to_json()) == {
        "PublicIP": "192.0.2.10", "PublicIPv6": None, "BackendType": "vxlan",
        "BackendData": {"VNI": 1, "VtepMAC": "be:ef:00:00:00:01"}}
    assert Lease.from_json(subnet, lease.to_json()) == lease
    assert Lease.from_json(subnet, "not json") is None
    mac = random_mac()
    assert int(mac[:2], 16) & 0x03 == 0x02  # locally administered, unicast


def test_sync_programs_every_peer_in_one_batch() -> None:
    fake = FakeBackend()
    fake.state[None]["uplink"] = make_link("uplink", index=3)
    conf = NetConfig.from_json(json.dumps({"Network": "10.5.0.0/16"}))
    own = Lease(ipaddress.IPv4Network("10.5.1.0/24"), "192.0.2.1", "02:00:00:00:00:01")
    node = VxlanNode(fake, conf, own, "uplink")
    node.ensure_device()
    assert fake.ops("add_vxlan") == [(None, "add_vxlan", ("flannel.1", 1), {
        "local": "192.0.2.1", "port": 8472, "dev": "uplink", "learning": False,
        "mac": "02:00:00:00:00:01", "mtu": 1450})]
    peer = Lease(ipaddress.IPv4Network("10.5.2.0/24"), "192.0.2.2", "02:00:00:00:00:02")
    fake.log.clear()
    node.sync({peer.subnet: peer})
    assert [op for _, op, _, _ in fake.log] == ["add_fdb", "add_neighbour", "add_route"]
    assert fake.log[0][2] == (FdbEntry("flannel.1", "02:00:00:00:00:02", "192.0.2.2"),)
    assert fake.log[1][2] == (Neighbour("flannel.1", "10.5.2.0", "02:00:00:00:00:02"),)
    assert fake.log[2][2] == (Route(dst="10.5.2.0/24", gateway="10.5.2.0", ifname="flannel.1",
                                    onlink=True),)
