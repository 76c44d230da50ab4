"""What the reference IPAM plugins (host-local, static) read the same way.

Both Go plugins decode the *whole* network config (an IPAM plugin is handed
its interface plugin's configuration), find their settings under ``ipam``,
and take requested addresses from three places: ``CNI_ARGS``, the
``args.cni.ips`` convention and the ``ips`` capability in ``runtimeConfig``.
The readers live here once so both plugins report a bad value the same way:
as a ``CNIError`` with code 7 naming the key.

Kept import-light on purpose: an exec'd plugin pays for every module here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from corecni.plugin import Request
from corecni.spec import version as versions
from corecni.spec.errors import CNIError
from corecni.spec.result import DNS, Route
from corecni_contrib import _config_keys
from corecni_contrib._config_keys import config_error as config_error

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


def ipam_section(request: Request) -> Mapping[str, Any]:
    """The ``ipam`` object; Go's plugins refuse a config without one."""
    raw = request.config.raw
    if raw.get("ipam") is None:
        raise config_error("IPAM config missing 'ipam' key")
    return _config_keys.optional(raw, "ipam", dict, {}, "'ipam'")


def opt_str(obj: Mapping[str, Any], key: str, where: str) -> str:
    """An optional string key ("" when absent or null)."""
    return _config_keys.optional(obj, key, str, "", f"{where}.{key}")


def opt_list(obj: Mapping[str, Any], key: str, where: str) -> list[Any]:
    """An optional list key ([] when absent or null)."""
    return _config_keys.optional(obj, key, list, [], f"{where}.{key}")


def canonical_ip(ip: IPAddress) -> IPAddress:
    """Go's ``canonicalizeIP``: an IPv4-mapped IPv6 address is the IPv4 address."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def parse_ip(text: str, what: str) -> IPAddress:
    try:
        return canonical_ip(ipaddress.ip_address(text))
    except ValueError:
        raise config_error(f"invalid IP address in {what}", repr(text)) from None


def parse_ip_or_cidr(text: str, what: str) -> IPAddress:
    """Go's ``ip.ParseIP``: ``<ip>`` or ``<ip>/<prefix>``; only the address counts."""
    if "/" in text:
        try:
            return canonical_ip(ipaddress.ip_interface(text).ip)
        except ValueError:
            raise config_error(f"invalid IP address in {what}", repr(text)) from None
    return parse_ip(text, what)


def parse_cidr(text: str, what: str) -> IPInterface:
    """``<ip>/<prefix length>`` as Go's ``net.ParseCIDR`` takes it (no netmask form)."""
    _, slash, prefix = text.partition("/")
    try:
        if not slash or not prefix.isdigit():
            raise ValueError(text)
        return ipaddress.ip_interface(text)
    except ValueError:
        raise config_error(f"{what} is expected to be in CIDR notation, got: '{text}'") from None


def parse_routes(ipam: Mapping[str, Any], where: str = "ipam") -> tuple[Route, ...]:
    """``routes``: each ``{"dst": CIDR, "gw"?: IP}`` (libcni's optional extras too)."""
    routes = []
    for index, item in enumerate(opt_list(ipam, "routes", where)):
        try:
            route = Route.from_dict(item)
            # Go re-prints what it parsed: "3ffe:ffff:0:01ff::1/64" becomes
            # "3ffe:ffff:0:1ff::1/64" (host bits kept); results must not differ
            dst = str(ipaddress.ip_interface(route.dst))
        except (CNIError, ValueError) as exc:  # a decoding failure here is a config error
            msg, details = (exc.msg, exc.details) if isinstance(exc, CNIError) else \
                ("invalid routes[].dst", str(exc))
            raise config_error(f"invalid {where}.routes[{index}]: {msg}", details) from None
        gw = str(ipaddress.ip_address(route.gw)) if route.gw else None
        routes.append(attrs.evolve(route, dst=dst, gw=gw))
    return tuple(routes)


def parse_dns(value: Any, where: str = "ipam.dns") -> DNS:
    return _config_keys.parse_dns(value, where)


def cni_arg(request: Request, key: str) -> str:
    """The value of ``key`` in CNI_ARGS (the last one wins), or "".

    Unknown keys are ignored: Go's plugins fail on them unless the runtime adds
    ``IgnoreUnknown=1`` (every real runtime does); failing helps nobody.
    """
    value = ""
    for k, v in request.args:
        if k == key:
            value = v
    return value


def _str_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise config_error(f"{where} must be a list of strings", repr(value)[:200])
    return value


def args_cni_ips(request: Request) -> list[str]:
    """``args.cni.ips`` (CONVENTIONS.md "args in network config")."""
    cni = _config_keys.optional(request.config.args, "cni", dict, {}, "args.cni")
    return _str_list(cni.get("ips"), "args.cni.ips")


def runtime_ips(request: Request) -> list[str]:
    """``runtimeConfig.ips`` (the ``ips`` capability)."""
    return _str_list(request.config.runtime_config.get("ips"), "runtimeConfig.ips")


def check_one_per_family(cni_version: str, families: Iterable[int]) -> None:
    """Results before 0.3.0 hold one address per family (ip4/ip6); refuse more."""
    seen = list(families)
    if (seen.count(4) > 1 or seen.count(6) > 1) and cni_version and \
            versions.parse(cni_version) < (0, 3, 0):
        raise config_error(f"CNI version {cni_version} does not support more than 1 "
                           "address per family")
