"""``make demo`` runs as documented: podman's conflist attaches a container, its hostPort
serves a page to another namespace, and DEL leaves no rule, address or IPAM file."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.root


def test_demo_serves_through_the_hostport_and_cleans_up() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "corecni.cli", "demo"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    for plugin in ("bridge", "portmap", "firewall", "tuning", "bandwidth"):
        assert f"plugin {plugin:<9} -> " in out
    assert "hello from the container, through corecni's portmap" in out
    assert "3 received" in out
    assert "IPAM store after DEL: empty; node iptables rules of this container: 0" in out
    assert out.rstrip().endswith("demo OK")
    assert not [n for n in os.listdir("/run/netns") if n.startswith("corecni-demo-")] \
        if os.path.isdir("/run/netns") else True
