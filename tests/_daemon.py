"""Running ``corecni daemon`` in tests: a real process on a socket in a temp dir."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from corecni import daemon_wire as wire

REPO = str(Path(__file__).resolve().parent.parent)


@attrs.define
class DaemonProc:
    proc: subprocess.Popen[bytes]
    socket: str
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def health(self) -> dict[str, Any]:
        return wire.health(self.socket)

    def records(self, event: str = "call") -> list[dict[str, Any]]:
        """The daemon's structured log lines of one kind."""
        out = []
        for line in self.log.read_text().splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and record.get("event") == event:
                    out.append(record)
        return out

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


def start_daemon(socket: str, log: Path, *args: str, env: dict[str, str] | None = None,
                 wait: bool = True, timeout: float | None = None) -> DaemonProc:
    """Start ``corecni daemon`` on ``socket``; with ``wait``, return once it is ready."""
    log.parent.mkdir(parents=True, exist_ok=True)
    # the daemon's DHCP lease service (contrib) beside the socket, never /run/cni's
    private = {"CORECNI_DHCP_SOCKET": os.path.join(os.path.dirname(socket), "dhcp.sock"),
               "CORECNI_DHCP_STATE_DIR": str(log.parent / "dhcp-state")}
    env = {**private, **(env or {})}
    fh = log.open("a")
    proc = subprocess.Popen(
        [sys.executable, "-m", "corecni.cli",
         *(["--timeout", str(timeout)] if timeout is not None else []),
         "daemon", "--socket", socket, *args],
        stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
        start_new_session=True)
    fh.close()
    daemon = DaemonProc(proc, socket, log)
    if wait:
        wait_ready(daemon)
    return daemon


def wait_ready(daemon: DaemonProc, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if daemon.proc.poll() is not None:
            raise AssertionError(f"daemon exited {daemon.proc.returncode}: "
                                 f"{daemon.log.read_text()}")
        with contextlib.suppress(OSError, wire.WireError):
            health = daemon.health()
            if health.get("ready") and health.get("pid") == daemon.pid:
                return
        if time.monotonic() > deadline:
            daemon.stop(signal.SIGKILL)
            raise AssertionError(f"daemon not ready: {daemon.log.read_text()}")
        time.sleep(0.05)


@contextlib.contextmanager
def running_daemon(tmp: Path, *args: str, env: dict[str, str] | None = None,
                   timeout: float | None = None) -> Iterator[DaemonProc]:
    """A daemon on ``tmp/run/d.sock`` for the body; stopped (SIGTERM, then KILL) after."""
    daemon = start_daemon(str(tmp / "run" / "d.sock"), tmp / "daemon.log", *args, env=env,
                          timeout=timeout)
    try:
        yield daemon
    finally:
        daemon.stop()
