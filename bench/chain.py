"""A whole chain per pod: Go's libcni + Go's plugins vs corecni, side by side.

The conflist is podman's/kubelet's shape::

    bridge (+host-local, ipMasq) -> portmap -> firewall -> tuning -> bandwidth

with 4 port mappings per pod. tuning and bandwidth are corecni's where it runs
its own plugins (Go's stand in when corecni's are not installed). N pods
(default 50) are ADDed one after the other, then DELeted, each pod in its own
container namespace, all inside a throwaway "node" namespace per column
(nothing touches the machine's own network). Columns, measured in one run:

* ``go``        - Go's libcni (the interop driver, exec'd per call) + Go's plugins;
* ``go+corecni``- the same libcni driver exec'ing corecni's installed launchers for
  bridge, host-local, portmap, firewall, tuning and bandwidth;
* ``corecni``   - corecni's runtime (``CNIRuntime``) with those in-process.

Printed: per-pod ADD and DEL mean and p99 (ms) and each column's ratio to Go,
plus a row for corecni in-process with the other portmap/firewall backend
(Debian's Go 1.1.1 plugins know iptables only). Then the scaling check: the
mean ADD of 10 more pods when 10 and when 500 pods are already attached (each
column fills its own node, so the node holds that column's rules), and the
*rule work* of those ADDs - portmap's plus firewall's time - for corecni
in-process on each backend and for Go's plugins (corecni's runtime exec'ing
them and timing each call; Go's libcni row gives the whole chain). On the
iptables backend the kernel checks the whole ``ip nat`` table on every
transaction that adds a rule there, so the smallest such write grows with the
node whoever makes it: that floor is printed beside. The machine's load average
is printed beside the figures; ``--profile`` adds each in-process plugin's share.

    python -m bench.chain [-n 50] [--scale 500] [--no-scale] [--backend iptables]
                          [--profile]

Needs root, Go (golang-go) and Debian's libcni source (golang-github-appc-cni-dev)
to build the driver, and Go's plugins in /usr/lib/cni.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from bench._support import GO_PLUGINS as GO_DIR
from bench._support import Namespaces, build_go, have_root

DRIVER = Path(__file__).resolve().parent.parent / "tests" / "interop" / "gocni" / "main.go"
OURS = {"bridge": "corecni_contrib.bridge", "host-local": "corecni_contrib.host_local.plugin",
        "portmap": "corecni_contrib.portmap", "firewall": "corecni_contrib.firewall"}
#: corecni's own tuning and bandwidth when installed (Go's stand in otherwise)
TAIL = {"tuning": "corecni_contrib.tuning", "bandwidth": "corecni_contrib.bandwidth"}
#: the plugins whose work is netfilter rules (bridge's masquerade is inside bridge's time)
RULE_PLUGINS = ("portmap", "firewall")


def ours() -> dict[str, str]:
    from importlib.metadata import entry_points

    registered = {ep.name for ep in entry_points(group="corecni.plugins")}
    return {**OURS, **{t: m for t, m in TAIL.items() if t in registered}}


def conflist(tmp: Path, name: str, backend: str) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": name, "plugins": [
        {"type": "bridge", "bridge": "cni-bench0", "isGateway": True, "ipMasq": True,
         "hairpinMode": True, "ipMasqBackend": backend,  # (Go 1.1.1 has iptables only)
         "ipam": {"type": "host-local", "dataDir": str(tmp / "ipam"),
                  "ranges": [[{"subnet": "10.200.0.0/16"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
        {"type": "portmap", "capabilities": {"portMappings": True}, "backend": backend},
        {"type": "firewall", "backend": backend},
        {"type": "tuning", "sysctl": {"net.core.somaxconn": "512"}},
        {"type": "bandwidth", "ingressRate": 100_000_000, "ingressBurst": 1_000_000,
         "egressRate": 100_000_000, "egressBurst": 1_000_000}]}


def caps(pod: int) -> dict[str, Any]:
    base = 20000 + pod * 4
    return {"portMappings": [{"hostPort": base + i, "containerPort": 80 + i, "protocol": "tcp"}
                             for i in range(4)]}


Call = Callable[[str, str, str, dict[str, Any]], None]  # verb, netns, container id, caps


def go_caller(driver: str, cni_path: str, node: str, conf_path: Path, cache: Path) -> Call:
    def call(verb: str, ctr: str, cid: str, capargs: dict[str, Any]) -> None:
        proc = subprocess.run(
            ["ip", "netns", "exec", os.path.basename(node), driver, verb, str(conf_path), ctr,
             cid, "eth0", str(cache), json.dumps(capargs)],
            env={**os.environ, "CNI_PATH": cni_path}, capture_output=True, text=True,
            check=False)
        if proc.returncode != 0:
            raise SystemExit(f"libcni {verb} {cid} failed: {proc.stderr.strip()}")
    return call


#: per (command, plugin type): ms of each call
Timings = dict[tuple[str, str], list[float]]


def runtime_caller(conf: dict[str, Any], node: str, tmp: Path, timings: Timings | None = None,
                   in_process: bool = True) -> Call:
    """corecni's runtime: with its plugins in-process, or (``in_process`` False) exec'ing
    Go's, which times each Go plugin call the way libcni makes it (a process each)."""
    from corecni import netns
    from corecni.registry import Registry
    from corecni.runtime import CNIRuntime
    from corecni.spec.config import NetworkConfigList, RuntimeConf

    registry = Registry(path=(GO_DIR,), entry_points=False, in_process=in_process)
    if in_process:
        for plugin_type, target in ours().items():
            registry.register(plugin_type, target)
    cls = CNIRuntime
    if timings is not None:
        record = timings

        class TimedRuntime(CNIRuntime):
            """Times each plugin call (host-local runs inside bridge's)."""

            def _call(self, command: str, net: Any, plugin: Any, *rest: Any,
                      **kw: Any) -> Any:
                start = time.perf_counter()
                try:
                    return super()._call(command, net, plugin, *rest, **kw)
                finally:
                    record.setdefault((command, plugin.type), []).append(
                        (time.perf_counter() - start) * 1000)
        cls = TimedRuntime
    runtime = cls(path=(GO_DIR,), cache_dir=str(tmp / "cache"), registry=registry)
    net = NetworkConfigList.from_dict(conf)

    def call(verb: str, ctr: str, cid: str, capargs: dict[str, Any]) -> None:
        rt = RuntimeConf(cid, "eth0", ctr, capability_args=capargs)
        with netns.entered(node):
            if verb == "add":
                runtime.add_network_list(net, rt)
            else:
                runtime.del_network_list(net, rt)
    return call


def install_ours(bindir: Path) -> str:
    from corecni import launcher

    mine = ours()
    launcher.install(str(bindir), [launcher.LauncherSpec(t, m) for t, m in mine.items()])
    for name in ("tuning", "bandwidth"):
        if name not in mine:
            shutil.copy(f"{GO_DIR}/{name}", bindir / name)
    return str(bindir)


class Node:
    """A throwaway node namespace and its pods' namespaces (all removed at the end)."""

    def __init__(self) -> None:
        self.spaces = Namespaces("ccni-bench-chain")
        self.path = self.spaces.make("node")

    def pod(self) -> str:
        return self.spaces.make(f"ctr{len(self.spaces.names)}")


@contextmanager
def column(kind: str, driver: str, backend: str, root: Path,
           timings: Timings | None = None) -> Iterator[tuple[Call, Node]]:
    """A fresh node namespace and the caller of one column: ``go`` and ``go+corecni``
    (Go's libcni driver exec'ing Go's or corecni's plugins), ``corecni`` (its runtime,
    plugins in-process) or ``go-plugins`` (its runtime exec'ing Go's plugins)."""
    tmp = Path(tempfile.mkdtemp(dir=root))
    node = Node()
    try:
        conf = conflist(tmp, "benchnet", backend)
        if kind in ("corecni", "go-plugins"):
            yield runtime_caller(conf, node.path, tmp, timings, kind == "corecni"), node
        else:
            conf_path = tmp / "net.conflist"
            conf_path.write_text(json.dumps(conf))
            cni_path = GO_DIR if kind == "go" else install_ours(tmp / "bin")
            yield go_caller(driver, cni_path, node.path, conf_path, tmp / "cache"), node
    finally:
        node.spaces.cleanup()


def timed(call: Call, verb: str, ctr: str, cid: str, capargs: dict[str, Any]) -> float:
    start = time.perf_counter()
    call(verb, ctr, cid, capargs)
    return (time.perf_counter() - start) * 1000


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def run_column(kind: str, driver: str, backend: str, n: int, root: Path,
               timings: Timings | None = None) -> tuple[list[float], list[float]]:
    with column(kind, driver, backend, root, timings) as (call, node):
        ctrs = [node.pod() for _ in range(n)]
        adds = [timed(call, "add", ctr, f"pod{i}", caps(i)) for i, ctr in enumerate(ctrs)]
        dels = [timed(call, "del", ctr, f"pod{i}", caps(i)) for i, ctr in enumerate(ctrs)]
    return adds, dels


@attrs.frozen
class Scale:
    """One column of the scaling check, at each number of pods attached."""

    add: dict[int, float]  # mean ms per ADD
    rules: dict[int, float]  # mean ms of portmap + firewall per ADD (timed columns)
    floor: dict[int, float]  # a one-rule nat transaction in the node (iptables)
    timings: dict[int, Timings]


def nat_floor(node: str, reps: int = 11) -> float:
    """Median ms of the smallest write into the node's ``ip nat`` table: one
    ``iptables-restore --noflush`` adding one rule to a new chain (removed after).
    The kernel checks the whole table on each such transaction, so this grows with
    the rules there whoever writes them: the floor of any iptables client."""
    from corecni import netns

    samples = []
    with netns.entered(node):
        for i in range(reps):
            chain = f"CCNI-FLOOR-{i}"
            script = f"*nat\n-N {chain}\n-A {chain} -p tcp --dport 1 -j ACCEPT\nCOMMIT\n"
            start = time.perf_counter()
            subprocess.run(["iptables-restore", "--noflush"], input=script, text=True,
                           check=True)
            samples.append((time.perf_counter() - start) * 1000)
        drop = "".join(f":CCNI-FLOOR-{i} - [0:0]\n-X CCNI-FLOOR-{i}\n" for i in range(reps))
        subprocess.run(["iptables-restore", "--noflush"], input=f"*nat\n{drop}COMMIT\n",
                       text=True, check=True)
    return statistics.median(samples)


def scale_column(kind: str, driver: str, backend: str, attached: tuple[int, ...], extra: int,
                 root: Path) -> Scale:
    """Mean ADD of ``extra`` pods, one after the other, once ``attached`` pods are on
    the node (filled by the column itself, so the node holds that column's layout);
    they are DELeted after. Runtime columns also time each plugin."""
    out = Scale({}, {}, {}, {})
    timed_kind = kind in ("corecni", "go-plugins")
    measured: Timings = {}
    with column(kind, driver, backend, root, measured if timed_kind else None) as (call, node):
        done = 0
        for target in attached:
            while done < target:
                call("add", node.pod(), f"fill{done}", caps(done))
                done += 1
            measured.clear()
            # back to back, then the DELs: a DEL leaves kernel work behind (RCU callbacks,
            # device teardown) that would land in the next ADD's time
            ctrs = [node.pod() for _ in range(extra)]
            samples = [timed(call, "add", ctr, f"m{target}-{j}", caps(5000 + j))
                       for j, ctr in enumerate(ctrs)]
            out.add[target] = statistics.mean(samples)
            if timed_kind:
                out.timings[target] = {k: list(v) for k, v in measured.items()}
                out.rules[target] = sum(sum(measured.get(("ADD", t), [])) for t in
                                        RULE_PLUGINS) / extra
            if backend == "iptables":
                out.floor[target] = nat_floor(node.path)
            for j, ctr in enumerate(ctrs):
                call("del", ctr, f"m{target}-{j}", caps(5000 + j))
    return out


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def breakdown(timings: Timings, command: str, pods: int) -> str:
    """Mean ms per pod of each plugin for ``command`` (host-local is inside bridge)."""
    parts = [f"{ptype} {sum(v) / pods:.1f}" for (cmd, ptype), v in timings.items()
             if cmd == command]
    return ", ".join(parts)


def _growth(values: dict[int, float], low: int, high: int) -> str:
    if low not in values or high not in values:
        return f"{'-':>7} {'-':>7} {'-':>7}"
    return f"{values[low]:7.1f} {values[high]:7.1f} {values[high] / values[low]:6.2f}x"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chain", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=50, help="pods per column (default 50)")
    parser.add_argument("--backend", default="iptables", choices=("iptables", "nftables"),
                        help="portmap/firewall backend of the ADD/DEL columns (Go's 1.1.1 "
                             "plugins always use iptables)")
    parser.add_argument("--scale", type=int, default=500,
                        help="pods attached for the scaling check (default 500)")
    parser.add_argument("--no-scale", action="store_true", help="skip the scaling check")
    parser.add_argument("--profile", action="store_true",
                        help="also print each in-process plugin's mean ms per pod")
    args = parser.parse_args(argv)
    if not have_root("bench.chain"):
        return 2
    root = Path(tempfile.mkdtemp(prefix="ccni-bench-chain-"))
    other = "nftables" if args.backend == "iptables" else "iptables"
    try:
        driver = build_go(DRIVER, root, "gocni")
        print(f"chain bridge -> portmap -> firewall -> tuning -> bandwidth, {args.n} pods, "
              f"4 port mappings each, backend {args.backend}; ms per pod; {load()}")
        print(f"{'column':<16} {'ADD mean':>9} {'ADD p99':>9} {'DEL mean':>9} {'DEL p99':>9}"
              f" {'ADD vs Go':>10} {'DEL vs Go':>10}")
        rows = {}
        profiles: dict[str, Timings] = {}
        for label, kind, backend in (("go", "go", args.backend),
                                     ("go+corecni", "go+corecni", args.backend),
                                     ("corecni", "corecni", args.backend),
                                     (f"corecni {other[:3]}", "corecni", other)):
            timings: Timings | None = {} if args.profile and kind == "corecni" else None
            adds, dels = run_column(kind, driver, backend, args.n, root, timings)
            if timings is not None:
                profiles[label] = timings
            rows[label] = (statistics.mean(adds), p99(adds), statistics.mean(dels), p99(dels))
            go_add, _, go_del, _ = rows["go"]
            add_mean, add_p99, del_mean, del_p99 = rows[label]
            print(f"{label:<16} {add_mean:9.1f} {add_p99:9.1f} {del_mean:9.1f} {del_p99:9.1f}"
                  f" {go_add / add_mean:9.1f}x {go_del / del_mean:9.1f}x", flush=True)
        print(f"(the last row: corecni in-process with portmap/firewall backend {other}; "
              f"{load()})")
        for label, timings in profiles.items():
            print(f"  {label} ADD per plugin: {breakdown(timings, 'ADD', args.n)}")
            print(f"  {label} DEL per plugin: {breakdown(timings, 'DEL', args.n)}")
        if not args.no_scale:
            scale_report(driver, args.scale, root, args.profile)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


def scale_report(driver: str, scale: int, root: Path, profile: bool) -> None:
    """The scaling check: ADD and rule work with 10 and with ``scale`` pods attached."""
    low, high = 10, scale
    print(f"\nmean ms of one more pod's ADD with {low} and with {high} pods attached "
          f"(10 pods each); rules = portmap + firewall")
    print(f"{'column':<26} {'ADD@' + str(low):>7} {'ADD@' + str(high):>7} {'growth':>7}"
          f" {'rules@' + str(low):>7} {'rules@' + str(high):>7} {'growth':>7}")
    floors: dict[str, dict[int, float]] = {}
    for label, kind, backend in (("corecni iptables", "corecni", "iptables"),
                                 ("corecni nftables", "corecni", "nftables"),
                                 ("go plugins (iptables)", "go-plugins", "iptables"),
                                 ("go libcni (iptables)", "go", "iptables")):
        result = scale_column(kind, driver, backend, (low, high), 10, root)
        floors[label] = result.floor
        print(f"{label:<26} {_growth(result.add, low, high)} {_growth(result.rules, low, high)}"
              f"   ({load()})", flush=True)
        if profile:
            for attached, timings in result.timings.items():
                print(f"  at {attached}: {breakdown(timings, 'ADD', 10)}")
    print("(go plugins: corecni's runtime exec'ing Go's 1.1.1 plugins, each call timed; "
          "go libcni: Go's runtime, the whole chain)")
    for label, floor in floors.items():
        if low in floor and high in floor:
            print(f"kernel floor in the {label} node: a one-rule iptables-restore into the "
                  f"nat table {floor[low]:.1f} ms at {low}, {floor[high]:.1f} ms at {high} "
                  f"({floor[high] / floor[low]:.2f}x)")


if __name__ == "__main__":
    sys.exit(main())
