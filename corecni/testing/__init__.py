"""pytest plugin for CNI plugin authors (and corecni's own suite).

Registered through the ``pytest11`` entry point, so ``pip install corecni``
gives every plugin project these fixtures:

* ``netns_factory`` - make throwaway named network namespaces; all are removed
  at teardown, even when the test fails.
* ``node_netns`` - a "node" namespace with ``lo`` up, standing in for the
  host: plugins that create bridges or iptables rules do it in there, never in
  the machine's own namespace.
* ``container_netns`` - one container namespace.
* ``in_node`` - the test body runs with the calling thread inside the node
  namespace (children it spawns inherit it).

Namespaces are created with iproute2 (``ip netns add``) so they are ordinary
``/run/netns/<name>`` entries that Go plugins and podman understand too.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator

import pytest

from corecni import netns

PREFIX = "ccni-"


def session_prefix() -> str:
    """Names carry the pid so parallel test runs never remove each other's namespaces."""
    return f"{PREFIX}{os.getpid()}-"


def needs_root() -> pytest.MarkDecorator:
    return pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")


class NetnsFactory:
    """Creates named namespaces and remembers them for removal."""

    def __init__(self) -> None:
        self.created: list[str] = []

    def __call__(self, role: str = "ns", lo_up: bool = True) -> str:
        name = f"{session_prefix()}{role}-{uuid.uuid4().hex[:6]}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        self.created.append(name)
        if lo_up:
            subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        return f"/run/netns/{name}"

    def cleanup(self) -> None:
        for name in reversed(self.created):
            # Deleting a namespace destroys every link in it (and veth peers elsewhere).
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
        self.created.clear()


@pytest.fixture
def netns_factory() -> Iterator[Callable[..., str]]:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    factory = NetnsFactory()
    try:
        yield factory
    finally:
        factory.cleanup()


@pytest.fixture
def node_netns(netns_factory: Callable[..., str]) -> str:
    return netns_factory("node")


@pytest.fixture
def container_netns(netns_factory: Callable[..., str]) -> str:
    return netns_factory("ctr")


@pytest.fixture
def in_node(node_netns: str) -> Iterator[str]:
    with netns.entered(node_netns):
        yield node_netns


def ns_name(path: str) -> str:
    """``/run/netns/x`` -> ``x`` (for ``ip -n``)."""
    return os.path.basename(path)


def ip_json(path: str | None, *args: str) -> list[dict[str, object]]:
    """``ip -j ARGS`` inside the namespace at ``path`` (None: current)."""
    import json

    cmd = ["ip", "-j"]
    if path is not None:
        cmd += ["-n", ns_name(path)]
    out = subprocess.run([*cmd, *args], check=True, capture_output=True, text=True).stdout
    return list(json.loads(out or "[]"))


def ping(from_path: str, address: str, count: int = 1, deadline: int = 5) -> bool:
    """True when ``address`` answers ``count`` times within ``deadline`` seconds.

    ping keeps sending until then, so an address still finishing IPv6 duplicate
    address detection (a gateway a Go plugin just added) gets its chance.
    """
    flag = "-6" if ":" in address else "-4"
    proc = subprocess.run(
        ["ip", "netns", "exec", ns_name(from_path), "ping", flag, "-c", str(count),
         "-w", str(deadline), "-i", "0.2", address],
        capture_output=True, check=False,
    )
    return proc.returncode == 0


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Last line of defence: remove any namespace this plugin created and lost track of."""
    if os.geteuid() != 0 or not os.path.isdir("/run/netns"):
        return
    for name in os.listdir("/run/netns"):
        if name.startswith(session_prefix()):
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
