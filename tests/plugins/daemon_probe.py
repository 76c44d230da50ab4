"""IPAM test plugin for ``corecni daemon`` tests; ``ipam.probe`` says how to behave.

* ``"ok"`` (default): hand out ``ipam.ip``;
* ``"raise"``: raise a plain RuntimeError (a plugin bug);
* ``"wait"``: block until the file ``ipam.release`` exists (a slow or hung plugin);
* ``"netns"``: report the calling thread's network namespace inode as the IP's
  last octets, so a test sees where the node side ran.

Every call appends ``enter <container>`` / ``exit <container>`` to ``ipam.log``
(when given), for tests that check how calls were serialised.
"""

from __future__ import annotations

import os
import time

from corecni.hookspecs import hookimpl
from corecni.plugin import Request
from corecni.spec.result import IPConfig, Result


def _ipam(request: Request) -> dict[str, object]:
    return dict(request.config.ipam or {})


def _note(request: Request, what: str) -> None:
    log = _ipam(request).get("log")
    if isinstance(log, str):
        with open(log, "a") as fh:
            fh.write(f"{what} {request.container_id}\n")


def _behave(request: Request) -> None:
    ipam = _ipam(request)
    probe = ipam.get("probe", "ok")
    if probe == "raise":
        raise RuntimeError("probe plugin bug")
    if probe == "wait":
        release = str(ipam["release"])
        while not os.path.exists(release):
            time.sleep(0.02)


@hookimpl
def ipam_add(request: Request) -> Result:
    _note(request, "enter")
    try:
        _behave(request)
        ip = str(_ipam(request).get("ip", "10.78.0.5/24"))
        if _ipam(request).get("probe") == "netns":
            from corecni.netns import current_inode

            ino = current_inode()
            ip = f"10.{(ino >> 16) & 0xff}.{(ino >> 8) & 0xff}.{ino & 0xff}/32"
        return Result(cni_version=request.cni_version, ips=(IPConfig(address=ip),))
    finally:
        _note(request, "exit")


@hookimpl
def ipam_del(request: Request) -> None:
    _note(request, "enter")
    try:
        _behave(request)
    finally:
        _note(request, "exit")


@hookimpl
def ipam_check(request: Request) -> None:
    _behave(request)
