"""Network configuration: lists, plugin configs and the runtime's per-call arguments.

A ``PluginConfig`` keeps the plugin's JSON object whole (``raw``): plugin
specific keys must reach the plugin byte-for-byte equivalent, and libcni's
injections (``name``, ``cniVersion``, ``prevResult``, ``runtimeConfig``) are
done on that object. The typed attributes are read from it once, at the
boundary, so nothing inside the core re-checks a dict.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import attrs

from corecni.spec import version as versions
from corecni.spec.errors import CNIError, ErrorCode, decoding_failure, invalid_config
from corecni.spec.result import Result

#: libcni's rule for container IDs and network names.
NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.\-]*")  # used with fullmatch
IFNAMSIZ = 16
NAME_MAX = 255  # one path component (the result cache's file name)
#: how deep a JSON document may nest; Go's decoder allows 10000, Python's parser recurses
#: and gives up near 1000: deeper input is a decoding failure, never a RecursionError
MAX_JSON_DEPTH = 500


def validate_network_name(name: str) -> str:
    if not name:
        raise invalid_config("missing network name")
    if not NAME_RE.fullmatch(name):
        raise invalid_config("invalid characters found in network name", name)
    return name


def validate_container_id(container_id: str) -> str:
    if not container_id:
        raise CNIError(ErrorCode.UNKNOWN_CONTAINER, "missing containerID")
    if not NAME_RE.fullmatch(container_id):
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT, "invalid characters in containerID",
                       ascii(container_id) if not is_utf8(container_id) else container_id)
    return container_id


def validate_attachment(network: str, container_id: str, ifname: str) -> None:
    """The three together name libcni's cache file ``<network>-<containerID>-<ifname>``,
    one path component: refuse up front (code 4) a container ID that makes it longer than
    a file name may be, rather than fail at the cache write after the ADD did its work."""
    length = len(f"{network}-{container_id}-{ifname}".encode("utf-8", "surrogateescape"))
    if length > NAME_MAX:
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT, "containerID is too long",
                       f"the result cache file <network>-<containerID>-<ifname> would be "
                       f"{length} bytes, more than {NAME_MAX}")


def is_utf8(text: str) -> bool:
    """False for a str holding surrogates: a lone ``\\udXXX`` escape from JSON, or a
    non-UTF-8 byte smuggled in by ``surrogateescape`` (``os.environ``)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def validate_ifname(ifname: str) -> str:
    """SPEC 1.1.0: 1-15 bytes, not ``.``/``..``, no ``/``, ``:`` or whitespace."""
    if not ifname:
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT, "interface name is empty")
    if not is_utf8(ifname):
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT, "interface name is not valid UTF-8",
                       ascii(ifname))
    if len(ifname.encode()) > IFNAMSIZ - 1:
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT, "interface name is too long",
                       f"{ifname!r}: interface name should be less than {IFNAMSIZ} characters")
    if ifname in (".", ".."):
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT, "interface name is . or ..")
    if any(c in "/:" or c.isspace() for c in ifname):
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT,
                       "interface name contains / or : or whitespace characters", repr(ifname))
    return ifname


def validate_plugin_type(plugin_type: str) -> str:
    """A ``type`` is an executable name in CNI_PATH: never a path."""
    if not plugin_type:
        raise invalid_config("missing plugin type")
    if "/" in plugin_type or plugin_type in (".", "..") or "\\" in plugin_type \
            or "\x00" in plugin_type:
        raise invalid_config("invalid plugin type", repr(plugin_type))
    return plugin_type


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Go refuses NaN/Infinity as JSON does


def parse_json(data: bytes | str, what: str) -> Any:
    """Strict JSON as Go's ``encoding/json`` reads it, for any input at all.

    Refused as decoding failures (code 6): a UTF-8 BOM, UTF-16/32 (Python would guess
    them from bytes), ``NaN``/``Infinity``, nesting beyond ``MAX_JSON_DEPTH`` (a
    RecursionError otherwise). Non-UTF-8 bytes and lone ``\\ud800`` escapes become
    code 7 naming the key (``require_utf8``): Go would silently turn them into U+FFFD.
    """
    if isinstance(data, bytes | bytearray):
        if data.startswith(b"\xef\xbb\xbf"):
            raise decoding_failure(f"error parsing {what}",
                                   "invalid character (a UTF-8 byte order mark) at offset 0")
        text = bytes(data).decode("utf-8", "surrogateescape")
    else:
        text = data
    if text.startswith("\ufeff"):
        raise decoding_failure(f"error parsing {what}",
                               "invalid character (a byte order mark) at offset 0")
    if _nesting(text) > MAX_JSON_DEPTH:
        raise decoding_failure(f"error parsing {what}",
                               f"nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        obj = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise decoding_failure(f"error parsing {what}", str(exc) or type(exc).__name__) from None
    require_utf8(obj, what)
    return obj


def _nesting(text: str) -> int:
    """An upper bound of the JSON nesting depth (brackets inside strings count too,
    which can only overestimate): cheap, and it never recurses."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return 0
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def require_utf8(obj: Any, what: str) -> None:
    """Code 7 naming the key when a key or string anywhere in ``obj`` is not UTF-8."""
    stack: list[tuple[str, Any]] = [("", obj)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if not is_utf8(value):
                raise invalid_config(f"{what}: {path or 'value'} is not valid UTF-8",
                                     ascii(value)[:200])
        elif isinstance(value, dict):
            for key, item in value.items():
                where = f"{path}.{key}" if path else str(key)
                if not is_utf8(key):
                    raise invalid_config(f"{what}: a key is not valid UTF-8",
                                         ascii(where)[:200])
                stack.append((where, item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(value))


def parse_json_object(data: bytes | str, what: str) -> dict[str, Any]:
    obj = parse_json(data, what)
    if not isinstance(obj, dict):
        raise decoding_failure(f"error parsing {what}", "top level is not a JSON object")
    return obj


def _bool(obj: Mapping[str, Any], key: str, where: str) -> bool:
    """A boolean, or the strings "true"/"false" that libcni >= 1.2 also accepts."""
    value = obj.get(key, False)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise invalid_config(f"{where}: {key!r} must be a boolean", repr(value))
    return value


@attrs.frozen
class PluginConfig:
    """One plugin's configuration object, as given plus typed views of the spec keys."""

    raw: Mapping[str, Any] = attrs.field(repr=False)
    type: str
    name: str = ""
    cni_version: str = ""
    capabilities: Mapping[str, bool] = attrs.field(factory=dict)

    @property
    def ipam(self) -> Mapping[str, Any] | None:
        ipam = self.raw.get("ipam")
        return ipam if isinstance(ipam, dict) else None

    @property
    def runtime_config(self) -> Mapping[str, Any]:
        rc = self.raw.get("runtimeConfig")
        return rc if isinstance(rc, dict) else {}

    @property
    def args(self) -> Mapping[str, Any]:
        args = self.raw.get("args")
        return args if isinstance(args, dict) else {}

    @property
    def prev_result(self) -> Result | None:
        prev = self.raw.get("prevResult")
        if prev is None:
            return None
        return Result.from_dict(prev, default_version=self.cni_version or "0.1.0")

    def describe(self) -> str:
        return f"type={self.type!r}" + (f" name={self.name!r}" if self.name else "")

    def to_bytes(self) -> bytes:
        return json.dumps(self.raw, separators=(",", ":")).encode()

    def inject(self, **values: Any) -> PluginConfig:
        """A copy with top-level keys set (libcni's ``InjectConf``)."""
        raw = dict(self.raw)
        raw.update(values)
        return PluginConfig.from_dict(raw, where=self.describe())

    @classmethod
    def from_dict(cls, obj: Any, where: str = "plugin config") -> PluginConfig:
        if not isinstance(obj, dict):
            raise invalid_config(f"{where} is not a JSON object")
        ptype = obj.get("type")
        if not isinstance(ptype, str) or not ptype:
            raise invalid_config(f"{where}: missing 'type'")
        validate_plugin_type(ptype)
        name = obj.get("name", "")
        version = obj.get("cniVersion", "")
        if not isinstance(name, str) or not isinstance(version, str):
            raise invalid_config(f"{where}: 'name' and 'cniVersion' must be strings")
        caps_raw = obj.get("capabilities", {})
        if not isinstance(caps_raw, dict) \
                or not all(isinstance(v, bool) for v in caps_raw.values()):
            raise invalid_config(f"{where}: 'capabilities' must map names to booleans")
        if "ipam" in obj and not isinstance(obj["ipam"], dict):
            raise invalid_config(f"{where}: 'ipam' must be a JSON object")
        return cls(raw=obj, type=ptype, name=name, cni_version=version, capabilities=caps_raw)

    @classmethod
    def from_bytes(cls, data: bytes | str) -> PluginConfig:
        return cls.from_dict(parse_json_object(data, "network config"), where="network config")


@attrs.frozen
class NetworkConfigList:
    """A network: its name, the version every plugin is called with, and the chain."""

    name: str
    cni_version: str
    plugins: tuple[PluginConfig, ...]
    cni_versions: tuple[str, ...] = ()
    disable_check: bool = False
    disable_gc: bool = False
    load_only_inlined_plugins: bool = False
    raw_bytes: bytes = attrs.field(default=b"", repr=False, eq=False)

    @classmethod
    def from_dict(cls, obj: dict[str, Any], raw_bytes: bytes = b"",
                  extra_plugins: tuple[PluginConfig, ...] = ()) -> NetworkConfigList:
        """Read a list; ``extra_plugins`` (those of ``<confdir>/<name>/``, which the caller
        reads) are appended unless ``loadOnlyInlinedPlugins`` is set (SPEC 1.1.0)."""
        name = obj.get("name")
        if not isinstance(name, str) or not name:
            raise invalid_config("missing network name", "a configuration list needs 'name'")
        validate_network_name(name)
        cni_version = _select_version(obj)
        where = f"network {name!r}"
        inlined_only = load_only_inlined(obj)
        plugins_raw = obj.get("plugins")
        if "plugins" not in obj:
            if inlined_only:
                raise invalid_config(f"{where}: `loadOnlyInlinedPlugins` is true, and no "
                                     "'plugins' key")
            plugins_raw = []
        elif not isinstance(plugins_raw, list) or not plugins_raw:
            raise invalid_config(f"{where}: 'plugins' must be a non-empty list")
        plugins = tuple(PluginConfig.from_dict(p, where=f"{where} plugin {i}")
                        for i, p in enumerate(plugins_raw))
        if not inlined_only:
            plugins += tuple(extra_plugins)
        if not plugins:
            raise invalid_config(f"{where}: no plugin configs found",
                                 "no 'plugins' and no plugin files in its folder")
        cni_versions = obj.get("cniVersions") or []
        return cls(
            name=name,
            cni_version=cni_version,
            plugins=plugins,
            cni_versions=tuple(cni_versions),
            disable_check=_bool(obj, "disableCheck", where),
            disable_gc=_bool(obj, "disableGC", where),
            load_only_inlined_plugins=inlined_only,
            raw_bytes=raw_bytes or json.dumps(obj).encode(),
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> NetworkConfigList:
        return cls.from_dict(parse_json_object(data, "configuration list"), raw_bytes=bytes(data))

    @classmethod
    def from_plugin(cls, conf: PluginConfig, raw_bytes: bytes = b"") -> NetworkConfigList:
        """libcni's ``ConfListFromConf``: a single .conf becomes a one-plugin list."""
        name = conf.name
        validate_network_name(name)
        if not conf.cni_version:
            raise invalid_config(f"network {name!r}: missing 'cniVersion'")
        versions.parse(conf.cni_version)  # valid; one we do not speak is the plugin's to refuse
        return cls(name=name, cni_version=conf.cni_version, plugins=(conf,),
                   raw_bytes=raw_bytes or conf.to_bytes())

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"cniVersion": self.cni_version, "name": self.name}
        if self.cni_versions:
            out["cniVersions"] = list(self.cni_versions)
        if self.disable_check:
            out["disableCheck"] = True
        if self.disable_gc:
            out["disableGC"] = True
        if self.load_only_inlined_plugins:
            out["loadOnlyInlinedPlugins"] = True
        out["plugins"] = [dict(p.raw) for p in self.plugins]
        return out


def load_only_inlined(obj: Mapping[str, Any]) -> bool:
    """A list's ``loadOnlyInlinedPlugins`` (boolean, or "true"/"false" as libcni)."""
    return _bool(obj, "loadOnlyInlinedPlugins", f"network {obj.get('name')!r}")


def _valid_version(version: str, what: str) -> str:
    try:
        versions.parse(version)
    except CNIError:
        raise CNIError(ErrorCode.INCOMPATIBLE_VERSION, "invalid CNI version",
                       f"{what}: {version!r}") from None
    return version


def _select_version(obj: Mapping[str, Any]) -> str:
    """The list's version (SPEC 1.1.0 "version selection", libcni's rules).

    Every version given must be valid (a malformed ``cniVersions`` entry fails the list, as
    libcni). The highest one we support among ``cniVersion`` and ``cniVersions`` wins; when
    we support none, a valid one is kept (``cniVersion`` first, else the highest listed) and
    the plugins negotiate, as libcni keeps a newer ``1.2.0``. ``cniVersion`` or
    ``cniVersions`` is required (libcni would default to 0.1.0).
    """
    name = obj.get("name")
    listed = obj.get("cniVersions")
    raw_version = obj.get("cniVersion")
    if raw_version is not None and not isinstance(raw_version, str):
        raise invalid_config(f"network {name!r}: 'cniVersion' must be a string")
    version: str = raw_version or ""
    if version:
        _valid_version(version, f"network {name!r} cniVersion")
    if listed is None:
        if not version:
            raise invalid_config(f"network {name!r}: missing 'cniVersion'")
        return version
    if not isinstance(listed, list) or not all(isinstance(v, str) for v in listed):
        raise invalid_config(f"network {name!r}: 'cniVersions' must be a list of strings")
    for index, entry in enumerate(listed):
        _valid_version(entry, f"network {name!r} cniVersions entry {index}")
    entries: list[str] = [str(v) for v in listed]
    candidates = [*entries, version] if version else entries
    usable = [v for v in candidates if v in versions.SUPPORTED]
    if usable:
        return max(usable, key=versions.parse)
    if version:
        return version
    if not entries:
        raise invalid_config(f"network {name!r}: missing 'cniVersion'")
    return max(entries, key=versions.parse)


def parse_cni_args(text: str, *, strict: bool = True) -> tuple[tuple[str, str], ...]:
    """``CNI_ARGS`` is ``K1=V1;K2=V2``.

    ``strict`` (cnitool's rule, for what a user types): an item that is not exactly
    ``K=V`` is code 4. Lenient (the plugin side, as Go's skel, which never fails on
    CNI_ARGS): an item without ``=`` or with an empty key is skipped, and a value keeps
    any further ``=``; a plugin refuses only a value it asks for (``Request.arg``).
    """
    if not text:
        return ()
    pairs = []
    for item in text.split(";"):
        if strict:
            parts = item.split("=")
            if len(parts) != 2 or not parts[0]:
                raise CNIError(ErrorCode.INVALID_ENVIRONMENT, "invalid CNI_ARGS pair",
                               repr(item))
            pairs.append((parts[0], parts[1]))
            continue
        key, eq, value = item.partition("=")
        if eq and key:
            pairs.append((key, value))
    return tuple(pairs)


def format_cni_args(pairs: tuple[tuple[str, str], ...]) -> str:
    return ";".join(f"{k}={v}" for k, v in pairs)


@attrs.frozen
class RuntimeConf:
    """What the runtime knows about one attachment (libcni's ``RuntimeConf``)."""

    container_id: str
    ifname: str = "eth0"
    netns: str = ""
    args: tuple[tuple[str, str], ...] = ()
    capability_args: Mapping[str, Any] = attrs.field(factory=dict)
    cache_dir: str = ""
