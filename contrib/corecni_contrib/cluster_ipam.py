"""``cluster-ipam``: one address range shared by every node, allocated in etcd.

Keys modelled on whereabouts': ``range`` (a CIDR, which may carry
``range_start``/``range_end`` inside it), ``range_start``, ``range_end``,
``exclude`` (CIDRs never handed out), ``gateway``, ``routes``, ``dns``, and the
store: ``etcd_endpoints`` (list of ``http://host:port``; whereabouts'
``etcd_host`` also works), ``etcd_prefix`` (default ``/corecni/ipam``),
``etcd_ca_cert``/``etcd_cert``/``etcd_key`` for TLS.

Layout under ``<prefix>/<network>/``: ``ips/<address>`` holds the owner
(``{"containerID", "ifname"}``) and ``owners/<containerID>/<ifname>`` the address.
An allocation is one etcd transaction creating both keys only if neither
exists: concurrent ADDs on any number of nodes never share an address and no
node needs a lock or a leader. Candidates are probed from a random point of
the range so racing nodes rarely collide. DEL deletes both keys while the
address still names the owner; GC (spec 1.1) releases every owner that is not
a valid attachment, which is also what cleans up after an ADD killed between
its allocation and its result.

``python -m corecni_contrib.cluster_ipam list --etcd URL --network NAME`` shows
the allocations.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from corecni.kit import (
    CNIError,
    ErrorCode,
    IPConfig,
    Request,
    Result,
    config_error,
    dict_key,
    hookimpl,
    parse_dns,
    parse_ip,
    parse_routes,
    str_key,
    str_list,
)
from corecni.spec.result import DNS, Route
from corecni_contrib.etcd_store import EtcdStore

DEFAULT_PREFIX = "/corecni/ipam"
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@attrs.frozen
class ClusterRange:
    """The allocatable addresses: ``start``..``end`` of ``network`` minus ``exclude``."""

    network: IPNetwork
    start: int
    end: int
    exclude: tuple[IPNetwork, ...] = ()
    gateway: str | None = None

    def allocatable(self, value: int) -> bool:
        ip = ipaddress.ip_address(value)
        if self.gateway is not None and str(ip) == self.gateway:
            return False
        return not any(ip in net for net in self.exclude)

    def probe(self, taken: set[int], rng: random.Random) -> Iterator[int]:
        """Free candidates, from a random point, wrapping once round the range."""
        size = self.end - self.start + 1
        first = rng.randrange(size)
        for offset in range(size):
            value = self.start + (first + offset) % size
            if value not in taken and self.allocatable(value):
                yield value

    def address(self, value: int) -> str:
        return f"{ipaddress.ip_address(value)}/{self.network.prefixlen}"


def _bounds(network: IPNetwork, start: str, end: str) -> tuple[int, int]:
    first, last = int(network.network_address), int(network.broadcast_address)
    if network.version == 4 and network.prefixlen < 31:
        first, last = first + 1, last - 1  # never the network or broadcast address
    elif network.version == 6 and network.prefixlen < 127:
        first += 1  # the subnet-router anycast address
    lo = int(parse_ip(start, "range_start")) if start else first
    hi = int(parse_ip(end, "range_end")) if end else last
    if not (first <= lo <= last and first <= hi <= last):
        raise config_error("range_start and range_end must lie inside range",
                           f"{start or '-'}..{end or '-'} in {network}")
    if lo > hi:
        raise config_error("range_start is after range_end", f"{start} > {end}")
    return lo, hi


@attrs.frozen
class ClusterIPAMConf:
    range: ClusterRange
    endpoints: tuple[str, ...]
    prefix: str
    routes: tuple[Route, ...]
    dns: DNS
    tls: tuple[str | None, str | None, str | None]

    @classmethod
    def from_request(cls, request: Request) -> ClusterIPAMConf:
        ipam = dict_key(request.config.raw, "ipam", "'ipam'")
        text = str_key(ipam, "range", "ipam.range")
        if not text:
            raise config_error("ipam.range is required", "a CIDR such as 10.20.0.0/16")
        try:
            iface = ipaddress.ip_interface(text)
        except ValueError:
            raise config_error("invalid ipam.range", repr(text)) from None
        network = iface.network
        if network.prefixlen == 0:
            raise config_error("ipam.range must not be the whole address space", text)
        start = str_key(ipam, "range_start", "ipam.range_start")
        if not start and iface.ip != network.network_address:
            start = str(iface.ip)  # whereabouts: "10.0.0.100/24" starts at .100
        lo, hi = _bounds(network, start, str_key(ipam, "range_end", "ipam.range_end"))
        exclude = []
        for item in str_list(ipam.get("exclude"), "ipam.exclude"):
            try:
                exclude.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise config_error("invalid ipam.exclude entry", repr(item)) from None
        gateway = str_key(ipam, "gateway", "ipam.gateway")
        gw = str(parse_ip(gateway, "ipam.gateway")) if gateway else None
        endpoints = tuple(str_list(ipam.get("etcd_endpoints"), "ipam.etcd_endpoints"))
        host = str_key(ipam, "etcd_host", "ipam.etcd_host")
        if host:
            endpoints += (host,)
        if not endpoints:
            raise config_error("ipam.etcd_endpoints is required",
                               "the etcd client URLs, e.g. [\"http://10.0.0.5:2379\"]")
        prefix = (str_key(ipam, "etcd_prefix", "ipam.etcd_prefix") or DEFAULT_PREFIX)
        return cls(range=ClusterRange(network, lo, hi, tuple(exclude), gw),
                   endpoints=endpoints, prefix=prefix.rstrip("/"),
                   routes=parse_routes(ipam),
                   dns=parse_dns(ipam.get("dns"), "ipam.dns"),
                   tls=(str_key(ipam, "etcd_ca_cert") or None,
                        str_key(ipam, "etcd_cert") or None, str_key(ipam, "etcd_key") or None))

    def store(self) -> EtcdStore:
        ca, cert, key = self.tls
        return EtcdStore(self.endpoints, ca_cert=ca, cert=cert, key=key)


class Keys:
    """The key layout of one network."""

    def __init__(self, prefix: str, network: str) -> None:
        self.base = f"{prefix}/{network}"

    def ip(self, address: str) -> str:
        return f"{self.base}/ips/{address}"

    @property
    def ips(self) -> str:
        return f"{self.base}/ips/"

    def owner(self, container_id: str, ifname: str) -> str:
        return f"{self.base}/owners/{container_id}/{ifname}"

    @property
    def owners(self) -> str:
        return f"{self.base}/owners/"


def _owner_value(request: Request) -> str:
    return json.dumps({"containerID": request.container_id, "ifname": request.ifname},
                      sort_keys=True)


def _result(conf: ClusterIPAMConf, request: Request, address: str) -> Result:
    return Result(cni_version=request.cni_version or "1.1.0",
                  ips=(IPConfig(address=address, gateway=conf.range.gateway),),
                  routes=conf.routes, dns=conf.dns)


def allocate(store: EtcdStore, keys: Keys, conf: ClusterIPAMConf, request: Request,
             rng: random.Random | None = None) -> str:
    """The attachment's address: its existing one, or a new one won by CAS."""
    owner_key = keys.owner(request.container_id, request.ifname)
    existing = store.get(owner_key)
    if existing is not None:
        return existing
    value = _owner_value(request)
    for _ in range(3):  # re-read the taken set when a whole pass lost every race
        taken = {int(ipaddress.ip_address(k[len(keys.ips):]))
                 for k in store.get_prefix(keys.ips)}
        for candidate in conf.range.probe(taken, rng or random.Random()):
            ip = str(ipaddress.ip_address(candidate))
            if store.create_all({keys.ip(ip): value, owner_key: conf.range.address(candidate)}):
                return conf.range.address(candidate)
            existing = store.get(owner_key)
            if existing is not None:  # a concurrent ADD of this attachment won
                return existing
    raise CNIError(ErrorCode.INTERNAL, "no IP addresses available in range",
                   f"{conf.range.network} ({request.config.name})")


def release(store: EtcdStore, keys: Keys, container_id: str, ifname: str) -> None:
    owner_key = keys.owner(container_id, ifname)
    address = store.get(owner_key)
    if address is None:
        return
    ip = address.split("/")[0]
    owner = json.dumps({"containerID": container_id, "ifname": ifname}, sort_keys=True)
    if not store.delete_if(keys.ip(ip), owner, also=(owner_key,)):
        store.delete(owner_key)  # the address names someone else: only our index goes


@hookimpl
def ipam_add(request: Request) -> Result:
    conf = ClusterIPAMConf.from_request(request)
    keys = Keys(conf.prefix, request.config.name)
    return _result(conf, request, allocate(conf.store(), keys, conf, request))


@hookimpl
def ipam_del(request: Request) -> None:
    conf = ClusterIPAMConf.from_request(request)
    release(conf.store(), Keys(conf.prefix, request.config.name), request.container_id,
            request.ifname)


@hookimpl
def ipam_check(request: Request) -> None:
    conf = ClusterIPAMConf.from_request(request)
    store = conf.store()
    keys = Keys(conf.prefix, request.config.name)
    address = store.get(keys.owner(request.container_id, request.ifname))
    if address is None:
        raise CNIError(ErrorCode.INTERNAL, "cluster-ipam: no allocation for this attachment",
                       f"{request.container_id}/{request.ifname}")
    if store.get(keys.ip(address.split("/")[0])) != _owner_value(request):
        raise CNIError(ErrorCode.INTERNAL, f"cluster-ipam: {address} is held by another "
                       "attachment", f"{request.container_id}/{request.ifname}")


@hookimpl
def plugin_gc(request: Request) -> None:
    conf = ClusterIPAMConf.from_request(request)
    store = conf.store()
    keys = Keys(conf.prefix, request.config.name)
    valid = {(a.container_id, a.ifname) for a in request.valid_attachments}
    for key in store.get_prefix(keys.owners):
        container_id, _, ifname = key[len(keys.owners):].partition("/")
        if (container_id, ifname) not in valid:
            release(store, keys, container_id, ifname)


@hookimpl
def plugin_status(request: Request) -> None:
    """Ready when etcd answers (code 50 otherwise: no ADD can succeed)."""
    conf = ClusterIPAMConf.from_request(request)
    try:
        conf.store().get(f"{conf.prefix}/")
    except CNIError as exc:
        raise CNIError(ErrorCode.PLUGIN_NOT_AVAILABLE, exc.msg, exc.details) from None


# ---- the CLI view -----------------------------------------------------------------

def allocations(store: EtcdStore, prefix: str, network: str) -> list[dict[str, Any]]:
    """Every allocation of ``network``: address, containerID, ifname."""
    keys = Keys(prefix, network)
    out = []
    for key, value in sorted(store.get_prefix(keys.ips).items()):
        owner: Mapping[str, Any] = json.loads(value) if value.startswith("{") else {}
        out.append({"address": key[len(keys.ips):], **owner})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m corecni_contrib.cluster_ipam",
                                     description="Show cluster-ipam allocations in etcd.",
                                     epilog="example: python -m corecni_contrib.cluster_ipam "
                                            "list --etcd http://10.0.0.5:2379 --network pods")
    sub = parser.add_subparsers(dest="command", required=True)
    show = sub.add_parser("list", help="list the allocations of a network")
    show.add_argument("--etcd", action="append", required=True, help="etcd client URL")
    show.add_argument("--network", required=True, help="the CNI network name")
    show.add_argument("--prefix", default=DEFAULT_PREFIX, help="the etcd key prefix")
    show.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    try:
        rows = allocations(EtcdStore(args.etcd), args.prefix.rstrip("/"), args.network)
    except CNIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            print(f"{row['address']:<40} {row.get('containerID', '?')} "
                  f"{row.get('ifname', '?')}")
        print(f"{len(rows)} allocation(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
