"""Benchmark: attach N pods to a bridge, three ways, in namespaces made for it.

Per pod, every method does the same requests:

* node namespace: create veth ``vX`` with its peer ``eth0`` directly in the
  pod's namespace, put ``vX`` on bridge ``br0`` and set it up;
* pod namespace: set ``eth0`` up, add an IPv4 address, add the default route.

Methods:

* ``native``   - ``corecni.net`` native backend (one commit per namespace);
* ``pyroute2`` - ``corecni.net`` pyroute2 backend, same batches;
* ``ip -batch`` - the kernel floor: one ``ip -n node -batch`` process for all
  node-side requests. iproute2 talks to one namespace per process, so each
  pod's three requests go through its own ``ip -n pod -batch`` process; the
  cost of starting that process (measured by running it once more with no
  commands, right after) is subtracted, leaving the requests themselves;
* ``native, ip order`` - the native backend again, but with every node side
  first and every pod side after, as ``ip -batch`` has to: its node-side
  column is the like-for-like comparison with ``ip -batch`` (no process
  startup in either).

Every round makes a fresh node namespace (with ``br0``) and fresh pod
namespaces for each method, runs the methods in rotated order, checks the
result, deletes the namespaces and waits for the kernel to finish tearing them
down (the CPU to go idle) before the next round. Nothing runs in the machine's
own namespace. Timings exclude namespace creation, imports and the checks.

    sudo .venv/bin/python -m bench.netlink [--pods 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from corecni.net import Route, get_backend
from corecni.net.base import NetBackend

PREFIX = f"ccni-bench-{os.getpid()}-"
GATEWAY = "10.200.0.1"
METHODS = ("ip -batch", "native", "pyroute2", "native, ip order")


def path(name: str) -> str:
    return f"/run/netns/{name}"


def ip_batch(lines: list[str], netns: str | None = None) -> None:
    cmd = ["ip"] + (["-n", netns] if netns else []) + ["-batch", "-"]
    subprocess.run(cmd, input="".join(f"{line}\n" for line in lines), text=True, check=True)


@contextmanager
def namespaces(names: list[str]) -> Iterator[None]:
    """Create the named namespaces (one ip process) and always delete them again."""
    try:
        ip_batch([f"netns add {n}" for n in names])
        yield
    finally:
        existing = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
        doomed = [n for n in names if n in existing]
        if doomed:
            subprocess.run(["ip", "-force", "-batch", "-"],
                           input="".join(f"netns del {n}\n" for n in doomed), text=True,
                           check=False, capture_output=True)


def cleanup_leftovers() -> None:
    if not os.path.isdir("/run/netns"):
        return
    left = [n for n in os.listdir("/run/netns") if n.startswith(PREFIX)]
    if left:
        subprocess.run(["ip", "-force", "-batch", "-"],
                       input="".join(f"netns del {n}\n" for n in left), text=True,
                       check=False, capture_output=True)


def cpu_busy(interval: float = 0.25) -> float:
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields), idle

    total0, idle0 = sample()
    time.sleep(interval)
    total1, idle1 = sample()
    return 1.0 - (idle1 - idle0) / max(1, total1 - total0)


def settle(limit: float = 20.0) -> None:
    """Wait for deleted namespaces to be torn down (kernel work on other CPUs)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and cpu_busy() > 0.08:
        pass


def pod_address(method: int, i: int, pods: int) -> str:
    host = 2 + method * pods + i
    return f"10.200.{host >> 8}.{host & 255}/16"


def setup_node(node: str) -> None:
    ip_batch(["link set lo up", "link add br0 type bridge", "link set br0 up",
              f"addr add {GATEWAY}/16 dev br0"], node)


# --- the three methods --------------------------------------------------------------

def run_backend(backend: NetBackend, node: str, pods: list[str], m: int,
                stats: dict[str, int], ip_order: bool = False) -> tuple[float, float]:
    """(all requests, node-side requests) in seconds.

    A CNI plugin attaches one pod at a time: node side, then pod side. With
    ``ip_order`` every node side goes first, then every pod side, the order
    ``ip -batch`` is bound to, so the node-side columns compare like for like
    (a pod's link coming up queues kernel work that then lands elsewhere).
    """
    n = len(pods)
    backend.links(path(node))  # warm up: imports, first socket
    default = Route(dst="0.0.0.0/0", gateway=GATEWAY, ifname="eth0")
    node_side = 0.0

    def outer(i: int, pod: str) -> None:
        host = f"v{m}x{i}"
        batch = (backend.batch(path(node))
                 .add_veth(host, "eth0", peer_netns=path(pod))
                 .set_link(host, master="br0", up=True))
        batch.commit()
        count(batch)

    def inner(i: int, pod: str) -> None:
        batch = (backend.batch(path(pod))
                 .set_link("eth0", up=True)
                 .add_address("eth0", pod_address(m, i, n))
                 .add_route(default))
        batch.commit()
        count(batch)

    def count(batch: object) -> None:
        for key, value in getattr(batch, "stats", {}).items():
            stats[key] = stats.get(key, 0) + value

    start = time.perf_counter()
    if ip_order:
        for i, pod in enumerate(pods):
            outer(i, pod)
        node_side = time.perf_counter() - start
        for i, pod in enumerate(pods):
            inner(i, pod)
    else:
        for i, pod in enumerate(pods):
            t0 = time.perf_counter()
            outer(i, pod)
            node_side += time.perf_counter() - t0
            inner(i, pod)
    return time.perf_counter() - start, node_side


def run_ip(node: str, pods: list[str], m: int) -> tuple[float, float, float]:
    """(requests only, node-side requests, raw incl. process startup) in seconds."""
    n = len(pods)
    node_lines = []
    for i, pod in enumerate(pods):
        node_lines += [f"link add v{m}x{i} type veth peer name eth0 netns {pod}",
                       f"link set v{m}x{i} master br0 up"]
    start = time.perf_counter()
    ip_batch(node_lines, node)
    node_time = time.perf_counter() - start
    work = startup = 0.0
    for i, pod in enumerate(pods):
        lines = ["link set eth0 up", f"addr add {pod_address(m, i, n)} dev eth0",
                 f"route add default via {GATEWAY} dev eth0"]
        t0 = time.perf_counter()
        ip_batch(lines, pod)
        t1 = time.perf_counter()
        ip_batch([], pod)  # the same process with nothing to do: its startup cost
        t2 = time.perf_counter()
        work += t1 - t0
        startup += t2 - t1
    return node_time + work - startup, node_time, node_time + work


# --- checking the result --------------------------------------------------------------

def verify(node: str, pods: list[str], m: int) -> None:
    """Every pod attached as asked (read back through the native backend, and a
    spot check with iproute2 and ping)."""
    reader = get_backend("native") if "native" in _available() else get_backend("pyroute2")
    n = len(pods)
    ports = {link.name for link in reader.links(path(node))
             if link.master == "br0" and link.up and link.kind == "veth"}
    assert ports == {f"v{m}x{i}" for i in range(n)}, f"bridge ports: {len(ports)} of {n}"
    for i, pod in enumerate(pods):
        eth0 = reader.link("eth0", path(pod))
        assert eth0 is not None and eth0.up, f"{pod}: eth0 missing or down"
        addrs = {a.address for a in reader.addresses(path(pod), ifname="eth0", family=2)}
        assert addrs == {pod_address(m, i, n)}, f"{pod}: addresses {addrs}"
        default = [r for r in reader.routes(path(pod), family=2) if r.dst == "0.0.0.0/0"]
        assert [(r.gateway, r.ifname) for r in default] == [(GATEWAY, "eth0")], default
    for pod in (pods[0], pods[-1]):
        out = subprocess.run(["ip", "-n", pod, "-4", "route", "show", "default"],
                             capture_output=True, text=True, check=True).stdout
        assert f"via {GATEWAY} dev eth0" in out, out
        ok = subprocess.run(["ip", "netns", "exec", pod, "ping", "-c", "1", "-W", "2", GATEWAY],
                            capture_output=True, check=False).returncode == 0
        assert ok, f"{pod} cannot ping the bridge"


def _available() -> list[str]:
    from corecni.net import available_backends

    return available_backends()


# --- driver ---------------------------------------------------------------------------

def one_round(r: int, pods: int, order: list[str], results: dict[str, list[float]],
              extra: dict[str, list[float]], stats: dict[str, int]) -> None:
    names: list[str] = []
    plan: dict[str, tuple[str, list[str]]] = {}
    for method in METHODS:
        tag = {"ip -batch": "ip", "native, ip order": "nord"}.get(method, method)
        node = f"{PREFIX}r{r}-{tag}-node"
        ctrs = [f"{PREFIX}r{r}-{tag}-p{i}" for i in range(pods)]
        plan[method] = (node, ctrs)
        names += [node, *ctrs]
    with namespaces(names):
        for method in METHODS:
            setup_node(plan[method][0])
        settle()
        for method in order:
            m = METHODS.index(method)
            node, ctrs = plan[method]
            if method == "ip -batch":
                floor, node_side, raw = run_ip(node, ctrs, m)
                results[method].append(floor / pods)
                extra["raw"].append(raw / pods)
            else:
                backend = get_backend(method.split(",")[0])
                floor, node_side = run_backend(backend, node, ctrs, m,
                                               stats if method == "native" else {},
                                               ip_order=method == "native, ip order")
                results[method].append(floor / pods)
            extra[method].append(node_side / pods)
            verify(node, ctrs, m)
            settle(5.0)
    settle()


def fmt(seconds: float) -> str:
    return f"{seconds * 1000:7.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.netlink", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=100, help="pods per method and round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (median is reported)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    available = _available()
    missing = [m for m in ("native", "pyroute2") if m not in available]
    if missing:
        print(f"backend(s) not available here: {', '.join(missing)}", file=sys.stderr)
        return 2

    print(f"corecni netlink benchmark: {args.pods} pods per method, {args.rounds} round(s), "
          f"median reported; kernel {platform.release()}, {os.cpu_count()} CPU(s)")
    print("per pod: veth with its peer created in the pod netns, bridge port up, "
          "IPv4 address, default route")
    results: dict[str, list[float]] = {m: [] for m in METHODS}
    extra: dict[str, list[float]] = {"raw": [], **{m: [] for m in METHODS}}
    stats: dict[str, int] = {}
    try:
        for r in range(args.rounds):
            order = list(METHODS[r % len(METHODS):] + METHODS[:r % len(METHODS)])
            one_round(r, args.pods, order, results, extra, stats)
            print(f"  round {r + 1}: " + ", ".join(
                f"{m} {results[m][-1] * 1000:.3f} ms/pod" for m in METHODS), flush=True)
    finally:
        cleanup_leftovers()

    med = {m: statistics.median(v) for m, v in results.items()}
    raw = statistics.median(extra["raw"])
    commits = 2 * args.pods * args.rounds
    print()
    node_med = {m: statistics.median(extra[m]) for m in METHODS}
    print(f"{'method':<17} {'ms/pod':>7} {'node side':>10} {'pod side':>9}   "
          "all rounds (ms/pod)")
    for m in METHODS:
        print(f"{m:<17} {fmt(med[m])}  {fmt(node_med[m])}  {fmt(med[m] - node_med[m])}   "
              + " ".join(f"{x * 1000:.3f}" for x in results[m]))
    print(f"  (ip -batch raw, with {args.pods} + 1 ip processes per round: {fmt(raw)} ms/pod; "
          f"process startup {fmt(raw - med['ip -batch'])} ms/pod subtracted)")
    print(f"  (native: {stats.get('sendmsgs', 0) / commits:.2f} sendmsg and "
          f"{stats.get('recvs', 0) / commits:.2f} recvmmsg per commit, "
          f"{stats.get('messages', 0) / args.pods / args.rounds:.1f} requests per pod)")
    speedup = med["pyroute2"] / med["native"]
    vs_floor = med["native"] / med["ip -batch"]
    node_floor = node_med["native, ip order"] / node_med["ip -batch"]
    print(f"  (node side, same request order, one process each, nothing subtracted: native "
          f"is {node_floor:.2f}x ip -batch)")
    print()
    print(f"native vs pyroute2 : {speedup:5.2f}x faster        (goal >= 5x: "
          f"{'met' if speedup >= 5 else 'MISSED'})")
    print(f"native vs ip -batch: {vs_floor:5.2f}x the kernel floor (goal <= 1.5x: "
          f"{'met' if vs_floor <= 1.5 else 'MISSED'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
