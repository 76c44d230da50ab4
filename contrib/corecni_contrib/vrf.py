"""vrf (meta): put the container interface in a VRF.

Config keys and behaviour follow containernetworking/plugins' ``vrf`` (Debian
ships 1.1.1):

* ``vrfname`` (required) - the VRF device in the container, created (and set up)
  when missing;
* ``table`` - its routing table; 0 (default) takes the lowest table no other VRF
  of the container uses; an existing VRF with another table is an error.

ADD enslaves CNI_IFNAME (which must have no master yet) and re-adds the IPv6
addresses the kernel drops when a link changes VRF. DEL releases the interface
and deletes the VRF once no interface is left in it; CHECK verifies the
interface is in the VRF. This kernel may lack the vrf module: ADD then fails
with code 999 naming it.
"""

from __future__ import annotations

import errno
import socket

from corecni import kit
from corecni.kit import CNIError, ErrorCode, Request, Result, hookimpl
from corecni.net import Link, NetBackend, NetError

KIND = "vrf"


def _conf(request: Request) -> tuple[str, int]:
    raw = request.config.raw
    name = kit.str_key(raw, "vrfname")
    if not name:
        raise kit.config_error("configuration is expected to have a valid vrf name")
    table = kit.int_key(raw, "table")
    if not 0 <= table < 2**32:
        raise kit.config_error(f"invalid table {table}")
    return name, table


def _find(backend: NetBackend, netns: str, name: str) -> Link | None:
    with kit.kernel_step(f"look up {name} in {netns}"):
        link = backend.link(name, netns)
    if link is not None and link.kind != KIND:
        raise CNIError(ErrorCode.INTERNAL, f"Netlink {name} is not a VRF")
    return link


def _free_table(links: list[Link]) -> int:
    taken = {link.vrf_table for link in links if link.kind == KIND}
    table = 1
    while table in taken:
        table += 1
    return table


def _create(backend: NetBackend, netns: str, name: str, table: int,
            undo: kit.UndoStack) -> None:
    if table == 0:
        with kit.kernel_step(f"list links in {netns}"):
            table = _free_table(backend.links(netns))
    try:
        backend.batch(netns).add_vrf(name, table).set_link(name, up=True).commit()
    except NetError as exc:
        hint = " (is the vrf kernel module available?)" \
            if exc.errno in (errno.EOPNOTSUPP, errno.ENOTSUP) else ""
        raise CNIError(ErrorCode.INTERNAL, f"could not add VRF {name}{hint}: {exc}",
                       errno.errorcode.get(exc.errno, "")) from None
    undo.push(lambda: backend.batch(netns).del_link(name, missing_ok=True).commit())


def _enslave(backend: NetBackend, netns: str, vrf: str, ifname: str) -> None:
    with kit.kernel_step(f"look up {ifname} in {netns}"):
        link = backend.link(ifname, netns)
    if link is None:
        raise CNIError(ErrorCode.INTERNAL, f"could not get link by name {ifname}")
    if link.master is not None:
        raise CNIError(ErrorCode.INTERNAL,
                       f"interface {ifname} has already a master set: {link.master}")
    with kit.kernel_step(f"list the addresses of {ifname}"):
        before = backend.addresses(netns, ifname, socket.AF_INET6)
    with kit.kernel_step(f"set vrf {vrf} as master of {ifname}"):
        backend.batch(netns).set_link(ifname, master=vrf).commit()
    with kit.kernel_step(f"restore the IPv6 addresses of {ifname}"):
        after = {a.address for a in backend.addresses(netns, ifname, socket.AF_INET6)}
        batch = backend.batch(netns)
        for addr in before:
            if addr.address not in after:
                batch.add_address(ifname, addr.address, nodad=True)
        batch.commit()


@hookimpl
def meta_add(request: Request, prev_result: Result) -> Result:
    name, table = _conf(request)
    backend, netns = request.net, request.netns
    with kit.undo_on_failure() as undo:
        vrf = _find(backend, netns, name)
        if vrf is not None and table and vrf.vrf_table != table:
            raise CNIError(ErrorCode.INTERNAL, f"VRF {name} already exist with different "
                                               f"routing table {vrf.vrf_table}")
        if vrf is None:
            _create(backend, netns, name, table, undo)
        _enslave(backend, netns, name, request.ifname)
    return prev_result


@hookimpl
def meta_del(request: Request, prev_result: Result | None) -> None:
    name, _ = _conf(request)
    backend, netns = request.net, request.netns
    if not netns or kit.netns_gone(netns):
        return
    with kit.kernel_step(f"release {request.ifname} from VRF {name}", gone_ok=True):
        vrf = backend.link(name, netns)
        if vrf is None or vrf.kind != KIND:
            return
        link = backend.link(request.ifname, netns)
        if link is not None and link.master == name:
            backend.batch(netns).set_link(request.ifname, nomaster=True).commit()
        if not any(other.master == name for other in backend.links(netns)):
            backend.batch(netns).del_link(name, missing_ok=True).commit()


@hookimpl
def meta_check(request: Request, prev_result: Result) -> None:
    name, _ = _conf(request)
    backend, netns = request.net, request.netns
    if _find(backend, netns, name) is None:
        raise CNIError(ErrorCode.INTERNAL, f"VRF {name} not found")
    with kit.kernel_step(f"look up {request.ifname} in {netns}"):
        link = backend.link(request.ifname, netns)
    if link is None or link.master != name:
        raise CNIError(ErrorCode.INTERNAL,
                       f"Failed to find {request.ifname} associated to vrf {name}")
