"""The lease maintainer's state machine (renew before T2, rebind after, expiry, a
namespace gone), with its exchanges replaced: no namespace, no server, no privileges."""

from __future__ import annotations

import ipaddress
import threading
import time
from typing import Any

import pytest
from corecni_contrib.dhcp import client, codec, maintainer, nsref
from corecni_contrib.dhcp.client import Binding, ClientOptions
from corecni_contrib.dhcp.lease import Holder, Lease

MAC = bytes.fromhex("020000000001")


def lease_bound(ago: float, lease_time: int = 100) -> Lease:
    """A lease bound ``ago`` seconds ago (T1 50%, T2 85% of ``lease_time``)."""
    ack = codec.Message(op=codec.BOOTREPLY, xid=1, chaddr=MAC, yiaddr=ipaddress.IPv4Address(
        "10.0.0.5"), options={codec.OPT_SUBNET_MASK: bytes([255, 255, 255, 0]),
                              codec.OPT_SERVER_ID: bytes([10, 0, 0, 1]),
                              codec.OPT_LEASE_TIME: lease_time.to_bytes(4, "big")})
    holder = Holder("c1", "n", "eth0", "/run/netns/x", 1, 2)
    return Lease.from_binding(holder, ClientOptions(holder.client_id),
                              Binding(ack, MAC, time.time() - ago))


class Recorder:
    def __init__(self) -> None:
        self.saved: list[Lease] = []
        self.dropped: list[Lease] = []
        self.logs: list[dict[str, Any]] = []
        self.done = threading.Event()

    def save(self, lease: Lease) -> None:
        self.saved.append(lease)
        self.done.set()

    def drop(self, lease: Lease) -> None:
        self.dropped.append(lease)
        self.done.set()

    def events(self) -> list[str]:
        return [str(r["event"]) for r in self.logs]


def make(lease: Lease, rec: Recorder, monkeypatch: pytest.MonkeyPatch,
         fd: int | None = None) -> maintainer.Maintainer:
    monkeypatch.setattr(nsref, "abandoned", lambda path, ident: False)
    return maintainer.Maintainer(lease, fd, save=rec.save, drop=rec.drop, log=rec.logs.append)


def test_renews_unicast_between_t1_and_t2(monkeypatch: pytest.MonkeyPatch) -> None:
    rec, calls = Recorder(), []
    m = make(lease_bound(60), rec, monkeypatch)  # past T1 (50), before T2 (85)

    def renew(rebind: bool) -> Lease:
        calls.append(rebind)
        return lease_bound(0)
    monkeypatch.setattr(m, "_renew", renew)
    m.start()
    assert rec.done.wait(10)
    m.stop()
    assert calls == [False] and m.renewals == 1 and rec.saved[0].bound_at > time.time() - 5
    assert "dhcp-renewed" in rec.events()


def test_rebinds_after_t2_then_expires_and_sets_the_link_down(
        monkeypatch: pytest.MonkeyPatch) -> None:
    rec, calls, downs = Recorder(), [], []
    m = make(lease_bound(99.5), rec, monkeypatch)  # past T2, expiring in 0.5 s

    def renew(rebind: bool) -> Lease:
        calls.append(rebind)
        raise client.DhcpTimeout("no DHCPACK")
    monkeypatch.setattr(m, "_renew", renew)
    monkeypatch.setattr(m, "_set_down", lambda: downs.append(1))
    m.start()
    assert rec.done.wait(10)
    m.stop()
    assert calls == [True] and downs == [1] and rec.saved == []
    assert rec.dropped and rec.events() == ["dhcp-renew-failed", "dhcp-expired"]


def test_interface_gone_drops_without_release(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder()
    m = make(lease_bound(60), rec, monkeypatch, fd=-1)

    def renew(rebind: bool) -> Lease:
        raise LookupError("interface eth0 is gone")
    monkeypatch.setattr(m, "_renew", renew)
    monkeypatch.setattr(m, "release", lambda: pytest.fail("nothing to release from"))
    m.netns_fd = -1  # stands for a descriptor; never used by the replaced exchanges
    m._run()
    assert rec.dropped and rec.events() == ["dhcp-gone"]


def test_abandoned_namespace_is_released(monkeypatch: pytest.MonkeyPatch) -> None:
    rec, released = Recorder(), []
    m = make(lease_bound(60), rec, monkeypatch)
    monkeypatch.setattr(nsref, "abandoned", lambda path, ident: True)
    monkeypatch.setattr(m, "release", lambda: released.append(1))
    monkeypatch.setattr(m, "_close_fd", lambda: None)
    m.netns_fd = -1
    m._run()
    assert released == [1] and rec.dropped and rec.events() == ["dhcp-orphaned"]


def test_renew_cap_brings_renewal_forward() -> None:
    fresh = lease_bound(0, lease_time=3600)
    assert fresh.renew_at() - fresh.bound_at == 1800
    assert fresh.renew_at(cap=2) - fresh.bound_at == 2


@pytest.mark.parametrize("how", ["release", "retire"])
def test_renewal_in_flight_is_not_saved_once_released_or_replaced(
        monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """The service halts a maintainer (waiting up to a timeout), then releases the lease
    and removes its file, or acquires a successor and writes its file. A renewal still
    in flight then (its ACK late) must not write the old lease back afterwards: a
    restarted service would reload a lease the server has been told is released."""
    rec = Recorder()
    m = make(lease_bound(60), rec, monkeypatch)
    in_exchange, answer, over = threading.Event(), threading.Event(), threading.Event()
    order: list[str] = []

    def renew(rebind: bool) -> Lease:
        with m._lock:  # an exchange holds the lease's lock, as the real one does
            in_exchange.set()
            assert answer.wait(10)
        assert over.wait(10)  # the service is done with the lease before the ACK is used
        return lease_bound(0)
    monkeypatch.setattr(m, "_renew", renew)
    m._save = lambda lease: order.append("saved")
    m.start()
    assert in_exchange.wait(10)
    m.halt(timeout=0.05)  # the service's wait runs out: the exchange is still going

    def finish() -> None:
        if how == "release":
            m.release()  # nothing to send from here (no namespace): skipped, still over
        else:
            m.retire(timeout=0.05)
        order.append(how)
        over.set()
    service = threading.Thread(target=finish)
    service.start()
    answer.set()
    service.join(10)
    m._thread.join(10)
    assert not m._thread.is_alive() and order == [how], order
    assert m.renewals == 0
