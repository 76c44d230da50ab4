"""host-local IPAM hooks: ADD, DEL, CHECK, GC and STATUS over the shared disk store.

Every command runs under the store's ``flock``, so concurrent plugin
processes (ours or Go's) see each other's reservations. Codes: 7 for a
configuration or request that cannot be served, 5 for store I/O, 999 (Go's
code) for an exhausted range set or an address that is taken.
"""

from __future__ import annotations

import contextlib
import os

from corecni.kit import Request, hookimpl
from corecni.spec.errors import CNIError, ErrorCode
from corecni.spec.result import DNS, Result
from corecni.spec.version import CURRENT
from corecni_contrib.host_local.allocator import Allocator, Lease, assign_requested
from corecni_contrib.host_local.config import (
    DEFAULT_DATA_DIR,
    load_config,
    store_location,
)
from corecni_contrib.host_local.dns import parse_resolv_conf
from corecni_contrib.host_local.store import Store


def _attachment(request: Request) -> tuple[str, str]:
    if not request.container_id:
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT, "host-local needs a container ID")
    return request.container_id, request.ifname


@hookimpl
def ipam_add(request: Request) -> Result:
    """One address per range set; the attachment's existing addresses come back as they are
    (found by the store's hint: see ``store.Store.held_by``)."""
    cfg = load_config(request)
    container_id, ifname = _attachment(request)
    dns = parse_resolv_conf(cfg.resolv_conf) if cfg.resolv_conf else DNS()
    wanted = assign_requested(cfg.ranges, cfg.requested_ips)
    leases: list[Lease] = []
    with Store(cfg.data_dir, cfg.name) as store:
        held = store.held_by(container_id, ifname)
        try:
            for index, rangeset in enumerate(cfg.ranges):
                allocator = Allocator(rangeset, store, index)
                try:
                    leases.append(allocator.get(container_id, ifname, wanted.get(index), held))
                except CNIError as exc:
                    raise CNIError(exc.code, f"failed to allocate for range {index}: {exc.msg}",
                                   exc.details) from None
        except BaseException:
            # give back only what this call reserved: a failed repeat ADD must not
            # take the attachment's earlier addresses with it
            for lease in leases:
                if lease.fresh:
                    with contextlib.suppress(CNIError):
                        store.release(lease.ip)
            raise
        if any(lease.fresh for lease in leases):
            store.remember(container_id, ifname, [lease.ip for lease in leases])
    return Result(cni_version=request.cni_version or CURRENT,
                  ips=tuple(lease.ip_config() for lease in leases),
                  routes=cfg.routes, dns=dns)


@hookimpl
def ipam_del(request: Request) -> None:
    """Release by container ID + ifname; needs only ``name`` and ``dataDir`` to be sane."""
    location = store_location(request)
    container_id, ifname = _attachment(request)
    store = Store(location.data_dir, location.network)
    if not store.exists():
        return  # nothing was ever allocated on this network here
    with store:
        store.release_by_id(container_id, ifname)


@hookimpl
def ipam_check(request: Request) -> None:
    """The config must be valid and the attachment must still hold an address."""
    cfg = load_config(request)
    container_id, ifname = _attachment(request)
    store = Store(cfg.data_dir, cfg.name)
    found = False
    if store.exists():
        with store:
            found = store.find_by_id(container_id, ifname)
    if not found:
        raise CNIError(ErrorCode.INTERNAL,
                       f"host-local: Failed to find address added by container {container_id}",
                       f"ifname {ifname}, network {cfg.name}, dataDir {cfg.data_dir}")


@hookimpl
def plugin_gc(request: Request) -> None:
    """SPEC 1.1.0 GC: release every address whose attachment is not in the valid list.

    Legacy files (container ID only) are kept while the container has any valid
    attachment; an attachment listed without ifname keeps all of its container's.
    """
    location = store_location(request)
    valid = {(a.container_id.strip(), a.ifname) for a in request.valid_attachments}
    valid_ids = {cid for cid, _ in valid}
    whole_ids = {cid for cid, ifname in valid if not ifname}
    store = Store(location.data_dir, location.network)
    if not store.exists():
        return
    with store:
        for alloc in store.allocations():
            if alloc.ifname is None or alloc.container_id in whole_ids:
                keep = alloc.container_id in valid_ids
            else:
                keep = (alloc.container_id, alloc.ifname) in valid
            if not keep:
                store.release(alloc.ip)
                if alloc.ifname is not None:
                    store.forget(alloc.container_id, alloc.ifname)


@hookimpl
def plugin_status(request: Request) -> None:
    """Ready unless the data directory cannot be written (code 50)."""
    ipam = request.config.ipam or {}
    data_dir = ipam.get("dataDir") if isinstance(ipam.get("dataDir"), str) else ""
    path = os.path.join(data_dir or DEFAULT_DATA_DIR, request.config.name)
    probe = path
    while not os.path.lexists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)  # the directory that ADD would create it in
    if not os.path.isdir(probe) or not os.access(probe, os.W_OK | os.X_OK):
        raise CNIError(ErrorCode.PLUGIN_NOT_AVAILABLE,
                       "host-local: data directory is not writable", path)
