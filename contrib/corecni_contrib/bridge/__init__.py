"""The ``bridge`` interface plugin: containers on a Linux bridge in the node namespace.

Behaviour, config keys and result shape follow Go's bridge plugin
(containernetworking/plugins): one veth pair per attachment, the host end
("veth" + 8 hex) a port of the bridge, the container end CNI_IFNAME; with
``isGateway`` the bridge holds the gateway addresses and forwarding is enabled
(in the plugin's own namespace only); ``ipMasq`` masquerades through
``corecni_contrib._masq``. The result lists bridge, host veth and container
interface in that order, with every IP pointing at the container interface.

Kernel work goes through ``corecni.net`` (backend chosen inside each hook, so
importing this package costs no netlink library). ADD is in ``add``, CHECK in
``check``; the DEL here is idempotent: twice, without ADD, or with the
container's namespace gone it still releases IPAM and removes the rules.
"""

from __future__ import annotations

import contextlib

from corecni.kit import Request, delete_own_veth, hookimpl, ipam_gc, ipam_status
from corecni.spec.errors import CNIError
from corecni.spec.result import Result
from corecni_contrib import _masq
from corecni_contrib._veth import ipam_needs_link
from corecni_contrib.bridge import owner as bridge_owner
from corecni_contrib.bridge import ports
from corecni_contrib.bridge.add import cmd_add
from corecni_contrib.bridge.check import cmd_check
from corecni_contrib.bridge.config import BridgeConf


@hookimpl
def cni_add(request: Request) -> Result:
    return cmd_add(request)


@hookimpl
def cni_del(request: Request) -> None:
    """Go's order (container interface, IPAM, spoof check, masquerade), except that the
    masquerade goes before IPAM releases the addresses (see ``_masq.teardown``).

    Unlike Go, the masquerade rules go even when the namespace is already gone:
    they are found by attachment identity, not by the container's addresses; and the
    DEL of the attachment whose ADD created the bridge removes the bridge when no
    container is left on it (``owner``: a failed chain ADD leaves no bridge behind).
    An IPAM that works on the container interface (``dhcp``: its DHCPRELEASE leaves
    through it) is released before the veth goes.
    """
    conf = BridgeConf.from_request(request)
    owner = _masq.Owner(conf.network, request.container_id, request.ifname)
    veth_last = conf.layer3 and ipam_needs_link(conf.ipam_type)
    if request.netns and not veth_last:
        delete_own_veth(request.net, request)
    if conf.layer3 and conf.ip_masq:  # while IPAM still holds the addresses
        _masq.teardown(conf.ip_masq_backend, owner, _masq.result_addresses(request.prev_result))
    if conf.layer3:
        request.ipam_del()
    if request.netns and veth_last:
        delete_own_veth(request.net, request)
    if conf.mac_spoof_check:
        with contextlib.suppress(CNIError):  # Go only logs a failed spoof-check teardown
            ports.spoof_teardown(owner)
    bridge_owner.release(request.net, conf.bridge, bridge_owner.mark_of(request, conf.network))


@hookimpl
def cni_check(request: Request) -> None:
    cmd_check(request)


@hookimpl
def plugin_status(request: Request) -> None:
    """Ready when the IPAM plugin is (Go asks it too); the bridge itself needs nothing."""
    if BridgeConf.from_request(request).layer3:
        ipam_status(request)


@hookimpl
def plugin_gc(request: Request) -> None:
    """Go's bridge has no GC. Here: the IPAM plugin collects its stale leases (only this
    plugin can reach it) and the network's stale nftables masquerade elements go."""
    conf = BridgeConf.from_request(request)
    if conf.layer3:
        ipam_gc(request)
        if conf.ip_masq:
            _masq.gc(conf.ip_masq_backend, conf.network,
                     [(a.container_id, a.ifname) for a in request.valid_attachments])
