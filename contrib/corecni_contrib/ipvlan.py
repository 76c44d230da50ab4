"""ipvlan: the container shares a node device's MAC and is told apart by IP.

Config keys, defaults and the result follow containernetworking/plugins'
``ipvlan`` (Debian ships 1.1.1; ``linkInContainer`` is from 1.2):

* ``master`` - the node device; default: the link of the node's default
  route, or, when chained, the single named interface of the prevResult;
* ``mode`` - ``l2`` (default), ``l3`` or ``l3s``;
* ``mtu`` - 0 = kernel default (Go does not bound it by the master's);
* ``linkInContainer`` - the master lives in the container namespace;
* ``ipam`` - required unless chained: with no ``ipam`` the prevResult's IPs
  and routes configure the interface (for IPAM schemes tied to an earlier
  plugin's interface). ipvlan shares the MAC, so an L2-only ipvlan is useless
  and Go refuses it too;
* ``dns`` - copied into the result.

Created like macvlan: on the master, directly into the container, under a
temporary name renamed to CNI_IFNAME there. The ipvlan flags stay the
kernel's default (bridge), as Go leaves them.
"""

from __future__ import annotations

import attrs

from corecni import kit
from corecni.kit import Request, hookimpl
from corecni.net import Batch, Link, NetBackend
from corecni.spec.result import DNS, Result
from corecni_contrib import _link_plugin

KIND = "ipvlan"
MODES = ("l2", "l3", "l3s")


def _check_mode(_: object, __: attrs.Attribute[str], value: str) -> None:
    if value not in MODES:
        raise kit.config_error(f'unknown ipvlan mode: "{value}"',
                               f"mode must be one of {', '.join(MODES)}")


def _check_mtu(_: object, __: attrs.Attribute[int], value: int) -> None:
    if value < 0:
        raise kit.config_error(f"invalid MTU {value}", "mtu must be 0 (kernel default) or more")


@attrs.frozen
class IpvlanConfig(_link_plugin.LowerLinkConfig):
    """The plugin's view of its config; invalid values fail with code 7 on creation."""

    master: str = ""
    mode: str = attrs.field(default="l2", validator=_check_mode)
    mtu: int = attrs.field(default=0, validator=_check_mtu)
    link_in_container: bool = False
    ipam_type: str = ""
    dns: DNS = attrs.Factory(DNS)

    @classmethod
    def from_request(cls, request: Request) -> IpvlanConfig:
        raw = request.config.raw
        return cls(master=kit.str_key(raw, "master"),
                   mode=kit.str_key(raw, "mode") or "l2", **_link_plugin.link_keys(raw))

    def creator(self, master: str) -> kit.CreateLink:
        def create(batch: Batch, name: str, netns: str | None) -> object:
            return batch.add_ipvlan(name, master, mode=self.mode, netns=netns,
                                    mtu=self.mtu or None)
        return create


def master_name(backend: NetBackend, request: Request, conf: IpvlanConfig) -> str:
    """``master``, else the prevResult's one named interface, else the default route's."""
    if conf.master:
        return conf.master
    prev = request.prev_result
    if prev is None:
        return kit.default_route_interface(backend, conf.master_netns(request))
    if len(prev.interfaces) == 1 and prev.interfaces[0].name:
        return prev.interfaces[0].name
    raise kit.config_error("chained master failure. PrevResult lacks a single named interface",
                           f"{len(prev.interfaces)} interfaces in prevResult and no \"master\"")


def _master(backend: NetBackend, request: Request, conf: IpvlanConfig) -> Link:
    return kit.lookup_master(backend, master_name(backend, request, conf),
                                conf.master_netns(request))


@hookimpl
def cni_add(request: Request) -> Result:
    conf = IpvlanConfig.from_request(request)
    prev = request.prev_result
    chained = not conf.ipam_type and prev is not None and bool(prev.ips)
    if not conf.ipam_type and not chained:
        raise kit.config_error("ipvlan needs an 'ipam' section",
                               "or, when chained, a prevResult with IPs to configure it from")
    backend = request.net
    master = _master(backend, request, conf)
    created = kit.create_lower_link(backend, request, KIND, conf.creator(master.name),
                                       conf.link_in_container)
    return kit.address_lower_link(backend, request, created, prev if chained else None,
                                     conf.dns, use_ipam=not chained)


@hookimpl
def cni_del(request: Request) -> None:
    """Reads only ``ipam`` from the config (absent when chained: nothing to release)."""
    kit.detach_lower_link(request, KIND)


@hookimpl
def cni_check(request: Request) -> None:
    """As Go: IPAM, the container link and its addresses and routes; the master only
    when configured (the prevResult here is ipvlan's own, it cannot name the master).
    The container link's mode is compared with the configured one as well."""
    conf = IpvlanConfig.from_request(request)
    backend = request.net
    if conf.master:
        _master(backend, request, conf)
    _link_plugin.check_lower_link(backend, request, KIND, conf.ipam_type, mode=conf.mode)


@hookimpl
def plugin_status(request: Request) -> None:
    kit.ipam_status(request)
