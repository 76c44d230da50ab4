"""Exec start-up: a corecni plugin launcher vs a Go plugin, side by side.

What an exec'd plugin costs before it does any work is what a runtime pays on
every call. Measures VERSION (start-up + answer) and, where both exist, a
host-local ADD+DEL pair on a throwaway data dir (no namespace needed: IPAM
touches no interface). Prints each figure and the ratio corecni / Go.

    python -m bench.exec_startup [-n 30]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

GO_DIR = "/usr/lib/cni"


def timed(fn: Callable[[], None], n: int) -> float:
    """Median wall time of ``n`` runs, in milliseconds (after one warm-up)."""
    fn()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def run_plugin(exe: str, command: str, stdin: bytes, cid: str = "bench") -> None:
    env = {"PATH": os.environ.get("PATH", ""), "CNI_COMMAND": command, "CNI_CONTAINERID": cid,
           "CNI_NETNS": "/proc/self/ns/net", "CNI_IFNAME": "eth0",
           "CNI_PATH": os.path.dirname(exe)}
    proc = subprocess.run([exe], input=stdin, env=env, capture_output=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{exe} {command} failed: {proc.stdout!r} {proc.stderr!r}")


def corecni_launchers(bindir: str) -> dict[str, str]:
    """Launchers for every installed corecni plugin (written like `corecni install`)."""
    from importlib.metadata import entry_points

    from corecni import launcher

    specs = [launcher.LauncherSpec(ep.name, ep.value)
             for ep in entry_points(group="corecni.plugins")]
    launcher.install(bindir, specs)
    return {s.type: os.path.join(bindir, s.type) for s in specs}


def runtime_rows(tmp: str, go_exe: str, n: int) -> tuple[str, float, float]:
    """corecni's runtime: host-local in-process vs Go's host-local exec'd.

    The same CNIRuntime ADD+DEL of a one-plugin list; only how the plugin is
    reached differs. This is the path a runtime embedding corecni takes.
    """
    from corecni.config import list_from_bytes
    from corecni.registry import Registry
    from corecni.runtime import CNIRuntime
    from corecni.spec.config import RuntimeConf

    def once_with(registry: Registry, data_dir: str) -> Callable[[], None]:
        runtime = CNIRuntime(path=(GO_DIR,), cache_dir=os.path.join(data_dir, "cache"),
                             registry=registry)
        net = list_from_bytes(json.dumps({
            "cniVersion": "1.0.0", "name": "benchrt", "plugins": [{
                "type": "host-local",
                "ipam": {"type": "host-local", "subnet": "10.201.0.0/16",
                         "dataDir": data_dir}}]}).encode())
        rt = RuntimeConf(container_id="bench", netns="/proc/self/ns/net")

        def once() -> None:
            runtime.add_network_list(net, rt)
            runtime.del_network_list(net, rt)
        return once

    inproc = Registry(path=(GO_DIR,), entry_points=False)
    inproc.register("host-local", "corecni_contrib.host_local.plugin")
    go_only = Registry(path=(os.path.dirname(go_exe),), entry_points=False, in_process=False)
    return ("runtime ADD+DEL, in-proc",
            timed(once_with(inproc, os.path.join(tmp, "rt-a")), n),
            timed(once_with(go_only, os.path.join(tmp, "rt-b")), n))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=30)
    ns = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        ours = corecni_launchers(os.path.join(tmp, "bin"))
        if not ours:
            print("no corecni plugins installed (pip install -e contrib)")
            return 1
        rows = []
        ptype = "host-local" if "host-local" in ours else sorted(ours)[0]
        version = json.dumps({"cniVersion": "1.0.0"}).encode()
        go_exe = os.path.join(GO_DIR, ptype)
        has_go = os.path.exists(go_exe)
        rows.append((f"VERSION ({ptype})", timed(lambda: run_plugin(ours[ptype], "VERSION",
                                                                    version), ns.n),
                     timed(lambda: run_plugin(go_exe, "VERSION", version), ns.n)
                     if has_go else None))
        if ptype == "host-local" and has_go:
            def add_del(exe: str, data_dir: str) -> Callable[[], None]:
                conf = json.dumps({"cniVersion": "1.0.0", "name": "bench", "type": "host-local",
                                   "ipam": {"type": "host-local", "subnet": "10.200.0.0/16",
                                            "dataDir": data_dir}}).encode()

                def once() -> None:
                    run_plugin(exe, "ADD", conf)
                    run_plugin(exe, "DEL", conf)
                return once
            rows.append(("host-local ADD+DEL",
                         timed(add_del(ours[ptype], os.path.join(tmp, "a")), ns.n),
                         timed(add_del(go_exe, os.path.join(tmp, "b")), ns.n)))
            rows.append(runtime_rows(tmp, go_exe, ns.n))
    print(f"python {sys.version.split()[0]}, median of {ns.n} runs, milliseconds")
    print(f"{'case':<28}{'corecni':>10}{'Go':>10}{'ratio':>8}")
    for name, mine, theirs in rows:
        ratio = f"{mine / theirs:.2f}x" if theirs else "-"
        print(f"{name:<28}{mine:>10.2f}{(theirs or 0):>10.2f}{ratio:>8}")
    print("ratio = corecni / Go (below 1: corecni faster). The last row is corecni's runtime\n"
          "calling its Python host-local in-process vs exec'ing Go's host-local.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
