"""IPAM test plugin: hands out ``ipam.ip`` (default 10.77.0.5/24)."""

from __future__ import annotations

from corecni.hookspecs import hookimpl
from corecni.plugin import Request
from corecni.spec.result import DNS, IPConfig, Result, Route
from tests.plugins._log import maybe_fail, record


def _ipam(request: Request) -> dict[str, object]:
    return dict(request.config.ipam or request.config.raw)


@hookimpl
def ipam_add(request: Request) -> Result:
    record(request, "fixed-ipam")
    maybe_fail(request, "fixed-ipam", _ipam(request))
    ipam = _ipam(request)
    ip = str(ipam.get("ip", "10.77.0.5/24"))
    gw = str(ipam.get("gateway", "10.77.0.1"))
    return Result(cni_version=request.cni_version, ips=(IPConfig(address=ip, gateway=gw),),
                  routes=(Route(dst="0.0.0.0/0", gw=gw),), dns=DNS(nameservers=("10.77.0.53",)))


@hookimpl
def ipam_del(request: Request) -> None:
    record(request, "fixed-ipam")
    maybe_fail(request, "fixed-ipam", _ipam(request))


@hookimpl
def ipam_check(request: Request) -> None:
    record(request, "fixed-ipam")
    maybe_fail(request, "fixed-ipam", _ipam(request))


@hookimpl
def plugin_status(request: Request) -> None:
    """Ready unless ``ipam.fail.STATUS`` says otherwise (a 50/51 error)."""
    record(request, "fixed-ipam")
    maybe_fail(request, "fixed-ipam", _ipam(request))
