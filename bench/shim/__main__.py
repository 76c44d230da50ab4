"""Exec'd plugins at Go's speed: corecni's native shim + daemon beside Go's plugins.

One run, in namespaces it creates and removes (a "node" plus one per pod). Go's
libcni (``shimbench``, built offline from Debian's libcni source, run inside the
node namespace) drives the same conflist - bridge (isGateway, ipMasq) +
host-local - for N pods (default 50), one pod at a time, timing every
AddNetworkList and DelNetworkList, with CNI_PATH holding

* Go: Debian's Go plugins;
* shim + daemon: corecni's shims (``corecni install``) served by a running
  ``corecni daemon``;
* shim, daemon stopped: the same shims with no daemon answering, so each one
  execs its Python launcher (the fallback).

Rounds alternate between the three (default 3). Printed: the median per-pod ADD
and DEL in ms and the ratio to Go (below 1: corecni is faster); VERSION exec'd
directly (median of N); the peak RSS of one exec'd bridge ADD process::

    python -m bench.shim [-n 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench._support import GO_PLUGINS, Namespaces, build_go, have_root
from corecni import daemon_wire as wire
from corecni import launcher

HERE = Path(__file__).parent
MODES = ("go", "shim", "fallback")
LABELS = {"go": "Go plugins", "shim": "corecni shim + daemon",
          "fallback": "corecni shim, daemon stopped"}


def build_shimbench(work: Path) -> str:
    return build_go(HERE / "gobench" / "main.go", work, "shimbench")


def install_shims(bindir: Path, shim: str) -> None:
    from importlib.metadata import entry_points

    specs = [launcher.LauncherSpec(ep.name, ep.value)
             for ep in entry_points(group="corecni.plugins")]
    launcher.install(str(bindir), specs, shim=shim)


@contextlib.contextmanager
def daemon(sock: Path, log: Path) -> Iterator[int]:
    """``corecni daemon`` on ``sock`` for the body; its pid."""
    with log.open("w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "corecni.cli", "daemon", "--socket",
                                 str(sock)], stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError, wire.WireError):
                if wire.health(str(sock)).get("pid") == proc.pid:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"corecni daemon did not start: {log.read_text()}")
            time.sleep(0.05)
        yield proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def conflist(path: Path, ipam_dir: Path) -> Path:
    path.write_text(json.dumps({
        "cniVersion": "1.0.0", "name": "shimbench", "plugins": [
            {"type": "bridge", "bridge": "cni-shimb0", "isGateway": True, "ipMasq": True,
             "ipam": {"type": "host-local", "dataDir": str(ipam_dir),
                      "ranges": [[{"subnet": "10.56.0.0/16"}]],
                      "routes": [{"dst": "0.0.0.0/0"}]}}]}))
    return path


def go_run(exe: str, node: str, args: list[str], env: dict[str, str]) -> Any:
    proc = subprocess.run(["ip", "netns", "exec", os.path.basename(node), exe, *args],
                          env={**os.environ, **env}, capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise SystemExit(f"shimbench {args[0]} failed: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.shim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=50, help="pods per round (default 50)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    args = parser.parse_args(argv)
    if not have_root("bench.shim"):
        return 2
    shim = launcher.shim_binary()
    if not os.path.exists(f"{GO_PLUGINS}/bridge") or shutil.which("go") is None \
            or shim is None:
        print("needs Debian's containernetworking-plugins, golang-go and corecni's built "
              "shim (make venv)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="corecni-bench-shim-"))
    spaces = Namespaces("cbs")
    make = spaces.make
    try:
        exe = build_shimbench(work)
        install_shims(work / "bin", shim)
        sock = work / "run" / "d.sock"
        envs = {"go": {"CNI_PATH": GO_PLUGINS},
                "shim": {"CNI_PATH": str(work / "bin"), wire.SOCKET_ENV: str(sock)},
                "fallback": {"CNI_PATH": str(work / "bin"),
                             wire.SOCKET_ENV: str(work / "stopped.sock")}}
        node = make("node")
        pods = [make(f"p{i}") for i in range(args.n)]
        samples: dict[str, dict[str, list[float]]] = {
            m: {"add_ms": [], "del_ms": []} for m in MODES}
        with daemon(sock, work / "daemon.log"):
            for r in range(args.rounds):
                for mode in MODES:
                    conf = conflist(work / f"{mode}.conflist", work / f"{mode}-ipam")
                    out = go_run(exe, node, ["pods", str(conf), str(work / f"{mode}-cache{r}"),
                                             *pods], envs[mode])
                    for key in ("add_ms", "del_ms"):
                        samples[mode][key] += out[key]
            version = {m: statistics.median(go_run(
                exe, node, ["version", f"{GO_PLUGINS}/bridge" if m == "go"
                            else str(work / "bin" / "bridge"), str(args.n)], envs[m])["ms"])
                for m in MODES}
            single = work / "single.json"
            rss = {}
            for m in MODES:
                single.write_text(json.dumps({
                    "cniVersion": "1.0.0", "name": "shimrss", "type": "bridge",
                    "bridge": "cni-shimr0", "isGateway": True, "ipMasq": True,
                    "ipam": {"type": "host-local", "subnet": "10.57.0.0/24",
                             "dataDir": str(work / f"rss-{m}")}}))
                rss[m] = go_run(exe, node, ["rss", f"{GO_PLUGINS}/bridge" if m == "go"
                                            else str(work / "bin" / "bridge"), str(single),
                                            pods[0], f"rss{m}"], envs[m])
        served = {}
        for line in (work / "daemon.log").read_text().splitlines():
            with contextlib.suppress(ValueError):
                rec = json.loads(line)
                if rec.get("event") == "call" and rec.get("type") == "bridge":
                    served.setdefault(rec["command"], []).append(rec["ms"])
        add = {m: statistics.median(samples[m]["add_ms"]) for m in MODES}
        dele = {m: statistics.median(samples[m]["del_ms"]) for m in MODES}
        print(f"Go libcni, conflist bridge(isGateway, ipMasq) + host-local, {args.n} pods x "
              f"{args.rounds} alternating rounds, one pod at a time; median per pod")
        print(f"{'':32}{'ADD ms':>9}{'DEL ms':>9}{'ADD ratio':>11}{'DEL ratio':>11}"
              f"{'VERSION ms':>12}{'ratio':>8}{'peak RSS KB':>13}{'ratio':>8}")
        for m in MODES:
            print(f"{LABELS[m]:32}{add[m]:9.2f}{dele[m]:9.2f}{add[m] / add['go']:10.2f}x"
                  f"{dele[m] / dele['go']:10.2f}x{version[m]:12.2f}"
                  f"{version[m] / version['go']:7.2f}x{rss[m]['add_kb']:13d}"
                  f"{rss[m]['add_kb'] / rss['go']['add_kb']:7.2f}x")
        print("inside the daemon (its log), median bridge call: " + ", ".join(
            f"{cmd} {statistics.median(v):.2f} ms" for cmd, v in sorted(served.items())))
        print("ratio = corecni / Go (below 1: corecni is faster or smaller). Peak RSS: the "
              "exec'd bridge process\nof one ADD (Go's bridge; corecni's shim, whose work runs "
              "in the daemon; the shim exec'ing\nits Python launcher when the daemon is "
              "stopped). VERSION: the bridge binary exec'd directly.")
        return 0
    finally:
        spaces.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
