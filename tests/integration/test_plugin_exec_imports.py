"""An exec'd interface plugin on the native backend never imports pyroute2.

The bridge launcher runs a full ADD (veth into the container, bridge, host-local
delegated in-process, addresses, routes) exactly as a runtime would exec it,
and the interpreter's ``sys.modules`` is dumped at exit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from corecni import netns
from corecni.net import available_backends
from corecni.testing import install_launchers, ip_json

DUMP = """
import atexit, json, sys
path, out = sys.argv[1], sys.argv[2]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv = [path]
exec(compile(open(path).read(), path, "exec"), {"__name__": "__main__"})
"""


@pytest.mark.skipif("native" not in available_backends(), reason="native module not built")
def test_bridge_add_on_native_backend_imports_no_pyroute2(netns_factory: Any,
                                                         tmp_path: Path) -> None:
    node, ctr = netns_factory("node"), netns_factory("ctr")
    bindir = tmp_path / "bin"
    install_launchers(bindir, ["bridge", "host-local"])
    conf = {"cniVersion": "1.1.0", "name": "imp", "type": "bridge", "bridge": "cni-imp0",
            "isGateway": True, "ipam": {"type": "host-local", "subnet": "10.93.0.0/24",
                                        "dataDir": str(tmp_path / "ipam")}}
    env = {"PATH": os.environ["PATH"], "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "imp1",
           "CNI_NETNS": ctr, "CNI_IFNAME": "eth0", "CNI_PATH": str(bindir),
           "CORECNI_NET_BACKEND": "native"}
    dump = tmp_path / "modules.json"
    with netns.entered(node):
        proc = subprocess.run([sys.executable, "-I", "-c", DUMP, str(bindir / "bridge"),
                               str(dump)], input=json.dumps(conf).encode(), env=env,
                              capture_output=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["ips"][0]["address"] == "10.93.0.2/24"
    assert ip_json(ctr, "addr", "show", "eth0")[0]["addr_info"][0]["local"] == "10.93.0.2"
    modules = set(json.loads(dump.read_text()))
    assert "corecni.net.native_backend" in modules
    assert "corecni_contrib.host_local.plugin" in modules  # IPAM ran in-process, no exec
    assert not {m for m in modules if m == "pyroute2" or m.startswith("pyroute2.")}
    assert "importlib.metadata" not in modules
