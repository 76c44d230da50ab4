"""The ``firewall`` meta plugin: forwarding to and from a container allowed (Go's firewall).

Chained after an interface plugin (podman's default network is
``bridge -> portmap -> firewall -> tuning``), it accepts forwarded traffic from
each container address and replies to it, jumping first to an admin chain
(``iptablesAdminChainName``, default ``CNI-ADMIN``) the node's admin fills, and
with ``ingressPolicy`` ``same-bridge`` (or ``isolated``) drops traffic between
isolated bridges.

Backends (``backend``): ``iptables`` keeps Go's chains (``CNI-FORWARD``,
``CNI-ADMIN``, ``CNI-ISOLATION-STAGE-1/2``) so Go's DEL removes what corecni
added and the reverse; ``nftables`` is corecni's own single table where a
container is a set element; ``firewalld`` is answered with a clear code-7 error
(no firewalld client here). Each call is one transaction per address family.

DEL: iptables rules are keyed by address (Go's layout has no container ID), so
without ``prevResult`` there is nothing to find, as in Go; the nftables backend
finds a container's elements by its ID and needs no ``prevResult``.
"""

from __future__ import annotations

from corecni.kit import Request, Result, hookimpl
from corecni_contrib.firewall import iptables, nftables
from corecni_contrib.firewall.config import FirewallConf, addresses, bridge_name


def _bridge(conf: FirewallConf, result: Result) -> str | None:
    return None if conf.ingress_policy == "open" else bridge_name(result, conf.ingress_policy)


@hookimpl
def meta_add(request: Request, prev_result: Result) -> Result:
    conf = FirewallConf.from_request(request)
    conf.refuse_firewalld()
    ips = addresses(prev_result)
    bridge = _bridge(conf, prev_result)
    isolated = conf.ingress_policy == "isolated"
    if conf.backend == "nftables":
        nftables.add(conf.container_id, ips, conf.admin_chain, bridge, isolated)
    else:
        iptables.add(ips, conf.admin_chain, bridge, isolated)
    return prev_result


@hookimpl
def meta_del(request: Request, prev_result: Result | None) -> None:
    conf = FirewallConf.from_request(request)
    if conf.backend == "nftables":
        nftables.remove(drop={conf.container_id}, known=addresses(prev_result))
    elif conf.backend == "iptables":
        iptables.remove(addresses(prev_result))
    # firewalld: corecni never added anything there


@hookimpl
def meta_check(request: Request, prev_result: Result) -> None:
    conf = FirewallConf.from_request(request)
    conf.refuse_firewalld()
    ips = addresses(prev_result)
    if conf.backend == "nftables":
        nftables.check(conf.container_id, ips, conf.admin_chain)
    else:
        iptables.check(ips, conf.admin_chain)


@hookimpl
def plugin_gc(request: Request) -> None:
    """nftables: drop addresses of containers not in the valid list. Go's iptables
    rules carry no container ID, so they are left alone (Go has no GC either)."""
    conf = FirewallConf.from_request(request)
    if conf.backend == "nftables":
        nftables.remove(keep={a.container_id for a in request.valid_attachments})
