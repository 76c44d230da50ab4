"""dummy: a dummy link in the container, addressed by IPAM.

Follows containernetworking/plugins' ``dummy`` (not in Debian's 1.1.1): an
``ipam`` section is required (code 7 without one); the link is created
directly in the container (IFLA_NET_NS_FD, under a temporary name renamed to
CNI_IFNAME), addressed, brought up. DEL releases IPAM and deletes the link;
CHECK verifies IPAM, the link, its addresses and routes.

This kernel may lack the dummy module: ADD then fails with code 999 naming it.
"""

from __future__ import annotations

from corecni import kit
from corecni.kit import Request, hookimpl
from corecni.net import Batch
from corecni.spec.result import Result
from corecni_contrib import _link_plugin

KIND = "dummy"


def _ipam_type(request: Request) -> str:
    ipam = kit.ipam_type(request.config.raw)
    if not ipam:
        raise kit.config_error("dummy interface requires an IPAM configuration")
    return ipam


def _create(batch: Batch, name: str, netns: str | None) -> object:
    return batch.add_dummy(name, netns=netns)


@hookimpl
def cni_add(request: Request) -> Result:
    _ipam_type(request)
    backend = request.net
    iface = kit.create_lower_link(backend, request, KIND, _create, False)
    return kit.address_lower_link(backend, request, iface, None, kit.dns_key(request.config.raw),
                                  use_ipam=True)


@hookimpl
def cni_del(request: Request) -> None:
    kit.detach_lower_link(request, KIND)


@hookimpl
def cni_check(request: Request) -> None:
    _link_plugin.check_lower_link(request.net, request, KIND, _ipam_type(request))


@hookimpl
def plugin_status(request: Request) -> None:
    kit.ipam_status(request)
