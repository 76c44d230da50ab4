"""The exec'd test plugin of the conformance suite: upstream's ``noop`` plugin as data.

``noop`` logs every call (command, CNI_* environment, stdin) to the file its config names in
``commandLog`` and answers as its config says: ``reportResult`` (a result object, or
``PASSTHROUGH`` = its prevResult, or ``INJECT-DNS`` = its prevResult with nameserver 1.2.3.4),
``reportError`` (per command: the error JSON it prints before exiting 1). It is exec'd, never
run in-process, so what it sees is exactly what libcni's plugins see.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

NOOP = '''#!{python} -S
import json, os, sys
ALL = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
data = sys.stdin.read()
cmd = os.environ.get("CNI_COMMAND", "")
if cmd == "VERSION":
    print(json.dumps({{"cniVersion": "1.1.0", "supportedVersions": ALL}}))
    sys.exit(0)
conf = json.loads(data)
if conf.get("commandLog"):
    with open(conf["commandLog"], "a") as fh:
        env = {{k: v for k, v in os.environ.items() if k.startswith("CNI_")}}
        fh.write(json.dumps({{"command": cmd, "env": env, "stdin": data}}) + "\\n")
error = (conf.get("reportError") or {{}}).get(cmd)
if error:
    print(json.dumps(dict(error, cniVersion=conf.get("cniVersion", ""))))
    sys.exit(1)
if cmd == "ADD":
    report = conf.get("reportResult", "PASSTHROUGH")
    prev = conf.get("prevResult") or {{"cniVersion": conf.get("cniVersion", "")}}
    if report == "PASSTHROUGH":
        report = prev
    elif report == "INJECT-DNS":
        report = dict(prev, dns={{"nameservers": ["1.2.3.4"]}})
    print(json.dumps(report))
'''


@pytest.fixture
def cni_bin(tmp_path: Path) -> Path:
    """A CNI_PATH directory holding the ``noop`` plugin."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "noop"
    exe.write_text(NOOP.format(python=sys.executable))
    exe.chmod(0o755)
    return bindir
