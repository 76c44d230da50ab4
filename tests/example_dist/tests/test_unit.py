"""Unit tests of the example plugins: no kernel, the recording FakeBackend as request.net."""

from __future__ import annotations

import pytest
from corecni_example import tune, veth

from corecni.kit import CNIError, IPConfig, Result
from corecni.testing import CTR, FakeBackend, FakeDelegate, make_link, plugin_request

PREV = Result(cni_version="1.1.0", ips=(IPConfig(address="10.80.0.2/24"),))


@pytest.fixture
def fake() -> FakeBackend:
    backend = FakeBackend()
    backend.state[CTR]["eth0"] = make_link("eth0", index=7)
    return backend


def test_tune_sets_mtu_and_alias_in_the_container(fake: FakeBackend) -> None:
    req = plugin_request(type="example-tune", mtu=1400, alias="tuned", prev_result=PREV,
                         net=fake)
    assert tune.meta_add(req, PREV) is PREV
    assert fake.ops() == [(CTR, "set_link", ("eth0",), {"mtu": 1400, "alias": "tuned"})]
    tune.meta_check(plugin_request(type="example-tune", mtu=1400, alias="tuned",
                                   command="CHECK", prev_result=PREV, net=fake), PREV)


def test_tune_without_keys_touches_nothing(fake: FakeBackend) -> None:
    req = plugin_request(type="example-tune", prev_result=PREV, net=fake)
    assert tune.meta_add(req, PREV) is PREV
    assert fake.ops() == []


@pytest.mark.parametrize(("key", "value", "words"), [("mtu", 9000, "MTU 1500, want 9000"),
                                                       ("alias", "x", "alias '', want 'x'")])
def test_tune_check_sees_drift(fake: FakeBackend, key: str, value: object, words: str) -> None:
    req = plugin_request(type="example-tune", command="CHECK", prev_result=PREV, net=fake,
                         **{key: value})
    with pytest.raises(CNIError, match=words):
        tune.meta_check(req, PREV)


def test_veth_without_gateway_releases_ipam_and_makes_nothing() -> None:
    fake, ipam = FakeBackend(), FakeDelegate(PREV)  # an address without a gateway
    req = plugin_request(type="example-veth", ipam={"type": "host-local"}, net=fake,
                         delegate=ipam)
    with pytest.raises(CNIError, match="needs a gateway") as info:
        veth.cni_add(req)
    assert info.value.code == 7
    assert ipam.calls == [("host-local", "ADD"), ("host-local", "DEL")]
    assert fake.ops("add_veth") == []


def test_veth_del_of_nothing_releases_ipam_only() -> None:
    fake, ipam = FakeBackend(), FakeDelegate()
    req = plugin_request(type="example-veth", command="DEL", ipam={"type": "host-local"},
                         net=fake, delegate=ipam)
    veth.cni_del(req)
    veth.cni_del(req)
    assert ipam.calls == [("host-local", "DEL")] * 2
    assert fake.ops("del_link") == []


def test_veth_status_is_the_ipam_plugins() -> None:
    ready, broken = FakeDelegate(), FakeDelegate(fail=("STATUS",))
    veth.plugin_status(plugin_request(type="example-veth", command="STATUS",
                                      ipam={"type": "host-local"}, delegate=ready))
    assert ready.calls == [("host-local", "STATUS")]
    with pytest.raises(CNIError, match="IPAM STATUS failed"):
        veth.plugin_status(plugin_request(type="example-veth", command="STATUS",
                                          ipam={"type": "host-local"}, delegate=broken))
