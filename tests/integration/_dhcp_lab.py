"""A DHCP server in a test namespace: dnsmasq on one veth, and what it saw.

``DhcpLab`` makes a "server" namespace holding one end of a veth (``dh0``,
10.77.0.1/24) and runs dnsmasq there, DHCP only (``--port=0``: no DNS), bound to
that interface, with its lease file and log in the test's temp directory. The
other end is handed to the test (moved into a container namespace for the
IPAM-alone tests, or used as a macvlan master in a node namespace). dnsmasq is
killed at teardown whatever happened (the fixture's finalizer).
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import attrs

from corecni.testing import ip

SERVER_IP = "10.77.0.1"
SUBNET = ipaddress.IPv4Network("10.77.0.0/24")
RANGE = ("10.77.0.10", "10.77.0.60")
#: how long dnsmasq's lease file must stay empty to be read as "no lease" (see
#: Dnsmasq._lease_text); far longer than any pause between its truncate and write
EMPTY_HOLDS = 0.5


@attrs.frozen
class LeaseLine:
    """One line of dnsmasq's lease file."""

    expires: int
    mac: str
    ip: str
    client_id: str


@attrs.define
class Dnsmasq:
    proc: subprocess.Popen[bytes]
    leasefile: Path
    logfile: Path

    def _lease_text(self) -> str:
        """The lease file as dnsmasq last wrote it whole. It rewrites the file in place
        at every renewal: ftruncate, then one write of every line (stdio, well under
        a buffer), so a torn read is always an empty one, and a read that is not
        empty is whole. An empty read is believed only when the file stays empty for
        EMPTY_HOLDS seconds: dnsmasq descheduled between its ftruncate and its write
        on a loaded machine kept it empty for longer than the 20 ms two equal reads
        used to span, and the lab then reported leases gone that were not."""
        deadline = time.monotonic() + 30
        empty_since: float | None = None
        while time.monotonic() < deadline:
            try:
                text = self.leasefile.read_text()
            except FileNotFoundError:
                text = ""
            if text.endswith("\n"):
                return text
            now = time.monotonic()
            if text:  # a partial line: never seen with dnsmasq's single write
                empty_since = None
            elif empty_since is None:
                empty_since = now
            elif now - empty_since >= EMPTY_HOLDS:
                return ""
            time.sleep(0.02)
        raise AssertionError("dnsmasq's lease file never held still")

    def leases(self) -> list[LeaseLine]:
        out = []
        for line in self._lease_text().splitlines():
            parts = line.split()
            if len(parts) >= 5 and parts[0].isdigit():
                out.append(LeaseLine(int(parts[0]), parts[1], parts[2], parts[4]))
        return out

    def lease_of(self, address: str) -> LeaseLine | None:
        return next((lease for lease in self.leases() if lease.ip == address), None)

    def log_lines(self, word: str) -> list[str]:
        if not self.logfile.exists():
            return []
        return [line for line in self.logfile.read_text().splitlines() if word in line]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_dnsmasq(server_ns: str, iface: str, tmp: Path, *extra: str,
                  lease: str = "2m") -> Dnsmasq:
    """dnsmasq serving DHCP on ``iface`` of ``server_ns`` (a /run/netns path)."""
    binary = shutil.which("dnsmasq")
    if binary is None:
        raise RuntimeError("dnsmasq is not installed (Makefile APT_PACKAGES: dnsmasq-base)")
    tmp.mkdir(parents=True, exist_ok=True)
    leasefile, logfile = tmp / "dnsmasq.leases", tmp / "dnsmasq.log"
    cmd = ["nsenter", f"--net={server_ns}", binary, "--keep-in-foreground", "--no-daemon",
           "--conf-file=/dev/null", "--port=0", f"--interface={iface}", "--bind-interfaces",
           "--user=root", "--group=root", f"--dhcp-leasefile={leasefile}",
           f"--pid-file={tmp / 'dnsmasq.pid'}", "--log-dhcp", f"--log-facility={logfile}",
           f"--dhcp-range={RANGE[0]},{RANGE[1]},255.255.255.0,{lease}",
           f"--dhcp-option=option:router,{SERVER_IP}", "--dhcp-authoritative", "--no-ping", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=(tmp / "dnsmasq.err").open("w"),
                            start_new_session=True)
    server = Dnsmasq(proc, leasefile, logfile)
    deadline = time.monotonic() + 10
    while not (logfile.exists() and "started" in logfile.read_text()):
        if proc.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"dnsmasq did not start: {(tmp / 'dnsmasq.err').read_text()}")
        time.sleep(0.05)
    return server


def server_namespace(netns_factory: Callable[..., str]) -> str:
    """A server namespace with bridge ``br0`` (SERVER_IP/24, up): dnsmasq listens
    there, and every client link is a veth whose other end is a port of it."""
    server = netns_factory("dhcpsrv")
    ip(server, "link", "add", "br0", "type", "bridge", "forward_delay", "0")
    ip(server, "addr", "add", f"{SERVER_IP}/24", "dev", "br0")
    ip(server, "link", "set", "br0", "up")
    return server


_ports = iter(range(1_000_000))


def wire(server: str, peer_ns: str, peer_name: str, up: bool = False) -> None:
    """A veth from a port of ``br0`` in ``server`` to ``peer_name`` in ``peer_ns`` (left
    down unless ``up``: a fresh container interface is down)."""
    port = f"p{os.getpid() % 10000}x{next(_ports)}"
    ip(server, "link", "add", port, "type", "veth", "peer", "name", f"{port}c")
    ip(server, "link", "set", port, "master", "br0")
    ip(server, "link", "set", port, "up")
    ip(server, "link", "set", f"{port}c", "netns", os.path.basename(peer_ns))
    ip(peer_ns, "link", "set", f"{port}c", "name", peer_name)
    if up:
        ip(peer_ns, "link", "set", peer_name, "up")
