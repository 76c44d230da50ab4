"""What the reference IPAM plugins (host-local, static) read the same way.

Both Go plugins decode the *whole* network config (an IPAM plugin is handed
its interface plugin's configuration), find their settings under ``ipam``,
and take requested addresses from three places: ``CNI_ARGS``, the
``args.cni.ips`` convention and the ``ips`` capability in ``runtimeConfig``.
The readers live here once so both plugins report a bad value the same way:
as a ``CNIError`` with code 7 naming the key. The generic readers (IPs,
CIDRs, routes, DNS) are ``corecni.kit``'s.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from corecni.kit import Request, config_error, dict_key, list_key, str_key, str_list
from corecni.spec import version as versions

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


def ipam_section(request: Request) -> Mapping[str, Any]:
    """The ``ipam`` object; Go's plugins refuse a config without one."""
    raw = request.config.raw
    if raw.get("ipam") is None:
        raise config_error("IPAM config missing 'ipam' key")
    section = dict_key(raw, "ipam", "'ipam'")
    if request.command != "DEL":  # Go's decoder refuses it too; a DEL must never fail on it
        opt_str(section, "type", "ipam")
    return section


def opt_str(obj: Mapping[str, Any], key: str, where: str) -> str:
    """An optional string key ("" when absent or null)."""
    return str_key(obj, key, f"{where}.{key}")


def opt_list(obj: Mapping[str, Any], key: str, where: str) -> list[Any]:
    """An optional list key ([] when absent or null)."""
    return list_key(obj, key, f"{where}.{key}")


def args_cni_ips(request: Request) -> list[str]:
    """``args.cni.ips`` (CONVENTIONS.md "args in network config")."""
    cni = dict_key(request.config.args, "cni", "args.cni")
    return str_list(cni.get("ips"), "args.cni.ips")


def runtime_ips(request: Request) -> list[str]:
    """``runtimeConfig.ips`` (the ``ips`` capability)."""
    return str_list(request.capability("ips"), "runtimeConfig.ips")


def check_one_per_family(cni_version: str, families: Iterable[int]) -> None:
    """Results before 0.3.0 hold one address per family (ip4/ip6); refuse more."""
    seen = list(families)
    if (seen.count(4) > 1 or seen.count(6) > 1) and cni_version and \
            versions.parse(cni_version) < (0, 3, 0):
        raise config_error(f"CNI version {cni_version} does not support more than 1 "
                           "address per family")
