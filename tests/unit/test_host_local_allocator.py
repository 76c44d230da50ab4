"""The allocator: Go's round-robin walk, never gateway/network/broadcast, clear failures."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
from corecni_contrib.host_local.allocator import Allocator, assign_requested, candidates
from corecni_contrib.host_local.config import RangeSet, parse_range_set
from corecni_contrib.host_local.store import Store

from corecni.spec.errors import CNIError


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def rs(*ranges: dict[str, Any]) -> RangeSet:
    return parse_range_set(list(ranges), 0)


def walk(rangeset: RangeSet, last: str | None = None) -> list[str]:
    return [str(a) for _, a in candidates(rangeset, ip(last) if last else None)]


def test_walk_starts_at_range_start_and_skips_gateway() -> None:
    assert walk(rs({"subnet": "10.0.0.0/29"})) == [f"10.0.0.{i}" for i in range(2, 7)]


def test_walk_continues_after_last_reserved_and_wraps_to_it() -> None:
    assert walk(rs({"subnet": "10.0.0.0/29"}), "10.0.0.4") == \
        ["10.0.0.5", "10.0.0.6", "10.0.0.2", "10.0.0.3", "10.0.0.4"]


def test_walk_moves_to_next_range_after_range_end() -> None:
    two = rs({"subnet": "10.0.0.0/29"}, {"subnet": "10.0.1.0/29", "rangeStart": "10.0.1.4"})
    assert walk(two, "10.0.0.6") == \
        ["10.0.1.4", "10.0.1.5", "10.0.1.6", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5",
         "10.0.0.6"]
    assert walk(two, "10.0.1.6") == \
        ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.1.4", "10.0.1.5",
         "10.0.1.6"]


def test_last_reserved_outside_the_set_restarts_at_the_beginning() -> None:
    assert walk(rs({"subnet": "10.0.0.0/29"}), "192.168.0.9")[0] == "10.0.0.2"
    assert walk(rs({"subnet": "10.0.0.0/29", "rangeStart": "10.0.0.3"}), "10.0.0.2")[0] == \
        "10.0.0.3"


def test_network_broadcast_and_custom_gateway_are_never_candidates() -> None:
    edge = rs({"subnet": "10.0.0.0/29", "rangeStart": "10.0.0.0", "rangeEnd": "10.0.0.7",
               "gateway": "10.0.0.4"})
    assert walk(edge) == ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.5", "10.0.0.6"]
    v6 = rs({"subnet": "2001:db8::/126", "rangeStart": "2001:db8::"})
    assert walk(v6) == ["2001:db8::2", "2001:db8::3"]  # ::0 is the subnet-router anycast


def test_allocations_round_robin_past_a_released_address(tmp_path: Path) -> None:
    rangeset = rs({"subnet": "10.0.0.0/29"})
    with Store(str(tmp_path), "n") as store:
        alloc = Allocator(rangeset, store, 0)
        first = alloc.get("c1", "eth0", None, [])
        assert (first.ip_config().address, first.ip_config().gateway, first.fresh) == \
            ("10.0.0.2/29", "10.0.0.1", True)
        store.release_by_id("c1", "eth0")
        assert str(alloc.get("c2", "eth0", None, []).ip) == "10.0.0.3"  # not .2 again


def test_held_address_is_returned_again(tmp_path: Path) -> None:
    rangeset = rs({"subnet": "10.0.0.0/29"})
    with Store(str(tmp_path), "n") as store:
        alloc = Allocator(rangeset, store, 0)
        lease = alloc.get("c1", "eth0", None, [])
        again = alloc.get("c1", "eth0", None, [lease.ip])
        assert again.ip == lease.ip and not again.fresh


def test_exhaustion_has_gos_message(tmp_path: Path) -> None:
    rangeset = rs({"subnet": "10.0.0.0/30"})  # only .2 is usable
    with Store(str(tmp_path), "n") as store:
        alloc = Allocator(rangeset, store, 0)
        alloc.get("c1", "eth0", None, [])
        with pytest.raises(CNIError) as info:
            alloc.get("c2", "eth0", None, [])
    assert info.value.msg == "no IP addresses available in range set: 10.0.0.1-10.0.0.2"


@pytest.mark.parametrize(("wanted", "code", "message"), [
    ("10.0.0.1", 7, "requested ip 10.0.0.1 is subnet's gateway"),
    ("10.0.0.0", 7, "requested ip 10.0.0.0 is subnet's network address"),
    ("10.0.0.7", 7, "requested ip 10.0.0.7 is subnet's broadcast address"),
    ("10.0.0.5", 999, "requested IP address 10.0.0.5 is not available in range set "
                      "10.0.0.0-10.0.0.7"),
    ("10.0.9.9", 7, "10.0.9.9 not in range set 10.0.0.0-10.0.0.7"),
])
def test_refused_requests(tmp_path: Path, wanted: str, code: int, message: str) -> None:
    rangeset = rs({"subnet": "10.0.0.0/29", "rangeStart": "10.0.0.0", "rangeEnd": "10.0.0.7"})
    with Store(str(tmp_path), "n") as store:
        assert store.reserve("other", "eth0", ip("10.0.0.5"), 0)
        with pytest.raises(CNIError) as info:
            Allocator(rangeset, store, 0).get("c1", "eth0", ip(wanted), [])
        assert [a.container_id for a in store.allocations()] == ["other"]
    assert (info.value.code, info.value.msg) == (code, message)


def test_requested_address_is_reserved(tmp_path: Path) -> None:
    with Store(str(tmp_path), "n") as store:
        lease = Allocator(rs({"subnet": "10.0.0.0/24"}), store, 3).get(
            "c1", "eth0", ip("10.0.0.77"), [])
        assert lease.fresh and str(lease.ip) == "10.0.0.77"
        assert store.last_reserved_ip(3) == ip("10.0.0.77")


def test_assign_requested_one_per_set_in_order() -> None:
    sets = [rs({"subnet": "10.0.0.0/24"}), rs({"subnet": "2001:db8::/64"})]
    assert assign_requested(sets, [ip("2001:db8::9"), ip("10.0.0.9")]) == \
        {0: ip("10.0.0.9"), 1: ip("2001:db8::9")}
    with pytest.raises(CNIError) as info:
        assign_requested(sets, [ip("10.0.0.9"), ip("10.0.0.10")])
    assert info.value.code == 7
    assert info.value.msg == "failed to allocate all requested IPs: 10.0.0.10"
    with pytest.raises(CNIError, match=r"requested IPs: 10\.1\.0\.9"):
        assign_requested(sets, [ip("10.1.0.9")])  # in no set at all
