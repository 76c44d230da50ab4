"""Serve plugin execs by fork instead of exec: the same launcher, minus interpreter start.

An exec'd Python plugin spends ~70-100 ms starting Python and importing; the fuzz
suite makes thousands of calls. This server (started once per namespace, inside it,
by ``ip netns exec``) imports corecni and the plugins, then for every request forks a
child that gets the request's environment, stdin, stdout and stderr on fds 0-2 and runs
the installed launcher file itself as ``__main__`` - the launcher's own code, through
``corecni.skel.run``, exits the child with the plugin's status. What a runtime sees
(stdout, stderr, exit status) is what an exec gives; ``tests/fuzz`` still execs the
real launchers for a sample of inputs.

Protocol: one JSON object per line on stdin, ``{"launcher", "env", "stdin"}`` (stdin
base64); one per line on stdout, ``{"status", "stdout", "stderr"}`` (base64), where
``status`` is the exit code, or ``-N`` when signal N killed the child. A call with
``"state": [namespaces]`` also answers their state read after the child exited
(``"state"``: links, addresses, routes, rules, qdiscs per namespace, see ``_nlread``;
with ``"firewall": true`` also ``"nft"``, this namespace's nftables ruleset, which
holds iptables-nft's rules too). ``{"op": "state", ...}`` answers the same without a
call; ``{"op": "reset", "flush": bool, "delete": [[netns, link]], "up": [[netns,
link]]}`` flushes this namespace's ruleset, deletes and sets up links, answers ``{}``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import runpy
import sys
import tempfile
from typing import Any

from tests.fuzz._nft import Nft
from tests.fuzz._nlread import Reader

PRELOAD = (
    "corecni.skel", "corecni.invoke", "corecni.registry", "corecni.kit", "corecni.net",
    "corecni_contrib.bridge", "corecni_contrib.host_local.plugin", "corecni_contrib.static",
    "corecni_contrib.ptp", "corecni_contrib.macvlan", "corecni_contrib.ipvlan",
    "corecni_contrib.vlan", "corecni_contrib.loopback", "corecni_contrib.host_device",
    "corecni_contrib.bandwidth", "corecni_contrib.tuning", "corecni_contrib.sbr",
    "corecni_contrib.tap", "corecni_contrib.dummy", "corecni_contrib.vrf",
    "corecni_contrib.portmap", "corecni_contrib.firewall",
)


def _child(launcher: str, env: dict[str, str], stdin: bytes, out: int, err: int) -> None:
    """In the forked child: become the exec'd launcher (never returns)."""
    status = 120
    try:
        with tempfile.TemporaryFile() as fh:
            fh.write(stdin)
            fh.seek(0)
            os.dup2(fh.fileno(), 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.environ.clear()
        os.environ.update(env)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 - fd 0 lives on
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        sys.argv = [launcher]
        try:
            runpy.run_path(launcher, run_name="__main__")
            status = 0
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
    finally:
        os._exit(status)


def serve_one(request: dict[str, object]) -> dict[str, object]:
    launcher = str(request["launcher"])
    env = {str(k): str(v) for k, v in dict(request["env"]).items()}  # type: ignore[call-overload]
    if request.get("latin1"):  # values are bytes in latin-1 clothing: back to what
        env = {k: v.encode("latin-1").decode("utf-8", "surrogateescape")  # os.environ
               for k, v in env.items()}                                   # would hold
    stdin = base64.b64decode(str(request["stdin"]))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        pid = os.fork()
        if pid == 0:
            _child(launcher, env, stdin, out.fileno(), err.fileno())
        _, wait_status = os.waitpid(pid, 0)
        status = os.waitstatus_to_exitcode(wait_status)
        out.seek(0)
        err.seek(0)
        return {"status": status, "stdout": base64.b64encode(out.read()).decode(),
                "stderr": base64.b64encode(err.read()).decode()}


_READERS: dict[str, object] = {}
_NFT: list[object] = []


def reader(netns: str) -> Reader:
    """The netlink reader of ``netns``: its socket is opened inside ``netns`` once and
    keeps that namespace (neither link layer under test, no process per read)."""
    if netns not in _READERS:
        from corecni import netns as ns

        with ns.entered(netns):
            _READERS[netns] = Reader()
    found = _READERS[netns]
    assert isinstance(found, Reader)
    return found


def nft() -> Nft:
    if not _NFT:
        _NFT.append(Nft())
    found = _NFT[0]
    assert isinstance(found, Nft)
    return found


def state(request: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"state": {p: reader(p).snapshot() for p in request["state"]}}
    if request.get("firewall"):
        out["nft"] = nft().run("list ruleset")
    return out


def reset(request: dict[str, Any]) -> dict[str, Any]:
    if request.get("flush"):
        nft().run("flush ruleset")
    for netns, link in request.get("delete", ()):
        with contextlib.suppress(OSError):
            reader(netns).delete_link(link)
    for netns, link in request.get("up", ()):
        reader(netns).set_up(link)
    return {}


def main() -> None:
    import importlib

    for module in PRELOAD:
        importlib.import_module(module)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        if request.get("op") == "state":
            reply = state(request)
        elif request.get("op") == "reset":
            reply = reset(request)
        else:
            reply = serve_one(request)
            if request.get("state"):  # the state after the call, in the same round trip
                reply.update(state(request))
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()

if __name__ == "__main__":
    main()
