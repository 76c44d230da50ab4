"""Results: one internal model (the 1.x shape) read from and written to every version.

Inside corecni a result is always a ``Result`` in the 1.x shape; only the JSON
boundary knows the legacy layouts:

* 0.1.0 / 0.2.0: ``ip4``/``ip6`` objects (``ip``, ``gateway``, ``routes``) and ``dns``;
* 0.3.0 / 0.3.1 / 0.4.0: ``interfaces``, ``ips`` (with ``version`` "4"/"6"), ``routes``, ``dns``;
* 1.0.0 / 1.1.0: as 0.4.0 without ``ips[].version``; interfaces gain ``mtu``,
  ``socketPath`` and ``pciID`` in 1.1.0 (libcni's 1.x types carry them for 1.0.0 too).

Conversion follows libcni: going down to 0.2.0 keeps the first address of
each family and the routes of the families kept, and is impossible when no
address is left; going up from 0.2.0 has no interfaces.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import attrs

from corecni.spec import version as versions
from corecni.spec.errors import CNIError, ErrorCode, decoding_failure


def _check_cidr(value: str, what: str) -> str:
    try:
        ipaddress.ip_interface(value)
    except ValueError as exc:
        raise decoding_failure(f"invalid {what}", f"{value!r}: {exc}") from None
    if "/" not in value:
        raise decoding_failure(f"invalid {what}", f"{value!r} has no prefix length")
    return value


def _check_ip(value: str, what: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError as exc:
        raise decoding_failure(f"invalid {what}", f"{value!r}: {exc}") from None
    return value


def _str(data: dict[str, Any], key: str, where: str) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        raise decoding_failure(f"{where}.{key} must be a string", repr(value))
    return value


def _opt_int(data: dict[str, Any], key: str, where: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise decoding_failure(f"{where}.{key} must be an integer", repr(value))
    return value


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise decoding_failure(f"{where} must be a JSON object", repr(value)[:200])
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise decoding_failure(f"{where} must be a JSON list", repr(value)[:200])
    return value


def family_of(cidr_or_ip: str) -> int:
    return 6 if ":" in cidr_or_ip else 4


@attrs.frozen
class Interface:
    name: str
    mac: str = ""
    mtu: int | None = None
    sandbox: str = ""
    socket_path: str = ""
    pci_id: str = ""

    def to_dict(self, modern: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.mac:
            out["mac"] = self.mac
        if modern and self.mtu:
            out["mtu"] = self.mtu
        if self.sandbox:
            out["sandbox"] = self.sandbox
        if modern and self.socket_path:
            out["socketPath"] = self.socket_path
        if modern and self.pci_id:
            out["pciID"] = self.pci_id
        return out

    @classmethod
    def from_dict(cls, data: Any) -> Interface:
        d = _obj(data, "interfaces[]")
        return cls(  # no key is required: upstream reads a missing name as ""
            name=_str(d, "name", "interfaces[]"),
            mac=_str(d, "mac", "interfaces[]"),
            mtu=_opt_int(d, "mtu", "interfaces[]"),
            sandbox=_str(d, "sandbox", "interfaces[]"),
            socket_path=_str(d, "socketPath", "interfaces[]"),
            pci_id=_str(d, "pciID", "interfaces[]"),
        )


@attrs.frozen
class IPConfig:
    address: str  # CIDR with the host address: "10.1.0.5/16"
    gateway: str | None = None
    interface: int | None = None  # index into Result.interfaces

    @property
    def family(self) -> int:
        return family_of(self.address)

    def to_dict(self, with_version: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if with_version:
            out["version"] = str(self.family)
        if self.interface is not None:
            out["interface"] = self.interface
        out["address"] = self.address
        if self.gateway:
            out["gateway"] = self.gateway
        return out

    @classmethod
    def from_dict(cls, data: Any) -> IPConfig:
        d = _obj(data, "ips[]")
        address = _check_cidr(_str(d, "address", "ips[]"), "ips[].address")
        gateway = _str(d, "gateway", "ips[]") or None
        if gateway:
            _check_ip(gateway, "ips[].gateway")
        return cls(address=address, gateway=gateway, interface=_opt_int(d, "interface", "ips[]"))


@attrs.frozen
class Route:
    dst: str
    gw: str | None = None
    mtu: int | None = None
    advmss: int | None = None
    priority: int | None = None
    table: int | None = None
    scope: int | None = None

    @property
    def family(self) -> int:
        return family_of(self.dst)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dst": self.dst}
        if self.gw:
            out["gw"] = self.gw
        # libcni: mtu/advmss/priority are omitempty ints, table/scope optional pointers
        for key, value in (("mtu", self.mtu), ("advmss", self.advmss), ("priority", self.priority)):
            if value:
                out[key] = value
        for key, value in (("table", self.table), ("scope", self.scope)):
            if value is not None:
                out[key] = value
        return out

    @classmethod
    def from_dict(cls, data: Any) -> Route:
        d = _obj(data, "routes[]")
        dst = _str(d, "dst", "routes[]")
        try:
            ipaddress.ip_network(dst, strict=False)
        except ValueError as exc:
            raise decoding_failure("invalid routes[].dst", f"{dst!r}: {exc}") from None
        gw = _str(d, "gw", "routes[]") or None
        if gw:
            _check_ip(gw, "routes[].gw")
        return cls(
            dst=dst,
            gw=gw,
            mtu=_opt_int(d, "mtu", "routes[]"),
            advmss=_opt_int(d, "advmss", "routes[]"),
            priority=_opt_int(d, "priority", "routes[]"),
            table=_opt_int(d, "table", "routes[]"),
            scope=_opt_int(d, "scope", "routes[]"),
        )


def _str_tuple(value: Any, where: str) -> tuple[str, ...]:
    items = _list(value, where)
    if not all(isinstance(v, str) for v in items):
        raise decoding_failure(f"{where} must hold strings")
    return tuple(items)


@attrs.frozen
class DNS:
    nameservers: tuple[str, ...] = ()
    domain: str = ""
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        return not (self.nameservers or self.domain or self.search or self.options)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.nameservers:
            out["nameservers"] = list(self.nameservers)
        if self.domain:
            out["domain"] = self.domain
        if self.search:
            out["search"] = list(self.search)
        if self.options:
            out["options"] = list(self.options)
        return out

    @classmethod
    def from_dict(cls, data: Any) -> DNS:
        if data is None:
            return cls()
        d = _obj(data, "dns")
        return cls(
            nameservers=_str_tuple(d.get("nameservers"), "dns.nameservers"),
            domain=_str(d, "domain", "dns"),
            search=_str_tuple(d.get("search"), "dns.search"),
            options=_str_tuple(d.get("options"), "dns.options"),
        )


@attrs.frozen
class Result:
    """A plugin's result in the 1.x shape; ``cni_version`` says how it serialises."""

    cni_version: str = versions.CURRENT
    interfaces: tuple[Interface, ...] = ()
    ips: tuple[IPConfig, ...] = ()
    routes: tuple[Route, ...] = ()
    dns: DNS = attrs.Factory(DNS)

    # ---- conversion -------------------------------------------------------
    def as_version(self, target: str) -> Result:
        """Convert to ``target`` the way libcni's ``GetAsVersion`` does."""
        if target not in versions.SUPPORTED:
            raise CNIError(ErrorCode.INCOMPATIBLE_VERSION,
                           f"unsupported CNI result version {target!r}")
        if target == self.cni_version:
            return self
        if versions.parse(target) < (0, 3, 0):
            if versions.parse(self.cni_version) < (0, 3, 0):
                return attrs.evolve(self, cni_version=target)  # 0.1.0 <-> 0.2.0: same shape
            return self._down_to_legacy(target)
        interfaces = self.interfaces
        if versions.parse(target) < (1, 0, 0):
            # 0.3.x/0.4.0 interfaces carry only name, mac and sandbox
            interfaces = tuple(attrs.evolve(i, mtu=None, socket_path="", pci_id="")
                               for i in interfaces)
        return attrs.evolve(self, cni_version=target, interfaces=interfaces)

    def _down_to_legacy(self, target: str) -> Result:
        ip4 = next((ip for ip in self.ips if ip.family == 4), None)
        ip6 = next((ip for ip in self.ips if ip.family == 6), None)
        if ip4 is None and ip6 is None:
            raise CNIError(ErrorCode.INCOMPATIBLE_VERSION,
                           "cannot convert: no valid IP addresses",
                           f"a {target} result needs at least one IP address")
        kept = {ip.family for ip in (ip4, ip6) if ip is not None}
        ips = tuple(attrs.evolve(ip, interface=None) for ip in (ip4, ip6) if ip is not None)
        # 0.1.0/0.2.0 routes carry only dst and gw
        routes = tuple(Route(dst=r.dst, gw=r.gw) for r in self.routes if r.family in kept)
        return Result(cni_version=target, ips=ips, routes=routes, dns=self.dns)

    # ---- JSON boundary ----------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        v = versions.parse(self.cni_version)
        if v < (0, 3, 0):
            return self._legacy_dict()
        out: dict[str, Any] = {"cniVersion": self.cni_version}
        if self.interfaces:
            out["interfaces"] = [i.to_dict(modern=v >= (1, 0, 0)) for i in self.interfaces]
        if self.ips:
            out["ips"] = [ip.to_dict(with_version=v < (1, 0, 0)) for ip in self.ips]
        if self.routes:
            out["routes"] = [r.to_dict() for r in self.routes]
        out["dns"] = self.dns.to_dict()
        return out

    def _legacy_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"cniVersion": self.cni_version}
        legacy = self._down_to_legacy(self.cni_version) if self.ips else self
        for ip in legacy.ips:
            block: dict[str, Any] = {"ip": ip.address}
            if ip.gateway:
                block["gateway"] = ip.gateway
            routes = [r.to_dict() for r in legacy.routes if r.family == ip.family]
            if routes:
                block["routes"] = routes
            out[f"ip{ip.family}"] = block
        out["dns"] = self.dns.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Any, default_version: str = "0.1.0") -> Result:
        """Read a result of any supported version (the version comes from its ``cniVersion``)."""
        d = _obj(data, "result")
        cni_version = d.get("cniVersion") or default_version
        if not isinstance(cni_version, str):
            raise decoding_failure("result cniVersion must be a string")
        versions.require_supported(cni_version)
        if versions.parse(cni_version) < (0, 3, 0):
            return cls._from_legacy(d, cni_version)
        return cls(
            cni_version=cni_version,
            interfaces=tuple(Interface.from_dict(i)
                             for i in _list(d.get("interfaces"), "interfaces")),
            ips=tuple(IPConfig.from_dict(i) for i in _list(d.get("ips"), "ips")),
            routes=tuple(Route.from_dict(r) for r in _list(d.get("routes"), "routes")),
            dns=DNS.from_dict(d.get("dns")),
        )

    @classmethod
    def _from_legacy(cls, d: dict[str, Any], cni_version: str) -> Result:
        ips: list[IPConfig] = []
        routes: list[Route] = []
        for key in ("ip4", "ip6"):
            block = d.get(key)
            if block is None:
                continue
            b = _obj(block, key)
            address = _check_cidr(_str(b, "ip", key), f"{key}.ip")
            gateway = _str(b, "gateway", key) or None
            if gateway:
                _check_ip(gateway, f"{key}.gateway")
            ips.append(IPConfig(address=address, gateway=gateway))
            routes.extend(Route.from_dict(r) for r in _list(b.get("routes"), f"{key}.routes"))
        return cls(cni_version=cni_version, ips=tuple(ips), routes=tuple(routes),
                   dns=DNS.from_dict(d.get("dns")))
