"""A cluster in network namespaces: an underlay, N nodes and etcd, for tests and the demo.

Nothing here touches the machine's own network: the underlay is a bridge inside
its own namespace, each node is a namespace with one veth into it (addresses
from 198.18.0.0/24, the benchmarking range), and etcd runs inside a namespace of
its own, listening only there. ``Lab.close()`` stops etcd and deletes every
namespace it made (and so every link in them), also after a failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence

import attrs

UNDERLAY_NET = "198.18.0"
ETCD_HOST = f"{UNDERLAY_NET}.100"
ETCD_PORT = 2379


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@attrs.define
class Node:
    name: str  # namespace name
    address: str  # underlay address

    @property
    def netns(self) -> str:
        return f"/run/netns/{self.name}"


@attrs.define
class Lab:
    """The namespaces and processes of one cluster; use as a context manager."""

    tag: str = attrs.field(factory=lambda: uuid.uuid4().hex[:5])
    workdir: str = attrs.field(factory=lambda: tempfile.mkdtemp(prefix="corecni-lab-"))
    namespaces: list[str] = attrs.field(factory=list)
    nodes: list[Node] = attrs.field(factory=list)
    etcd_proc: subprocess.Popen[bytes] | None = None
    etcd_ns: str = ""

    @property
    def etcd_url(self) -> str:
        return f"http://{ETCD_HOST}:{ETCD_PORT}"

    def _netns(self, role: str) -> str:
        name = f"lab{self.tag}-{role}"
        _ip("netns", "add", name)
        self.namespaces.append(name)
        _ip("-n", name, "link", "set", "lo", "up")
        return name

    def _attach(self, name: str, address: str, index: int) -> None:
        """A veth from namespace ``name`` (``uplink``) into the underlay bridge."""
        underlay = self.namespaces[0]
        port = f"p{index}"
        _ip("link", "add", "uplink", "netns", name, "type", "veth", "peer", "name", port,
            "netns", underlay)
        _ip("-n", underlay, "link", "set", port, "master", "br0", "up")
        _ip("-n", name, "addr", "add", f"{address}/24", "dev", "uplink")
        _ip("-n", name, "link", "set", "uplink", "up")

    def build(self, nodes: int = 3) -> Lab:
        underlay = self._netns("underlay")
        _ip("-n", underlay, "link", "add", "br0", "type", "bridge")
        _ip("-n", underlay, "link", "set", "br0", "up")
        self.etcd_ns = self._netns("etcd")
        self._attach(self.etcd_ns, ETCD_HOST, 100)
        for i in range(nodes):
            name = self._netns(f"node{i}")
            address = f"{UNDERLAY_NET}.{i + 1}"
            self._attach(name, address, i + 1)
            subprocess.run(["ip", "netns", "exec", name, "sysctl", "-qw",
                            "net.ipv4.ip_forward=1"], check=True)
            self.nodes.append(Node(name, address))
        return self

    # ---- etcd ------------------------------------------------------------------------
    def start_etcd(self, timeout: float = 20.0) -> None:
        """etcd inside its namespace (data kept across restarts); waits until healthy."""
        etcd = shutil.which("etcd")
        if etcd is None:
            raise RuntimeError("etcd is not installed (Debian package etcd-server)")
        data = os.path.join(self.workdir, "etcd-data")
        log = open(os.path.join(self.workdir, "etcd.log"), "ab")  # noqa: SIM115 - lives with proc
        self.etcd_proc = subprocess.Popen(
            ["ip", "netns", "exec", self.etcd_ns, etcd, "--name", "lab", "--data-dir", data,
             "--listen-client-urls", self.etcd_url, "--advertise-client-urls", self.etcd_url,
             "--listen-peer-urls", "http://127.0.0.1:2380",
             "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
             "--initial-cluster", "lab=http://127.0.0.1:2380", "--log-level", "error"],
            stdout=log, stderr=log, start_new_session=True)
        log.close()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            probe = subprocess.run(["ip", "netns", "exec", self.nodes[0].name if self.nodes
                                    else self.etcd_ns, "python3", "-c",
                                    "import urllib.request,sys;"
                                    f"urllib.request.urlopen('{self.etcd_url}/health',"
                                    "timeout=1);sys.exit(0)"],
                                   capture_output=True, check=False)
            if probe.returncode == 0:
                return
            if self.etcd_proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"etcd did not become healthy: see {self.workdir}/etcd.log")

    def stop_etcd(self) -> None:
        if self.etcd_proc is not None and self.etcd_proc.poll() is None:
            os.killpg(self.etcd_proc.pid, signal.SIGTERM)
            try:
                self.etcd_proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.etcd_proc.pid, signal.SIGKILL)
                self.etcd_proc.wait()
        self.etcd_proc = None

    # ---- teardown -------------------------------------------------------------------
    def close(self) -> None:
        self.stop_etcd()
        for name in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
        self.namespaces.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def pod_netns(self, node: Node, index: int) -> str:
        """A pod's namespace (removed with the lab); its path."""
        return f"/run/netns/{self._netns(f'{node.name.rsplit(chr(45), 1)[1]}pod{index}')}"


def leftovers(tag: str) -> Sequence[str]:
    """Namespaces of lab ``tag`` still present (for tests and the demo's exit check)."""
    names = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
    return [n for n in names if n.startswith(f"lab{tag}-")]
