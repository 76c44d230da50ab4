"""A pod's networking, aggregated over its networks (go-cni's ``Result``).

Each network's result is kept as it came (``raw``, by network name); the
aggregate is by interface name, so a runtime reads ``eth0``'s addresses and
MAC without knowing which plugin of which chain reported them.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from corecni.spec.result import DNS, IPConfig, Result, Route


@attrs.frozen
class InterfaceState:
    """One interface of the pod: its addresses, MAC and sandbox."""

    name: str
    mac: str = ""
    sandbox: str = ""
    ips: tuple[IPConfig, ...] = ()


@attrs.frozen
class PodResult:
    """Interfaces by name, every route and DNS config, and the raw results."""

    interfaces: Mapping[str, InterfaceState]
    routes: tuple[Route, ...] = ()
    dns: tuple[DNS, ...] = ()
    raw: Mapping[str, Result] = attrs.field(factory=dict)

    @classmethod
    def aggregate(cls, results: Mapping[str, Result]) -> PodResult:
        """Fold ``{network: result}``: an address goes to the interface its index names
        (an unindexed one to every sandbox interface of that result)."""
        interfaces: dict[str, InterfaceState] = {}
        routes: list[Route] = []
        dns: list[DNS] = []
        for result in results.values():
            for index, iface in enumerate(result.interfaces):
                if not iface.sandbox:
                    continue  # host-side ends (the veth on the bridge) are not the pod's
                ips = tuple(ip for ip in result.ips if ip.interface in (None, index))
                old = interfaces.get(iface.name)
                merged = ips if old is None else old.ips + tuple(i for i in ips
                                                                 if i not in old.ips)
                interfaces[iface.name] = InterfaceState(iface.name, iface.mac or (
                    old.mac if old else ""), iface.sandbox, merged)
            routes.extend(r for r in result.routes if r not in routes)
            if not result.dns.is_empty() and result.dns not in dns:
                dns.append(result.dns)
        return cls(interfaces=interfaces, routes=tuple(routes), dns=tuple(dns),
                   raw=dict(results))
