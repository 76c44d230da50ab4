"""The disk store: Go's byte format, file modes, legacy files and the flock."""

from __future__ import annotations

import errno
import ipaddress
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from corecni_contrib.host_local.store import Allocation, Store

from corecni.kit import CNIError


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def test_reserve_writes_go_format(tmp_path: Path) -> None:
    with Store(str(tmp_path), "net1") as store:
        assert store.reserve(" c1 ", "eth0", ip("10.1.2.2"), 0)
        assert store.reserve("c1", "eth1", ip("2001:db8::2"), 1)
    d = tmp_path / "net1"
    assert (d / "10.1.2.2").read_bytes() == b"c1\r\neth0"  # container ID trimmed, no newline
    assert (d / "2001:db8::2").read_bytes() == b"c1\r\neth1"
    assert (d / "last_reserved_ip.0").read_bytes() == b"10.1.2.2"
    assert (d / "last_reserved_ip.1").read_bytes() == b"2001:db8::2"
    assert (d / "lock").read_bytes() == b""
    for name in ("10.1.2.2", "2001:db8::2", "last_reserved_ip.0", "lock"):
        assert stat.S_IMODE((d / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE(d.stat().st_mode) & 0o700 == 0o700


def test_ipv6_file_names_are_go_text_form(tmp_path: Path) -> None:
    # Go's net.IP.String follows RFC 5952: a single zero group is not shortened
    with Store(str(tmp_path), "n") as store:
        store.reserve("c", "eth0", ip("2001:0db8:0000:0001:0001:0001:0001:0001"), 0)
        store.reserve("c", "eth0", ip("2001:db8:0:0:1:0:0:1"), 0)
    names = sorted(p.name for p in (tmp_path / "n").iterdir())
    assert "2001:db8:0:1:1:1:1:1" in names and "2001:db8::1:0:0:1" in names


def test_reserve_refuses_a_taken_address(tmp_path: Path) -> None:
    with Store(str(tmp_path), "n") as store:
        assert store.reserve("c1", "eth0", ip("10.0.0.5"), 0)
        assert not store.reserve("c2", "eth0", ip("10.0.0.5"), 0)
    assert (tmp_path / "n" / "10.0.0.5").read_bytes() == b"c1\r\neth0"


@pytest.mark.parametrize("tmpfile", [True, False], ids=["O_TMPFILE", "no-O_TMPFILE"])
def test_a_claim_never_exists_without_its_owner(tmp_path: Path, tmpfile: bool,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that fails (as a process killed between create and write would) leaves
    no file: an empty address file is one no DEL can find. Both the O_TMPFILE road
    and the create-then-write fallback (filesystems without O_TMPFILE)."""
    real_open, real_write = os.open, os.write
    if not tmpfile:
        def no_tmpfile(path: str, flags: int, mode: int = 0o777) -> int:
            if flags & os.O_TMPFILE == os.O_TMPFILE:
                raise OSError(errno.EOPNOTSUPP, "no O_TMPFILE here")
            return real_open(path, flags, mode)
        monkeypatch.setattr(os, "open", no_tmpfile)
    with Store(str(tmp_path), "n") as store:
        def failing_write(fd: int, data: bytes) -> int:
            if data.startswith(b"c1"):
                raise OSError(errno.ENOSPC, "no space left")
            return real_write(fd, data)
        monkeypatch.setattr(os, "write", failing_write)
        with pytest.raises(CNIError, match=r"cannot reserve 10\.0\.0\.5"):
            store.reserve("c1", "eth0", ip("10.0.0.5"), 0)
        monkeypatch.setattr(os, "write", real_write)
        assert not (tmp_path / "n" / "10.0.0.5").exists()
        assert sorted(p.name for p in (tmp_path / "n").iterdir()) == ["lock"]
        assert store.reserve("c2", "eth0", ip("10.0.0.5"), 0)
        assert not store.reserve("c3", "eth0", ip("10.0.0.5"), 0)
    assert (tmp_path / "n" / "10.0.0.5").read_bytes() == b"c2\r\neth0"
    assert stat.S_IMODE((tmp_path / "n" / "10.0.0.5").stat().st_mode) == 0o600


def test_last_reserved_ip(tmp_path: Path) -> None:
    with Store(str(tmp_path), "n") as store:
        assert store.last_reserved_ip(0) is None
        (tmp_path / "n" / "last_reserved_ip.0").write_bytes(b"10.0.0.9\n")
        assert store.last_reserved_ip(0) == ip("10.0.0.9")
        (tmp_path / "n" / "last_reserved_ip.0").write_bytes(b"garbage")
        assert store.last_reserved_ip(0) is None


def test_lookup_and_release_including_legacy_files(tmp_path: Path) -> None:
    d = tmp_path / "n"
    d.mkdir()
    (d / "10.0.0.2").write_bytes(b"c1\r\neth0")
    (d / "10.0.0.3").write_bytes(b"c1\r\neth1")
    (d / "10.0.0.4").write_bytes(b"c1\n")  # legacy: container ID only
    (d / "10.0.0.5").write_bytes(b"c2\r\neth0")
    (d / "last_reserved_ip.0").write_bytes(b"10.0.0.5")
    (d / "notes.txt").write_bytes(b"c1\r\neth0")  # not an address: never touched
    (d / "10.0.0.9").mkdir()  # not a file: ignored
    with Store(str(tmp_path), "n") as store:
        assert store.allocations()[:3] == [Allocation(ip("10.0.0.2"), "c1", "eth0"),
                                           Allocation(ip("10.0.0.3"), "c1", "eth1"),
                                           Allocation(ip("10.0.0.4"), "c1", None)]
        assert store.get_by_id("c1", "eth0") == [ip("10.0.0.2"), ip("10.0.0.4")]
        assert store.find_by_id("c2", "eth0") and not store.find_by_id("c3", "eth0")
        # Go's order: exact matches first; legacy files only when nothing matched
        assert store.release_by_id("c1", "eth0") == [ip("10.0.0.2")]
        assert store.release_by_id("c1", "eth0") == [ip("10.0.0.4")]
        assert store.release_by_id("c1", "eth0") == []
    assert sorted(p.name for p in d.iterdir()) == \
        ["10.0.0.3", "10.0.0.5", "10.0.0.9", "last_reserved_ip.0", "lock", "notes.txt"]


def test_entering_creates_directory_and_lock_only(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "deep" / "dir"), "n")
    assert not store.exists()
    with store:
        pass
    assert store.exists() and os.listdir(store.directory) == ["lock"]


HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


def test_flock_excludes_another_process(tmp_path: Path) -> None:
    (tmp_path / "n").mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "n" / "lock")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        entered = threading.Event()

        def enter() -> None:
            with Store(str(tmp_path), "n"):
                entered.set()

        worker = threading.Thread(target=enter)
        worker.start()
        assert not entered.wait(0.5), "the store was entered while another process held the lock"
        assert holder.stdin is not None
        holder.stdin.close()  # the holder exits, its lock goes with it
        assert entered.wait(10)
        worker.join(10)
    finally:
        holder.kill()
        holder.wait()


def test_unwritable_directory_is_io_failure(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    from corecni.spec.errors import CNIError

    with pytest.raises(CNIError) as info, Store(str(tmp_path / "file"), "n"):
        pass
    assert info.value.code == 5


def test_attachment_hint_lives_outside_gos_directory(tmp_path: Path) -> None:
    """The hint lets ADD and DEL skip reading every pod's file, but is never trusted
    alone: an address is the attachment's only while its file says so."""
    with Store(str(tmp_path), "n") as store:
        assert store.reserve("c1", "eth0", ip("10.0.0.2"), 0)
        store.remember("c1", "eth0", [ip("10.0.0.2")])
        assert store.held_by("c1", "eth0") == [ip("10.0.0.2")]
        assert store.held_by("c2", "eth0") == []  # no hint: a new attachment
        # Go's directory holds only Go's files
        assert sorted(p.name for p in (tmp_path / "n").iterdir()) == \
            ["10.0.0.2", "last_reserved_ip.0", "lock"]
        # a stale hint (the address released and taken by another pod) is not believed
        store.release(ip("10.0.0.2"))
        assert store.reserve("c2", "eth0", ip("10.0.0.2"), 0)
        assert store.held_by("c1", "eth0") == []
        assert store.release_by_id("c1", "eth0") == []
        assert (tmp_path / "n" / "10.0.0.2").read_bytes() == b"c2\r\neth0"
        # an attachment without a hint (Go made it) is found by reading the directory
        (tmp_path / "n" / "10.0.0.7").write_bytes(b"c3\r\neth0")
        assert store.release_by_id("c3", "eth0") == [ip("10.0.0.7")]
    assert not list((tmp_path / ".corecni-ids" / "n").iterdir())
