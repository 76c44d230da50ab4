"""The on-disk allocation store, byte-compatible with Go's ``host-local`` disk backend.

Layout of ``<dataDir>/<network>/`` (Go: ``backend/disk/backend.go``, ``lock.go``):

* ``<ip>`` - one file per allocated address, named by the address in its
  canonical text form (``10.1.2.3``, ``2001:db8::5``), created exclusively
  and holding ``<containerID>\\r\\n<ifname>``; very old Go versions wrote only
  ``<containerID>``, which is still honoured when looking up and releasing;
* ``last_reserved_ip.<range set index>`` - the last address reserved in that
  range set, without a newline; allocation continues after it (round robin);
* ``lock`` - an empty file; every operation holds ``flock(LOCK_EX)`` on it.

Because both implementations use the same file names, contents and ``flock``
on the same ``lock`` file, Go and corecni plugins can serve one network at
the same time without handing out an address twice. New files get mode 0600
(upstream Go since v1.2; v1.1.1 used 0644): they name containers.

Finding an attachment's addresses in that layout means reading every file
(Go's ``GetByID`` walks the directory on every ADD and DEL), which costs more
the more pods the node holds. corecni keeps a hint beside it, outside Go's
directory: ``<dataDir>/.corecni-ids/<network>/<hash of containerID+ifname>``
lists the addresses its ADD reserved for the attachment. The hint is never
trusted alone - each address is kept only if its file still names the
attachment - and an attachment without one (its ADD was Go's, or older) is
found by reading the directory, as before. So ADD reads no other pod's file,
and DEL reads them only for attachments corecni did not make.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import ipaddress
import os
from types import TracebackType

import attrs

from corecni.spec.errors import CNIError, ErrorCode
from corecni_contrib._ipam_common import IPAddress

LOCK_FILE = "lock"
LAST_RESERVED_PREFIX = "last_reserved_ip."
LINE_BREAK = "\r\n"
FILE_MODE = 0o600
DIR_MODE = 0o755
HINT_DIR = ".corecni-ids"  # in dataDir: not a valid network name, never Go's


def io_failure(what: str, exc: OSError) -> CNIError:
    return CNIError(ErrorCode.IO_FAILURE, f"host-local store: {what}",
                    f"{exc.filename or ''}: {exc.strerror or exc}")


@attrs.frozen
class Allocation:
    """One address file: who holds ``ip`` (``ifname`` is None in the legacy format)."""

    ip: IPAddress
    container_id: str
    ifname: str | None


def _ip_of_name(name: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def _create_whole(path: str, content: bytes) -> bool:
    """Create ``path`` holding ``content``, all or nothing; False if it exists.

    Go creates the file with ``O_EXCL`` and then writes it: a process killed in
    between leaves an empty file, an address no DEL can find (only GC frees
    it). Here the content is written to an unnamed file (``O_TMPFILE``) that is
    then linked in under its name - the link is the exclusive claim, and a
    process killed before it leaves nothing. Filesystems without ``O_TMPFILE``
    get Go's create-then-write, with the file removed if the write fails.
    """
    directory = os.path.dirname(path)
    try:
        fd = os.open(directory, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, FILE_MODE)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            raise
        return _create_then_write(path, content)
    try:
        os.write(fd, content)
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            # a dir fd makes Python call linkat(AT_SYMLINK_FOLLOW): plain link()
            # would link the /proc symlink itself (EXDEV)
            os.link(f"/proc/self/fd/{fd}", os.path.basename(path), dst_dir_fd=dir_fd,
                    follow_symlinks=True)
        except FileExistsError:
            return False
        finally:
            os.close(dir_fd)
    finally:
        os.close(fd)
    return True


def _create_then_write(path: str, content: bytes) -> bool:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        return False
    try:
        try:
            os.write(fd, content)
        finally:
            os.close(fd)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    return True


class Store:
    """A locked view of one network's directory; use as a context manager.

    ``Store(dir)`` creates nothing; entering it creates the directory and the
    lock file (as Go does) and takes the lock, leaving it releases the lock.
    Every other method must be called while the store is entered.
    """

    def __init__(self, data_dir: str, network: str) -> None:
        self.directory = os.path.join(data_dir, network)
        self.hints = os.path.join(data_dir, HINT_DIR, network)
        self._lock_fd: int | None = None

    # -- locking -------------------------------------------------------------
    def __enter__(self) -> Store:
        try:
            os.makedirs(self.directory, DIR_MODE, exist_ok=True)
            fd = os.open(os.path.join(self.directory, LOCK_FILE),
                         os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        except OSError as exc:
            raise io_failure("cannot open the data directory", exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            os.close(fd)
            raise io_failure("cannot lock the data directory", exc) from None
        self._lock_fd = fd
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)  # closing the only descriptor drops the flock

    def exists(self) -> bool:
        return os.path.isdir(self.directory)

    def _path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    # -- reserving -----------------------------------------------------------
    def reserve(self, container_id: str, ifname: str, ip: IPAddress, range_id: int) -> bool:
        """Claim ``ip``; False if some attachment already holds it.

        The claim is an exclusive create, so even a writer that ignored the lock
        could not take the same address; then ``last_reserved_ip.<id>`` records
        where the next search starts.
        """
        path = self._path(str(ip))
        try:
            claimed = _create_whole(path, f"{container_id.strip()}{LINE_BREAK}{ifname}".encode())
        except OSError as exc:
            raise io_failure(f"cannot reserve {ip}", exc) from None
        if not claimed:
            return False
        try:
            self._write(self._path(f"{LAST_RESERVED_PREFIX}{range_id}"), str(ip))
        except OSError as exc:
            with contextlib.suppress(CNIError):
                self._unlink(path)
            raise io_failure("cannot record the last reserved IP", exc) from None
        return True

    @staticmethod
    def _write(path: str, text: str) -> None:
        """Replace the file's content in place: written over from offset 0, then cut
        to length. Not ``O_TRUNC``: on ext4 truncating a file that holds data to
        zero starts its writeback (``auto_da_alloc``), which made this one small
        write cost most of a millisecond per ADD."""
        data = text.encode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        try:
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
        finally:
            os.close(fd)

    def last_reserved_ip(self, range_id: int) -> IPAddress | None:
        """The address in ``last_reserved_ip.<range_id>``, None if absent or unreadable.

        A wrong value only costs round-robin order once (as in Go), never an error.
        """
        try:
            with open(self._path(f"{LAST_RESERVED_PREFIX}{range_id}"), "rb") as fh:
                text = fh.read(256).decode("ascii", "replace").strip()
        except OSError:
            return None
        return _ip_of_name(text)

    # -- looking up ----------------------------------------------------------
    def allocations(self) -> list[Allocation]:
        """Every address file, in address order (files that are not addresses are skipped)."""
        out = []
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise io_failure("cannot list the data directory", exc) from None
        for entry in entries:
            ip = _ip_of_name(entry.name)
            if ip is None or not entry.is_file(follow_symlinks=False):
                continue
            try:
                with open(entry.path, "rb") as fh:
                    data = fh.read(4096).decode("utf-8", "replace").strip()
            except OSError:
                continue  # released meanwhile by a writer ignoring the lock
            cid, sep, ifname = data.partition(LINE_BREAK)
            out.append(Allocation(ip=ip, container_id=cid, ifname=ifname if sep else None))
        out.sort(key=lambda a: (a.ip.version, int(a.ip)))
        return out

    def get_by_id(self, container_id: str, ifname: str) -> list[IPAddress]:
        """Addresses held by the attachment (or, legacy files, by the container)."""
        cid = container_id.strip()
        return [a.ip for a in self.allocations()
                if a.container_id == cid and a.ifname in (ifname, None)]

    def find_by_id(self, container_id: str, ifname: str) -> bool:
        return bool(self.get_by_id(container_id, ifname))

    # -- the attachment hint (see the module docstring) -------------------------
    def _hint_path(self, container_id: str, ifname: str) -> str:
        key = f"{container_id.strip()}{LINE_BREAK}{ifname}".encode()
        return os.path.join(self.hints, hashlib.sha256(key).hexdigest()[:32])

    def _holds(self, ip: IPAddress, container_id: str, ifname: str) -> bool:
        try:
            fd = os.open(self._path(str(ip)), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            data = os.read(fd, 4096)
        except OSError:
            return False
        finally:
            os.close(fd)
        want = f"{container_id.strip()}{LINE_BREAK}{ifname}".encode()
        return data.strip() == want

    def hinted(self, container_id: str, ifname: str) -> list[IPAddress] | None:
        """The attachment's addresses by its hint, each checked against its file;
        None when there is no hint (then only reading the directory can tell)."""
        try:
            with open(self._hint_path(container_id, ifname), "rb") as fh:
                text = fh.read(65536).decode("ascii", "replace")
        except OSError:
            return None
        found = (_ip_of_name(line.strip()) for line in text.splitlines())
        return [ip for ip in found if ip is not None and self._holds(ip, container_id, ifname)]

    def remember(self, container_id: str, ifname: str, ips: list[IPAddress]) -> None:
        """Write the attachment's hint (best effort: a hint that cannot be written
        only means a later lookup reads the directory)."""
        path = self._hint_path(container_id, ifname)
        with contextlib.suppress(OSError):
            os.makedirs(self.hints, 0o700, exist_ok=True)
            self._write(path, "".join(f"{ip}\n" for ip in ips))

    def forget(self, container_id: str, ifname: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self._hint_path(container_id, ifname))

    def held_by(self, container_id: str, ifname: str) -> list[IPAddress]:
        """What ADD needs: the attachment's addresses by its hint; with no hint, none
        (a new attachment: no other pod's file is read). An attachment whose ADD
        was Go's is not seen here, which matters only to a repeated ADD of it."""
        return self.hinted(container_id, ifname) or []

    # -- releasing -----------------------------------------------------------
    def release(self, ip: IPAddress) -> None:
        self._unlink(self._path(str(ip)))

    def release_by_id(self, container_id: str, ifname: str) -> list[IPAddress]:
        """Release the attachment's addresses; legacy id-only files only if none matched.

        That fallback order is Go's: a container with files in both formats keeps
        its legacy ones until a later DEL. With a hint naming live files, those are
        released without reading the directory.
        """
        hinted = self.hinted(container_id, ifname)
        if hinted:
            for ip in hinted:
                self.release(ip)
            self.forget(container_id, ifname)
            return hinted
        cid = container_id.strip()
        held = self.allocations()
        mine = [a.ip for a in held if a.container_id == cid and a.ifname == ifname]
        if not mine:
            mine = [a.ip for a in held if a.container_id == cid and a.ifname is None]
        for ip in mine:
            self.release(ip)
        if hinted is not None:
            self.forget(container_id, ifname)
        return mine

    @staticmethod
    def _unlink(path: str) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass  # already released: DEL and GC must be repeatable
        except OSError as exc:
            raise io_failure("cannot release", exc) from None
