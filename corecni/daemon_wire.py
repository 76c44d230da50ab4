"""The shim <-> daemon wire format, and a small Python client of it.

One request and one reply per connection on a unix stream socket. Integers
are u32 little-endian. The C side is ``native/shim/shim.c``; both sides must
agree on every constant here (``tests/unit/test_daemon_wire.py`` pins them).

Request (shim -> daemon)::

    "CNS1" | op | fds | type_len | launcher_len | env_len | stdin_len
    | type | launcher | env | stdin

* ``op``: 1 CALL (serve a CNI call), 2 HEALTH (status JSON), 3 TAKEOVER
  (a new daemon asks this one to stop accepting, drain and exit).
* ``fds``: which descriptors ride in the SCM_RIGHTS message sent with the
  first bytes, in this order: bit 0 the caller's own network namespace,
  bit 1 the container's (``CNI_NETNS`` opened by the shim).
* ``launcher``: the Python launcher the shim falls back to; the daemon
  serves the plugin that launcher names, so both paths run the same code.
* ``env``: ``KEY=VALUE`` entries, each NUL-terminated (only ``CNI_*``).
* ``stdin``: the network config, as the runtime wrote it.

Reply (daemon -> shim)::

    "CNR1" | status | stdout_len | stderr_len | stdout | stderr

The shim writes ``stdout`` and ``stderr`` to its own and exits with ``status``.
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import socket
import struct
from collections.abc import Mapping
from typing import Any

import attrs

DEFAULT_SOCKET = "/run/corecni/daemon.sock"
SOCKET_ENV = "CORECNI_DAEMON_SOCKET"

REQUEST_MAGIC = b"CNS1"
REPLY_MAGIC = b"CNR1"
OP_CALL, OP_HEALTH, OP_TAKEOVER = 1, 2, 3
FD_CALLER_NETNS, FD_CONTAINER_NETNS = 1, 2
MAX_FDS = 2

REQUEST_HEAD = struct.Struct("<4sIIIIII")
REPLY_HEAD = struct.Struct("<4sIII")
#: the largest request body the daemon accepts (configs with a prevResult are a few KB)
MAX_REQUEST = 4 << 20


def socket_path(explicit: str | None = None) -> str:
    """The socket both sides use: ``explicit``, else ``$CORECNI_DAEMON_SOCKET``, else
    the default (so neither side needs a flag)."""
    return explicit or os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET


class WireError(ValueError):
    """A request or reply that does not follow the format."""


@attrs.frozen
class WireRequest:
    op: int
    type: str = ""
    launcher: str = ""
    env: Mapping[str, str] = attrs.field(factory=dict)
    stdin: bytes = b""
    fds: int = 0  # FD_* bits: which descriptors came with it


def encode_env(env: Mapping[str, str]) -> bytes:
    return b"".join(f"{k}={v}".encode() + b"\0" for k, v in env.items())


def decode_env(data: bytes) -> dict[str, str]:
    if data and not data.endswith(b"\0"):
        raise WireError("env block is not NUL-terminated")
    out: dict[str, str] = {}
    for entry in data.split(b"\0")[:-1] if data else ():
        key, sep, value = entry.partition(b"=")
        if not sep or not key:
            raise WireError(f"env entry without '=': {entry[:40]!r}")
        try:
            out[key.decode()] = value.decode()
        except UnicodeDecodeError as exc:
            raise WireError(f"env entry is not UTF-8: {entry[:40]!r}") from exc
    return out


def encode_request(req: WireRequest) -> bytes:
    env = encode_env(req.env)
    ptype, launcher = req.type.encode(), req.launcher.encode()
    head = REQUEST_HEAD.pack(REQUEST_MAGIC, req.op, req.fds, len(ptype), len(launcher),
                             len(env), len(req.stdin))
    return head + ptype + launcher + env + req.stdin


def body_length(head: bytes) -> tuple[int, int, tuple[int, int, int, int]]:
    """(op, fds, the four section lengths) of a request head; WireError if it is bad."""
    magic, op, fds, *lengths = REQUEST_HEAD.unpack(head)
    if magic != REQUEST_MAGIC:
        raise WireError(f"bad magic {magic!r}")
    if op not in (OP_CALL, OP_HEALTH, OP_TAKEOVER):
        raise WireError(f"unknown op {op}")
    if fds & ~(FD_CALLER_NETNS | FD_CONTAINER_NETNS):
        raise WireError(f"unknown fd bits {fds:#x}")
    a, b, c, d = lengths
    return op, fds, (a, b, c, d)


def decode_body(op: int, fds: int, lengths: tuple[int, int, int, int],
                body: bytes) -> WireRequest:
    a, b, c, _ = lengths
    try:
        ptype = body[:a].decode()
        launcher = body[a:a + b].decode()
    except UnicodeDecodeError as exc:
        raise WireError("type or launcher path is not UTF-8") from exc
    return WireRequest(op=op, type=ptype, launcher=launcher,
                       env=decode_env(body[a + b:a + b + c]), stdin=body[a + b + c:], fds=fds)


def encode_reply(status: int, stdout: str, stderr: str = "") -> bytes:
    out, err = stdout.encode(), stderr.encode()
    return REPLY_HEAD.pack(REPLY_MAGIC, status, len(out), len(err)) + out + err


@attrs.frozen
class WireReply:
    status: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout) if self.stdout.strip() else None


def recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            raise WireError(f"connection closed after {got} of {n} bytes")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_reply(sock: socket.socket) -> WireReply:
    magic, status, out_len, err_len = REPLY_HEAD.unpack(recv_exact(sock, REPLY_HEAD.size))
    if magic != REPLY_MAGIC:
        raise WireError(f"bad reply magic {magic!r}")
    body = recv_exact(sock, out_len + err_len)
    return WireReply(status, body[:out_len].decode(errors="replace"),
                     body[out_len:].decode(errors="replace"))


def send_request(sock: socket.socket, data: bytes, fds: list[int]) -> None:
    """The first bytes carry the descriptors (SCM_RIGHTS), the rest follows."""
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())] \
        if fds else []
    sent = sock.sendmsg([data], anc)
    if sent < len(data):
        sock.sendall(data[sent:])


def call(path: str, request: WireRequest, fds: list[int] | None = None,
         timeout: float = 120.0, raw: bytes | None = None) -> WireReply:
    """Send one request (``raw`` bytes instead of the encoded request, for tests) and
    return the reply. The client the tests and ``corecni daemon --status`` use; the
    shim is the C twin of this function."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        # a daemon that refused early closed its end; its reply is still queued for us
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            send_request(sock, encode_request(request) if raw is None else raw, fds or [])
        return read_reply(sock)


def health(path: str | None = None, timeout: float = 5.0) -> dict[str, Any]:
    """The daemon's status JSON (raises OSError when nothing answers)."""
    reply = call(socket_path(path), WireRequest(op=OP_HEALTH), timeout=timeout)
    data = reply.json()
    if not isinstance(data, dict):
        raise WireError(f"health reply is not an object: {reply.stdout!r}")
    return data
