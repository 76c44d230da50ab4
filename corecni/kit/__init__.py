"""corecni.kit: the public toolbox for CNI plugin authors.

A plugin imports what it needs from here and from nothing private:

    from corecni.kit import CNIError, ErrorCode, Request, Result, hookimpl, kernel_step

    @hookimpl
    def meta_add(request: Request, prev_result: Result) -> Result:
        with kernel_step(f"set the MTU of {request.ifname}"):
            request.net.batch(request.netns).set_link(request.ifname, mtu=1400).commit()
        return prev_result

What is here, by concern:

* the contract: ``hookimpl``, ``Request``, ``Attachment``, ``Result`` and its
  parts, ``CNIError`` / ``ErrorCode``;
* config keys read as Go reads them (``str_key``, ``int_key``, ``bool_key``,
  ``list_key``, ``dict_key``, ``dns_key``, ``ipam_type``, ``parse_mac``,
  ``parse_ip``, ``parse_cidr``, ``parse_routes``, ``config_error``):
  ``corecni.kit.config``;
* kernel errors as CNI errors (``kernel_step``, ``net_failure``):
  ``corecni.kit.errors``;
* the undo stack (``undo_on_failure``, ``UndoStack``): ``corecni.kit.undo``;
* IPAM delegation (``ipam_released_on_failure``, ``release_ipam``,
  ``ipam_status``, ``ipam_gc``, ``require_ips``): ``corecni.kit.ipam``;
* interface addressing (``configure_iface``, ``check_iface``, ``net_routes``,
  ``attached_result``): ``corecni.kit.addressing``;
* links (veth pairs, links on a master, DEL of your own link, CHECK of the
  container link): ``corecni.kit.links``;
* namespaces (``netns_entered``, ``netns_gone``, ``validate_netns_path``);
* netfilter (Go's chain names, the tools in one call, an ``iptables-save``
  parser, ``nft -j`` listings and their set elements, a node-wide lock for a
  read-then-write): ``corecni.kit.firewall`` (imported on use, not here).

The link layer itself is ``request.net`` (a ``corecni.net.NetBackend``), handed
in with the request.

**Stability.** Everything listed in ``__all__`` here and in the submodules'
public names, ``corecni.hookspecs``, ``corecni.request``, ``corecni.spec``, the
``corecni.net`` contract types and ``corecni.testing`` are the public surface.
A public name is removed only after one minor release in which using it warns
with ``DeprecationWarning`` saying what to use instead; names with a leading
underscore, and every other module, may change in any release.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from corecni.hookspecs import hookimpl
from corecni.kit.config import (
    bool_key,
    canonical_ip,
    config_error,
    dict_key,
    dns_key,
    int_key,
    ipam_type,
    list_key,
    parse_cidr,
    parse_dns,
    parse_ip,
    parse_ip_or_cidr,
    parse_mac,
    parse_routes,
    str_key,
    str_list,
    typed_key,
)
from corecni.kit.ipam import (
    ipam_gc,
    ipam_released_on_failure,
    ipam_status,
    release_ipam,
    require_ips,
)
from corecni.kit.undo import UndoStack, undo_on_failure
from corecni.netns import entered as netns_entered
from corecni.request import Attachment, Request, netns_gone, validate_netns_path
from corecni.spec.errors import CNIError, ErrorCode
from corecni.spec.result import DNS, Interface, IPConfig, Result, Route
from corecni.spec.version import CURRENT as CNI_VERSION

if TYPE_CHECKING:
    from corecni.kit.addressing import (
        announce_addresses,
        attached_result,
        check_iface,
        configure_iface,
        ips_for,
        net_routes,
    )
    from corecni.kit.errors import kernel_step, net_failure
    from corecni.kit.links import (
        CreateLink,
        address_lower_link,
        check_container_link,
        check_mtu_fits,
        create_lower_link,
        create_veth,
        default_route_interface,
        delete_container_link,
        delete_link_here,
        delete_own_veth,
    detach_lower_link,
        ensure_ifname_free,
        link_removed_on_failure,
        lookup_master,
        prev_container_interface,
        random_mac,
    random_veth_name,
        temp_link_name,
    )

#: names whose modules import the link layer (``corecni.net``): loaded on first use, so
#: an IPAM plugin's exec path never pays for it
_LAZY = {
    "announce_addresses": "corecni.kit.addressing",
    "attached_result": "corecni.kit.addressing",
    "check_iface": "corecni.kit.addressing",
    "configure_iface": "corecni.kit.addressing",
    "ips_for": "corecni.kit.addressing",
    "net_routes": "corecni.kit.addressing",
    "kernel_step": "corecni.kit.errors",
    "net_failure": "corecni.kit.errors",
    "CreateLink": "corecni.kit.links",
    "address_lower_link": "corecni.kit.links",
    "check_container_link": "corecni.kit.links",
    "check_mtu_fits": "corecni.kit.links",
    "create_lower_link": "corecni.kit.links",
    "create_veth": "corecni.kit.links",
    "default_route_interface": "corecni.kit.links",
    "delete_container_link": "corecni.kit.links",
    "delete_link_here": "corecni.kit.links",
    "delete_own_veth": "corecni.kit.links",
    "detach_lower_link": "corecni.kit.links",
    "ensure_ifname_free": "corecni.kit.links",
    "link_removed_on_failure": "corecni.kit.links",
    "lookup_master": "corecni.kit.links",
    "prev_container_interface": "corecni.kit.links",
    "random_mac": "corecni.kit.links",
    "random_veth_name": "corecni.kit.links",
    "temp_link_name": "corecni.kit.links",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'corecni.kit' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "CNI_VERSION",
    "DNS",
    "Attachment",
    "CNIError",
    "CreateLink",
    "ErrorCode",
    "IPConfig",
    "Interface",
    "Request",
    "Result",
    "Route",
    "UndoStack",
    "address_lower_link",
    "announce_addresses",
    "attached_result",
    "bool_key",
    "canonical_ip",
    "check_container_link",
    "check_iface",
    "check_mtu_fits",
    "config_error",
    "configure_iface",
    "create_lower_link",
    "create_veth",
    "default_route_interface",
    "delete_container_link",
    "delete_link_here",
    "delete_own_veth",
    "detach_lower_link",
    "dict_key",
    "dns_key",
    "ensure_ifname_free",
    "hookimpl",
    "int_key",
    "ipam_gc",
    "ipam_released_on_failure",
    "ipam_status",
    "ipam_type",
    "ips_for",
    "kernel_step",
    "link_removed_on_failure",
    "list_key",
    "lookup_master",
    "net_failure",
    "net_routes",
    "netns_entered",
    "netns_gone",
    "parse_cidr",
    "parse_dns",
    "parse_ip",
    "parse_ip_or_cidr",
    "parse_mac",
    "parse_routes",
    "prev_container_interface",
    "random_mac",
    "random_veth_name",
    "release_ipam",
    "require_ips",
    "str_key",
    "str_list",
    "temp_link_name",
    "typed_key",
    "undo_on_failure",
    "validate_netns_path",
]
