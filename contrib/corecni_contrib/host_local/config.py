"""host-local's configuration: ranges, range sets and where the state lives.

Keys, defaults and error texts follow Go's ``host-local`` (plugins v1.1.1,
``backend/allocator/{config,range,range_set}.go``): ``ranges`` is a list of
*range sets* (one address is handed out per set), the deprecated top-level
``subnet``/``rangeStart``/``rangeEnd``/``gateway`` form one more set in front,
and the ``ipRanges`` capability puts its sets before both. Everything is
validated once, here, so the allocator can trust a ``Range``.

Three checks go beyond Go, because Go accepts the config and then misbehaves:
a gateway outside its subnet, ``rangeStart`` after ``rangeEnd`` (Go words the
latter as "RangeEnd ... not in network"), and a /0 subnet (Go fails to allocate
from it, code 999).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from corecni.kit import Request, config_error, parse_ip, parse_ip_or_cidr, parse_routes
from corecni.spec.config import validate_network_name
from corecni.spec.errors import CNIError
from corecni.spec.result import Route
from corecni_contrib._ipam_common import (
    IPAddress,
    IPNetwork,
    args_cni_ips,
    check_one_per_family,
    ipam_section,
    opt_list,
    opt_str,
    runtime_ips,
)

#: Go's ``defaultDataDir``.
DEFAULT_DATA_DIR = "/var/lib/cni/networks"


@attrs.frozen
class Range:
    """One pool: ``range_start``..``range_end`` (inclusive) inside ``subnet``."""

    subnet: IPNetwork
    range_start: IPAddress
    range_end: IPAddress
    gateway: IPAddress

    @property
    def version(self) -> int:
        return self.subnet.version

    def contains(self, ip: IPAddress) -> bool:
        """Go's ``Range.Contains``: same family, in the subnet, within start..end."""
        return (ip.version == self.version and ip in self.subnet
                and int(self.range_start) <= int(ip) <= int(self.range_end))

    def reserved_reason(self, ip: IPAddress) -> str:
        """Why ``ip`` is never handed out ("" if it may be): gateway, network, broadcast."""
        if ip == self.gateway:
            return "subnet's gateway"
        if ip == self.subnet.network_address:
            return "subnet's network address"
        if self.version == 4 and ip == self.subnet.broadcast_address:
            return "subnet's broadcast address"
        return ""

    def overlaps(self, other: Range) -> bool:
        if self.version != other.version:
            return False
        return max(int(self.range_start), int(other.range_start)) <= \
            min(int(self.range_end), int(other.range_end))

    def __str__(self) -> str:
        return f"{self.range_start}-{self.range_end}"


@attrs.frozen
class RangeSet:
    """Disjoint ranges of one family; one address per set is allocated."""

    ranges: tuple[Range, ...]

    @property
    def version(self) -> int:
        return self.ranges[0].version

    def range_for(self, ip: IPAddress) -> Range | None:
        return next((r for r in self.ranges if r.contains(ip)), None)

    def contains(self, ip: IPAddress) -> bool:
        return self.range_for(ip) is not None

    def overlaps(self, other: RangeSet) -> bool:
        return any(a.overlaps(b) for a in self.ranges for b in other.ranges)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.ranges)


@attrs.frozen
class HostLocalConfig:
    """Everything ADD and CHECK need, validated."""

    name: str
    ranges: tuple[RangeSet, ...]
    routes: tuple[Route, ...] = ()
    data_dir: str = DEFAULT_DATA_DIR
    resolv_conf: str = ""
    requested_ips: tuple[IPAddress, ...] = ()


@attrs.frozen
class StoreLocation:
    """What DEL, GC and STATUS need: the state directory, nothing about ranges.

    Reading only this much lets DEL release an attachment even after its
    ranges were edited into something invalid.
    """

    data_dir: str
    network: str


def _parse_range(obj: Any, where: str, fail: Callable[..., CNIError]) -> Range:
    if not isinstance(obj, dict):
        raise fail("a range must be a JSON object", repr(obj)[:200])
    subnet_text = opt_str(obj, "subnet", where)
    if not subnet_text:
        raise fail("missing subnet")
    _, slash, prefix = subnet_text.partition("/")
    try:
        if not slash or not prefix.isdigit():  # Go's ParseCIDR: no netmask form
            raise ValueError(subnet_text)
        iface = ipaddress.ip_interface(subnet_text)
    except ValueError:
        raise fail(f"invalid CIDR address: {subnet_text}") from None
    subnet = iface.network
    if subnet.prefixlen == 0:  # Go fails to allocate from it; the gateway would be 0.0.0.1/0
        raise fail(f"Network {subnet} is the whole address space: it cannot be a subnet")
    if subnet.prefixlen > subnet.max_prefixlen - 2:  # no room beside network + gateway
        raise fail(f"Network {subnet} too small to allocate from")
    if iface.ip != subnet.network_address:
        raise fail(f"Network has host bits set. For a subnet mask of length "
                   f"{subnet.prefixlen} the network address is {subnet.network_address}")

    def address(key: str, default: IPAddress) -> IPAddress:
        text = opt_str(obj, key, where)
        if not text:
            return default
        try:
            ip = parse_ip(text, f"{where}.{key}")
        except CNIError as exc:
            raise fail(exc.msg, exc.details) from None
        if ip.version != subnet.version or ip not in subnet:
            raise fail(f"{key[0].upper()}{key[1:]} {ip} not in network {subnet}")
        return ip

    first = subnet.network_address + 1
    # Go's lastIP: the last address, minus the broadcast address for IPv4
    last = subnet.broadcast_address - 1 if subnet.version == 4 else subnet.broadcast_address
    gateway = address("gateway", first)
    start = address("rangeStart", first)
    end = address("rangeEnd", last)
    if int(start) > int(end):
        raise fail(f"RangeStart {start} is after RangeEnd {end}")
    return Range(subnet=subnet, range_start=start, range_end=end, gateway=gateway)


def parse_range_set(value: Any, index: int) -> RangeSet:
    """Go's ``RangeSet.Canonicalize``, with its "invalid range set N: ..." errors."""
    def fail(msg: str, details: str = "") -> CNIError:
        return config_error(f"invalid range set {index}: {msg}", details)

    if not isinstance(value, list):
        raise fail("a range set must be a list of ranges", repr(value)[:200])
    if not value:
        raise fail("empty range set")
    ranges = tuple(_parse_range(item, f"range set {index}, range {j}", fail)
                   for j, item in enumerate(value))
    if len({r.version for r in ranges}) > 1:
        raise fail("mixed address families")
    for i, r1 in enumerate(ranges):
        for r2 in ranges[i + 1:]:
            if r1.overlaps(r2):
                raise fail(f"subnets {r1} and {r2} overlap")
    return RangeSet(ranges)


def _raw_range_sets(ipam: Mapping[str, Any], runtime: Mapping[str, Any]) -> list[Any]:
    """``ipRanges`` capability, then the legacy top-level range, then ``ranges``."""
    sets: list[Any] = list(opt_list(runtime, "ipRanges", "runtimeConfig"))
    if opt_str(ipam, "subnet", "ipam"):
        legacy = {k: ipam[k] for k in ("subnet", "rangeStart", "rangeEnd", "gateway")
                  if k in ipam}
        sets.append([legacy])
    sets.extend(opt_list(ipam, "ranges", "ipam"))
    return sets


def requested_ips(request: Request) -> tuple[IPAddress, ...]:
    """Specific addresses asked for: CNI_ARGS ``IP``, ``args.cni.ips``, ``runtimeConfig.ips``.

    Each may be ``<ip>`` or ``<ip>/<prefix>`` (Go's ``ip.IP``); duplicates count once.
    """
    texts = [request.arg("IP")]
    texts += args_cni_ips(request)
    texts += runtime_ips(request)
    out: list[IPAddress] = []
    for text in texts:
        if not text:
            continue
        ip = parse_ip_or_cidr(text, "requested IPs")
        if ip not in out:
            out.append(ip)
    return tuple(out)


def store_location(request: Request) -> StoreLocation:
    ipam = ipam_section(request)
    name = validate_network_name(request.config.name)  # it becomes a directory name
    data_dir = opt_str(ipam, "dataDir", "ipam") or DEFAULT_DATA_DIR
    if "\x00" in data_dir:
        raise config_error("invalid ipam.dataDir: it contains a NUL byte", repr(data_dir)[:200])
    return StoreLocation(data_dir=data_dir, network=name)


def load_config(request: Request) -> HostLocalConfig:
    """Read and validate the whole host-local configuration of ``request``."""
    ipam = ipam_section(request)
    location = store_location(request)
    wanted = requested_ips(request)
    raw_sets = _raw_range_sets(ipam, request.config.runtime_config)
    if not raw_sets:
        raise config_error("no IP ranges specified")
    sets = tuple(parse_range_set(raw, i) for i, raw in enumerate(raw_sets))
    check_one_per_family(request.cni_version, (s.version for s in sets))
    for i, s1 in enumerate(sets):
        for j in range(i + 1, len(sets)):
            if s1.overlaps(sets[j]):
                raise config_error(f"range set {i} overlaps with {j}")
    return HostLocalConfig(
        name=location.network,
        ranges=sets,
        routes=parse_routes(ipam),
        data_dir=location.data_dir,
        resolv_conf=opt_str(ipam, "resolvConf", "ipam"),
        requested_ips=wanted,
    )
