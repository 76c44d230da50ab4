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

import contextlib
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

import attrs

from corecni.plugin import LoadedPlugin, as_cni_error, load_plugin
from corecni.request import COMMANDS, Delegate, Request, read_env, refuse_own_netns
from corecni.spec.config import (
    PluginConfig,
    is_utf8,
    parse_json,
    parse_json_object,
    validate_network_name,
)
from corecni.spec.errors import CNIError, ErrorCode
from corecni.spec.result import Result
from corecni.spec.version import CURRENT


def read_config(command: str, stdin: bytes) -> dict[str, Any]:
    """Go's ``validateConfig``: stdin is a JSON object with a valid network name (STATUS
    may omit it)."""
    obj = parse_json_object(stdin, "network config")
    name = obj.get("name", "")
    if command != "STATUS" or name:
        if not isinstance(name, str):
            raise CNIError(ErrorCode.DECODING_FAILURE, "error unmarshall network config",
                           f"'name' must be a string, not {type(name).__name__}")
        validate_network_name(name)
    return obj


def build_request(command: str, values: Mapping[str, Any],
                  stdin: bytes | Mapping[str, Any]) -> Request:
    """Turn the env's Request fields (``read_env``) + stdin (or the object
    ``read_config`` made of it) into the Request every hook receives."""
    obj = read_config(command, stdin) if isinstance(stdin, bytes) else stdin
    config = PluginConfig.from_dict(obj, where="network config")
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
    """The cniVersion an error JSON claims: the config's when stdin has a usable one,
    even when stdin as a whole is refused (too deep, a bad byte further on).
    Must never raise (it runs while an error is being reported)."""
    try:
        try:
            obj = parse_json(stdin, "network config")
            version = obj.get("cniVersion") if isinstance(obj, dict) else None
        except CNIError:
            version = _peek_top_level_string(stdin.decode("utf-8", "replace"), "cniVersion")
    except Exception:
        return CURRENT
    return version if isinstance(version, str) and version and is_utf8(version) else CURRENT


def _peek_top_level_string(text: str, key: str) -> str | None:
    """The string value of ``key`` in the top-level object of ``text``, read without
    parsing the rest (which may be malformed or nested beyond any parser)."""
    decoder = json.JSONDecoder()
    depth, index, end = 0, 0, len(text)
    while index < end:
        char = text[index]
        if char == '"':
            try:
                string, after = decoder.raw_decode(text, index)
            except ValueError:
                return None
            if depth == 1:
                rest = text[after:].lstrip()
                if string == key and rest.startswith(":"):
                    value_at = end - len(rest[1:].lstrip())
                    try:
                        value, _ = decoder.raw_decode(text, value_at)
                    except ValueError:
                        return None
                    return value if isinstance(value, str) else None
            index = after
            continue
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        index += 1
    return None


def _read_stdin(read: Callable[[], bytes]) -> bytes:
    try:
        return read()
    except (OSError, ValueError) as exc:
        raise CNIError(ErrorCode.IO_FAILURE, f"error reading from stdin: {exc}") from None


def _about(plugin_type: str, load: Callable[[], LoadedPlugin], err: IO[str]) -> None:
    """A blank CNI_COMMAND (a person running the binary): Go's skel prints the about
    text and the supported versions on stderr and exits 0."""
    from corecni import __version__

    print(f"CNI plugin {plugin_type} (corecni {__version__})", file=err)
    try:
        supported = ", ".join(load().supported_versions())
    except CNIError as exc:
        print(f"(the plugin does not load: {exc})", file=err)
        return
    print(f"CNI protocol versions supported: {supported}", file=err)


def _go_version(version: str) -> tuple[int, int, int]:
    """Go's ``version.ParseVersion``: "1", "1.2" and "1.2.3"; anything else is code 6."""
    parts = version.split(".")
    if len(parts) >= 4:
        raise CNIError(ErrorCode.DECODING_FAILURE, f"invalid version {version!r}: too many parts")
    numbers = [0, 0, 0]
    for index, (part, label) in enumerate(zip(parts, ("major", "minor", "micro"), strict=False)):
        if not (part.isascii() and part.lstrip("+-").isdigit()):
            raise CNIError(ErrorCode.DECODING_FAILURE,
                           f"failed to convert {label} version part {part!r}",
                           f"invalid version {version!r}")
        numbers[index] = int(part)
    return numbers[0], numbers[1], numbers[2]


#: the first spec version that has each command (Go's skel refuses earlier configs)
_SINCE = {"CHECK": "0.4.0", "GC": "1.1.0", "STATUS": "1.1.0"}


def check_version(command: str, config_version: str, supported: Sequence[str]) -> None:
    """Go's skel, word for word: CHECK/GC/STATUS need a config version that has the
    command (else 1 "config version does not allow X") and a plugin version at least
    the config's (else 1 "plugin version does not allow X"); an unparseable version is
    6; then the config version must be one the plugin supports (1 "incompatible CNI
    versions", Go's details)."""
    since = _SINCE.get(command)
    if since is not None:
        if _go_version(config_version) < _go_version(since):
            raise CNIError(ErrorCode.INCOMPATIBLE_VERSION,
                           f"config version does not allow {command}")
        if not any(_go_version(v) >= _go_version(config_version) for v in supported):
            raise CNIError(ErrorCode.INCOMPATIBLE_VERSION,
                           f"plugin version does not allow {command}")
    if config_version not in supported:
        quoted = " ".join(json.dumps(v) for v in supported)
        raise CNIError(ErrorCode.INCOMPATIBLE_VERSION, "incompatible CNI versions",
                       f"config is {json.dumps(config_version)}, plugin supports [{quoted}]")


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

    Go's skel order: the CNI_* variables (missing ones, then each value, the netns
    probe last, then the plugin's own namespace refused), the config (JSON, network
    name), the command, the versions, the hook. Stdin is read first of all (never for
    VERSION), so every error JSON - whatever the input, however malformed - claims the
    config's cniVersion. This is the one place where an exception becomes error JSON,
    and it always does. Nothing is written to stdout here: the caller decides where the
    text goes (and guards ``sys.stdout`` if it must).
    ``delegate`` serves the plugin's own delegations (default: a CNI_PATH-only
    invoker built on first use; the daemon passes one that keeps its loaded plugins).
    """
    data = b""
    command = env.get("CNI_COMMAND", "")
    try:
        if not command:
            _about(plugin_type, load, err)
            return Reply(0, "")
        if command == "VERSION":
            return Reply(0, json.dumps(load().version_info().to_dict()) + "\n")
        data = _read_stdin(read_stdin)
        values = read_env(command, env)
        refuse_own_netns(command, values["netns"], env)
        obj = read_config(command, data)
        if command not in COMMANDS:
            raise CNIError(ErrorCode.INVALID_ENVIRONMENT, f"unknown CNI_COMMAND: {command}")
        plugin = load()
        version = obj.get("cniVersion")
        if isinstance(version, str) and version:  # missing: code 7 from build_request
            check_version(command, version, plugin.supported_versions())
        request = build_request(command, values, obj)
        result = plugin.run(attrs.evolve(
            request, delegate=delegate or _LazyDelegate(tuple(observers))))
        return Reply(0, json.dumps(result.to_dict()) + "\n" if result is not None else "")
    except BaseException as exc:
        return _report(exc, plugin_type, data, err)


def _report(exc: BaseException, plugin_type: str, data: bytes, err: IO[str]) -> Reply:
    """The error JSON (always: whatever failed, and however) and a line on stderr."""
    try:
        error = as_cni_error(exc) if isinstance(exc, Exception) else \
            CNIError(ErrorCode.INTERNAL, f"plugin interrupted: {type(exc).__name__}")
        if isinstance(exc, RecursionError):
            error = CNIError(ErrorCode.INTERNAL, "input nested too deeply to process",
                             "RecursionError")
    except BaseException:
        error = CNIError(ErrorCode.INTERNAL, "plugin failed", type(exc).__name__)
    with contextlib.suppress(Exception):
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
    with contextlib.suppress(Exception):
        out.flush()
    return reply.status
