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
    print(f"python {sys.version.split()[0]}, median of {ns.n} runs, milliseconds")
    print(f"{'case':<24}{'corecni':>10}{'Go':>10}{'ratio':>8}")
    for name, mine, theirs in rows:
        ratio = f"{mine / theirs:.1f}x" if theirs else "-"
        print(f"{name:<24}{mine:>10.1f}{(theirs or 0):>10.1f}{ratio:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
