"""portmap's config: Go's ``PortMapConf`` keys, read and validated at the boundary.

Everything a bad config or a bad ``portMappings`` entry can get wrong is refused
here with code 7, before a single rule is written, so a refused ADD leaves nothing
behind. corecni is stricter than Go where Go would write a rule the kernel then
rejects half-way (a port out of range, an unknown protocol) or one that can never
match (two mappings of the same host port, protocol and host IP).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

import attrs

from corecni.kit import (
    Request,
    Result,
    bool_key,
    config_error,
    dict_key,
    int_key,
    list_key,
    parse_ip,
    str_key,
    str_list,
)
from corecni.kit.firewall import find_tool

BACKENDS = ("iptables", "nftables")
PROTOCOLS = ("tcp", "udp", "sctp")
DEFAULT_MARK_BIT = 13  # Go: Kubernetes uses 14 and 15, Calico 20-31

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


@attrs.frozen
class PortMapping:
    """One ``portMappings`` entry (CONVENTIONS.md), validated."""

    host_port: int
    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""  # "" or an address in its canonical form

    @property
    def host_family(self) -> int | None:
        """4 or 6 for a ``hostIP``, None when the mapping is for every family."""
        return ipaddress.ip_address(self.host_ip).version if self.host_ip else None

    def serves(self, family: int) -> bool:
        """Go skips a mapping whose hostIP is of the other family."""
        return self.host_family in (None, family)

    @property
    def dest_ip(self) -> str:
        """The hostIP a rule matches on ("" for an unspecified one: any local address)."""
        if not self.host_ip or ipaddress.ip_address(self.host_ip).is_unspecified:
            return ""
        return self.host_ip


def _port(entry: dict[str, object], key: str, index: int) -> int:
    value = int_key(entry, key, f"portMappings[{index}].{key}")
    if not 1 <= value <= 65535:
        raise config_error(f"invalid {key} {value} in portMappings[{index}]",
                           "ports must be between 1 and 65535")
    return value


def parse_mappings(raw: object) -> tuple[PortMapping, ...]:
    """The ``portMappings`` capability: every entry checked, duplicates refused."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise config_error("runtimeConfig.portMappings must be a list", repr(raw)[:200])
    out: list[PortMapping] = []
    seen: dict[tuple[int, str, str], int] = {}
    for index, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise config_error(f"portMappings[{index}] must be a JSON object", repr(entry)[:200])
        protocol = str_key(entry, "protocol", f"portMappings[{index}].protocol").lower() or "tcp"
        if protocol not in PROTOCOLS:
            raise config_error(f"unknown protocol {protocol!r} in portMappings[{index}]",
                               f"expected one of {', '.join(PROTOCOLS)}")
        host_ip = str_key(entry, "hostIP", f"portMappings[{index}].hostIP")
        if host_ip:
            host_ip = str(parse_ip(host_ip, f"portMappings[{index}].hostIP"))
        mapping = PortMapping(_port(entry, "hostPort", index),
                              _port(entry, "containerPort", index), protocol, host_ip)
        key = (mapping.host_port, protocol, mapping.dest_ip or f"any{mapping.host_family}")
        if key in seen:
            raise config_error(
                f"portMappings[{index}] repeats hostPort {mapping.host_port}/{protocol}"
                f"{' on ' + host_ip if host_ip else ''} of portMappings[{seen[key]}]",
                "one host port, protocol and host IP can reach one container port only")
        seen[key] = index
        out.append(mapping)
    return tuple(out)


def _conditions(raw: Mapping[str, Any], key: str) -> tuple[str, ...] | None:
    if raw.get(key) is None:
        return None
    return tuple(str_list(list_key(raw, key), repr(key)))


def _backend_of(conditions: tuple[str, ...] | None) -> str:
    """Go's ``detectBackendOfConditions``: iptables conditions start with - or !."""
    if not conditions or not conditions[0]:
        return ""
    return "iptables" if conditions[0][0] in "-!" else "nftables"


def default_backend() -> str:
    """Go: iptables, unless only nftables is installed."""
    if find_tool("iptables-restore") is None and find_tool("nft") is not None:
        return "nftables"
    return "iptables"


def container_ips(result: Result | None, ifname: str) -> tuple[IPInterface | None,
                                                                 IPInterface | None]:
    """Go's pick: the first v4 and the first v6 address of the sandbox interface
    ``ifname`` (or of no named interface) in the previous result."""
    v4: IPInterface | None = None
    v6: IPInterface | None = None
    if result is None:
        return v4, v6
    for ip in result.ips:
        address = ipaddress.ip_interface(ip.address)
        if (v4 if address.version == 4 else v6) is not None:
            continue
        index = ip.interface
        if index is not None and 0 <= index < len(result.interfaces):
            iface = result.interfaces[index]
            if iface.name != ifname or not iface.sandbox:
                continue
        if address.version == 4:
            v4 = address
        else:
            v6 = address
    return v4, v6


@attrs.frozen
class PortMapConf:
    """Go's portmap keys: ``backend``, ``snat``, ``conditionsV4``/``conditionsV6``,
    ``masqAll``, ``markMasqBit``, ``externalSetMarkChain`` and the
    ``portMappings`` capability."""

    network: str
    container_id: str
    backend: str
    snat: bool = True
    masq_all: bool = False
    mark_masq_bit: int = DEFAULT_MARK_BIT
    external_set_mark_chain: str | None = None
    conditions_v4: tuple[str, ...] | None = None
    conditions_v6: tuple[str, ...] | None = None
    mappings: tuple[PortMapping, ...] = ()

    @classmethod
    def from_request(cls, request: Request) -> PortMapConf:
        raw = request.config.raw
        snat = True if raw.get("snat") is None else bool_key(raw, "snat")
        external = raw.get("externalSetMarkChain")
        if external is not None:
            external = str_key(raw, "externalSetMarkChain")
        if raw.get("markMasqBit") is not None and external is not None:
            raise config_error("cannot specify externalSetMarkChain and markMasqBit")
        bit = DEFAULT_MARK_BIT if raw.get("markMasqBit") is None else int_key(raw, "markMasqBit")
        if not 0 <= bit <= 31:
            raise config_error("markMasqBit must be between 0 and 31", str(bit))
        cond4, cond6 = _conditions(raw, "conditionsV4"), _conditions(raw, "conditionsV6")
        backend = str_key(raw, "backend") or default_backend()
        if backend not in BACKENDS:
            raise config_error(f"unknown portmap backend {backend!r}",
                               f"expected one of {', '.join(BACKENDS)}")
        wrong = [key for key, value in (("conditionsV4", cond4), ("conditionsV6", cond6))
                 if _backend_of(value) not in ("", backend)]
        if external is not None and backend != "iptables":
            wrong.insert(0, "externalSetMarkChain")
        if wrong:
            other = "nftables" if backend == "iptables" else "iptables"
            raise config_error(f"{backend} backend was requested but configuration contains "
                               f"{other}-specific options {wrong}")
        runtime = dict_key(raw, "runtimeConfig")
        return cls(network=request.config.name, container_id=request.container_id,
                   backend=backend, snat=snat, masq_all=bool_key(raw, "masqAll"),
                   mark_masq_bit=bit, external_set_mark_chain=external,
                   conditions_v4=cond4, conditions_v6=cond6,
                   mappings=parse_mappings(runtime.get("portMappings")))

    def conditions(self, family: int) -> tuple[str, ...]:
        return (self.conditions_v4 if family == 4 else self.conditions_v6) or ()
