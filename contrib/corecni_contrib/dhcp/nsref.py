"""Keeping hold of a container's network namespace for the life of its lease.

The plugin sends the namespace as a descriptor (SCM_RIGHTS) beside the path it
was given: the descriptor is valid whatever the path means in the service's
own mount namespace or view of ``/proc`` (under the node daemon, CNI_NETNS is
``/proc/<daemon pid>/fd/N``, a path that dies with the call). The service
keeps a duplicate, so renewals enter the very namespace ADD saw, as Go's
daemon does by keeping a thread inside it.

A descriptor does not survive a restart, so a lease records the namespace's
path and identity (st_dev, st_ino). A restarted service reopens the path if it
still names that namespace, else looks for it by identity among the named
namespaces (``/run/netns``, ``/var/run/netns``) and the namespaces of running
processes (``/proc/<pid>/ns/net``: a live container has at least one). Not
found means the container is gone: its lease is not renewed.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Iterator

NAMED_DIRS = ("/run/netns", "/var/run/netns", "/var/run/docker/netns")
_TRANSIENT = re.compile(r"^/proc/(\d+|self|thread-self)/(task/\d+/)?fd/\d+$")


def identity(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def fd_path(fd: int) -> str:
    """A path the calling process can enter the namespace by (kit.netns_entered)."""
    return f"/proc/self/fd/{fd}"


def _candidates() -> Iterator[str]:
    for directory in NAMED_DIRS:
        with contextlib.suppress(OSError):
            for name in sorted(os.listdir(directory)):
                yield os.path.join(directory, name)


def _process_namespaces() -> Iterator[str]:
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc"):
            if name.isdigit():
                yield f"/proc/{name}/ns/net"


def _matching(paths: Iterable[str], ident: tuple[int, int]) -> int | None:
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) != ident:
            continue
        with contextlib.suppress(OSError):
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            if identity(fd) == ident:
                return fd
            os.close(fd)
    return None


def stable_path(path: str, fd: int) -> str:
    """The path to record for a restart: ``path`` itself unless it is a transient
    descriptor path, then a named namespace with the same identity if there is one."""
    if not is_transient(path):
        return path
    ident = identity(fd)
    for candidate in _candidates():
        with contextlib.suppress(OSError):
            st = os.stat(candidate)
            if (st.st_dev, st.st_ino) == ident:
                return candidate
    return path


def is_transient(path: str) -> bool:
    """A descriptor path (``/proc/<pid>/fd/N``): it names nothing once the call is over."""
    return bool(_TRANSIENT.match(path))


def _names(path: str, ident: tuple[int, int]) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == ident


def abandoned(path: str, ident: tuple[int, int]) -> bool:
    """True when the namespace the runtime gave as ``path`` is gone from its view: the
    path no longer names it, no named namespace does, and no process lives in it (only
    our descriptor keeps it). Never true for a transient path: then we cannot tell
    a namespace the runtime keeps somewhere unusual from one it dropped."""
    if is_transient(path) or _names(path, ident):
        return False
    return not any(_names(p, ident) for p in _candidates()) \
        and not any(_names(p, ident) for p in _process_namespaces())


def reopen(path: str, ident: tuple[int, int]) -> int | None:
    """A descriptor of the namespace recorded as (``path``, ``ident``), or None when
    it no longer exists."""
    return _matching([path], ident) or _matching(_candidates(), ident) \
        or _matching(_process_namespaces(), ident)
