"""dhcp IPAM: addresses from a DHCP server, leases held by the node daemon.

Keys and behaviour follow Go's ``dhcp`` plugin (``config`` lists them). The
plugin holds nothing itself: ADD asks the lease service (``service``, run by
``corecni daemon``) over ``ipam.daemonSocketPath`` for the attachment's lease,
sending the container's namespace as a descriptor; the service runs the DHCP
client on CNI_IFNAME inside that namespace, keeps the lease (renewals, disk)
and answers with the address, the gateway (first router) and the routes
(option 121, else option 33 plus a default route). DEL releases the lease
(DHCPRELEASE); DEL of an attachment without a lease, or with no service
running, succeeds (a lease whose interface has gone stops being renewed by
itself). CHECK asks whether the lease is held and matches prevResult. STATUS
is code 50 when no service answers; GC releases the network's leases of
attachments not listed as valid.

Modules, one job each: ``codec`` (DHCPv4 messages), ``transport`` (AF_PACKET
frames on one interface), ``client`` (the exchanges), ``lease`` (a lease and
its CNI result), ``store`` (leases on disk), ``nsref`` (holding and finding
namespaces), ``maintainer`` (renew/rebind/expiry of one lease), ``protocol``
(the socket wire), ``service`` (the lease service), ``config`` (the keys).
"""

from __future__ import annotations

import ipaddress
import os
import sys

from corecni.kit import CNIError, ErrorCode, Request, hookimpl
from corecni.spec.result import IPConfig, Result, Route
from corecni_contrib.dhcp import protocol
from corecni_contrib.dhcp.config import DhcpConfig

#: how much longer than the DHCP timeout the plugin waits for the service's answer
ANSWER_MARGIN = 15.0


def _holder(request: Request) -> dict[str, str]:
    return {"containerID": request.container_id, "network": request.config.name,
            "ifname": request.ifname}


def _result(request: Request, conf: DhcpConfig, answer: dict[str, object]) -> Result:
    routes = []
    for item in answer.get("routes") or []:  # type: ignore[attr-defined]
        routes.append(Route(dst=str(item["dst"]), gw=item.get("gw"),
                            scope=item.get("scope"), priority=conf.priority or None))
    gateway = answer.get("gateway")
    return Result(cni_version=request.cni_version,
                  ips=(IPConfig(address=str(answer["ip"]),
                                gateway=str(gateway) if gateway else None),),
                  routes=tuple(routes))


def _open_netns(request: Request) -> int:
    try:
        return os.open(request.netns, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise CNIError(ErrorCode.UNKNOWN_CONTAINER, "cannot open the network namespace",
                       f"{request.netns}: {exc.strerror}") from None


@hookimpl
def ipam_add(request: Request) -> Result:
    conf = DhcpConfig.from_request(request)
    fd = _open_netns(request)
    try:
        answer = protocol.call(conf.socket_path, {
            "op": "allocate", **_holder(request), "netns": os.path.abspath(request.netns),
            **conf.wire_options()}, fd, timeout=conf.timeout + ANSWER_MARGIN)
    finally:
        os.close(fd)
    return _result(request, conf, answer)


@hookimpl
def ipam_del(request: Request) -> None:
    """Release; never fails for a lease or a service that is not there."""
    try:
        conf = DhcpConfig.from_request(request)
    except CNIError:
        conf = DhcpConfig()  # a DEL must not fail on a config gone bad: try the default
    try:
        protocol.call(conf.socket_path, {"op": "release", **_holder(request)},
                      timeout=conf.timeout + ANSWER_MARGIN)
    except protocol.ServiceUnavailable as exc:
        print(f"dhcp: {exc.msg}: the lease was not released ({exc.details})",
              file=sys.stderr)


@hookimpl
def ipam_check(request: Request) -> None:
    conf = DhcpConfig.from_request(request)
    fd = _open_netns(request)  # lets a restarted service re-attach a lease it lost track of
    try:
        answer = protocol.call(conf.socket_path, {
            "op": "check", **_holder(request), "netns": os.path.abspath(request.netns)},
            fd, timeout=ANSWER_MARGIN)
    finally:
        os.close(fd)
    prev = request.prev_result
    if prev is None:
        return
    held = ipaddress.ip_interface(str(answer["ip"]))
    if not any(ipaddress.ip_interface(ip.address) == held for ip in prev.ips):
        raise CNIError(ErrorCode.INTERNAL, f"the DHCP lease of {request.ifname} is {held}, "
                       "not an address of prevResult",
                       ", ".join(ip.address for ip in prev.ips) or "prevResult has no ips")


@hookimpl
def plugin_status(request: Request) -> None:
    conf = DhcpConfig.from_request(request)
    try:
        protocol.call(conf.socket_path, {"op": "status"}, timeout=ANSWER_MARGIN)
    except protocol.ServiceUnavailable as exc:
        raise CNIError(ErrorCode.PLUGIN_NOT_AVAILABLE, exc.msg, exc.details) from None


@hookimpl
def plugin_gc(request: Request) -> None:
    """Release the network's leases of attachments the runtime no longer lists."""
    conf = DhcpConfig.from_request(request)
    valid = [[a.container_id, a.ifname] for a in request.valid_attachments]
    try:
        protocol.call(conf.socket_path, {"op": "gc", "network": request.config.name,
                                         "valid": valid}, timeout=ANSWER_MARGIN * 4)
    except protocol.ServiceUnavailable as exc:
        print(f"dhcp: {exc.msg}: nothing collected ({exc.details})", file=sys.stderr)
