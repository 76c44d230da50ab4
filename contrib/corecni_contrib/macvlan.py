"""macvlan: the container gets its own MAC address on a node device.

Config keys, defaults and the result follow containernetworking/plugins'
``macvlan`` (Debian ships 1.1.1; ``linkInContainer`` is from 1.2):

* ``master`` - the node device to sit on; default: the link of the node's
  default route;
* ``mode`` - ``bridge`` (default), ``private``, ``vepa`` or ``passthru``;
* ``mtu`` - 0 (kernel default) up to the master's MTU;
* ``mac`` - fixed MAC; CNI_ARGS ``MAC`` overrides it and the ``mac``
  capability (``runtimeConfig.mac``) overrides both, as in Go;
* ``linkInContainer`` - the master lives in the container namespace;
* ``ipam`` - optional: without it the interface is only brought up (L2, for
  chaining or DHCP later), as Go allows;
* ``dns`` - copied into the result (Go ignores the IPAM plugin's DNS).

The macvlan is created on the master in the node namespace and placed in the
container by the same netlink request, under a temporary name renamed to
CNI_IFNAME in there: the name may be free in the container but taken on the
node. Imports stay light (no backend until a hook runs): every exec pays them.
"""

from __future__ import annotations

import attrs

from corecni import kit
from corecni.kit import Request, hookimpl
from corecni.net import Batch, Link, NetBackend
from corecni.spec.result import DNS, Result
from corecni_contrib import _link_plugin

KIND = "macvlan"
MODES = ("bridge", "private", "vepa", "passthru")


def _check_mode(_: object, __: attrs.Attribute[str], value: str) -> None:
    if value not in MODES:
        raise kit.config_error(f'unknown macvlan mode: "{value}"',
                               f"mode must be one of {', '.join(MODES)}")


def _normal_mac(value: str) -> str:
    return kit.parse_mac(value, "MAC address") if value else ""


@attrs.frozen
class MacvlanConfig(_link_plugin.LowerLinkConfig):
    """The plugin's view of its config; invalid values fail with code 7 on creation."""

    master: str = ""
    mode: str = attrs.field(default="bridge", validator=_check_mode)
    mtu: int = 0
    mac: str = attrs.field(default="", converter=_normal_mac)
    link_in_container: bool = False
    ipam_type: str = ""
    dns: DNS = attrs.Factory(DNS)

    @classmethod
    def from_request(cls, request: Request) -> MacvlanConfig:
        raw = request.config.raw
        mac = request.args_dict.get("MAC") or kit.str_key(raw, "mac")
        mac = kit.str_key(request.config.runtime_config, "mac") or mac
        return cls(master=kit.str_key(raw, "master"),
                   mode=kit.str_key(raw, "mode") or "bridge", mac=mac,
                   **_link_plugin.link_keys(raw))

    def creator(self, master: str) -> kit.CreateLink:
        def create(batch: Batch, name: str, netns: str | None) -> object:
            return batch.add_macvlan(name, master, mode=self.mode, netns=netns,
                                     mtu=self.mtu or None, mac=self.mac or None)
        return create


def _master(backend: NetBackend, request: Request, conf: MacvlanConfig) -> Link:
    netns = conf.master_netns(request)
    name = conf.master or kit.default_route_interface(backend, netns)
    master = kit.lookup_master(backend, name, netns)
    kit.check_mtu_fits(conf.mtu, master)
    return master


@hookimpl
def cni_add(request: Request) -> Result:
    conf = MacvlanConfig.from_request(request)
    backend = request.net
    master = _master(backend, request, conf)
    created = kit.create_lower_link(backend, request, KIND, conf.creator(master.name),
                                       conf.link_in_container)
    return kit.address_lower_link(backend, request, created, None, conf.dns,
                                     use_ipam=bool(conf.ipam_type))


@hookimpl
def cni_del(request: Request) -> None:
    """Reads only ``ipam`` from the config: a DEL must work even when the master
    or the rest of the config has gone bad since the ADD."""
    kit.detach_lower_link(request, KIND)


@hookimpl
def cni_check(request: Request) -> None:
    """Master, IPAM, then the container link (kind, MAC, mode), its addresses and routes."""
    conf = MacvlanConfig.from_request(request)
    backend = request.net
    _master(backend, request, conf)
    _link_plugin.check_lower_link(backend, request, KIND, conf.ipam_type, mode=conf.mode)


@hookimpl
def plugin_status(request: Request) -> None:
    kit.ipam_status(request)
