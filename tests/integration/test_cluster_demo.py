"""``make demo-cluster`` runs as documented: every pod reaches every other, nothing is left."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd-server missing")]


def test_demo_cluster_pings_across_nodes_and_cleans_up() -> None:
    proc = subprocess.run([sys.executable, "-m", "corecni_contrib.cluster_demo"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "cross-node pings: 30/30 ok" in proc.stdout
    assert "left behind: 0 namespaces, no etcd process" in proc.stdout
