"""The docs' runnable examples run as documented (as root, cleaning up after themselves)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = pytest.mark.root


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")
def test_embedding_example_runs_and_leaves_nothing() -> None:
    proc = subprocess.run([sys.executable, os.path.join(REPO, "docs/examples/embed_manager.py")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "pod1 -> pod2 ping: ok" in proc.stdout
    assert "cached attachments after teardown: 0" in proc.stdout
    # the namespaces this run made (another run's may come and go meanwhile)
    made = next(line for line in proc.stdout.splitlines()
                if line.startswith("namespaces: ")).split()[1:]
    assert len(made) == 3
    after = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    assert set(made) & after == set()
