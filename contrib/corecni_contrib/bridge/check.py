"""bridge CHECK: Go's ``cmdCheck`` - the previous result must still describe the kernel.

Checked in Go's order: IPAM, the bridge (a bridge, same MAC, promiscuous as
configured), the container interface (a veth, same MAC), the host veth (the
container interface's peer, on the bridge), then the container's addresses
and routes. The first drift found is the error, naming what is wrong.
"""

from __future__ import annotations

from corecni.kit import (
    Request,
    check_container_link,
    check_iface,
    kernel_step,
    prev_container_interface,
)
from corecni.net import Link, NetBackend
from corecni.spec.errors import CNIError, ErrorCode
from corecni.spec.result import Interface, Result
from corecni_contrib.bridge.config import BridgeConf


def _drift(msg: str, details: str = "") -> CNIError:
    return CNIError(ErrorCode.INTERNAL, msg, details)


def cmd_check(request: Request) -> None:
    conf = BridgeConf.from_request(request)
    if conf.layer3:
        request.ipam_check()
    backend = request.net
    prev, container_iface = prev_container_interface(request)
    bridge = _check_bridge(backend, conf, prev)
    container = check_container_link(backend, request, container_iface, "veth")
    _check_host_veth(backend, conf, prev, bridge, container, container_iface)
    check_iface(backend, request.netns, request.ifname, prev)


def _check_bridge(backend: NetBackend, conf: BridgeConf, prev: Result) -> Link:
    iface = next((i for i in prev.interfaces if i.name == conf.bridge), None)
    if iface is None:
        raise _drift(f"bridge {conf.bridge} is not in prevResult")
    if iface.sandbox:
        raise _drift(f"interface {iface.name} should not be in a sandbox", iface.sandbox)
    with kernel_step(f"look up bridge {conf.bridge}"):
        link = backend.link(conf.bridge)
    if link is None:
        raise _drift(f"CNI created bridge {conf.bridge} in host namespace was not found")
    if link.kind != "bridge":
        raise _drift(f"interface {conf.bridge} does not have link type of bridge",
                     f"it is a {link.kind or 'plain'} link")
    if iface.mac and iface.mac.lower() != link.mac:
        raise _drift(f"bridge interface {conf.bridge} MAC doesn't match: {iface.mac}",
                     f"the bridge has {link.mac}")
    if link.promisc != conf.promisc_mode:
        raise _drift(f"bridge interface {conf.bridge} configured promiscuous mode "
                     f"{conf.promisc_mode} doesn't match current state: {link.promisc}")
    return link


def _check_host_veth(backend: NetBackend, conf: BridgeConf, prev: Result, bridge: Link,
                     container: Link, container_iface: Interface) -> None:
    """The host end must exist, be the container interface's veth peer and sit on the
    bridge. Interfaces of prevResult that are not that pair are skipped, as in Go."""
    candidates = [i for i in prev.interfaces
                  if i.name not in (conf.bridge, container_iface.name) and not i.sandbox]
    for iface in candidates:
        with kernel_step(f"look up {iface.name}"):  # by name: never a dump of the node's links
            link = backend.link(iface.name, None)
        if link is None:
            raise _drift(f"host veth {iface.name} from prevResult not found",
                         f"the peer of {container.name} is gone")
        if link.kind != "veth" or link.peer_index != container.index \
                or container.peer_index != link.index:
            continue
        if link.master != bridge.name:
            raise _drift(f"host veth {iface.name} is not attached to bridge {bridge.name}",
                         f"its master is {link.master or 'none'}")
        if iface.mac and iface.mac.lower() != link.mac:
            raise _drift(f"interface {iface.name} MAC doesn't match: {iface.mac} not found",
                         f"it has {link.mac}")
        return
    raise _drift(f"CNI veth created for bridge {bridge.name} was not found",
                 f"no link in prevResult is the peer of {container.name}")
