"""vlan: an 802.1Q sub-interface of a node device, placed in the container.

Config keys, defaults and the result follow containernetworking/plugins'
``vlan`` (Debian ships 1.1.1; ``linkInContainer`` is from 1.2):

* ``master`` - required (the README mentions a default-route default, the
  code has none: Go refuses a config without it, and so does this plugin);
* ``vlanId`` - 0 to 4094 (Go's range; 4095 is reserved by 802.1Q);
* ``mtu`` - 0 (kernel default) up to the master's MTU;
* ``linkInContainer`` - the master lives in the container namespace;
* ``ipam`` - required: Go always runs IPAM for a vlan;
* ``dns`` - copied into the result.

Created like macvlan: on the master, directly into the container, under a
temporary name renamed to CNI_IFNAME there.
"""

from __future__ import annotations

import attrs

from corecni import kit
from corecni.kit import Request, hookimpl
from corecni.net import Batch, Link, NetBackend
from corecni.spec.result import DNS, Result
from corecni_contrib import _link_plugin

KIND = "vlan"
VLAN_ID_MAX = 4094


def _check_master(_: object, __: attrs.Attribute[str], value: str) -> None:
    if not value:
        raise kit.config_error('"master" field is required. It specifies the host interface '
                               "name to create the VLAN for")


def _check_vlan_id(_: object, __: attrs.Attribute[int], value: int) -> None:
    if not 0 <= value <= VLAN_ID_MAX:
        raise kit.config_error(f"invalid VLAN ID {value} (must be between 0 and "
                               f"{VLAN_ID_MAX} inclusive)", "vlanId")


@attrs.frozen
class VlanConfig(_link_plugin.LowerLinkConfig):
    """The plugin's view of its config; invalid values fail with code 7 on creation."""

    master: str = attrs.field(validator=_check_master)
    vlan_id: int = attrs.field(validator=_check_vlan_id)
    mtu: int = 0
    link_in_container: bool = False
    ipam_type: str = ""
    dns: DNS = attrs.Factory(DNS)

    @classmethod
    def from_request(cls, request: Request) -> VlanConfig:
        raw = request.config.raw
        return cls(master=kit.str_key(raw, "master"), vlan_id=kit.int_key(raw, "vlanId"),
                   **_link_plugin.link_keys(raw))

    def creator(self, master: str) -> kit.CreateLink:
        def create(batch: Batch, name: str, netns: str | None) -> object:
            return batch.add_vlan(name, master, self.vlan_id, netns=netns, mtu=self.mtu or None)
        return create


def _master(backend: NetBackend, request: Request, conf: VlanConfig) -> Link:
    master = kit.lookup_master(backend, conf.master, conf.master_netns(request))
    kit.check_mtu_fits(conf.mtu, master)
    return master


@hookimpl
def cni_add(request: Request) -> Result:
    conf = VlanConfig.from_request(request)
    if not conf.ipam_type:
        raise kit.config_error("vlan needs an 'ipam' section", "the vlan plugin always runs IPAM")
    backend = request.net
    master = _master(backend, request, conf)
    created = kit.create_lower_link(backend, request, KIND, conf.creator(master.name),
                                       conf.link_in_container)
    return kit.address_lower_link(backend, request, created, None, conf.dns, use_ipam=True)


@hookimpl
def cni_del(request: Request) -> None:
    """Reads only ``ipam`` from the config: a DEL must work even when the master
    is gone or the config went bad since the ADD."""
    kit.detach_lower_link(request, KIND)


@hookimpl
def cni_check(request: Request) -> None:
    """Master, IPAM, the container link (kind, MAC, configured MTU, VLAN ID), its
    addresses and routes."""
    conf = VlanConfig.from_request(request)
    backend = request.net
    _master(backend, request, conf)
    _link_plugin.check_lower_link(backend, request, KIND, conf.ipam_type, mtu=conf.mtu,
                                  vlan_id=conf.vlan_id)


@hookimpl
def plugin_status(request: Request) -> None:
    kit.ipam_status(request)
