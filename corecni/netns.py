"""Network namespaces: validate a path, and enter one for the calling thread.

``setns(2)`` changes the namespace of the calling *thread* only, so every
entry here is a context manager that remembers the thread's own namespace and
always restores it, even when the body raises. Python 3.11 has no
``os.setns``, hence the small ctypes binding (ctypes costs ~4 ms to import,
far less than a netlink library).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import threading
from collections.abc import Iterator

CLONE_NEWNET = 0x40000000
NSFS_MAGIC = 0x6E736673
PROC_SUPER_MAGIC = 0x9FA0
NS_GET_NSTYPE = 0xB703  # ioctl: which kind of namespace an nsfs fd is


class NetnsError(OSError):
    """A namespace path is missing, not a namespace, or cannot be entered."""


_libc: ctypes.CDLL | None = None


def _get_libc() -> ctypes.CDLL:
    global _libc  # a lazily bound C library, not program state
    if _libc is None:
        # the interpreter is linked against libc already; ctypes.util would cost a
        # subprocess import on every plugin exec
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


class _Statfs(ctypes.Structure):
    _fields_ = [("f_type", ctypes.c_long), ("_rest", ctypes.c_byte * 120)]


def fs_magic(path: str) -> int:
    buf = _Statfs()
    if _get_libc().statfs(os.fsencode(path), ctypes.byref(buf)) != 0:
        err = ctypes.get_errno()
        raise NetnsError(err, os.strerror(err), path)
    return int(buf.f_type) & 0xFFFFFFFF


def check_netns(path: str) -> None:
    """Raise ``NetnsError`` unless ``path`` names a network namespace.

    FileNotFoundError-style errno (ENOENT) means "no such namespace";
    EINVAL means "exists but is not a namespace file".
    """
    if not path:
        raise NetnsError(22, "empty network namespace path", path)
    if not os.path.exists(path):
        raise NetnsError(2, "network namespace does not exist", path)
    if fs_magic(path) not in (NSFS_MAGIC, PROC_SUPER_MAGIC):
        raise NetnsError(22, "not a network namespace", path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise NetnsError(exc.errno or 22, f"cannot open network namespace: {exc.strerror}",
                         path) from exc
    try:
        nstype = fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError as exc:
        raise NetnsError(22, "not a network namespace", path) from exc
    finally:
        os.close(fd)
    if nstype != CLONE_NEWNET:
        raise NetnsError(22, "not a network namespace (another namespace type)", path)


def _setns(fd: int) -> None:
    if _get_libc().setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise NetnsError(err, os.strerror(err), "setns")


@contextlib.contextmanager
def entered(path: str | None) -> Iterator[None]:
    """Run the body with the calling thread inside the namespace at ``path``.

    ``None`` is a no-op, so callers can pass "the current namespace" through.
    """
    if path is None:
        yield
        return
    check_netns(path)
    own = os.open(f"/proc/self/task/{_gettid()}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(own)


def _gettid() -> int:
    return threading.get_native_id()


def current_inode() -> int:
    """Inode of the calling thread's network namespace (to compare namespaces)."""
    return os.stat(f"/proc/self/task/{_gettid()}/ns/net").st_ino


def inode(path: str) -> int:
    return os.stat(path).st_ino


def is_own_netns(path: str) -> bool:
    """True when ``path`` is the calling thread's own network namespace (Go's
    ``ns.CheckNetNS``); a path that cannot be read is not (callers judge it)."""
    try:
        target = os.stat(path)
        own = os.stat(f"/proc/self/task/{_gettid()}/ns/net")
    except (OSError, ValueError):
        return False
    return (target.st_dev, target.st_ino) == (own.st_dev, own.st_ino)
