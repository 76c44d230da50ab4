"""Reading a plugin's config keys the way Go's ``json.Unmarshal`` reads them.

An absent or null key is the zero value of its field; a key of another JSON
type is a config error (code 7) naming the key and showing the value. Plugins
written for Go's configs then accept and refuse exactly what Go's do, and
every refusal names the key a user has to fix.

Kept import-light on purpose: an exec'd plugin pays for every module here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any, TypeVar

import attrs

from corecni.spec.errors import CNIError, ErrorCode
from corecni.spec.result import DNS, Route

T = TypeVar("T")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

#: how an error names the JSON type a key must have
_JSON_TYPES: dict[type, str] = {str: "a string", int: "an integer", bool: "a boolean",
                                list: "a list", dict: "a JSON object"}

def config_error(msg: str, details: str = "") -> CNIError:
    """Code 7: the network configuration (or what the runtime asked for) cannot be served."""
    return CNIError(ErrorCode.INVALID_NETWORK_CONFIG, msg, details)


def typed_key(obj: Mapping[str, Any], key: str, kind: type[T], zero: T,
              label: str | None = None) -> T:
    """``obj[key]`` as a Go field of type ``kind``: ``zero`` when absent or null, code 7
    ("<label> must be a string", ...) when of another type. A JSON boolean is not an
    integer (Go refuses it), though Python's ``bool`` is an ``int``. ``label`` names
    the key in errors (default: the key, quoted)."""
    value = obj.get(key)
    if value is None:
        return zero
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise config_error(f"{label or repr(key)} must be {_JSON_TYPES[kind]}",
                           repr(value)[:200])
    return value


def str_key(obj: Mapping[str, Any], key: str, label: str | None = None) -> str:
    """A string key, "" when absent."""
    return typed_key(obj, key, str, "", label)


def int_key(obj: Mapping[str, Any], key: str, label: str | None = None) -> int:
    """An integer key, 0 when absent (a JSON boolean is refused)."""
    return typed_key(obj, key, int, 0, label)


def bool_key(obj: Mapping[str, Any], key: str, label: str | None = None) -> bool:
    """A boolean key, False when absent."""
    return typed_key(obj, key, bool, False, label)


def list_key(obj: Mapping[str, Any], key: str, label: str | None = None) -> list[Any]:
    """A list key, [] when absent."""
    return typed_key(obj, key, list, [], label)


def dict_key(obj: Mapping[str, Any], key: str, label: str | None = None) -> dict[str, Any]:
    """A JSON object key, {} when absent."""
    return typed_key(obj, key, dict, {}, label)


def str_list(value: Any, label: str) -> list[str]:
    """A list of strings (``None`` is empty); code 7 naming ``label`` otherwise."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise config_error(f"{label} must be a list of strings", repr(value)[:200])
    return value


def parse_dns(value: Any, label: str = "'dns'") -> DNS:
    """A ``dns`` object; a malformed one is code 7 saying which (``label``)."""
    try:
        return DNS.from_dict(value)
    except CNIError as exc:
        raise config_error(f"invalid {label}: {exc.msg}", exc.details) from None


def dns_key(raw: Mapping[str, Any]) -> DNS:
    """The config's own ``dns`` key: what Go's interface plugins put in their result."""
    return parse_dns(raw.get("dns"), "'dns'")


def ipam_type(raw: Mapping[str, Any]) -> str:
    """``ipam.type``, "" when there is no IPAM (Go's ``n.IPAM.Type == ""``)."""
    return str_key(dict_key(raw, "ipam"), "type", "ipam.type")


def parse_mac(value: str, what: str) -> str:
    """A 6-byte MAC (``:`` or ``-`` separated) in the kernel's lower-case form; code 7
    naming ``what`` otherwise."""
    parts = value.replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(p) == 2 and _is_hex(p) for p in parts):
        raise config_error(f"invalid {what} {value!r}", "expected a MAC such as 02:42:ac:11:00:02")
    return ":".join(parts).lower()


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


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


def parse_routes(obj: Mapping[str, Any], where: str = "ipam") -> tuple[Route, ...]:
    """``routes``: each ``{"dst": CIDR, "gw"?: IP}`` (libcni's optional extras too)."""
    routes = []
    for index, item in enumerate(list_key(obj, "routes", f"{where}.routes")):
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
