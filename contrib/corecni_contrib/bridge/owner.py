"""Which attachment created the bridge, so that the bridge can go with it (issue 12, item 10).

Go's bridge plugin makes the bridge on first use and never removes it. When a chain
ADD fails in a later plugin, the runtime rolls back with DEL - and the bridge, with
its gateway address, stays in the node although only the failed attachment ever used
it. Here the ADD that *creates* the bridge marks it as made by its attachment
(network, container ID, ifname), and the DEL of that same attachment removes the
bridge when no container is attached to it any more. A bridge that existed before
(made by an earlier pod, by Go's plugin or by the admin) is never taken over: an ADD
that finds it is only a user of it, as in Go.

The mark is the bridge's alias (``IFLA_IFALIAS``, ``ip link show`` prints it):
``corecni-bridge creator=<hash of the attachment>``. Unlike a file under a state
directory it lives in the bridge's own namespace, goes with the bridge, survives no
reboot the bridge does not survive, and cannot go stale or name another namespace's
bridge of the same name. An alias somebody else set (or changed) is simply not ours:
that bridge stays. Go's plugin neither reads nor writes the alias, so on a node that
switches implementations a mark is harmless: Go never removes the bridge; corecni's
DEL of the creator still can.

Races. An ADD that found the bridge must get its port onto it before the creator's
DEL decides "no ports left, remove it". Every ADD therefore holds one node-wide file
lock *shared* from looking the bridge up until its veth is a port (ADDs never wait on
each other); the removal takes it *exclusive*, reads the ports and deletes under it.
Go's plugin does not take the lock: its ADD racing with the creator's DEL may find
the bridge gone and fail (a retry creates it again) - the price of the removal, paid
only on nodes mixing both implementations.

With containers still attached, the creator's DEL leaves the bridge - shared, as in
Go - and its mark: a DEL of the creator that came while its own port was still there
(its namespace was gone and the kernel had not yet removed the veth, or it came without
CNI_NETNS) is repeated by runtimes, and that repeat removes the bridge once it is
empty. No other attachment's DEL ever removes it. VLAN gateway ports
(``<bridge>.<vlan>``, see ``add._vlan_gateway``) are the bridge's own, not
containers': they go with it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
from collections.abc import Iterator

from corecni.kit import Request
from corecni.net import Link, NetBackend, NetError
from corecni.spec.errors import CNIError, ErrorCode

ALIAS_PREFIX = "corecni-bridge creator="
#: node-wide (every namespace's bridges): shared by ADDs, exclusive for a removal
LOCK_PATH = "/run/corecni/bridge.lock"


def creator_mark(network: str, container_id: str, ifname: str) -> str:
    """The alias naming an attachment as the bridge's creator: a hash, because an
    alias holds at most 255 bytes and a container ID may be longer."""
    key = "\0".join((network, container_id, ifname)).encode("utf-8", "surrogateescape")
    return ALIAS_PREFIX + hashlib.sha256(key).hexdigest()[:40]


def mark_of(request: Request, network: str) -> str:
    return creator_mark(network, request.container_id, request.ifname)


def _lock(mode: int) -> int:
    """An open descriptor of ``LOCK_PATH`` holding ``mode`` (closing it unlocks)."""
    os.makedirs(os.path.dirname(LOCK_PATH), mode=0o700, exist_ok=True)
    fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def attaching() -> Iterator[None]:
    """Held (shared) by an ADD from looking the bridge up until its port is on it."""
    try:
        fd = _lock(fcntl.LOCK_SH)
    except OSError as exc:
        raise CNIError(ErrorCode.INTERNAL, f"failed to lock {LOCK_PATH}",
                       f"{exc.strerror or exc}") from None
    try:
        yield
    finally:
        os.close(fd)


def _is_vlan_gateway(port: Link, bridge: str, by_index: dict[int, Link]) -> bool:
    """A veth port whose peer, in this namespace, is ``<bridge>.<vlan>``."""
    if port.kind != "veth" or port.link_netnsid is not None or port.peer_index is None:
        return False
    peer = by_index.get(port.peer_index)
    return peer is not None and re.fullmatch(re.escape(bridge) + r"\.\d+", peer.name) is not None


def release(backend: NetBackend, bridge: str, mark: str) -> None:
    """DEL of ``bridge``'s creator ``mark``: with no container port left the bridge goes
    (its addresses, routes and VLAN gateway ports with it), else it stays as it is. Not
    the creator (or no such bridge): nothing. Best effort - DEL and
    undo never fail here; a bridge that cannot be removed stays, as Go's always does."""
    with contextlib.suppress(NetError, OSError):
        link = backend.link(bridge)
        if not mark or link is None or link.alias != mark:  # the common case: no lock
            return
        fd = _lock(fcntl.LOCK_EX)
        try:
            links = backend.links()
            by_index = {item.index: item for item in links}
            found = [item for item in links if item.name == bridge]
            if not found or found[0].kind != "bridge" or found[0].alias != mark:
                return
            ports = [item for item in links if item.master == bridge]
            own = [p for p in ports if _is_vlan_gateway(p, bridge, by_index)]
            if len(own) < len(ports):  # containers still on it: it stays, marked (below)
                return
            batch = backend.batch(None)
            for port in own:
                batch.del_link(port.name, missing_ok=True)
            batch.del_link(bridge, missing_ok=True).commit()
        finally:
            os.close(fd)
