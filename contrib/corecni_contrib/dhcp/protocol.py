"""The plugin <-> lease service wire: one JSON request and one JSON reply per connection.

The request is a JSON object sent in one ``sendmsg`` (the container's namespace
descriptor rides along as SCM_RIGHTS when the call names one); the writer then
shuts its side down. The reply is a JSON object: ``{"error": {code, msg,
details}}`` or the operation's answer. The socket is root only (0600, and the
service checks SO_PEERCRED), as Go's ``/run/cni/dhcp.sock``.

Requests (``op``): ``allocate`` (containerID, network, ifname, netns, options
-> lease), ``release`` and ``check`` (containerID, network, ifname), ``gc``
(network, valid: [[containerID, ifname], ...]), ``status``.
"""

from __future__ import annotations

import array
import json
import socket
from typing import Any

from corecni.spec.errors import CNIError, ErrorCode

DEFAULT_SOCKET = "/run/cni/dhcp.sock"
MAX_MESSAGE = 1 << 20


class ServiceUnavailable(CNIError):
    """Nothing answers at the socket (code 11: try again later)."""


def read_all(sock: socket.socket, limit: int = MAX_MESSAGE) -> bytes:
    data = bytearray()
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return bytes(data)
        data += chunk
        if len(data) > limit:
            raise ValueError(f"message longer than {limit} bytes")


def receive_request(sock: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """The request object and the descriptors that came with it (the caller closes them)."""
    fds: list[int] = []
    data = bytearray()
    while True:
        chunk, anc, _flags, _ = sock.recvmsg(65536, socket.CMSG_SPACE(4 * 4),
                                             socket.MSG_CMSG_CLOEXEC)
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                got = array.array("i")
                got.frombytes(payload[:len(payload) - len(payload) % got.itemsize])
                fds.extend(got)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_MESSAGE:
            raise ValueError(f"request longer than {MAX_MESSAGE} bytes")
    request = json.loads(data)
    if not isinstance(request, dict):
        raise ValueError("the request is not a JSON object")
    return request, fds


def call(socket_path: str, request: dict[str, Any], fd: int | None = None,
         timeout: float = 60.0) -> dict[str, Any]:
    """Send ``request`` (with ``fd``) to the service and return its answer; a service
    error is raised as the CNIError it carries, no service as code 11 naming the socket."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(timeout)
        try:
            sock.connect(socket_path)
        except OSError as exc:
            raise ServiceUnavailable(
                ErrorCode.TRY_AGAIN_LATER,
                f"no DHCP lease service answers at {socket_path}",
                f"{exc.strerror or exc}; the lease service runs inside `corecni daemon` "
                "(ipam.daemonSocketPath names its socket)") from None
        payload = json.dumps(request).encode()
        fds = [fd] if fd is not None else []
        try:
            sock.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                      array.array("i", fds).tobytes())] if fds else [])
            sock.shutdown(socket.SHUT_WR)
            raw = read_all(sock)
        except TimeoutError:
            raise CNIError(ErrorCode.TRY_AGAIN_LATER,
                           f"the DHCP lease service at {socket_path} did not answer "
                           f"within {timeout:g}s") from None
        except OSError as exc:
            raise CNIError(ErrorCode.TRY_AGAIN_LATER,
                           f"the DHCP lease service at {socket_path} failed",
                           str(exc)) from None
    finally:
        sock.close()
    try:
        reply = json.loads(raw)
    except ValueError:
        raise CNIError(ErrorCode.TRY_AGAIN_LATER,
                       f"the DHCP lease service at {socket_path} closed the connection "
                       "without an answer", raw[:200].decode("utf-8", "replace")) from None
    if not isinstance(reply, dict):
        raise CNIError(ErrorCode.INTERNAL, "unexpected answer from the DHCP lease service",
                       repr(reply)[:200])
    error = reply.get("error")
    if isinstance(error, dict):
        raise CNIError(int(error.get("code", ErrorCode.INTERNAL)), str(error.get("msg", "")),
                       str(error.get("details", "")))
    return reply


def error_reply(exc: CNIError) -> dict[str, Any]:
    return {"error": {"code": exc.code, "msg": exc.msg, "details": exc.details}}
