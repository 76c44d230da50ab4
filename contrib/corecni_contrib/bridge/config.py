"""The bridge plugin's configuration: Go's ``NetConf`` keys, defaults and checks.

Keys and defaults follow Go's bridge plugin (containernetworking/plugins,
current README): ``bridge`` defaults to ``cni0``, ``isDefaultGateway`` implies
``isGateway``, ``preserveDefaultVlan`` defaults to false. Everything is read
once, here; a value of the wrong type or out of range is code 7 naming the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from corecni.kit import (
    Request,
    bool_key,
    config_error,
    dns_key,
    int_key,
    ipam_type,
    list_key,
    parse_mac,
    str_key,
)
from corecni.spec.config import validate_ifname
from corecni.spec.errors import CNIError
from corecni.spec.result import DNS
from corecni_contrib._masq import BACKENDS
from corecni_contrib._veth import cfg_masq_backend, cfg_veth_mtu

DEFAULT_BRIDGE = "cni0"
MAX_VLAN = 4094


def _vlan_trunk(raw: Mapping[str, Any]) -> tuple[int, ...]:
    """Go's ``collectVlanTrunk``: single ``id``s and ``minID``..``maxID`` ranges, sorted."""
    vids: set[int] = set()
    for item in list_key(raw, "vlanTrunk"):
        if not isinstance(item, dict):
            raise config_error("'vlanTrunk' entries must be objects", repr(item)[:200])
        low = _trunk_id(item, "minID")
        high = _trunk_id(item, "maxID")
        if low is not None and high is not None:
            if high < low:
                raise config_error("minID is greater than maxID in trunk parameter")
            vids.update(range(low, high + 1))
        elif low is None and high is not None:
            raise config_error("minID and maxID should be configured simultaneously, "
                            "minID is missing")
        elif low is not None:
            raise config_error("minID and maxID should be configured simultaneously, "
                            "maxID is missing")
        single = _trunk_id(item, "id")
        if single is not None:
            vids.add(single)
    return tuple(sorted(vids))


def _trunk_id(item: Mapping[str, Any], key: str) -> int | None:
    if item.get(key) is None:
        return None
    value = int_key(item, key)
    if not 0 < value <= MAX_VLAN:
        raise config_error(f"incorrect trunk {key} parameter", f"{value} is not in 1..{MAX_VLAN}")
    return value


def _requested_mac(request: Request) -> str:
    """Go's precedence: CNI_ARGS ``MAC`` < ``args.cni.mac`` < ``runtimeConfig.mac``.
    Only ADD uses it, and only ADD refuses a malformed one (DEL never fails on
    CNI_ARGS)."""
    raw = request.config.raw
    mac = request.arg("MAC")
    args = raw.get("args")
    if isinstance(args, dict) and isinstance(args.get("cni"), dict):
        mac = str_key(args["cni"], "mac") or mac
    mac = str_key(request.config.runtime_config, "mac") or mac
    if not mac:
        return ""
    if request.command != "ADD":
        return mac
    return parse_mac(mac, "MAC address")


@attrs.frozen
class BridgeConf:
    network: str
    bridge: str = DEFAULT_BRIDGE
    is_gateway: bool = False
    is_default_gateway: bool = False
    force_address: bool = False
    ip_masq: bool = False
    ip_masq_backend: str | None = None
    mtu: int = 0
    hairpin_mode: bool = False
    promisc_mode: bool = False
    vlan: int = 0
    vlan_trunk: tuple[int, ...] = ()
    vlan_trunk_set: bool = False  # Go enables VLAN filtering for any vlanTrunk, even []
    preserve_default_vlan: bool = False
    mac_spoof_check: bool = False
    enable_dad: bool = False
    disable_container_interface: bool = False
    port_isolation: bool = False
    ipam_type: str = ""
    dns: DNS = attrs.Factory(DNS)
    mac: str = ""

    @property
    def layer3(self) -> bool:
        """Go's ``isLayer3``: an IPAM type is configured."""
        return bool(self.ipam_type)

    @property
    def vlan_filtering(self) -> bool:
        return self.vlan != 0 or self.vlan_trunk_set

    @property
    def tags_port(self) -> bool:
        return self.vlan != 0 or bool(self.vlan_trunk)

    @classmethod
    def from_request(cls, request: Request) -> BridgeConf:
        raw = request.config.raw
        bridge = str_key(raw, "bridge") if raw.get("bridge") is not None else DEFAULT_BRIDGE
        if request.command != "DEL":  # DEL never touches the bridge by name (Go)
            try:
                validate_ifname(bridge)  # "": Go keeps it and fails to make the bridge
            except CNIError as exc:
                raise config_error(f"invalid bridge name {bridge!r} in 'bridge'",
                                   exc.msg) from None
        vlan = int_key(raw, "vlan")
        if not 0 <= vlan <= MAX_VLAN:
            raise config_error(f"invalid VLAN ID {vlan} (must be between 0 and {MAX_VLAN})")
        mtu = cfg_veth_mtu(raw)
        backend = cfg_masq_backend(raw, BACKENDS)
        default_gw = bool_key(raw, "isDefaultGateway")
        return cls(
            network=request.config.name,
            bridge=bridge,
            is_gateway=bool_key(raw, "isGateway") or default_gw,
            is_default_gateway=default_gw,
            force_address=bool_key(raw, "forceAddress"),
            ip_masq=bool_key(raw, "ipMasq"),
            ip_masq_backend=backend,
            mtu=mtu,
            hairpin_mode=bool_key(raw, "hairpinMode"),
            promisc_mode=bool_key(raw, "promiscMode"),
            vlan=vlan,
            vlan_trunk=_vlan_trunk(raw),
            vlan_trunk_set=raw.get("vlanTrunk") is not None,
            preserve_default_vlan=bool_key(raw, "preserveDefaultVlan"),
            mac_spoof_check=bool_key(raw, "macspoofchk"),
            enable_dad=bool_key(raw, "enabledad"),
            disable_container_interface=bool_key(raw, "disableContainerInterface"),
            port_isolation=bool_key(raw, "portIsolation"),
            ipam_type=ipam_type(raw),
            dns=dns_key(raw),
            mac=_requested_mac(request),
        )

    def check_for_add(self) -> None:
        """The combinations Go refuses at ADD (DEL and CHECK still accept them)."""
        if self.layer3 and self.disable_container_interface:
            raise config_error("cannot use IPAM when DisableContainerInterface flag is set")
        if self.hairpin_mode and self.promisc_mode:
            raise config_error("cannot set hairpin mode and promiscuous mode at the same time")
        if self.vlan and self.is_gateway and len(f"{self.bridge}.{self.vlan}") > 15:
            raise config_error(f"bridge name {self.bridge!r} is too long for the VLAN gateway "
                            f"interface {self.bridge}.{self.vlan}")
