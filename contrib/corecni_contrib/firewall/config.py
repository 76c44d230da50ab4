"""firewall's config: Go's ``FirewallNetConf`` keys, validated before any rule is written."""

from __future__ import annotations

import ipaddress
import re

import attrs

from corecni.kit import CNIError, ErrorCode, Request, Result, config_error, str_key
from corecni.kit.firewall import find_tool

BACKENDS = ("iptables", "nftables", "firewalld")
POLICIES = ("open", "same-bridge", "isolated")
DEFAULT_ADMIN_CHAIN = "CNI-ADMIN"
_CHAIN_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,28}$")


def default_backend() -> str:
    """Go picks firewalld when it runs, else iptables; corecni has no firewalld
    client, so iptables unless only nftables is installed."""
    if find_tool("iptables-restore") is None and find_tool("nft") is not None:
        return "nftables"
    return "iptables"


@attrs.frozen
class FirewallConf:
    """``backend``, ``iptablesAdminChainName``, ``firewalldZone``, ``ingressPolicy``."""

    network: str
    container_id: str
    backend: str
    admin_chain: str = DEFAULT_ADMIN_CHAIN
    zone: str = "trusted"
    ingress_policy: str = "open"

    @classmethod
    def from_request(cls, request: Request) -> FirewallConf:
        raw = request.config.raw
        backend = str_key(raw, "backend") or default_backend()
        if backend not in BACKENDS:
            raise config_error(f"unknown firewall backend {backend!r}",
                               f"expected one of {', '.join(BACKENDS)}")
        admin = str_key(raw, "iptablesAdminChainName") or DEFAULT_ADMIN_CHAIN
        if not _CHAIN_NAME.match(admin):
            raise config_error(f"invalid iptablesAdminChainName {admin!r}",
                               "1 to 28 letters, digits, '_', '.' or '-'")
        policy = str_key(raw, "ingressPolicy") or "open"
        if policy not in POLICIES:
            raise config_error(f"unknown ingress policy: {policy!r}",
                               f"expected one of {', '.join(POLICIES)}")
        return cls(network=request.config.name, container_id=request.container_id,
                   backend=backend, admin_chain=admin,
                   zone=str_key(raw, "firewalldZone") or "trusted", ingress_policy=policy)

    def refuse_firewalld(self) -> None:
        if self.backend == "firewalld":
            raise CNIError(ErrorCode.INVALID_NETWORK_CONFIG,
                           "firewall: the firewalld backend is not supported here",
                           "corecni's firewall plugin writes iptables or nftables rules; "
                           "use \"backend\": \"iptables\" or \"nftables\", or Go's plugin "
                           "for firewalld")


def addresses(result: Result | None) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every address of the previous result (Go's firewall opens them all)."""
    if result is None:
        return []
    return [ipaddress.ip_interface(ip.address).ip for ip in result.ips]


def bridge_name(result: Result, policy: str) -> str:
    """Go: the bridge is the result's first interface (chain the plugin after bridge)."""
    if not result.interfaces or not result.interfaces[0].name:
        raise config_error(f"interface needs to be set for ingress policy {policy!r}, make "
                           "sure to chain \"firewall\" plugin with \"bridge\"")
    return result.interfaces[0].name
