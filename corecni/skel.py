"""The plugin side of the protocol (Go's ``pkg/skel``).

``run(type, target)`` is what a launcher in /opt/cni/bin calls: it reads the
CNI_* variables and stdin, runs the plugin's hook through the one run path
(``LoadedPlugin.run``), and writes the result JSON to stdout with exit 0 - or
the error JSON with exit 1. This is the only place on the plugin side where an
exception becomes error JSON, and no traceback ever reaches stdout: while a
hook runs, ``sys.stdout`` points at stderr so a stray ``print`` cannot corrupt
the protocol.

The variables are one table (``corecni.request.ENV``: name, the Request field,
the commands that require it, its validator), shared with the runtime side;
the dispatcher reads the table instead of repeating checks per command.
Imports stay light: no entry-point scan (the launcher names the plugin), no
subprocess/registry until a plugin actually delegates.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

import attrs

from corecni.plugin import LoadedPlugin, as_cni_error, load_plugin
from corecni.request import COMMANDS, Delegate, Request, read_env
from corecni.spec.config import (
    PluginConfig,
    parse_json_object,
    validate_network_name,
)
from corecni.spec.errors import CNIError, ErrorCode
from corecni.spec.result import Result
from corecni.spec.version import CURRENT


def build_request(command: str, values: Mapping[str, Any], stdin: bytes) -> Request:
    """Turn the env's Request fields (``read_env``) + stdin into the Request every hook
    receives."""
    config = PluginConfig.from_dict(parse_json_object(stdin, "network config"),
                                    where="network config")
    if command != "STATUS" or config.name:
        validate_network_name(config.name)
    if not config.cni_version:
        raise CNIError(ErrorCode.INVALID_NETWORK_CONFIG, "missing cniVersion in network config")
    fields = {k: v for k, v in values.items() if k != "command"}
    return Request.for_config(command, config, **fields)


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


@attrs.frozen
class Reply:
    """What one served call gives back: exit status, the stdout text (result or error
    JSON, newline-terminated, or empty) and the error when there was one."""

    status: int
    stdout: str
    error: CNIError | None = None


def serve(plugin_type: str, load: Callable[[], LoadedPlugin], env: Mapping[str, str],
          read_stdin: Callable[[], bytes], err: IO[str],
          observers: Sequence[str | object] = (), delegate: Delegate | None = None) -> Reply:
    """Serve one CNI call: the plugin side's one run path, shared by ``run`` (an exec'd
    launcher) and ``corecni daemon`` (a call forwarded by the native shim).

    Builds the Request from ``env`` (the CNI_* table) and the config ``read_stdin``
    returns, runs it through ``LoadedPlugin.run``, and is the one place where an
    exception becomes error JSON. Nothing is written to stdout here: the caller
    decides where the text goes (and guards ``sys.stdout`` if it must). ``delegate``
    serves the plugin's own delegations (default: a CNI_PATH-only invoker built on
    first use; the daemon passes one that keeps its loaded plugins).
    """
    data = b""
    command = env.get("CNI_COMMAND", "")
    try:
        if not command:
            print(f"CNI plugin {plugin_type} (corecni); CNI_COMMAND selects what to do",
                  file=err)
            raise CNIError(ErrorCode.INVALID_ENVIRONMENT,
                           "required env variables [CNI_COMMAND] missing")
        if command not in COMMANDS:
            raise CNIError(ErrorCode.INVALID_ENVIRONMENT, f"unknown CNI_COMMAND: {command}")
        if command == "VERSION":
            return Reply(0, json.dumps(load().version_info().to_dict()) + "\n")
        values = read_env(command, env)
        data = read_stdin()
        request = build_request(command, values, data)
        plugin = load()
        result = plugin.run(attrs.evolve(
            request, delegate=delegate or _LazyDelegate(tuple(observers))))
        return Reply(0, json.dumps(result.to_dict()) + "\n" if result is not None else "")
    except BaseException as exc:
        error = as_cni_error(exc) if isinstance(exc, Exception) else \
            CNIError(ErrorCode.INTERNAL, f"plugin interrupted: {type(exc).__name__}")
        if os.environ.get("CORECNI_DEBUG") and not isinstance(exc, CNIError):
            import traceback

            traceback.print_exception(exc, file=err)
        print(f"{plugin_type}: {error}", file=err)
        version = _config_version(data) if data else CURRENT
        return Reply(1, json.dumps(error.to_dict(version)) + "\n", error)


def run(plugin_type: str, target: str | object, observers: Sequence[str | object] = (), *,
        environ: Mapping[str, str] | None = None, stdin: IO[bytes] | None = None,
        stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> int:
    """Serve one CNI call for the plugin at ``target``; return the exit status."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    real_stdout = sys.stdout
    sys.stdout = err  # a stray print() in a hook must not corrupt the protocol
    try:
        reply = serve(plugin_type, lambda: load_plugin(plugin_type, target, observers),
                      os.environ if environ is None else environ,
                      lambda: (stdin or sys.stdin.buffer).read(), err, observers)
    finally:
        sys.stdout = real_stdout
    out.write(reply.stdout)
    out.flush()
    return reply.status
