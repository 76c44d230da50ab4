"""How one plugin call runs as an exec: env + stdin in, result or error JSON out.

This is Go's ``pkg/invoke``: the CNI_* variables override the caller's
environment, config goes on stdin, stdout carries the result (exit 0) or the
error JSON (non-zero exit). corecni is stricter than libcni about what a
broken plugin can do to its caller: a crash or garbage on stdout becomes a
``CNIError`` naming the plugin. Like libcni there is no time limit by default
(a DHCP or IPAM plugin may legitimately wait a long time); a caller that sets
one gets error 11 past it, and the hung plugin's whole process group is
killed so it leaves no stray children.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from corecni.spec.config import PluginConfig
from corecni.spec.errors import CNIError, ErrorCode
from corecni.spec.result import Result
from corecni.spec.version import CURRENT, VersionInfo

if TYPE_CHECKING:
    from corecni.registry import Registry
    from corecni.request import Request

#: No limit, as libcni (it only honours the caller's context). ``CNIRuntime(timeout=...)``,
#: ``Invoker(timeout=...)`` and ``corecni --timeout`` set one.
DEFAULT_TIMEOUT: float | None = None
_STDERR_TAIL = 2000


def _tail(data: bytes) -> str:
    text = data.decode(errors="replace").strip()
    return text[-_STDERR_TAIL:]


def exec_plugin(exe: str, stdin: bytes, env: Mapping[str, str],
                timeout: float | None = DEFAULT_TIMEOUT) -> bytes:
    """Run ``exe`` once with ``env`` (``Request.environ()``: the CNI_* variables over the
    caller's environment); return its stdout or raise the error it reported."""
    name = os.path.basename(exe)
    for attempt in range(6):
        try:
            proc = subprocess.Popen(
                [exe], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=dict(env), start_new_session=True, close_fds=True,
            )
        except OSError as exc:
            if exc.errno == errno.ETXTBSY and attempt < 5:
                time.sleep(0.2)  # the plugin binary is being replaced right now
                continue
            raise CNIError(ErrorCode.IO_FAILURE, f"cannot execute plugin {name!r}",
                           f"{exe}: {exc.strerror}", plugin=name) from None
        break
    try:
        stdout, stderr = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise CNIError(ErrorCode.TRY_AGAIN_LATER,
                       f"plugin {name!r} timed out after {timeout:g}s and was killed",
                       f"command {env.get('CNI_COMMAND', '')}", plugin=name) from None
    if proc.returncode == 0:
        return stdout
    raise _plugin_error(name, proc.returncode, stdout, stderr)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def _plugin_error(name: str, returncode: int, stdout: bytes, stderr: bytes) -> CNIError:
    how = f"killed by signal {-returncode}" if returncode < 0 else f"exit status {returncode}"
    if stdout.strip():
        try:
            return CNIError.from_dict(json.loads(stdout)).with_plugin(name)
        except ValueError:
            return CNIError(ErrorCode.DECODING_FAILURE,
                            f"plugin {name!r} failed ({how}) and printed an unparseable error",
                            _tail(stdout), plugin=name)
    detail = _tail(stderr) or "no output"
    return CNIError(ErrorCode.INTERNAL, f"plugin {name!r} failed ({how}) without an error message",
                    detail, plugin=name)


def _config_version(stdin: bytes) -> str:
    """The version a config on stdin declares; none (or unreadable) means 0.1.0, as libcni."""
    try:
        obj = json.loads(stdin)
    except ValueError:
        return "0.1.0"
    version = obj.get("cniVersion") if isinstance(obj, dict) else None
    return version if isinstance(version, str) and version else "0.1.0"


def exec_with_result(exe: str, stdin: bytes, env: Mapping[str, str],
                     timeout: float | None = DEFAULT_TIMEOUT) -> Result:
    """Exec and read the result. A result with no (or an empty) ``cniVersion`` is read
    in the config's version, as libcni's ``fixupResultVersion`` does (cni#895)."""
    stdout = exec_plugin(exe, stdin, env, timeout)
    name = os.path.basename(exe)
    try:
        data: Any = json.loads(stdout)
    except ValueError:
        raise CNIError(ErrorCode.DECODING_FAILURE,
                       f"plugin {name!r} returned a result that is not JSON",
                       _tail(stdout) or "empty output", plugin=name) from None
    if data is None:  # libcni reads a plugin's "null" as an empty result
        data = {}
    try:
        return Result.from_dict(data, default_version=_config_version(stdin))
    except CNIError as exc:
        raise CNIError(ErrorCode.DECODING_FAILURE, f"plugin {name!r} returned an invalid result",
                       str(exc), plugin=name) from None


def exec_version(exe: str, timeout: float | None = DEFAULT_TIMEOUT) -> VersionInfo:
    """Ask a plugin what it speaks; pre-0.2 plugins that refuse VERSION speak 0.1.0."""
    stdin = json.dumps({"cniVersion": CURRENT}).encode()
    try:
        # as libcni: dummy values for the variables very old plugins require
        env = {**os.environ, "CNI_COMMAND": "VERSION", "CNI_CONTAINERID": "",
               "CNI_NETNS": "dummy", "CNI_ARGS": "", "CNI_IFNAME": "dummy", "CNI_PATH": "dummy"}
        stdout = exec_plugin(exe, stdin, env, timeout)
    except CNIError as exc:
        if "unknown CNI_COMMAND: VERSION" in exc.msg:
            return VersionInfo(cni_version="0.1.0", supported_versions=("0.1.0",))
        raise
    try:
        return VersionInfo.from_dict(json.loads(stdout))
    except ValueError:
        name = os.path.basename(exe)
        raise CNIError(ErrorCode.DECODING_FAILURE, f"plugin {name!r} gave an unparseable VERSION",
                       _tail(stdout), plugin=name) from None


# ---------------------------------------------------------------------------
# one call, either way: the same Request in, the same Result out
# ---------------------------------------------------------------------------


@attrs.define
class Invoker:
    """Calls plugins by type through a registry: in-process or exec.

    It is also the ``Delegate`` handed to in-process plugins, so a Python
    interface plugin's IPAM call takes the same road as a runtime's call.
    """

    registry: Registry
    timeout: float | None = DEFAULT_TIMEOUT

    def run(self, request: Request, plugin_type: str | None = None) -> Result | None:
        ptype = plugin_type or request.config.type
        ref = self.registry.resolve(ptype)
        if ref.kind == "python":
            plugin = self.registry.load(ref)
            try:
                return plugin.run(attrs.evolve(request, delegate=self))
            except CNIError:
                raise
            except Exception as exc:  # a plugin bug surfaces as a spec error, not a traceback
                from corecni.plugin import as_cni_error

                raise as_cni_error(exc).with_plugin(ptype) from exc
        env = request.environ()
        stdin = request.config.to_bytes()
        if request.command == "ADD":
            return exec_with_result(ref.location, stdin, env, self.timeout)
        exec_plugin(ref.location, stdin, env, self.timeout)
        return None

    def call(self, plugin_type: str, command: str, request: Request,
             config: Mapping[str, Any] | None = None) -> Result | None:
        """``Delegate.call``: run another plugin for the same attachment."""
        sub = attrs.evolve(request, command=command)
        if config is not None:
            sub = attrs.evolve(sub, config=PluginConfig.from_dict(dict(config)))
        return self.run(sub, plugin_type)

    def version_info(self, plugin_type: str) -> VersionInfo:
        ref = self.registry.resolve(plugin_type)
        if ref.kind == "python":
            return self.registry.load(ref).version_info()
        return exec_version(ref.location, self.timeout)
