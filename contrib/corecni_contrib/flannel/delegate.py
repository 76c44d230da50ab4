"""The delegate's network config, built exactly as Go's flannel plugin builds it.

``doCmdAdd`` + ``getDelegateIPAM`` of flannel-io/cni-plugin: the delegate
gets the network's ``name``, ``type`` (default ``bridge``), ``ipMasq`` (the
opposite of ``FLANNEL_IPMASQ``: masquerade here when flanneld does not),
``mtu`` (``FLANNEL_MTU``), ``isGateway`` true for a bridge, the list's
``cniVersion``, and an ``ipam`` section: the given one (default type
``host-local``) with ``ranges`` set to the node's subnets and ``routes``
extended with the cluster networks.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from corecni.kit import config_error
from corecni_contrib.flannel.subnet_env import SubnetEnv


def build(raw: Mapping[str, Any], env: SubnetEnv) -> dict[str, Any]:
    """The delegate config for the flannel plugin config ``raw`` on a node with ``env``."""
    given = raw.get("delegate")
    if given is not None and not isinstance(given, dict):
        raise config_error("'delegate' must be a JSON object")
    conf: dict[str, Any] = copy.deepcopy(given) if given else {}
    if "type" in conf and not isinstance(conf["type"], str):
        raise config_error("'delegate' dictionary, if present, must have (string) 'type' "
                           "field")
    if "name" in conf:
        raise config_error("'delegate' dictionary must not have 'name' field, it'll be set "
                           "by flannel")
    if "ipam" in conf:
        raise config_error("'delegate' dictionary must not have 'ipam' field, it'll be set "
                           "by flannel")
    runtime_config = raw.get("runtimeConfig")
    if runtime_config is not None:
        conf["runtimeConfig"] = runtime_config
    conf["name"] = raw.get("name", "")
    conf.setdefault("type", "bridge")
    if "ipMasq" not in conf:
        conf["ipMasq"] = not env.ipmasq
    if "mtu" not in conf:
        conf["mtu"] = env.mtu
    if conf["type"] == "bridge":
        conf.setdefault("isGateway", True)
    if raw.get("cniVersion"):
        conf["cniVersion"] = raw["cniVersion"]
    conf["ipam"] = _ipam(raw, env)
    return conf


def _ipam(raw: Mapping[str, Any], env: SubnetEnv) -> dict[str, Any]:
    given = raw.get("ipam")
    if given is not None and not isinstance(given, dict):
        raise config_error("'ipam' must be a JSON object")
    ipam: dict[str, Any] = copy.deepcopy(given) if given else {}
    ipam.setdefault("type", "host-local")
    ranges = [[{"subnet": str(sn)}] for sn in (env.subnet, env.ipv6_subnet) if sn is not None]
    ipam["ranges"] = ranges
    routes = ipam.get("routes") or []
    if not isinstance(routes, list):
        raise config_error("failed to read IPAM routes: 'ipam.routes' must be a list")
    routes = [dict(r) for r in routes]
    for net in (*env.networks, *env.ipv6_networks):
        routes.append({"dst": str(net)})
    ipam["routes"] = routes
    return ipam
