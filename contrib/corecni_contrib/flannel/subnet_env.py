"""flanneld's ``subnet.env``: the node's lease, as the flannel CNI plugin reads it.

``FLANNEL_NETWORK`` (comma-separated, duplicates dropped), ``FLANNEL_SUBNET``,
their IPv6 twins, ``FLANNEL_MTU`` and ``FLANNEL_IPMASQ``; Go's plugin parses
CIDRs to their network (``10.1.17.1/24`` is ``10.1.17.0/24``) and names every
missing key in one error. Written by ``corecni flanneld`` (``render``) and by
flannel's own flanneld alike.
"""

from __future__ import annotations

import ipaddress

import attrs

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@attrs.frozen
class SubnetEnv:
    networks: tuple[IPNetwork, ...] = ()
    subnet: IPNetwork | None = None
    ipv6_networks: tuple[IPNetwork, ...] = ()
    ipv6_subnet: IPNetwork | None = None
    mtu: int | None = None
    ipmasq: bool | None = None

    def missing(self) -> str:
        """Go's ``subnetEnv.missing``: every absent key, comma-separated."""
        out = []
        if not self.networks and not self.ipv6_networks:
            out += ["FLANNEL_NETWORK", "FLANNEL_IPV6_NETWORK"]
        if self.subnet is None and self.ipv6_subnet is None:
            out += ["FLANNEL_SUBNET", "FLANNEL_IPV6_SUBNET"]
        if self.mtu is None:
            out.append("FLANNEL_MTU")
        if self.ipmasq is None:
            out.append("FLANNEL_IPMASQ")
        return ", ".join(out)


class SubnetEnvError(ValueError):
    """The file is unreadable, malformed or incomplete (the message says which)."""


def _networks(text: str) -> tuple[IPNetwork, ...]:
    out: list[IPNetwork] = []
    for cidr in text.split(","):
        net = _network(cidr)
        if net not in out:
            out.append(net)
    return tuple(out)


def _network(text: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise SubnetEnvError(f"invalid CIDR address: {text}") from None


def parse(text: str, source: str = "subnet.env") -> SubnetEnv:
    """The keys of ``text``; ``SubnetEnvError`` naming ``source`` when any is missing."""
    fields: dict[str, object] = {}
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key == "FLANNEL_NETWORK":
            fields["networks"] = _networks(value)
        elif key == "FLANNEL_SUBNET":
            fields["subnet"] = _network(value)
        elif key == "FLANNEL_IPV6_NETWORK":
            fields["ipv6_networks"] = _networks(value)
        elif key == "FLANNEL_IPV6_SUBNET":
            fields["ipv6_subnet"] = _network(value)
        elif key == "FLANNEL_MTU":
            if not value.strip().isdigit():
                raise SubnetEnvError(f"invalid FLANNEL_MTU: {value!r}")
            fields["mtu"] = int(value)
        elif key == "FLANNEL_IPMASQ":
            fields["ipmasq"] = value == "true"
    env = SubnetEnv(**fields)  # type: ignore[arg-type]
    missing = env.missing()
    if missing:
        raise SubnetEnvError(f"{source} is missing {missing}")
    return env


def load(path: str) -> SubnetEnv:
    try:
        with open(path, encoding="utf-8") as fh:
            return parse(fh.read(), path)
    except OSError as exc:
        raise SubnetEnvError(f"open {path}: {exc.strerror}") from None


def render(*, network: str, subnet: str, mtu: int, ipmasq: bool,
           ipv6_network: str = "", ipv6_subnet: str = "") -> str:
    """``subnet.env`` as flanneld writes it (the subnet with the gateway's address)."""
    lines = [f"FLANNEL_NETWORK={network}", f"FLANNEL_SUBNET={subnet}"]
    if ipv6_network:
        lines += [f"FLANNEL_IPV6_NETWORK={ipv6_network}", f"FLANNEL_IPV6_SUBNET={ipv6_subnet}"]
    lines += [f"FLANNEL_MTU={mtu}", f"FLANNEL_IPMASQ={'true' if ipmasq else 'false'}"]
    return "\n".join(lines) + "\n"
