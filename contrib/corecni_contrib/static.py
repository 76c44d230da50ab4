"""static IPAM: the addresses, routes and DNS written in the config, nothing stored.

Keys follow Go's ``static`` plugin (plugins v1.1.1, ``plugins/ipam/static``):
``addresses`` (``address`` in CIDR notation, optional ``gateway``), ``routes``
and ``dns``. Addresses can also come from the runtime, with Go's precedence:

1. CNI_ARGS ``IP=<cidr>[,<cidr>...]`` is *added* to the configured addresses,
   and CNI_ARGS ``GATEWAY=<ip>[,<ip>...]`` sets the gateway of those CNI_ARGS
   addresses whose subnet contains it;
2. ``args.cni.ips`` (CIDRs) *replaces* everything above;
3. ``runtimeConfig.ips`` (the ``ips`` capability) replaces everything above.

ADD returns them; DEL has nothing to release; CHECK validates the config and,
when a previous result is given, that every configured address is in it with
the configured gateway.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

import attrs

from corecni.kit import (
    Request,
    config_error,
    hookimpl,
    parse_cidr,
    parse_dns,
    parse_ip,
    parse_routes,
)
from corecni.spec.errors import CNIError, ErrorCode
from corecni.spec.result import DNS, IPConfig, Result, Route
from corecni.spec.version import CURRENT
from corecni_contrib._ipam_common import (
    IPAddress,
    IPInterface,
    args_cni_ips,
    check_one_per_family,
    ipam_section,
    opt_list,
    opt_str,
    runtime_ips,
)


@attrs.frozen
class StaticAddress:
    address: IPInterface
    gateway: IPAddress | None = None

    def ip_config(self) -> IPConfig:
        return IPConfig(address=str(self.address),
                        gateway=str(self.gateway) if self.gateway is not None else None)


@attrs.frozen
class StaticConfig:
    addresses: tuple[StaticAddress, ...] = ()
    routes: tuple[Route, ...] = ()
    dns: DNS = attrs.Factory(DNS)


def _configured(ipam: Mapping[str, Any]) -> list[StaticAddress]:
    out = []
    for index, item in enumerate(opt_list(ipam, "addresses", "ipam")):
        where = f"ipam.addresses[{index}]"
        if not isinstance(item, dict):
            raise config_error(f"{where} must be a JSON object", repr(item)[:200])
        address = parse_cidr(opt_str(item, "address", where), "the 'address' field")
        gateway_text = opt_str(item, "gateway", where)
        gateway = parse_ip(gateway_text, f"{where}.gateway") if gateway_text else None
        out.append(StaticAddress(address, gateway))
    return out


def _from_cni_args(request: Request) -> list[StaticAddress]:
    """CNI_ARGS ``IP`` (comma separated CIDRs) with gateways from ``GATEWAY``."""
    out = [StaticAddress(parse_cidr(item.strip(), "the 'ip' field"))
           for item in request.arg("IP").split(",") if item.strip()]
    for item in request.arg("GATEWAY").split(","):
        if not item.strip():
            continue
        gateway = parse_ip(item.strip(), "CNI_ARGS GATEWAY")
        out = [attrs.evolve(a, gateway=gateway)
               if gateway.version == a.address.version and gateway in a.address.network else a
               for a in out]
    return out


def load_config(request: Request) -> StaticConfig:
    ipam = ipam_section(request)
    addresses = _configured(ipam) + _from_cni_args(request)
    for source in (args_cni_ips(request), runtime_ips(request)):
        if source:  # each later source replaces what came before (Go's order)
            addresses = [StaticAddress(parse_cidr(text, "an entry in the 'ips' field"))
                         for text in source]
    for a in addresses:
        if a.gateway is not None and a.gateway.version != a.address.version:
            raise config_error(f"gateway {a.gateway} is not of the family of address "
                               f"{a.address}")
    check_one_per_family(request.cni_version, (a.address.version for a in addresses))
    return StaticConfig(addresses=tuple(addresses), routes=parse_routes(ipam),
                        dns=parse_dns(ipam.get("dns"), "ipam.dns"))


@hookimpl
def ipam_add(request: Request) -> Result:
    cfg = load_config(request)
    return Result(cni_version=request.cni_version or CURRENT,
                  ips=tuple(a.ip_config() for a in cfg.addresses),
                  routes=cfg.routes, dns=cfg.dns)


@hookimpl
def ipam_del(request: Request) -> None:
    """Nothing was allocated, so nothing is released (and a broken config is no reason
    to fail a DEL)."""


@hookimpl
def ipam_check(request: Request) -> None:
    cfg = load_config(request)
    prev = request.prev_result
    if prev is None:
        return
    have = {ipaddress.ip_interface(ip.address).ip: ip for ip in prev.ips}
    for a in cfg.addresses:
        found = have.get(a.address.ip)
        if found is None:
            raise CNIError(ErrorCode.INTERNAL,
                           f"static: address {a.address} is missing from the previous result",
                           f"interface {request.ifname}")
        if a.gateway is not None and (found.gateway is None
                                      or ipaddress.ip_address(found.gateway) != a.gateway):
            raise CNIError(ErrorCode.INTERNAL,
                           f"static: Failed to match addr {a.address.ip} on interface "
                           f"{request.ifname}",
                           f"gateway {found.gateway} instead of {a.gateway}")
