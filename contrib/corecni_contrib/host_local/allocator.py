"""Choosing an address in a range set: round robin from the last reservation.

The search order is Go's ``RangeIter`` (``backend/allocator/allocator.go``):
start right after ``last_reserved_ip.<set index>`` if that address is still
in the set (else at the first range's ``rangeStart``), walk to the range's
end, continue with the following ranges, wrap around, and stop after the
last reserved address itself. A container that crash-loops therefore does
not get its previous address back until the whole set has been used, and a
Go and a corecni plugin sharing a data directory continue each other's walk.

Unlike Go, the walk also skips the network address and the IPv4 broadcast
address, which a ``rangeStart``/``rangeEnd`` at the subnet's edge would
otherwise hand out.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import attrs

from corecni.kit import config_error
from corecni.spec.errors import CNIError, ErrorCode
from corecni.spec.result import IPConfig
from corecni_contrib._ipam_common import IPAddress
from corecni_contrib.host_local.config import Range, RangeSet
from corecni_contrib.host_local.store import Store


def _address(r: Range, value: int) -> IPAddress:
    return type(r.range_start)(value)


def candidates(rangeset: RangeSet, last_reserved: IPAddress | None
               ) -> Iterator[tuple[Range, IPAddress]]:
    """Every allocatable address of the set once, in allocation order."""
    ranges = rangeset.ranges
    first_index, first = 0, int(ranges[0].range_start)
    if last_reserved is not None:
        for index, r in enumerate(ranges):
            if r.contains(last_reserved):
                if int(last_reserved) == int(r.range_end):
                    first_index = (index + 1) % len(ranges)
                    first = int(ranges[first_index].range_start)
                else:
                    first_index, first = index, int(last_reserved) + 1
                break
    # from `first` to the end of its range, then every other range whole, then
    # the part of the first range before `first`
    spans = [(first_index, first, int(ranges[first_index].range_end) + 1)]
    for step in range(1, len(ranges)):
        index = (first_index + step) % len(ranges)
        spans.append((index, int(ranges[index].range_start), int(ranges[index].range_end) + 1))
    spans.append((first_index, int(ranges[first_index].range_start), first))
    for index, lo, hi in spans:
        r = ranges[index]
        for value in range(lo, hi):
            ip = _address(r, value)
            if not r.reserved_reason(ip):
                yield r, ip


def assign_requested(ranges: Sequence[RangeSet], requested: Sequence[IPAddress]
                     ) -> dict[int, IPAddress]:
    """Give each range set the first requested address it contains (Go's order).

    An address that no set takes is an error before anything is reserved, so a
    refused request leaves the store untouched.
    """
    left = list(requested)
    out: dict[int, IPAddress] = {}
    for index, rangeset in enumerate(ranges):
        ip = next((ip for ip in left if rangeset.contains(ip)), None)
        if ip is not None:
            out[index] = ip
            left.remove(ip)
    if left:
        raise config_error("failed to allocate all requested IPs: "
                           + " ".join(str(ip) for ip in left),
                           "a requested IP must lie within rangeStart..rangeEnd of a range, "
                           "one per range set")
    return out


@attrs.frozen
class Lease:
    """An address of a range set held by the attachment; ``fresh`` if this call reserved it."""

    range: Range
    ip: IPAddress
    fresh: bool

    def ip_config(self) -> IPConfig:
        return IPConfig(address=f"{self.ip}/{self.range.subnet.prefixlen}",
                        gateway=str(self.range.gateway))


class Allocator:
    """Hands out one address of ``rangeset`` (the set with index ``range_id``)."""

    def __init__(self, rangeset: RangeSet, store: Store, range_id: int) -> None:
        self.rangeset = rangeset
        self.store = store
        self.range_id = range_id

    def get(self, container_id: str, ifname: str, requested: IPAddress | None,
            held: Sequence[IPAddress]) -> Lease:
        """The attachment's address in this set, reserving one if it holds none.

        ``held`` is what the attachment already holds in the store: an address
        of this set in it is returned again, which makes ADD idempotent (Go
        refuses a second ADD with "duplicate allocation is not allowed").
        """
        existing = next((ip for ip in held if self.rangeset.contains(ip)), None)
        if requested is not None:
            return self._get_requested(container_id, ifname, requested, existing)
        if existing is not None:
            r = self.rangeset.range_for(existing)
            assert r is not None
            return Lease(r, existing, fresh=False)
        last = self.store.last_reserved_ip(self.range_id)
        for r, ip in candidates(self.rangeset, last):
            if self.store.reserve(container_id, ifname, ip, self.range_id):
                return Lease(r, ip, fresh=True)
        raise CNIError(ErrorCode.INTERNAL,
                       f"no IP addresses available in range set: {self.rangeset}")

    def _get_requested(self, container_id: str, ifname: str, requested: IPAddress,
                       existing: IPAddress | None) -> Lease:
        r = self.rangeset.range_for(requested)
        if r is None:
            raise config_error(f"{requested} not in range set {self.rangeset}")
        if existing == requested:
            return Lease(r, requested, fresh=False)
        if existing is not None:
            raise CNIError(ErrorCode.INTERNAL,
                           f"{existing} has been allocated to {container_id}, duplicate "
                           "allocation is not allowed",
                           f"requested {requested} for {ifname}")
        reason = r.reserved_reason(requested)
        if reason:
            raise config_error(f"requested ip {requested} is {reason}")
        if not self.store.reserve(container_id, ifname, requested, self.range_id):
            raise CNIError(ErrorCode.INTERNAL,
                           f"requested IP address {requested} is not available in range set "
                           f"{self.rangeset}")
        return Lease(r, requested, fresh=True)
