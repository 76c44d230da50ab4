"""The CNI spec as attrs models: configs, results, errors, versions."""

from corecni.spec.config import (
    NetworkConfigList,
    PluginConfig,
    RuntimeConf,
    parse_cni_args,
    validate_container_id,
    validate_ifname,
    validate_network_name,
    validate_plugin_type,
)
from corecni.spec.errors import CNIError, ErrorCode
from corecni.spec.result import DNS, Interface, IPConfig, Result, Route
from corecni.spec.version import CURRENT, SUPPORTED, VersionInfo

__all__ = [
    "CURRENT",
    "DNS",
    "SUPPORTED",
    "CNIError",
    "ErrorCode",
    "IPConfig",
    "Interface",
    "NetworkConfigList",
    "PluginConfig",
    "Result",
    "Route",
    "RuntimeConf",
    "VersionInfo",
    "parse_cni_args",
    "validate_container_id",
    "validate_ifname",
    "validate_network_name",
    "validate_plugin_type",
]
