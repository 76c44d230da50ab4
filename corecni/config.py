"""Configuration files and directories, the way libcni and kubelet read them.

* ``.conflist`` holds a list; ``.conf`` and ``.json`` hold a single plugin
  config, which becomes a one-plugin list (libcni's ``ConfListFromConf``) -
  unless it has a ``plugins`` key, in which case it is read as a list.
* Files are considered in lexical order; the *default network* is the first
  file that parses into a valid list (kubelet's rule, also containerd's).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import attrs

from corecni.spec.config import NetworkConfigList, PluginConfig, parse_json_object
from corecni.spec.errors import CNIError, ErrorCode

EXTENSIONS = (".conf", ".conflist", ".json")
DEFAULT_CONF_DIR = "/etc/cni/net.d"


def conf_files(directory: str, extensions: Sequence[str] = EXTENSIONS) -> list[str]:
    """Config files in ``directory`` in lexical order (missing dir: none)."""
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise CNIError(ErrorCode.IO_FAILURE, f"cannot read config directory {directory}",
                       exc.strerror or str(exc)) from None
    return [os.path.join(directory, n) for n in names
            if os.path.splitext(n)[1] in extensions
            and os.path.isfile(os.path.join(directory, n))]


def list_from_bytes(data: bytes, source: str = "<bytes>") -> NetworkConfigList:
    """A list from a ``.conflist`` body or a single ``.conf`` body."""
    obj = parse_json_object(data, f"network configuration {source}")
    if "plugins" in obj:
        return NetworkConfigList.from_dict(obj, raw_bytes=data)
    return NetworkConfigList.from_plugin(PluginConfig.from_dict(obj, where=source), raw_bytes=data)


def load_file(path: str) -> NetworkConfigList:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise CNIError(ErrorCode.IO_FAILURE, f"cannot read {path}",
                       exc.strerror or str(exc)) from None
    try:
        if path.endswith(".conflist"):  # libcni, kubelet and containerd go by extension
            obj = parse_json_object(data, "network configuration list")
            return NetworkConfigList.from_dict(obj, raw_bytes=data)
        conf = PluginConfig.from_dict(parse_json_object(data, "network configuration"),
                                      where="network configuration")
        return NetworkConfigList.from_plugin(conf, raw_bytes=data)
    except CNIError as exc:
        raise CNIError(exc.code, f"{path}: {exc.msg}", exc.details) from None


@attrs.frozen
class LoadedConfig:
    path: str
    network: NetworkConfigList | None
    error: CNIError | None = None


def load_dir(directory: str) -> list[LoadedConfig]:
    """Every config file in lexical order with its parsed list or its error."""
    out = []
    for path in conf_files(directory):
        try:
            out.append(LoadedConfig(path, load_file(path)))
        except CNIError as exc:
            out.append(LoadedConfig(path, None, exc))
    return out


def load_network(directory: str, name: str) -> NetworkConfigList:
    """The network called ``name`` (cnitool / libcni ``LoadConfList``)."""
    for entry in load_dir(directory):
        if entry.network is not None and entry.network.name == name:
            return entry.network
    raise CNIError(ErrorCode.INVALID_NETWORK_CONFIG,
                   f"no network config named {name!r} in {directory}")


def default_network(directory: str) -> NetworkConfigList:
    """The first valid list in lexical order (kubelet's default network)."""
    errors = []
    for entry in load_dir(directory):
        if entry.network is not None:
            return entry.network
        errors.append(str(entry.error))
    detail = "; ".join(errors) if errors else "no .conf/.conflist/.json files"
    raise CNIError(ErrorCode.INVALID_NETWORK_CONFIG,
                   f"no valid network configuration in {directory}", detail)
