"""``corecni daemon`` served through the native shim: security, robustness, lifecycle.

Each test runs a real daemon process on a socket in its own temp dir and execs
the shim exactly as a runtime would (CNI_* env + stdin). The probe plugin
(``tests/plugins/daemon_probe.py``) raises, blocks on a file, or reports the
namespace it ran in, as each test needs.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from corecni import daemon_wire as wire
from corecni import launcher, netns
from tests._daemon import REPO, DaemonProc, running_daemon, start_daemon

pytestmark = pytest.mark.root

PROBE = launcher.LauncherSpec("probe", "tests.plugins.daemon_probe", sys_path=(REPO,))


@pytest.fixture
def bindir(tmp_path: Path) -> str:
    if os.geteuid() != 0:
        pytest.skip("the daemon serves root only")
    shim = launcher.shim_binary()
    if shim is None:
        pytest.fail("corecni/corecni-shim is not built (make venv builds it)")
    launcher.install(str(tmp_path / "bin"), [PROBE], shim=shim)
    return str(tmp_path / "bin")


@pytest.fixture
def daemon(tmp_path: Path, bindir: str) -> Iterator[DaemonProc]:
    with running_daemon(tmp_path / "d", timeout=20) as proc:
        yield proc


def conf(**ipam: Any) -> bytes:
    return json.dumps({"cniVersion": "1.0.0", "name": "probenet", "type": "probe",
                       "ipam": {"type": "probe", **ipam}}).encode()


def shim(bindir: str, sock: str, command: str, stdin: bytes, cid: str = "c1",
         netns_path: str = "/proc/self/ns/net") -> subprocess.CompletedProcess[bytes]:
    env = {"PATH": os.environ["PATH"], "CNI_COMMAND": command, "CNI_CONTAINERID": cid,
           "CNI_NETNS": netns_path, "CNI_IFNAME": "eth0", "CNI_PATH": bindir,
           "CNI_NETNS_OVERRIDE": "1",  # the test's own namespace stands in for a container's
           wire.SOCKET_ENV: sock}
    return subprocess.run([os.path.join(bindir, "probe")], input=stdin, env=env,
                          capture_output=True, check=False, timeout=120)


def cni_error(out: subprocess.CompletedProcess[bytes]) -> dict[str, Any]:
    assert out.returncode == 1, out
    error: dict[str, Any] = json.loads(out.stdout)
    return error


def ok(out: subprocess.CompletedProcess[bytes]) -> dict[str, Any]:
    assert out.returncode == 0, out
    assert b"no corecni daemon" not in out.stderr, "the shim fell back"
    result: dict[str, Any] = json.loads(out.stdout) if out.stdout.strip() else {}
    return result


def wait_for(predicate: Any, what: str, timeout: float = 60) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


# ---- serving ------------------------------------------------------------------

def test_calls_are_served_and_logged(daemon: DaemonProc, bindir: str) -> None:
    result = ok(shim(bindir, daemon.socket, "ADD", conf(ip="10.78.0.9/24")))
    assert result["ips"] == [{"address": "10.78.0.9/24"}]
    ok(shim(bindir, daemon.socket, "DEL", conf()))
    version = ok(shim(bindir, daemon.socket, "VERSION", b'{"cniVersion":"1.0.0"}'))
    assert version["cniVersion"] == "1.1.0"
    calls = daemon.records()
    assert [c["command"] for c in calls] == ["ADD", "DEL", "VERSION"]
    assert calls[0]["type"] == "probe" and calls[0]["container"] == "c1"
    assert calls[0]["ifname"] == "eth0" and calls[0]["network"] == "probenet"
    assert all(c["code"] == 0 and c["ms"] >= 0 for c in calls)


def test_node_side_runs_in_the_callers_namespace(daemon: DaemonProc, bindir: str,
                                                 node_netns: str) -> None:
    """The daemon lives in the root namespace; the call runs where the shim ran."""
    def inode_ip(ino: int) -> str:
        return f"10.{(ino >> 16) & 0xff}.{(ino >> 8) & 0xff}.{ino & 0xff}/32"

    with netns.entered(node_netns):  # the shim, a child of this thread, starts in there
        result = ok(shim(bindir, daemon.socket, "ADD", conf(probe="netns")))
    assert result["ips"][0]["address"] == inode_ip(netns.inode(node_netns))
    result = ok(shim(bindir, daemon.socket, "ADD", conf(probe="netns")))
    assert result["ips"][0]["address"] == inode_ip(os.stat("/proc/self/ns/net").st_ino)


def test_missing_netns_is_the_plugins_error(daemon: DaemonProc, bindir: str,
                                            tmp_path: Path) -> None:
    error = cni_error(shim(bindir, daemon.socket, "ADD", conf(),
                           netns_path=str(tmp_path / "gone")))
    assert error["code"] == 3 and str(tmp_path / "gone") in error["details"]


def test_plugin_that_raises_is_an_error_json(daemon: DaemonProc, bindir: str) -> None:
    error = cni_error(shim(bindir, daemon.socket, "ADD", conf(probe="raise")))
    assert (error["code"], error["msg"], error["details"]) == \
        (999, "probe plugin bug", "RuntimeError")
    assert daemon.health()["ready"]
    ok(shim(bindir, daemon.socket, "ADD", conf()))


def test_hung_plugin_times_out_and_the_daemon_lives_on(tmp_path: Path, bindir: str) -> None:
    release = tmp_path / "release"
    with running_daemon(tmp_path / "d", timeout=2) as daemon:
        error = cni_error(shim(bindir, daemon.socket, "ADD", conf(probe="wait",
                                                                   release=str(release))))
        assert error["code"] == 11 and "did not finish within 2s" in error["msg"]
        assert daemon.health()["stuck"] == 1
        ok(shim(bindir, daemon.socket, "ADD", conf(), cid="other"))
        release.touch()
        wait_for(lambda: daemon.health()["stuck"] == 0, "the stuck call to finish")


def test_same_attachment_is_serialised_others_run_concurrently(daemon: DaemonProc,
                                                               bindir: str,
                                                               tmp_path: Path) -> None:
    log, release = tmp_path / "calls.log", tmp_path / "release"
    first: list[subprocess.CompletedProcess[bytes]] = []
    second: list[subprocess.CompletedProcess[bytes]] = []
    blocked = threading.Thread(target=lambda: first.append(shim(
        bindir, daemon.socket, "ADD", conf(probe="wait", release=str(release), log=str(log)),
        cid="a")))
    blocked.start()
    wait_for(lambda: log.exists() and "enter a" in log.read_text(), "the first call")
    same = threading.Thread(target=lambda: second.append(shim(
        bindir, daemon.socket, "DEL", conf(log=str(log)), cid="a")))
    same.start()
    # another attachment is served while attachment "a" is busy
    ok(shim(bindir, daemon.socket, "ADD", conf(log=str(log)), cid="b"))
    release.touch()
    blocked.join(60)
    same.join(60)
    ok(first[0])
    ok(second[0])
    lines = [line for line in log.read_text().splitlines() if line.endswith(" a")]
    assert lines == ["enter a", "exit a", "enter a", "exit a"]


# ---- security -----------------------------------------------------------------

def test_socket_and_directory_permissions(daemon: DaemonProc) -> None:
    st = os.stat(daemon.socket)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == 0
    dst = os.stat(os.path.dirname(daemon.socket))
    assert stat.S_IMODE(dst.st_mode) == 0o700 and dst.st_uid == 0


def test_an_open_socket_directory_is_refused(tmp_path: Path, bindir: str) -> None:
    run = tmp_path / "run"
    run.mkdir(mode=0o755)
    run.chmod(0o755)
    proc = start_daemon(str(run / "d.sock"), tmp_path / "d.log", wait=False)
    assert proc.proc.wait(60) == 1
    assert "mode 0700" in proc.log.read_text()
    assert not (run / "d.sock").exists()


CLIENT = ("import sys; from corecni import daemon_wire as w; "
          "r = w.call(sys.argv[1], w.WireRequest(op=w.OP_HEALTH)); "
          "print(r.status); print(r.stdout)")


def test_non_root_is_refused(daemon: DaemonProc) -> None:
    drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    env = {**os.environ, "PYTHONPATH": REPO}
    # without privileges the 0700 directory / 0600 socket stop it at connect()
    out = subprocess.run([*drop, sys.executable, "-c", CLIENT, daemon.socket], env=env,
                         capture_output=True, text=True, check=False)
    assert out.returncode != 0 and "PermissionError" in out.stderr
    # past the file permissions (CAP_DAC_OVERRIDE), SO_PEERCRED still says uid 65534
    caps = ["--inh-caps=+dac_override", "--ambient-caps=+dac_override"]
    out = subprocess.run([*drop, *caps, sys.executable, "-c", CLIENT, daemon.socket], env=env,
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    status, body = out.stdout.split("\n", 1)
    error = json.loads(body)
    assert status == "1" and error["code"] == 4 and "uid 65534" in error["details"]
    assert daemon.records("refused")[0]["peer_uid"] == 65534


def _call_request(stdin: bytes = b"") -> wire.WireRequest:
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0",
           "CNI_NETNS": "/x", "CNI_PATH": "/nonexistent"}
    return wire.WireRequest(op=wire.OP_CALL, type="probe", env=env,
                            stdin=stdin or conf(), fds=wire.FD_CALLER_NETNS |
                            wire.FD_CONTAINER_NETNS)


def test_a_descriptor_that_is_not_a_netns_is_refused(daemon: DaemonProc,
                                                     tmp_path: Path) -> None:
    regular = tmp_path / "file"
    regular.write_text("x")
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    other = os.open(regular, os.O_RDONLY)
    try:
        for fds, what in (([own, other], "CNI_NETNS"), ([other, own], "caller")):
            reply = wire.call(daemon.socket, _call_request(), fds)
            error = reply.json()
            assert reply.status == 1 and error["code"] == 4, reply
            assert what in error["msg"] and "not a network namespace" in error["msg"]
    finally:
        os.close(own)
        os.close(other)
    uts = os.open("/proc/self/ns/uts", os.O_RDONLY)  # a namespace, of the wrong kind
    try:
        assert wire.call(daemon.socket, _call_request(), [uts, uts]).json()["code"] == 4
    finally:
        os.close(uts)


@pytest.mark.parametrize(("raw", "why"), [
    (b"GET / HTTP/1.1\r\n\r\n" + b"x" * 20, "bad magic"),
    (wire.REQUEST_HEAD.pack(b"CNS1", 1, 0, 0, 0, 0, 200 << 20), "exceeds the limit"),
    (wire.REQUEST_HEAD.pack(b"CNS1", 1, 1, 0, 0, 0, 0), "announces 1 descriptors, 0"),
    (wire.REQUEST_HEAD.pack(b"CNS1", 1, 0, 0, 0, 3, 0) + b"A=B", "NUL-terminated"),
    (wire.REQUEST_HEAD.pack(b"CNS1", 1, 0, 5, 0, 0, 0) + b"\xff\xfe\xfd\xfc\xfb",
     "not UTF-8"),
])
def test_malformed_or_oversized_requests_get_error_json(daemon: DaemonProc, raw: bytes,
                                                        why: str) -> None:
    reply = wire.call(daemon.socket, wire.WireRequest(op=wire.OP_CALL), raw=raw)
    error = reply.json()
    assert reply.status == 1 and error["code"] == 6 and why in error["details"], reply
    assert daemon.health()["ready"]


def test_oversized_request_through_a_real_socket_send(daemon: DaemonProc) -> None:
    """The daemon answers before reading a huge body; the client still gets the reply."""
    big = _call_request(stdin=b" " * (8 << 20))
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        reply = wire.call(daemon.socket, big, [own, own])
    finally:
        os.close(own)
    assert reply.status == 1 and "exceeds the limit" in reply.json()["details"]


def test_a_silent_client_does_not_hold_the_daemon(daemon: DaemonProc, bindir: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as idle:
        idle.connect(daemon.socket)  # sends nothing
        ok(shim(bindir, daemon.socket, "ADD", conf()))


# ---- lifecycle ----------------------------------------------------------------

def test_sigterm_stops_accepting_and_drains(daemon: DaemonProc, bindir: str,
                                            tmp_path: Path) -> None:
    log, release = tmp_path / "calls.log", tmp_path / "release"
    done: list[subprocess.CompletedProcess[bytes]] = []
    inflight = threading.Thread(target=lambda: done.append(shim(
        bindir, daemon.socket, "ADD", conf(probe="wait", release=str(release), log=str(log),
                                           ip="10.78.0.77/24"))))
    inflight.start()
    wait_for(lambda: log.exists() and "enter c1" in log.read_text(), "the call to start")
    daemon.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: not os.path.exists(daemon.socket), "the socket to go")
    # new calls fall back to the launcher at once (DEL never fails for lack of a daemon)
    fallback = shim(bindir, daemon.socket, "DEL", conf(), cid="later")
    assert fallback.returncode == 0 and b"no corecni daemon" in fallback.stderr
    assert daemon.proc.poll() is None  # still draining
    release.touch()
    inflight.join(60)
    assert ok(done[0])["ips"] == [{"address": "10.78.0.77/24"}]
    assert daemon.proc.wait(60) == 0
    assert daemon.records("stopped")


def test_a_new_daemon_takes_the_socket_over(daemon: DaemonProc, bindir: str,
                                            tmp_path: Path) -> None:
    ok(shim(bindir, daemon.socket, "ADD", conf()))
    new = start_daemon(daemon.socket, tmp_path / "new.log")
    try:
        assert daemon.proc.wait(60) == 0  # the old one drained and left
        assert daemon.health()["pid"] == new.pid  # same path, new daemon
        ok(shim(bindir, daemon.socket, "ADD", conf()))
        assert len(new.records()) == 1
        assert new.records("takeover")
    finally:
        new.stop()
    assert not os.path.exists(daemon.socket)


NS_IPAM = """#!/bin/sh
# an exec'd IPAM plugin that needs CNI_NETNS to be a usable path (as Go's dhcp does)
cat > /dev/null
[ "$CNI_COMMAND" = ADD ] || exit 0
ino=$(stat -L -c %i "$CNI_NETNS") || { echo '{"code":3,"msg":"bad netns"}'; exit 1; }
echo '{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.1/32"}],"dns":{"domain":"'"$ino"'"}}'
"""


def test_exec_delegate_sees_a_usable_netns_and_result_names_the_runtimes_path(
        tmp_path: Path, bindir: str, container_netns: str) -> None:
    """A Python interface plugin in the daemon exec'ing a non-Python IPAM plugin: the
    child can open CNI_NETNS (/proc/<daemon pid>/fd/N), and the result's sandbox is
    the runtime's own path again."""
    fake = launcher.LauncherSpec("fake-iface", "tests.plugins.fake_iface", sys_path=(REPO,))
    shim_bin = launcher.shim_binary()
    assert shim_bin is not None
    launcher.install(bindir, [fake], shim=shim_bin)
    script = Path(bindir) / "ns-ipam"
    script.write_text(NS_IPAM)
    script.chmod(0o755)
    stdin = json.dumps({"cniVersion": "1.0.0", "name": "nsnet", "type": "fake-iface",
                        "ipam": {"type": "ns-ipam"}}).encode()
    with running_daemon(tmp_path / "d") as daemon:
        env = {"PATH": os.environ["PATH"], "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1",
               "CNI_NETNS": container_netns, "CNI_IFNAME": "eth0", "CNI_PATH": bindir,
               wire.SOCKET_ENV: daemon.socket}
        out = subprocess.run([os.path.join(bindir, "fake-iface")], input=stdin, env=env,
                             capture_output=True, check=False)
        result = ok(out)
        assert daemon.records()[0]["type"] == "fake-iface"
    assert result["dns"]["domain"] == str(netns.inode(container_netns))
    assert result["interfaces"][0]["sandbox"] == container_netns


def test_a_daemon_whose_socket_was_removed_leaves(daemon: DaemonProc) -> None:
    """Unreachable (its path removed or replaced without a handover): it exits."""
    os.unlink(daemon.socket)
    assert daemon.proc.wait(60) == 0
    assert daemon.records("socket-replaced")


def test_status_command_reports_health(daemon: DaemonProc, tmp_path: Path) -> None:
    status = [sys.executable, "-m", "corecni.cli", "daemon", "--status", "--socket"]
    out = subprocess.run([*status, daemon.socket], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr
    health = json.loads(out.stdout)
    assert health["ready"] and health["pid"] == daemon.pid and health["stuck"] == 0
    none = subprocess.run([*status, str(tmp_path / "none.sock")], capture_output=True,
                          text=True, check=False)
    assert none.returncode == 1 and "not answering" in none.stderr
