"""bandwidth (meta): shape a container's traffic with token buckets.

Config keys, defaults and behaviour follow containernetworking/plugins'
``bandwidth`` (Debian ships 1.1.1):

* ``ingressRate`` / ``ingressBurst`` - bits per second / bits for traffic *to*
  the container: a tbf qdisc (handle ``1:``) at the root of the host-side veth;
* ``egressRate`` / ``egressBurst`` - for traffic *from* the container: the
  host veth's ingress is redirected (u32 match-all + mirred, priority 1, class
  ``1:1``) into an ifb device named ``bwp`` + the first 12 hex digits of
  sha512(network name + container ID), which carries the tbf;
* the ``bandwidth`` capability (``runtimeConfig.bandwidth``, same four keys)
  is used when the config itself sets none of them.

A rate needs its burst and the reverse; a burst of 4 GB or more is refused
(all code 7, before anything is written). The tbf limit holds 25 ms at the
rate plus the burst, and the bucket is computed exactly as Go computes it, so
Go's CHECK accepts what this ADD built and the reverse. The ifb is added to the
result. DEL deletes the ifb (found from the container ID: no prevResult
needed) and, when the host veth is still there, its qdiscs. Everything goes
through ``request.net`` (netlink, no ``tc`` process).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Mapping
from typing import Any

import attrs

from corecni import kit
from corecni.kit import CNIError, ErrorCode, Interface, Request, Result, hookimpl
from corecni.net import (
    TC_H_INGRESS,
    TC_H_INGRESS_HANDLE,
    TC_H_ROOT,
    Filter,
    Link,
    NetBackend,
    NetError,
    Qdisc,
    tbf_buffer,
    tc_handle,
)

KEYS = ("ingressRate", "ingressBurst", "egressRate", "egressBurst")
IFB_PREFIX = "bwp"
IFB_NAME_LEN = 15
LATENCY_US = 25_000.0  # Go's latencyInMillis = 25, in tc's time units (microseconds)
MAX_U32 = 0xFFFFFFFF
MAX_U64 = 0xFFFFFFFFFFFFFFFF
TBF_HANDLE = tc_handle(1)
CLASS_ID = tc_handle(1, 1)


@attrs.frozen
class Shape:
    """One direction's token bucket, in the units the kernel takes (bytes)."""

    rate: int  # bytes per second
    burst: int  # bytes
    limit: int  # bytes: 25 ms at the rate plus the burst

    @classmethod
    def from_bits(cls, rate: int, burst: int) -> Shape:
        rate_b, burst_b = rate // 8, burst // 8
        limit = int(float(rate_b) * LATENCY_US / 1_000_000) + burst_b
        if limit > MAX_U32:
            raise kit.config_error("rate too high: 25 ms of it plus the burst exceed 4 GB")
        return cls(rate_b, burst_b, limit)

    def qdisc(self, ifname: str) -> Qdisc:
        return Qdisc(ifname, "tbf", handle=TBF_HANDLE, rate=self.rate, burst=self.burst,
                     limit=self.limit)


@attrs.frozen
class BandwidthConfig:
    ingress: Shape | None = None
    egress: Shape | None = None

    @classmethod
    def from_request(cls, request: Request) -> BandwidthConfig:
        raw = request.config.raw
        entry: Mapping[str, Any] = raw
        if not any(raw.get(k) is not None for k in KEYS):
            entry = kit.dict_key(request.runtime_config, "bandwidth", "runtimeConfig.bandwidth")
        values = {k: _bits(entry, k) for k in KEYS}
        return cls(ingress=_shape(values["ingressRate"], values["ingressBurst"]),
                   egress=_shape(values["egressRate"], values["egressBurst"]))

    @property
    def shaping(self) -> bool:
        return self.ingress is not None or self.egress is not None


def _bits(entry: Mapping[str, Any], key: str) -> int:
    """A Go ``uint64`` key: a non-negative integer, 0 when absent."""
    value = kit.int_key(entry, key)
    if not 0 <= value <= MAX_U64:
        raise kit.config_error(f"{key} must be a positive integer", f"{key}={value}")
    return value


def _shape(rate: int, burst: int) -> Shape | None:
    if burst == 0 and rate != 0:
        raise kit.config_error("if rate is set, burst must also be set")
    if rate == 0 and burst != 0:
        raise kit.config_error("if burst is set, rate must also be set")
    if burst // 8 >= MAX_U32:
        raise kit.config_error("burst cannot be more than 4GB")
    if rate == 0:
        return None
    if rate < 8 or burst < 8:
        raise kit.config_error("rate and burst must be at least 8 (one byte)",
                               f"rate={rate} burst={burst}")
    return Shape.from_bits(rate, burst)


def ifb_name(network: str, container_id: str) -> str:
    """Go's ``getIfbDeviceName``: ``MustFormatHashWithPrefix(15, "bwp", name+containerID)``."""
    digest = hashlib.sha512((network + container_id).encode()).hexdigest()
    return (IFB_PREFIX + digest)[:IFB_NAME_LEN]


def host_interface(backend: NetBackend, request: Request, prev: Result) -> Link:
    """The node end of the container's veth, which the previous result must list (Go's
    ``getHostInterface``: each node-side interface of the result is looked up by name
    and compared with the veth's peer index - never a dump of the node's links)."""
    if not prev.interfaces:
        raise CNIError(ErrorCode.INTERNAL, "no interfaces provided")
    with kit.kernel_step(f"look up {request.ifname} in {request.netns}"):
        inner = backend.link(request.ifname, request.netns)
    if inner is None or inner.kind != "veth" or not inner.peer_index:
        raise CNIError(ErrorCode.INTERNAL,
                       f"container interface {request.ifname} has no veth peer")
    for iface in prev.interfaces:
        if iface.sandbox or not iface.name:
            continue
        with kit.kernel_step(f"look up {iface.name}"):
            host = backend.link(iface.name, None)
        if host is not None and host.index == inner.peer_index:
            return host
    raise CNIError(ErrorCode.INTERNAL, "no veth peer of container interface found in host ns",
                   f"peer index {inner.peer_index}")


# --- ADD ---------------------------------------------------------------------------------

def _shape_ingress(backend: NetBackend, host: Link, shape: Shape, undo: kit.UndoStack) -> None:
    """The undo is armed only once the tbf is in: the add is exclusive, so a root
    someone else's qdisc holds fails it (EEXIST) and that qdisc is never removed."""
    with kit.kernel_step(f"create tbf qdisc on {host.name}"):
        backend.batch(None).add_qdisc(shape.qdisc(host.name)).commit()
    undo.push(lambda: backend.batch(None).del_qdisc(host.name, missing_ok=True).commit())


def _shape_egress(backend: NetBackend, host: Link, ifb: str, shape: Shape,
                  undo: kit.UndoStack) -> Interface:
    """ifb (up, the host veth's MTU), the host veth's ingress qdisc (exclusive, its
    undo armed once it is in), then in one batch the redirect filter and the ifb's
    tbf."""
    with kit.kernel_step(f"create ifb device {ifb}"):
        backend.batch(None).add_ifb(ifb, mtu=host.mtu).set_link(ifb, up=True).commit()
    undo.push(lambda: backend.batch(None).del_link(ifb, missing_ok=True).commit())
    with kit.kernel_step(f"read back {ifb}"):
        link = backend.link(ifb, None)
    with kit.kernel_step(f"create ingress qdisc on {host.name}"):
        backend.batch(None).add_qdisc(Qdisc(host.name, "ingress", handle=TC_H_INGRESS_HANDLE,
                                            parent=TC_H_INGRESS)).commit()
    undo.push(lambda: backend.batch(None).del_qdisc(host.name, parent=TC_H_INGRESS,
                                                    missing_ok=True).commit())
    with kit.kernel_step(f"redirect {host.name} to {ifb} and shape it"):
        (backend.batch(None)
         .add_filter(Filter(host.name, TC_H_INGRESS_HANDLE, classid=CLASS_ID, redirect=ifb))
         .add_qdisc(shape.qdisc(ifb))
         .commit())
    return Interface(name=ifb, mac=link.mac if link is not None else "")


@hookimpl
def meta_add(request: Request, prev_result: Result) -> Result:
    conf = BandwidthConfig.from_request(request)
    if not conf.shaping:
        return prev_result
    backend = request.net
    host = host_interface(backend, request, prev_result)
    with kit.undo_on_failure() as undo:
        if conf.ingress is not None:
            _shape_ingress(backend, host, conf.ingress, undo)
        if conf.egress is not None:
            ifb = _shape_egress(backend, host,
                                ifb_name(request.config.name, request.container_id),
                                conf.egress, undo)
            return attrs.evolve(prev_result, interfaces=(*prev_result.interfaces, ifb))
    return prev_result


# --- DEL ---------------------------------------------------------------------------------

@hookimpl
def meta_del(request: Request, prev_result: Result | None) -> None:
    """The ifb goes (by name, from the container ID); the host veth's qdiscs too when
    the previous result and the container still say which veth it is (otherwise they
    go with the veth). Nothing missing is an error."""
    backend = request.net
    ifb = ifb_name(request.config.name, request.container_id)
    if prev_result is not None and request.netns and not kit.netns_gone(request.netns):
        with contextlib.suppress(CNIError, NetError):
            host = host_interface(backend, request, prev_result)
            (backend.batch(None).del_qdisc(host.name, missing_ok=True)
             .del_qdisc(host.name, parent=TC_H_INGRESS, missing_ok=True).commit())
    with kit.kernel_step(f"delete ifb device {ifb}"):
        backend.batch(None).del_link(ifb, missing_ok=True).commit()


# --- CHECK -------------------------------------------------------------------------------

def _check_tbf(backend: NetBackend, ifname: str, shape: Shape) -> None:
    """The root qdisc of ``ifname`` is a tbf with Go's rate, limit and bucket."""
    with kit.kernel_step(f"list the qdiscs of {ifname}"):
        qdiscs = [q for q in backend.qdiscs(None, ifname) if q.kind != "pfifo_fast"]
    tbf = next((q for q in qdiscs if q.kind == "tbf" and q.parent == TC_H_ROOT), None)
    if tbf is None:
        raise CNIError(ErrorCode.INTERNAL, "Failed to find qdisc", f"no tbf on {ifname}")
    for what, want, have in (("Rate", shape.rate, tbf.rate), ("Limit", shape.limit, tbf.limit),
                             ("Buffer", tbf_buffer(shape.rate, shape.burst), tbf.buffer)):
        if want != have:
            raise CNIError(ErrorCode.INTERNAL, f"{what} doesn't match",
                           f"{ifname}: configured {want}, found {have}")


@hookimpl
def meta_check(request: Request, prev_result: Result) -> None:
    conf = BandwidthConfig.from_request(request)
    backend = request.net
    host = host_interface(backend, request, prev_result)
    if conf.ingress is not None:
        _check_tbf(backend, host.name, conf.ingress)
    if conf.egress is not None:
        ifb = ifb_name(request.config.name, request.container_id)
        with kit.kernel_step(f"look up {ifb}"):
            found = backend.link(ifb, None)
        if found is None:
            raise CNIError(ErrorCode.INTERNAL, f"get ifb device: {ifb} not found")
        _check_tbf(backend, ifb, conf.egress)
        with kit.kernel_step(f"list the filters of {host.name}"):
            filters = backend.filters(host.name, TC_H_INGRESS_HANDLE, None)
        if not any(f.redirect == ifb for f in filters):
            raise CNIError(ErrorCode.INTERNAL, f"no redirect from {host.name} to {ifb}")
