"""The pod network manager: pods per second for setup and teardown, beside Go libcni.

One run, in namespaces it creates and removes (a "node" plus one per pod): N pods
(default 50), ``--parallel`` at a time (default 8), each attached to the loopback
network and the default network (bridge + host-local), then torn down; for

* Go: libcni embedded in a Go program (``gobench``, built offline from Debian's
  libcni source) with Debian's Go plugins - what kubelet/containerd do;
* corecni in-process: ``PodNetworkManager`` with corecni's plugins in-process;
* corecni exec-only: the same manager exec'ing corecni's installed launchers.

Rounds alternate between the three (default 3) and the median round is printed,
with each figure's ratio to Go's (above 1: corecni is faster)::

    python -m bench.manager [-n 50] [--parallel 8] [--rounds 3]
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
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench._support import GO_PLUGINS, Namespaces, build_go, have_root
from corecni import netns
from corecni.manager import PodNetworkManager, PodSandbox

HERE = Path(__file__).parent


def build_gobench(work: Path) -> str:
    return build_go(HERE / "gobench" / "main.go", work, "gobench")


def write_conf(confdir: Path, ipam_dir: Path) -> None:
    confdir.mkdir(parents=True, exist_ok=True)
    (confdir / "10-benchnet.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0", "name": "benchnet", "plugins": [
            {"type": "bridge", "bridge": "cni-bench0", "isGateway": True,
             "ipam": {"type": "host-local", "dataDir": str(ipam_dir),
                      "ranges": [[{"subnet": "10.55.0.0/16"}]],
                      "routes": [{"dst": "0.0.0.0/0"}]}}]}))


def run_go(exe: str, work: Path, node: str, pods: list[str], parallel: int) -> tuple[float, float]:
    confdir = work / "go-net.d"
    write_conf(confdir, work / "go-ipam")
    env = {**os.environ, "CNI_PATH": GO_PLUGINS}
    proc = subprocess.run(["ip", "netns", "exec", os.path.basename(node), exe, str(confdir),
                           str(work / "go-cache"), str(parallel), *pods],
                          env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"gobench failed: {proc.stderr.strip()}")
    out = json.loads(proc.stdout)
    return float(out["setup_s"]), float(out["teardown_s"])


def run_corecni(work: Path, node: str, pods: list[str], parallel: int, tag: str, *,
                exec_only: bool) -> tuple[float, float]:
    kind = "exec" if exec_only else "inproc"
    confdir = work / f"{kind}-net.d"
    write_conf(confdir, work / f"{kind}-ipam")
    plugin_dirs: tuple[str, ...] = ()
    if exec_only:
        bindir = work / "bin"
        if not bindir.exists():
            corecni = os.path.join(os.path.dirname(sys.executable), "corecni")
            subprocess.run([corecni, "install", "--no-shim", "--dir", str(bindir)], check=True,
                           capture_output=True)
        plugin_dirs = (str(bindir),)
    sandboxes = [PodSandbox(id=f"{kind}{tag}{i:04d}", netns=path, name=f"p{i}",
                            namespace="bench", uid=f"u{i}") for i, path in enumerate(pods)]
    with netns.entered(node), PodNetworkManager(
            [str(confdir)], plugin_dirs, cache_dir=str(work / f"{kind}-cache"),
            in_process=not exec_only) as cni, ThreadPoolExecutor(parallel) as pool:
        def timed(op: str) -> float:
            def one(pod: PodSandbox) -> object:
                with netns.entered(node):
                    return getattr(cni, op)(pod)

            start = time.perf_counter()
            list(pool.map(one, sandboxes))
            return time.perf_counter() - start

        return timed("setup"), timed("teardown")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.manager", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=50, help="pods per round (default 50)")
    parser.add_argument("--parallel", type=int, default=8, help="pods at a time (default 8)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    args = parser.parse_args(argv)
    if not have_root("bench.manager"):
        return 2
    if not os.path.exists(f"{GO_PLUGINS}/bridge") or shutil.which("go") is None:
        print("needs Debian's containernetworking-plugins and golang-go", file=sys.stderr)
        return 2
    tag = uuid.uuid4().hex[:4]
    work = Path(tempfile.mkdtemp(prefix="corecni-bench-manager-"))
    spaces = Namespaces("cbm")
    make = spaces.make
    try:
        exe = build_gobench(work)
        node = make("node")
        pods = [make(f"p{i}") for i in range(args.n)]
        rows: dict[str, list[tuple[float, float]]] = {"go": [], "inproc": [], "exec": []}
        for _ in range(args.rounds):
            rows["go"].append(run_go(exe, work, node, pods, args.parallel))
            rows["inproc"].append(run_corecni(work, node, pods, args.parallel, tag,
                                              exec_only=False))
            rows["exec"].append(run_corecni(work, node, pods, args.parallel, tag,
                                            exec_only=True))
        rate = {k: (args.n / statistics.median(s for s, _ in v),
                    args.n / statistics.median(t for _, t in v)) for k, v in rows.items()}
        print(f"pods: {args.n}, {args.parallel} at a time, {args.rounds} rounds (median); "
              "loopback + bridge/host-local per pod")
        print(f"{'':34}{'setup pods/s':>14}{'teardown pods/s':>17}{'ratio setup':>13}"
              f"{'ratio teardown':>16}")
        labels = {"go": "Go libcni + Go plugins", "inproc": "corecni manager, in-process",
                  "exec": "corecni manager, exec-only"}
        for key, label in labels.items():
            setup, teardown = rate[key]
            print(f"{label:34}{setup:14.1f}{teardown:17.1f}{setup / rate['go'][0]:12.2f}x"
                  f"{teardown / rate['go'][1]:15.2f}x")
        print("ratio = corecni pods/s / Go pods/s (above 1: corecni is faster)")
        return 0
    finally:
        spaces.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
