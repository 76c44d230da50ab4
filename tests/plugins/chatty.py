"""IPAM plugin that prints to stdout (a bug) - the protocol must survive it."""

from __future__ import annotations

from corecni.hookspecs import hookimpl
from corecni.plugin import Request
from corecni.spec.result import IPConfig, Result


@hookimpl
def ipam_add(request: Request) -> Result:
    print("debug: allocating")  # must not reach the real stdout
    return Result(cni_version=request.cni_version, ips=(IPConfig(address="10.9.0.2/24"),))


@hookimpl
def ipam_del(request: Request) -> None:
    print("debug: releasing")


@hookimpl
def ipam_check(request: Request) -> None: ...
