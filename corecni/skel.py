"""The plugin side of the protocol (Go's ``pkg/skel``).

``run(type, target)`` is what a launcher in /opt/cni/bin calls: it reads the
CNI_* variables and stdin, runs the plugin's hook through the one run path
(``LoadedPlugin.run``), and writes the result JSON to stdout with exit 0 - or
the error JSON with exit 1. This is the only place on the plugin side where an
exception becomes error JSON, and no traceback ever reaches stdout: while a
hook runs, ``sys.stdout`` points at stderr so a stray ``print`` cannot corrupt
the protocol.

The variables are one table (name, the commands that require it, its
validator); the dispatcher reads the table instead of repeating checks per
command. Imports stay light: no entry-point scan (the launcher names the
plugin), no subprocess/registry until a plugin actually delegates.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

import attrs

from corecni import netns as netns_mod
from corecni.plugin import COMMANDS, Request, as_cni_error, load_plugin
from corecni.spec.config import (
    PluginConfig,
    parse_cni_args,
    parse_json_object,
    validate_container_id,
    validate_ifname,
    validate_network_name,
)
from corecni.spec.errors import CNIError, ErrorCode
from corecni.spec.result import Result
from corecni.spec.version import CURRENT

_ATTACH = frozenset({"ADD", "DEL", "CHECK"})


def validate_netns_path(path: str) -> str:
    """ADD/CHECK need a live namespace: gone -> code 3, not a netns -> code 4."""
    try:
        netns_mod.check_netns(path)
    except netns_mod.NetnsError as exc:
        if exc.errno == 2:
            raise CNIError(ErrorCode.UNKNOWN_CONTAINER, "network namespace does not exist",
                           path) from None
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT, "CNI_NETNS is not a network namespace",
                       f"{path}: {exc.strerror}") from None
    return path


@attrs.frozen
class EnvVar:
    name: str
    required_for: frozenset[str]
    validate: Callable[[str], object] | None = None
    validate_for: frozenset[str] = frozenset(COMMANDS)


ENV_VARS: tuple[EnvVar, ...] = (
    EnvVar("CNI_COMMAND", frozenset(COMMANDS)),
    EnvVar("CNI_CONTAINERID", _ATTACH, validate_container_id),
    EnvVar("CNI_NETNS", frozenset({"ADD", "CHECK"}), validate_netns_path,
           validate_for=frozenset({"ADD", "CHECK"})),
    EnvVar("CNI_IFNAME", _ATTACH, validate_ifname),
    EnvVar("CNI_ARGS", frozenset(), parse_cni_args),
    EnvVar("CNI_PATH", frozenset({"ADD", "DEL", "CHECK", "GC", "STATUS"})),
)


def read_env(command: str, environ: Mapping[str, str]) -> dict[str, str]:
    missing = [v.name for v in ENV_VARS
               if command in v.required_for and not environ.get(v.name)]
    if missing:
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT,
                       f"required env variables [{','.join(missing)}] missing")
    values = {v.name: environ.get(v.name, "") for v in ENV_VARS}
    for var in ENV_VARS:
        if var.validate is not None and values[var.name] and command in var.validate_for:
            var.validate(values[var.name])
    return values


def build_request(command: str, values: Mapping[str, str], stdin: bytes) -> Request:
    """Turn env + stdin into the Request every hook receives."""
    config = PluginConfig.from_dict(parse_json_object(stdin, "network config"),
                                    where="network config")
    if command != "STATUS" or config.name:
        validate_network_name(config.name)
    if not config.cni_version:
        raise CNIError(ErrorCode.INVALID_NETWORK_CONFIG, "missing cniVersion in network config")
    return Request.for_config(
        command,
        config,
        container_id=values["CNI_CONTAINERID"],
        netns=values["CNI_NETNS"],
        ifname=values["CNI_IFNAME"],
        args=parse_cni_args(values["CNI_ARGS"]),
        path=tuple(p for p in values["CNI_PATH"].split(os.pathsep) if p),
    )


@attrs.define
class _LazyDelegate:
    """Builds the CNI_PATH-only invoker the first time the plugin delegates."""

    observers: tuple[str | object, ...]
    _invoker: Any = None

    def call(self, plugin_type: str, command: str, request: Request,
             config: Mapping[str, Any] | None = None) -> Result | None:
        if self._invoker is None:
            from corecni.invoke import Invoker
            from corecni.registry import Registry

            registry = Registry(path=request.path, entry_points=False,
                                observers=self.observers)
            self._invoker = Invoker(registry)
        result: Result | None = self._invoker.call(plugin_type, command, request, config)
        return result


def _config_version(stdin: bytes) -> str:
    try:
        version = json.loads(stdin).get("cniVersion")
    except (ValueError, AttributeError):
        return CURRENT
    return version if isinstance(version, str) and version else CURRENT


def run(plugin_type: str, target: str | object, observers: Sequence[str | object] = (), *,
        environ: Mapping[str, str] | None = None, stdin: IO[bytes] | None = None,
        stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> int:
    """Serve one CNI call for the plugin at ``target``; return the exit status."""
    env = os.environ if environ is None else environ
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    data = b""
    command = env.get("CNI_COMMAND", "")
    real_stdout = sys.stdout
    try:
        if not command:
            print(f"CNI plugin {plugin_type} (corecni); CNI_COMMAND selects what to do",
                  file=err)
            raise CNIError(ErrorCode.INVALID_ENVIRONMENT,
                           "required env variables [CNI_COMMAND] missing")
        if command not in COMMANDS:
            raise CNIError(ErrorCode.INVALID_ENVIRONMENT, f"unknown CNI_COMMAND: {command}")
        if command == "VERSION":
            info = load_plugin(plugin_type, target, observers).version_info()
            out.write(json.dumps(info.to_dict()) + "\n")
            return 0
        values = read_env(command, env)
        data = (stdin or sys.stdin.buffer).read()
        request = build_request(command, values, data)
        plugin = load_plugin(plugin_type, target, observers)
        sys.stdout = err  # a stray print() in a hook must not corrupt the protocol
        try:
            result = plugin.run(attrs.evolve(request, delegate=_LazyDelegate(tuple(observers))))
        finally:
            sys.stdout = real_stdout
        if result is not None:
            out.write(json.dumps(result.to_dict()) + "\n")
        return 0
    except BaseException as exc:
        sys.stdout = real_stdout
        error = as_cni_error(exc) if isinstance(exc, Exception) else \
            CNIError(ErrorCode.INTERNAL, f"plugin interrupted: {type(exc).__name__}")
        if os.environ.get("CORECNI_DEBUG") and not isinstance(exc, CNIError):
            import traceback

            traceback.print_exception(exc, file=err)
        out.write(json.dumps(error.to_dict(_config_version(data) if data else CURRENT)) + "\n")
        print(f"{plugin_type}: {error}", file=err)
        return 1
    finally:
        out.flush()
