"""Reading kernel state back, independently of the link layer under test.

Everything here shells out to iproute2 (``ip -j``), ``nft``, ``ping`` and
``/proc``: a test that checks a plugin's work through the same backend the
plugin used would miss that backend's bugs. ``ns`` arguments are namespace
paths (``/run/netns/x``, as the fixtures return them); ``None`` means the
test process' own namespace.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

from corecni import netns
from corecni.testing.namespaces import ns_name


def ip_json(ns: str | None, *args: str) -> list[dict[str, Any]]:
    """``ip -j ARGS`` inside the namespace at ``ns`` (None: the current one)."""
    cmd = ["ip", "-j"]
    if ns is not None:
        cmd += ["-n", ns_name(ns)]
    out = subprocess.run([*cmd, *args], check=True, capture_output=True, text=True).stdout
    return [dict(item) for item in json.loads(out or "[]")]


def ip(ns: str, *args: str) -> None:
    """``ip ARGS`` in the namespace at ``ns`` (set-up steps: a "NIC", an address)."""
    subprocess.run(["ip", "-n", ns_name(ns), *args], check=True, capture_output=True)


def ping(from_ns: str, address: str, count: int = 1, deadline: int = 5) -> bool:
    """True when ``address`` answers ``count`` times within ``deadline`` seconds.

    ping keeps sending until then, so an address still finishing IPv6 duplicate
    address detection (a gateway a plugin just added) gets its chance if DAD ends
    within the deadline; but with no usable *source* address (its own still
    tentative) ping fails at once. When DAD may outlast it, wait for it first:
    ``eventually(lambda: dad_settled(ns, link))``.
    """
    flag = "-6" if ":" in address else "-4"
    proc = subprocess.run(
        ["ip", "netns", "exec", ns_name(from_ns), "ping", flag, "-c", str(count),
         "-w", str(deadline), "-i", "0.2", address],
        capture_output=True, check=False,
    )
    return proc.returncode == 0


def dad_settled(ns: str, name: str) -> bool:
    """True when no IPv6 address of link ``name`` is still tentative (in duplicate
    address detection); AssertionError naming it when DAD failed for one.

    A tentative address neither answers neighbour solicitations nor can be a
    source, and ``ping`` gives up at once when it has no source address: poll
    this with ``eventually`` before an IPv6 ping to an address a plugin (or a Go
    plugin) has just added without ``nodad``. DAD runs on kernel timers and the
    machine-wide addrconf workqueue (under RTNL), so on a busy machine it ends
    seconds after the address was added."""
    tentative = []
    for item in ip_json(ns, "-6", "addr", "show", "dev", name):
        for a in item.get("addr_info", []):
            if a.get("dadfailed"):
                raise AssertionError(f"duplicate address detection failed for {a['local']} "
                                     f"on {name} in {ns}")
            if a.get("tentative"):
                tentative.append(a["local"])
    return not tentative


def link_info(ns: str, name: str) -> dict[str, Any]:
    """``ip -d link show dev NAME``: kind, mtu, master, linkinfo..."""
    [item] = ip_json(ns, "-d", "link", "show", "dev", name)
    return item


def link_names(ns: str) -> set[str]:
    return {str(item["ifname"]) for item in ip_json(ns, "link", "show")}


def addrs(ns: str, name: str) -> set[str]:
    """The global addresses of ``name``, as ``address/prefix``."""
    return {f"{a['local']}/{a['prefixlen']}" for item in ip_json(ns, "addr", "show", "dev", name)
            for a in item["addr_info"] if a.get("scope") == "global"}


def routes(ns: str, family: str, *args: str) -> list[dict[str, Any]]:
    """``ip -j FAMILY route show ARGS`` (``family`` is ``-4`` or ``-6``)."""
    return ip_json(ns, family, "route", "show", *args)


def default_via(ns: str) -> set[str]:
    """The gateways of the IPv4 default routes."""
    return {str(r.get("gateway")) for r in ip_json(ns, "route", "show", "default")}


def sysctl(ns: str, key: str) -> str:
    """``/proc/sys/net/KEY`` as seen inside ``ns`` (``ipv4/ip_forward``)."""
    return subprocess.run(["ip", "netns", "exec", ns_name(ns), "cat", f"/proc/sys/net/{key}"],
                          capture_output=True, text=True, check=True).stdout.strip()


def nft(ns: str, *args: str, check: bool = False) -> str:
    """``nft ARGS``' output in ``ns`` ("" when it fails, unless ``check``)."""
    return subprocess.run(["ip", "netns", "exec", ns_name(ns), "nft", *args],
                          capture_output=True, text=True, check=check).stdout


#: how long ``eventually`` waits by default. The kernel work it waits for is queued
#: machine-wide: a deleted namespace is destroyed by one ordered workqueue
#: (cleanup_net) behind every other namespace being deleted on the machine, under
#: the global RTNL lock; on a shared, busy machine that takes seconds, not the tens
#: of milliseconds of an idle one. A check that holds returns at once, so only a
#: test that fails anyway waits this long.
EVENTUALLY_TIMEOUT = 60.0


def eventually(check: Callable[[], bool], timeout: float = EVENTUALLY_TIMEOUT) -> bool:
    """Poll ``check`` until it holds or ``timeout`` passes: the kernel destroys a
    deleted namespace's links asynchronously (cleanup_net), finishes IPv6 duplicate
    address detection later (``dad_settled``)..."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def netns_state(ns: str) -> dict[str, Any]:
    """What a plugin did to a namespace, comparable between two runs.

    Links by name (kind, mtu, up, master), their global addresses and the
    routes of both families; MACs and ifindexes are left out (they differ by
    design between two namespaces), so the in-process and the exec'd run of a
    plugin, each in its own container namespace, must read equal.
    """
    links: dict[str, dict[str, Any]] = {}
    names = {int(item["ifindex"]): str(item["ifname"])
             for item in ip_json(ns, "link", "show")}
    for item in ip_json(ns, "-d", "link", "show"):
        master = item.get("master")
        links[str(item["ifname"])] = {
            "kind": item.get("linkinfo", {}).get("info_kind", ""),
            "mtu": item.get("mtu"),
            "up": "UP" in item.get("flags", []),
            "master": master if master in names.values() else None,
            "addrs": sorted(addrs(ns, str(item["ifname"]))),
        }
    rts = []
    for family in ("-4", "-6"):
        for r in routes(ns, family, "table", "main"):
            if r.get("protocol") == "kernel" or str(r.get("dst", "")).startswith("fe80"):
                continue
            rts.append((str(r.get("dst")), str(r.get("gateway", "")), str(r.get("dev", ""))))
    return {"links": links, "routes": sorted(rts)}


def root_state() -> dict[str, Any]:
    """The machine's own namespace: its link names, nft tables and IPv4 forwarding."""
    links = {str(link["ifname"]) for link in ip_json(None, "link", "show")}
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True,
                            check=False).stdout
    with open("/proc/sys/net/ipv4/ip_forward") as fh:
        forward = fh.read()
    return {"links": links, "nft": tables, "forward": forward}


@contextlib.contextmanager
def unchanged(state: Callable[[], object] = root_state) -> Iterator[None]:
    """The block ends with the thread in the namespace it started in, and ``state()``
    (default: the machine's own namespace, ``root_state``) reads as before."""
    before, inode = state(), netns.current_inode()
    yield
    assert netns.current_inode() == inode, "the thread was left in another network namespace"
    assert state() == before, "the machine's own network namespace was changed"
