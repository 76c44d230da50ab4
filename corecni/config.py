"""Configuration files and directories, the way libcni and kubelet read them.

* ``.conflist`` holds a list; ``.conf`` and ``.json`` hold a single plugin
  config, which becomes a one-plugin list (libcni's ``ConfListFromConf``) -
  unless it has a ``plugins`` key, in which case it is read as a list.
* A list's plugins may also come from ``<confdir>/<name>/*.conf`` (one plugin
  config per file, lexical order), appended after the inlined ones unless the
  list sets ``loadOnlyInlinedPlugins`` (SPEC 1.1.0, libcni's
  ``NetworkConfFromFile``).
* Files are considered in lexical order; the *default network* is the first
  file that parses into a valid list (kubelet's rule, also containerd's).
* A file that cannot be loaded is never skipped in silence: asking for a
  network it holds names the file and the reason, and ``load_dir`` reports
  every file with its state (``corecni doctor`` prints that).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import attrs

from corecni.spec.config import (
    NetworkConfigList,
    PluginConfig,
    load_only_inlined,
    parse_json_object,
    validate_network_name,
)
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


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise CNIError(ErrorCode.IO_FAILURE, f"cannot read {path}",
                       exc.strerror or str(exc)) from None


def folder_plugins(directory: str, network: str) -> tuple[PluginConfig, ...]:
    """The plugin configs in ``<directory>/<network>/*.conf``, in lexical order (libcni's
    ``NetworkPluginConfsFromFiles``); a file that is not a plugin config fails, named."""
    validate_network_name(network)  # never a path outside the directory
    out = []
    for path in conf_files(os.path.join(directory, network), (".conf",)):
        where = f"plugin config {path}"
        out.append(PluginConfig.from_dict(parse_json_object(_read(path), where), where=where))
    return tuple(out)


def load_file(path: str) -> NetworkConfigList:
    data = _read(path)
    try:
        if path.endswith(".conflist"):  # libcni, kubelet and containerd go by extension
            obj = parse_json_object(data, "network configuration list")
            name = obj.get("name")
            extra: tuple[PluginConfig, ...] = ()
            if isinstance(name, str) and name and not load_only_inlined(obj):
                extra = folder_plugins(os.path.dirname(path), name)
            return NetworkConfigList.from_dict(obj, raw_bytes=data, extra_plugins=extra)
        conf = PluginConfig.from_dict(parse_json_object(data, "network configuration"),
                                      where="network configuration")
        return NetworkConfigList.from_plugin(conf, raw_bytes=data)
    except CNIError as exc:
        raise CNIError(exc.code, f"{path}: {exc.msg}", exc.details) from None


@attrs.frozen
class LoadedConfig:
    """One config file and what became of it: its list, or the error that stopped it."""

    path: str
    network: NetworkConfigList | None
    error: CNIError | None = None

    def claimed_name(self) -> str | None:
        """The network name the file declares, even when it cannot be loaded (None when
        it is not even a JSON object with a string ``name``)."""
        if self.network is not None:
            return self.network.name
        try:
            with open(self.path, "rb") as fh:
                obj = parse_json_object(fh.read(), self.path)
        except (OSError, CNIError):
            return None
        name = obj.get("name")
        return name if isinstance(name, str) else None


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
    """The network called ``name`` (cnitool / libcni ``LoadConfList``).

    As libcni, ``.conflist`` files are searched first, then ``.conf``/``.json`` files, each
    in lexical order. The first file declaring ``name`` decides: if it cannot be loaded, the
    error names it and says why. When no file declares ``name``, the error still lists the
    files that could not be loaded, since the network may be in one of them.
    """
    broken = []
    entries = sorted(load_dir(directory), key=lambda e: not e.path.endswith(".conflist"))
    for entry in entries:
        if entry.network is not None:
            if entry.network.name == name:
                return entry.network
            continue
        assert entry.error is not None
        if entry.claimed_name() == name:
            raise CNIError(entry.error.code,
                           f"network config {name!r} cannot be loaded: {entry.error.msg}",
                           entry.error.details)
        broken.append(str(entry.error))
    if broken:
        count = f"{len(broken)} file{'s' if len(broken) > 1 else ''}"
        raise CNIError(ErrorCode.INVALID_NETWORK_CONFIG,
                       f"no network config named {name!r} in {directory} "
                       f"({count} could not be loaded)", "; ".join(broken))
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
