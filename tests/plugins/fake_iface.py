"""Interface test plugin: "creates" ``ifname`` (no kernel work), delegates IPAM."""

from __future__ import annotations

import attrs

from corecni.hookspecs import hookimpl
from corecni.plugin import Request
from corecni.spec.errors import CNIError
from corecni.spec.result import Interface, Result
from tests.plugins._log import maybe_fail, record


@hookimpl
def cni_add(request: Request) -> Result:
    record(request, "fake-iface")
    maybe_fail(request, "fake-iface")
    ipam = request.ipam_add()
    iface = Interface(name=request.ifname, mac="02:00:00:00:00:01", sandbox=request.netns)
    return attrs.evolve(ipam, interfaces=(iface,),
                        ips=tuple(attrs.evolve(ip, interface=0) for ip in ipam.ips))


@hookimpl
def cni_del(request: Request) -> None:
    record(request, "fake-iface")
    maybe_fail(request, "fake-iface")
    if request.config.ipam:
        request.ipam_del()


@hookimpl
def cni_check(request: Request) -> None:
    record(request, "fake-iface")
    maybe_fail(request, "fake-iface")
    if request.prev_result is None:
        raise CNIError(7, "fake-iface: CHECK without prevResult")
    request.ipam_check()


@hookimpl
def plugin_status(request: Request) -> None:
    record(request, "fake-iface")
    maybe_fail(request, "fake-iface")


@hookimpl
def plugin_gc(request: Request) -> None:
    record(request, "fake-iface",
           keys=sorted(k for k in request.config.raw if k.startswith("cni.dev/")))
    maybe_fail(request, "fake-iface")
