"""An exec'd Python plugin imports only what it needs.

Python start-up is the enemy of an exec'd plugin, so the launcher path must not
scan entry points (importlib.metadata), pull in a netlink library, or load the
runtime side (registry, invoke, subprocess) unless the plugin delegates.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from corecni import launcher

REPO = str(Path(__file__).resolve().parents[2])

# Run a launcher exactly as a runtime would, and dump sys.modules at exit.
DUMP = """
import atexit, json, sys
path, out = sys.argv[1], sys.argv[2]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv = [path]
exec(compile(open(path).read(), path, "exec"), {"__name__": "__main__"})
"""


def run_launcher(tmp_path: Path, ptype: str, target: str, conf: dict[str, object],
                 command: str = "ADD") -> tuple[dict[str, object], set[str]]:
    bindir = tmp_path / "bin"
    launcher.install(str(bindir), [launcher.LauncherSpec(ptype, target, sys_path=(REPO,)),
                                   launcher.LauncherSpec("fixed-ipam",
                                                         "tests.plugins.fixed_ipam",
                                                         sys_path=(REPO,))])
    dump = tmp_path / "modules.json"
    env = {"PATH": os.environ["PATH"], "CNI_COMMAND": command, "CNI_CONTAINERID": "c1",
           "CNI_NETNS": "/proc/self/ns/net", "CNI_IFNAME": "eth0", "CNI_PATH": str(bindir),
           "CNI_NETNS_OVERRIDE": "1"}  # our own namespace stands in for a container's
    proc = subprocess.run([sys.executable, "-sE", "-c", DUMP, str(bindir / ptype), str(dump)],
                          input=json.dumps(conf).encode(), env=env, capture_output=True,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout), set(json.loads(dump.read_text()))


HEAVY = {"pyroute2", "importlib.metadata", "corecni.registry", "corecni.invoke",
         "corecni.runtime", "subprocess", "corecni.cli", "argparse"}


def test_ipam_plugin_exec_is_import_light(tmp_path: Path) -> None:
    result, modules = run_launcher(tmp_path, "fixed-ipam", "tests.plugins.fixed_ipam",
                                   {"cniVersion": "1.0.0", "name": "n", "type": "fixed-ipam"})
    assert result["ips"]
    assert modules & HEAVY == set()
    assert {"corecni.skel", "pluggy", "tests.plugins.fixed_ipam"} <= modules


def test_delegation_runs_ipam_in_process_without_entry_point_scan(tmp_path: Path) -> None:
    result, modules = run_launcher(
        tmp_path, "fake-iface", "tests.plugins.fake_iface",
        {"cniVersion": "1.0.0", "name": "n", "type": "fake-iface",
         "ipam": {"type": "fixed-ipam", "ip": "10.5.5.5/24"}})
    assert result["ips"][0]["address"] == "10.5.5.5/24"
    # the IPAM launcher on CNI_PATH was recognised and imported, not exec'd
    assert "tests.plugins.fixed_ipam" in modules
    assert "corecni.registry" in modules
    assert modules & {"pyroute2", "importlib.metadata"} == set()
