"""tap: a persistent tap device in the container (for VMs running in it).

Config keys follow containernetworking/plugins' ``tap`` (not in Debian's 1.1.1):

* ``mac`` - also from CNI_ARGS ``MAC`` and the ``mac`` capability
  (``runtimeConfig.mac``), each overriding the one before;
* ``mtu``, ``multiQueue`` (IFF_MULTI_QUEUE), ``owner`` / ``group`` (uid / gid
  allowed to open the device);
* ``bridge`` - a bridge *in the container* to enslave the tap to;
* ``ipam`` - optional: without it the tap is only brought up;
* ``selinuxContext`` - not supported here (Go execs ``ip`` under that label):
  refused with code 7 rather than ignored.

The device is made with the TUNSETIFF ioctl inside the container namespace
(netlink cannot create tun/tap devices) under a temporary name, renamed to
CNI_IFNAME; any later failure deletes it again and releases IPAM.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from corecni import kit
from corecni.kit import CNIError, ErrorCode, Request, hookimpl
from corecni.net import Batch
from corecni.spec.result import DNS, Result
from corecni_contrib import _link_plugin

KIND = "tun"  # what the kernel reports for tap devices too


def _uid(raw: Mapping[str, Any], key: str) -> int | None:
    if raw.get(key) is None:
        return None
    value = kit.int_key(raw, key)
    if not 0 <= value < 2**32:
        raise kit.config_error(f"{key} must be a uint32", str(value))
    return value


@attrs.frozen
class TapConfig:
    mac: str = ""
    mtu: int = 0
    multi_queue: bool = False
    owner: int | None = None
    group: int | None = None
    bridge: str = ""
    ipam_type: str = ""
    dns: DNS = attrs.Factory(DNS)

    @classmethod
    def from_request(cls, request: Request) -> TapConfig:
        raw = request.config.raw
        if kit.str_key(raw, "selinuxContext"):
            raise kit.config_error("selinuxContext is not supported by this tap plugin",
                                   "it would exec 'ip' under that SELinux label")
        mac = request.arg("MAC") or kit.str_key(raw, "mac")
        mac = kit.str_key(request.runtime_config, "mac") or mac
        mtu = kit.int_key(raw, "mtu")
        if not 0 <= mtu <= 65535:
            raise kit.config_error(f"invalid MTU {mtu}")
        return cls(mac=kit.parse_mac(mac, "MAC address") if mac else "", mtu=mtu,
                   multi_queue=kit.bool_key(raw, "multiQueue"), owner=_uid(raw, "owner"),
                   group=_uid(raw, "group"), bridge=kit.str_key(raw, "bridge"),
                   ipam_type=kit.ipam_type(raw), dns=kit.dns_key(raw))

    def create(self, batch: Batch, name: str, netns: str | None) -> object:
        return batch.add_tap(name, mtu=self.mtu or None, mac=self.mac or None,
                             multi_queue=self.multi_queue, owner=self.owner, group=self.group)


@hookimpl
def cni_add(request: Request) -> Result:
    conf = TapConfig.from_request(request)
    backend, netns = request.net, request.netns
    iface = kit.create_lower_link(backend, request, "tap", conf.create, True)
    with kit.link_removed_on_failure(backend, netns, request.ifname):
        if conf.bridge:
            with kit.kernel_step(f"look up bridge {conf.bridge} in {netns}"):
                bridge = backend.link(conf.bridge, netns)
            if bridge is None or bridge.kind != "bridge":
                raise CNIError(ErrorCode.INVALID_NETWORK_CONFIG,
                               f"failed to get bridge {conf.bridge}", netns)
            with kit.kernel_step(f"set {request.ifname} as a port of {conf.bridge}"):
                backend.batch(netns).set_link(request.ifname, master=conf.bridge).commit()
    return kit.address_lower_link(backend, request, iface, None, conf.dns,
                                  use_ipam=bool(conf.ipam_type))


@hookimpl
def cni_del(request: Request) -> None:
    kit.detach_lower_link(request, KIND)


@hookimpl
def cni_check(request: Request) -> None:
    conf = TapConfig.from_request(request)
    _link_plugin.check_lower_link(request.net, request, KIND, conf.ipam_type, conf.mtu)


@hookimpl
def plugin_status(request: Request) -> None:
    kit.ipam_status(request)
