"""dhcp IPAM beside Go's: one ADD and one DEL through each road, against dnsmasq.

A lab of namespaces (``tests/integration/_dhcp_lab``: dnsmasq on a bridge in a
server namespace, one container wired to it) serves both, N leases each (one
client identifier per container ID, all on the container's eth0):

* corecni: the native shim exec'd as a runtime would, served by ``corecni
  daemon`` (the plugin in the daemon, the lease in its DHCP lease service);
* Go 1.1.1: ``/usr/lib/cni/dhcp`` exec'd, leases in Go's ``dhcp daemon``.

Prints each road's median ADD and DEL time and the ratios::

    python -m bench.dhcp [-n 20]
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
from pathlib import Path
from typing import Any

from corecni import launcher
from corecni.testing.namespaces import NetnsFactory
from tests._daemon import start_daemon
from tests.integration._dhcp_lab import server_namespace, start_dnsmasq, wire

GO_DHCP = "/usr/lib/cni/dhcp"


def timed(binary: str, conf: dict[str, Any], command: str, cid: str, ctr: str,
          extra: dict[str, str]) -> float:
    env = {"PATH": os.environ["PATH"], "CNI_COMMAND": command, "CNI_CONTAINERID": cid,
           "CNI_NETNS": ctr, "CNI_IFNAME": "eth0", "CNI_PATH": os.path.dirname(binary),
           **extra}
    start = time.perf_counter()
    out = subprocess.run([binary], input=json.dumps(conf).encode(), env=env,
                         capture_output=True, check=False, timeout=60)
    took = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(f"{binary} {command}: {out.stdout!r} {out.stderr!r}")
    return took


def road(binary: str, conf: dict[str, Any], prefix: str, ctr: str, n: int,
         extra: dict[str, str]) -> tuple[float, float]:
    adds = [timed(binary, conf, "ADD", f"{prefix}{i}", ctr, extra) for i in range(n)]
    dels = [timed(binary, conf, "DEL", f"{prefix}{i}", ctr, extra) for i in range(n)]
    return statistics.median(adds), statistics.median(dels)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dhcp", description=__doc__)
    parser.add_argument("-n", type=int, default=20, help="leases per road")
    args = parser.parse_args(argv)
    shim = launcher.shim_binary()
    if os.geteuid() != 0 or shim is None:
        print("needs root and the native shim (make venv)", file=sys.stderr)
        return 1
    factory = NetnsFactory()
    tmp = Path(tempfile.mkdtemp(prefix="bench-dhcp-"))
    procs: list[Any] = []
    try:
        server = server_namespace(factory)
        ctr = factory("ctr", lo_up=False)
        wire(server, ctr, "eth0", up=True)
        procs.append(start_dnsmasq(server, "br0", tmp / "dnsmasq"))
        bindir = str(tmp / "bin")
        launcher.install(bindir, [launcher.LauncherSpec("dhcp", "corecni_contrib.dhcp")],
                         shim=shim)
        daemon = start_daemon(str(tmp / "d" / "run" / "d.sock"), tmp / "d" / "daemon.log")
        procs.append(daemon)
        sock = str(tmp / "d" / "run" / "dhcp.sock")
        while "dhcp" not in daemon.health().get("services", []):
            time.sleep(0.05)
        ours = road(f"{bindir}/dhcp", {"cniVersion": "1.0.0", "name": "bench", "type": "dhcp",
                                       "ipam": {"type": "dhcp", "daemonSocketPath": sock}},
                    "c", ctr, args.n, {"CORECNI_DAEMON_SOCKET": daemon.socket})
        print(f"corecni shim + daemon      ADD {ours[0] * 1000:7.1f} ms   "
              f"DEL {ours[1] * 1000:7.1f} ms   (median of {args.n})")
        if not os.path.exists(GO_DHCP):
            print(f"{GO_DHCP} missing: no Go reference")
            return 0
        go_sock = str(tmp / "go" / "dhcp.sock")
        go_daemon = subprocess.Popen([GO_DHCP, "daemon", "-socketpath", go_sock],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(go_daemon)
        while not os.path.exists(go_sock):
            time.sleep(0.05)
        go = road(GO_DHCP, {"cniVersion": "0.4.0", "name": "bench", "type": "dhcp",
                            "ipam": {"type": "dhcp", "daemonSocketPath": go_sock}},
                  "g", ctr, args.n, {})
        print(f"Go 1.1.1 plugin + daemon   ADD {go[0] * 1000:7.1f} ms   "
              f"DEL {go[1] * 1000:7.1f} ms   (median of {args.n})")
        print(f"ratio corecni / Go         ADD {ours[0] / go[0]:.2f}       "
              f"DEL {ours[1] / go[1]:.2f}")
        return 0
    finally:
        for proc in reversed(procs):
            if isinstance(proc, subprocess.Popen):
                proc.terminate()
                proc.wait(10)
            else:
                proc.stop()
        factory.cleanup()


if __name__ == "__main__":
    sys.exit(main())
