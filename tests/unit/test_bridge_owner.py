"""The bridge's creator mark and its release (``corecni_contrib.bridge.owner``), on the
fake link layer: what DEL of the creator removes, keeps, or leaves alone. The kernel
side (a failed chain ADD leaves no bridge; the race with another ADD) is in
``tests/integration/test_bridge_faults.py``."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
from corecni_contrib.bridge import owner

from corecni.net import Link
from corecni.testing import FakeBackend

MARK = owner.creator_mark("net", "c0", "eth0")


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeBackend:
    """A node with bridge ``br0`` made by (net, c0, eth0); the lock in ``tmp_path``."""
    monkeypatch.setattr(owner, "LOCK_PATH", str(tmp_path / "run" / "bridge.lock"))
    backend = FakeBackend()
    backend.ns(None)["br0"] = Link(index=5, name="br0", kind="bridge", mtu=1500,
                                   mac="02:00:00:00:00:05", up=True, alias=MARK)
    return backend


def port(backend: FakeBackend, name: str, index: int, peer: str, master: str = "br0") -> None:
    """A veth port of ``master`` whose peer ``peer`` is in the same namespace."""
    here = backend.ns(None)
    here[name] = Link(index=index, name=name, kind="veth", mtu=1500, mac="", up=True,
                      master=master, peer_index=index + 1)
    here[peer] = Link(index=index + 1, name=peer, kind="veth", mtu=1500, mac="", up=True,
                      peer_index=index)


def test_mark_names_one_attachment_and_fits_an_alias() -> None:
    assert owner.creator_mark("net", "c0", "eth0") == MARK
    assert owner.creator_mark("net", "c0", "eth1") != MARK
    assert owner.creator_mark("ne", "tc0", "eth0") != owner.creator_mark("net", "c0", "eth0")
    assert len(owner.creator_mark("n" * 200, "c" * 1000, "eth0").encode()) < 256


def test_creator_with_no_port_left_removes_the_bridge(fake: FakeBackend) -> None:
    owner.release(fake, "br0", MARK)
    assert "br0" not in {link.name for link in fake.links()}


def test_vlan_gateway_ports_go_with_the_bridge(fake: FakeBackend) -> None:
    """``<bridge>.<vlan>``'s veth is the bridge's own port, not a container's."""
    port(fake, "vethgw", 20, "br0.100")
    owner.release(fake, "br0", MARK)
    assert {link.name for link in fake.links()} == {"lo", "phys0"}


def test_containers_still_attached_keep_the_bridge(fake: FakeBackend) -> None:
    """...and its mark: the creator's DEL repeated once they are gone removes it (a DEL
    that came while the creator's own port was still there: its namespace gone)."""
    port(fake, "vethgw", 20, "br0.100")
    fake.ns(None)["vethc1"] = Link(index=30, name="vethc1", kind="veth", mtu=1500, mac="",
                                   up=True, master="br0", peer_index=3, link_netnsid=0)
    owner.release(fake, "br0", MARK)
    bridge = fake.link("br0")
    assert bridge is not None and bridge.alias == MARK
    assert fake.link("vethgw") is not None
    assert fake.ops("del_link", "set_link") == []
    del fake.ns(None)["vethc1"]
    owner.release(fake, "br0", MARK)
    assert fake.link("br0") is None and fake.link("vethgw") is None


def test_a_bridge_marked_by_another_or_by_nobody_stays(fake: FakeBackend) -> None:
    owner.release(fake, "br0", owner.creator_mark("net", "c9", "eth0"))
    fake.ns(None)["br1"] = Link(index=6, name="br1", kind="bridge", mtu=1500, mac="",
                                up=True)
    owner.release(fake, "br1", "")
    owner.release(fake, "nosuch", MARK)
    assert fake.link("br0") is not None and fake.link("br1") is not None
    assert fake.ops("del_link", "set_link") == []


def test_a_link_of_another_kind_under_the_name_stays(fake: FakeBackend) -> None:
    fake.ns(None)["br0"] = attrs.evolve(fake.ns(None)["br0"], kind="veth")
    owner.release(fake, "br0", MARK)
    assert fake.link("br0") is not None


def test_release_never_fails(fake: FakeBackend, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    """No lock to be had (a file where its directory should be): the bridge stays."""
    (tmp_path / "afile").write_text("")
    monkeypatch.setattr(owner, "LOCK_PATH", str(tmp_path / "afile" / "bridge.lock"))
    owner.release(fake, "br0", MARK)
    assert fake.link("br0") is not None
    with pytest.raises(Exception, match="failed to lock"), owner.attaching():
        pass
