"""Cluster IPAM on etcd beside host-local: allocations per second on one node, one run.

A lab of namespaces (``corecni_contrib.cluster_lab``: an underlay, one node, etcd
in its own namespace) serves both: N ADDs then N DELs, ``--parallel`` at a time,
in-process from the node namespace, for

* host-local (corecni's, the node's own files: the single-node reference),
* cluster-ipam (every allocation an etcd transaction over the underlay),
* Go's host-local exec'd (the Go reference on one node),

and prints each one's allocations/s and its ratio to Go's host-local::

    python -m bench.cluster_ipam [-n 300] [--parallel 16]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from corecni_contrib.cluster_lab import Lab

from corecni import netns
from corecni.plugin import LoadedPlugin, load_plugin
from corecni.request import Request
from corecni.spec.config import PluginConfig

GO_HOST_LOCAL = "/usr/lib/cni/host-local"


def conf(kind: str, lab: Lab, work: Path) -> PluginConfig:
    ipam: dict[str, Any]
    if kind == "cluster-ipam":
        ipam = {"type": "cluster-ipam", "range": "10.70.0.0/16",
                "etcd_endpoints": [lab.etcd_url]}
    else:
        ipam = {"type": "host-local", "dataDir": str(work / kind),
                "ranges": [[{"subnet": "10.70.0.0/16"}]]}
    return PluginConfig.from_dict({"cniVersion": "1.0.0", "name": f"bench{kind[:4]}",
                                   "type": "bridge", "ipam": ipam})


def run_inproc(plugin: LoadedPlugin, config: PluginConfig, node: str, n: int,
               parallel: int) -> tuple[float, float]:
    def call(command: str, i: int) -> None:
        with netns.entered(node):
            plugin.run(Request.for_config(command, config, container_id=f"b{i}", netns=node,
                                          ifname="eth0"))

    return _timed(call, n, parallel)


def run_go(config: PluginConfig, node: str, n: int, parallel: int) -> tuple[float, float]:
    stdin = json.dumps(config.raw).encode()

    def call(command: str, i: int) -> None:
        env = {"PATH": os.environ.get("PATH", ""), "CNI_COMMAND": command,
               "CNI_CONTAINERID": f"g{i}", "CNI_NETNS": node, "CNI_IFNAME": "eth0",
               "CNI_PATH": os.path.dirname(GO_HOST_LOCAL)}
        proc = subprocess.run(["ip", "netns", "exec", os.path.basename(node), GO_HOST_LOCAL],
                              input=stdin, env=env, capture_output=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"Go host-local {command} failed: {proc.stdout!r}")

    return _timed(call, n, parallel)


def _timed(call: Any, n: int, parallel: int) -> tuple[float, float]:
    out = []
    with ThreadPoolExecutor(parallel) as pool:
        for command in ("ADD", "DEL"):
            start = time.perf_counter()
            list(pool.map(lambda i, c=command: call(c, i), range(n)))
            out.append(n / (time.perf_counter() - start))
    return out[0], out[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster_ipam", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=300, help="allocations (default 300)")
    parser.add_argument("--parallel", type=int, default=16, help="at a time (default 16)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0 or shutil.which("etcd") is None:
        print("needs root and etcd (Debian's etcd-server)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="corecni-bench-ipam-"))
    try:
        with Lab().build(nodes=1) as lab:
            lab.start_etcd()
            node = lab.nodes[0].netns
            rows = {
                "Go host-local (exec'd)": run_go(conf("go-host-local", lab, work), node,
                                                 args.n, args.parallel),
                "corecni host-local (in-process)": run_inproc(
                    load_plugin("host-local", "corecni_contrib.host_local.plugin"),
                    conf("host-local", lab, work), node, args.n, args.parallel),
                "corecni cluster-ipam on etcd": run_inproc(
                    load_plugin("cluster-ipam", "corecni_contrib.cluster_ipam"),
                    conf("cluster-ipam", lab, work), node, args.n, args.parallel),
            }
        go_add, go_del = rows["Go host-local (exec'd)"]
        print(f"{args.n} allocations, {args.parallel} at a time, one node")
        print(f"{'':34}{'ADD/s':>10}{'DEL/s':>10}{'ADD vs Go':>12}{'DEL vs Go':>12}")
        for label, (add, delete) in rows.items():
            print(f"{label:34}{add:10.1f}{delete:10.1f}{add / go_add:11.2f}x"
                  f"{delete / go_del:11.2f}x")
        print("ratio = allocations/s / Go host-local's (above 1: faster)")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
