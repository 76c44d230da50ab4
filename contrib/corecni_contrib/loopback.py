"""The ``loopback`` interface plugin: bring ``lo`` up in the container (Go's loopback).

CNI_IFNAME is ignored - this only ever works on ``lo``. The result reports
``lo`` with the all-zero MAC and the first IPv4 and IPv6 address the kernel put
on it once up (127.0.0.1/8, ::1/128), read back rather than assumed, so a
namespace without IPv6 reports only 127.0.0.1/8; an address that is not a
loopback address is refused, as in Go. Chained after another plugin, the
previous result passes through unchanged. DEL sets ``lo`` down again, as Go
does, and is a no-op for an empty or vanished namespace. No STATUS or GC: Go
has none, and there is nothing to be ready for or to collect.
"""

from __future__ import annotations

import errno
import ipaddress
import socket

from corecni.kit import Request, hookimpl, kernel_step, net_failure, netns_gone
from corecni.net import NetError
from corecni.spec.errors import CNIError, ErrorCode
from corecni.spec.result import Interface, IPConfig, Result
from corecni.spec.version import CURRENT

LO = "lo"
LO_MAC = "00:00:00:00:00:00"


@hookimpl
def cni_add(request: Request) -> Result:
    netns = request.netns
    with kernel_step(f"set {LO} up in {netns}"):
        request.net.batch(netns).set_link(LO, up=True).commit()
    with kernel_step(f"list addresses of {LO} in {netns}"):
        addresses = request.net.addresses(netns, LO)
    for address in addresses:
        if not ipaddress.ip_interface(address.address).ip.is_loopback:
            raise CNIError(ErrorCode.INTERNAL, "loopback interface found with non-loopback "
                           f"address {address.address!r}", netns)
    if request.prev_result is not None:
        return request.prev_result
    ips = []
    for family in (socket.AF_INET, socket.AF_INET6):
        first = next((a for a in addresses if a.family == family), None)
        if first is not None:
            ips.append(IPConfig(address=first.address, interface=0))
    return Result(cni_version=CURRENT,
                  interfaces=(Interface(name=LO, mac=LO_MAC, sandbox=netns),), ips=tuple(ips))


@hookimpl
def cni_del(request: Request) -> None:
    netns = request.netns
    if not netns or netns_gone(netns):
        return
    try:
        request.net.batch(netns).set_link(LO, up=False).commit()
    except NetError as exc:
        if exc.errno != errno.ENOENT:  # ENOENT: the namespace went away meanwhile
            raise net_failure(f"set {LO} down in {netns}", exc) from None


@hookimpl
def cni_check(request: Request) -> None:
    with kernel_step(f"look up {LO} in {request.netns}"):
        link = request.net.link(LO, request.netns)
    if link is None or not link.up:
        raise CNIError(ErrorCode.INTERNAL, "loopback interface is down", request.netns)
