"""``corecni daemon``: the node daemon that serves the native shim's calls ("thick" mode).

An exec'd Python plugin pays interpreter start-up and imports on every call.
The shim (``native/shim/shim.c``) is a small C program installed under each
plugin's name; it forwards the call here over a root-only unix socket, and
this long-running process, with every plugin already imported, serves it
through skel's run path (``skel.serve``): the same Request, the same hook
call, the same error JSON as an exec'd launcher.

Each connection carries one call (``daemon_wire``). What happens to it:

* the peer is checked with ``SO_PEERCRED``: uid 0 only (the socket is also
  0600 in a 0700 directory);
* the caller's network namespace and the container's arrive as descriptors
  (SCM_RIGHTS). Both are checked to be network namespaces (``NS_GET_NSTYPE``);
  the worker thread enters the caller's namespace (the node side of the work
  runs exactly where an exec'd plugin would have run) and the plugin sees
  ``CNI_NETNS`` as ``/proc/<pid>/fd/N``, the pinned namespace, so a path that
  vanishes meanwhile never races. Outputs name the runtime's original path;
* calls run concurrently on worker threads, at most ``max_calls`` at once,
  serialised per attachment (network, container, ifname, plugin type);
* each call has a timeout: the caller gets error 11 and the stuck worker is
  left behind (it owns its descriptors, so they stay valid for it); a plugin
  that raises or hangs never takes the daemon down;
* one structured (JSON) log line per call on stderr.

Services: every entry point of the ``corecni.daemon_services`` group (for
instance contrib's ``dhcp``, the DHCP lease service) is a factory called with
the daemon's log function, returning an object with ``start()`` and ``stop()``
(see ``DaemonService``). They start once the daemon holds its socket (after a
takeover, so the previous daemon's services have stopped) and stop before it
hands over or exits. All run by default; ``--without NAME`` leaves one out. A
service that fails to start is logged and left out; the daemon still serves.

SIGTERM (or SIGINT): the socket path is removed (new shims fall back to the
launchers at once), connections already queued are still served, in-flight
calls drain, the process exits. A new daemon started on the same socket takes
over: it binds beside the old socket, renames its own over it (atomic), asks
the old daemon to drain (op TAKEOVER) and starts serving when it has.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import selectors
import signal
import socket
import stat
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any, Protocol

import attrs

from corecni import daemon_wire as wire
from corecni import netns as _netns
from corecni.plugin import LoadedPlugin, load_plugin
from corecni.spec.errors import CNIError, ErrorCode
from corecni.spec.version import CURRENT

if TYPE_CHECKING:
    from corecni.request import Request
    from corecni.spec.result import Result

#: the registry's entry-point groups (not imported: the daemon is on the plugin side)
PLUGIN_GROUP, OBSERVER_GROUP = "corecni.plugins", "corecni.observers"
#: long-running services the daemon hosts (entry points: name -> factory(log))
SERVICE_GROUP = "corecni.daemon_services"
_UCRED = struct.Struct("3i")  # pid, uid, gid
_ATTACH_COMMANDS = frozenset({"ADD", "DEL", "CHECK"})


class DaemonService(Protocol):
    """What a ``corecni.daemon_services`` factory returns. ``start`` raises to refuse
    (the daemon logs it and goes on without the service); ``stop`` must not raise."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class DaemonError(RuntimeError):
    """The daemon cannot start (unsafe socket directory, bind failure...)."""


@attrs.define
class DaemonConfig:
    socket_path: str = attrs.field(factory=wire.socket_path)
    timeout: float = 120.0  # seconds one call may take (the shim waits 150 s by default)
    max_calls: int = 64  # calls running at once
    max_request: int = wire.MAX_REQUEST
    read_timeout: float = 10.0  # seconds a client may take to send its request
    preload: bool = True  # import every entry-point plugin before serving
    without: tuple[str, ...] = ()  # services (corecni.daemon_services) not to run


def error_reply(code: int, msg: str, details: str = "", version: str = CURRENT) -> bytes:
    """An error JSON reply, exit status 1: what the shim prints when the daemon refuses."""
    error = CNIError(code, msg, details)
    return wire.encode_reply(1, json.dumps(error.to_dict(version)) + "\n", f"corecni daemon: "
                             f"{error}\n")


def is_netns_fd(fd: int) -> bool:
    try:
        return bool(fcntl.ioctl(fd, _netns.NS_GET_NSTYPE) == _netns.CLONE_NEWNET)
    except OSError:
        return False


@contextlib.contextmanager
def entered_fd(fd: int) -> Iterator[None]:
    """The calling thread inside the namespace ``fd`` refers to, restored afterwards."""
    own = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net",
                  os.O_RDONLY | os.O_CLOEXEC)
    try:
        _netns._setns(fd)
        try:
            yield
        finally:
            _netns._setns(own)
    finally:
        os.close(own)


def _config_fields(stdin: bytes) -> tuple[str, str]:
    """(network name, cniVersion) of a config, best effort, for locks, logs and errors."""
    try:
        data = json.loads(stdin)
    except ValueError:
        return "", CURRENT
    if not isinstance(data, dict):
        return "", CURRENT
    name, version = data.get("name"), data.get("cniVersion")
    return (name if isinstance(name, str) else "",
            version if isinstance(version, str) and version else CURRENT)


@attrs.define
class _Call:
    """One forwarded CNI call, owned by its worker thread once started."""

    request: wire.WireRequest
    caller_fd: int
    netns_fd: int | None
    peer_pid: int
    reply: bytes = b""
    code: int = 0
    done: threading.Event = attrs.field(factory=threading.Event)
    lock: threading.Lock = attrs.field(factory=threading.Lock)
    finished: bool = False
    abandoned: bool = False

    @property
    def command(self) -> str:
        return self.request.env.get("CNI_COMMAND", "")

    def close_fds(self) -> None:
        for fd in (self.caller_fd, self.netns_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)


class _AttachmentLocks:
    """One lock per live attachment key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, ...], tuple[threading.Lock, int]] = {}

    @contextlib.contextmanager
    def hold(self, key: tuple[str, ...] | None, timeout: float) -> Iterator[bool]:
        if key is None:
            yield True
            return
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        got = lock.acquire(timeout=timeout)
        try:
            yield got
        finally:
            if got:
                lock.release()
            with self._guard:
                lock, users = self._locks[key]
                if users <= 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)


class Daemon:
    """The server: bind (taking over from a running daemon), serve, drain on stop."""

    def __init__(self, config: DaemonConfig, log: IO[str] | None = None) -> None:
        self.config = config
        self.log = log or sys.stderr
        self._listener: socket.socket | None = None
        self._inode = 0
        self._slots = threading.BoundedSemaphore(config.max_calls)
        self._attachments = _AttachmentLocks()
        self._plugins: dict[tuple[Any, ...], LoadedPlugin] = {}
        self._plugins_lock = threading.Lock()
        self._eps: dict[str, str] | None = None
        self._delegate = _SharedDelegate(self)
        self._observers: tuple[str, ...] = ()
        self._active = 0  # connections being handled
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._closed = threading.Event()  # listener closed, backlog taken
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._counters = threading.Lock()
        self.served = 0
        self.stuck = 0
        self.started = time.monotonic()
        self._services: dict[str, DaemonService] = {}

    # ---- plugins ------------------------------------------------------------
    def _entry_points(self) -> dict[str, str]:
        if self._eps is None:
            from importlib.metadata import entry_points

            self._observers = tuple(ep.value for ep in entry_points(group=OBSERVER_GROUP))
            self._eps = {ep.name: ep.value for ep in entry_points(group=PLUGIN_GROUP)}
        return self._eps

    def preload(self) -> None:
        """Import every entry-point plugin now, so the first calls pay nothing."""
        for ptype, target in sorted(self._entry_points().items()):
            try:
                self._load(ptype, target, self._observers, ())
            except CNIError as exc:
                self._log({"event": "preload-failed", "type": ptype, "error": str(exc)})

    def _load(self, ptype: str, target: str, observers: tuple[str, ...],
              sys_path: tuple[str, ...]) -> LoadedPlugin:
        key = (ptype, target, observers, sys_path)
        with self._plugins_lock:
            plugin = self._plugins.get(key)
            if plugin is None:
                for entry in sys_path:
                    if entry not in sys.path:
                        sys.path.insert(0, entry)
                plugin = load_plugin(ptype, target, observers)
                self._plugins[key] = plugin
            return plugin

    def loader(self, ptype: str, launcher_path: str) -> Callable[[], LoadedPlugin]:
        """The plugin the shim's fallback launcher names (so both paths run the same
        code), else the entry point of that type."""
        def load() -> LoadedPlugin:
            from corecni import launcher

            spec = launcher.read_marker(launcher_path) if launcher_path else None
            if spec is not None:
                return self._load(ptype, spec.target, spec.observers, spec.sys_path)
            target = self._entry_points().get(ptype)
            if target is None:
                raise CNIError(ErrorCode.INVALID_NETWORK_CONFIG,
                               f"corecni daemon has no plugin of type {ptype!r}",
                               launcher_path or "no launcher named by the shim")
            return self._load(ptype, target, self._observers, ())
        return load

    # ---- services -------------------------------------------------------------
    def start_services(self) -> None:
        """Start every ``corecni.daemon_services`` entry point not left out."""
        from importlib.metadata import entry_points

        for ep in sorted(entry_points(group=SERVICE_GROUP), key=lambda e: e.name):
            if ep.name in self.config.without or ep.name in self._services:
                continue
            try:
                service: DaemonService = ep.load()(log=self._log)
                service.start()
            except Exception as exc:
                self._log({"event": "service-failed", "service": ep.name,
                           "error": f"{type(exc).__name__}: {exc}"})
                continue
            self._services[ep.name] = service
            self._log({"event": "service-started", "service": ep.name})

    def stop_services(self) -> None:
        services, self._services = self._services, {}
        for name, service in sorted(services.items(), reverse=True):
            try:
                service.stop()
            except Exception as exc:
                self._log({"event": "service-stop-failed", "service": name,
                           "error": f"{type(exc).__name__}: {exc}"})

    # ---- socket ---------------------------------------------------------------
    def _prepare_dir(self) -> str:
        directory = os.path.dirname(os.path.abspath(self.config.socket_path))
        if not os.path.isdir(directory):
            os.makedirs(os.path.dirname(directory) or "/", exist_ok=True)
            with contextlib.suppress(FileExistsError):
                os.mkdir(directory, 0o700)
        st = os.lstat(directory)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() \
                or st.st_mode & 0o077:
            raise DaemonError(f"socket directory {directory} must be a directory owned by "
                              f"uid {os.geteuid()} with mode 0700 (is "
                              f"{stat.filemode(st.st_mode)}, uid {st.st_uid})")
        return directory

    def bind(self) -> None:
        """Listen on the socket path, taking it over from a running daemon if any.

        Plugins are imported first (``preload``), so a takeover leaves no gap."""
        path = self.config.socket_path
        self._prepare_dir()
        if self.config.preload:
            self.preload()
        old: socket.socket | None = None
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.settimeout(2.0)
            probe.connect(path)
            old = probe  # a daemon is serving there: it will hand over
        except OSError:
            probe.close()
        tmp = f"{path}.{os.getpid()}.new"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        umask = os.umask(0o177)  # the socket file is born 0600
        try:
            listener.bind(tmp)
        finally:
            os.umask(umask)
        os.chmod(tmp, 0o600)
        listener.listen(256)
        os.rename(tmp, path)  # from here on new shims reach this daemon (queued until serve)
        self._inode = os.stat(path).st_ino
        self._listener = listener
        if old is not None:
            self._take_over(old)

    def _take_over(self, old: socket.socket) -> None:
        """Ask the previous daemon to drain and wait until it has (calls for the same
        attachment must not run in both daemons)."""
        try:
            old.settimeout(self.config.timeout + 30)
            wire.send_request(old, wire.encode_request(wire.WireRequest(wire.OP_TAKEOVER)), [])
            reply = wire.read_reply(old)
            self._log({"event": "takeover", "previous": reply.json()})
        except (OSError, wire.WireError) as exc:
            self._log({"event": "takeover", "error": str(exc)})
        finally:
            old.close()

    # ---- lifecycle ------------------------------------------------------------
    def stop(self) -> None:
        """Stop accepting, serve what is queued, drain (safe from a signal handler)."""
        self._stopping.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def serve_forever(self) -> None:
        listener = self._listener
        if listener is None:
            raise DaemonError("bind() first")
        sel = selectors.DefaultSelector()
        sel.register(listener, selectors.EVENT_READ)
        sel.register(self._wake_r, selectors.EVENT_READ)
        self._log({"event": "ready", "socket": self.config.socket_path, "pid": os.getpid()})
        _sd_notify("READY=1")
        try:
            while not self._stopping.is_set():
                for key, _ in sel.select(timeout=5.0):
                    if key.fileobj is listener:
                        self._accept(listener)
                if not self._owns_path():  # replaced without a handover: nobody can reach us
                    self._log({"event": "socket-replaced", "socket": self.config.socket_path})
                    self.stop()
        finally:
            sel.close()
            _sd_notify("STOPPING=1")
            self._shutdown(listener)

    def _shutdown(self, listener: socket.socket) -> None:
        if self._owns_path():  # not after a takeover: then it is the new daemon's
            with contextlib.suppress(OSError):
                os.unlink(self.config.socket_path)
        listener.setblocking(False)
        while True:  # connections already queued are served, not dropped
            try:
                self._spawn(*listener.accept())
            except (BlockingIOError, OSError):
                break
        listener.close()
        self.stop_services()  # before a successor (waiting on _closed) starts its own
        self._closed.set()
        with self._cond:
            self._cond.wait_for(lambda: self._active == 0, timeout=self.config.timeout + 30)
        self._log({"event": "stopped", "served": self.served, "stuck": self.stuck})
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)

    def _owns_path(self) -> bool:
        try:
            return os.stat(self.config.socket_path).st_ino == self._inode
        except OSError:
            return False

    def _accept(self, listener: socket.socket) -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        self._spawn(conn, None)

    def _spawn(self, conn: socket.socket, _addr: object) -> None:
        with self._cond:
            self._active += 1
        threading.Thread(target=self._handle, args=(conn,), daemon=True,
                         name="corecni-conn").start()

    def health(self) -> dict[str, Any]:
        from corecni import __version__

        return {"ready": not self._stopping.is_set() and self.stuck < self.config.max_calls,
                "pid": os.getpid(), "version": __version__, "socket": self.config.socket_path,
                "active": self._active - 1, "served": self.served, "stuck": self.stuck,
                "uptime": round(time.monotonic() - self.started, 3),
                "services": sorted(self._services)}

    # ---- one connection -------------------------------------------------------
    def _handle(self, conn: socket.socket) -> None:
        fds: list[int] = []
        try:
            with conn:
                conn.settimeout(self.config.read_timeout)
                reply = self._serve_conn(conn, fds)
                with contextlib.suppress(OSError):
                    conn.settimeout(self.config.read_timeout)
                    conn.sendall(reply)
        except Exception as exc:  # never let one connection take the daemon down
            self._log({"event": "connection-error", "error": f"{type(exc).__name__}: {exc}"})
        finally:
            for fd in fds:  # descriptors no call took ownership of
                with contextlib.suppress(OSError):
                    os.close(fd)
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    def _serve_conn(self, conn: socket.socket, fds: list[int]) -> bytes:
        pid, uid, _ = _UCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                    _UCRED.size))
        if uid != 0:
            self._log({"event": "refused", "peer_pid": pid, "peer_uid": uid})
            return error_reply(ErrorCode.INVALID_ENVIRONMENT, "permission denied",
                               f"corecni daemon serves uid 0 only (peer uid {uid})")
        try:
            request = self._read_request(conn, fds)
        except wire.WireError as exc:
            self._log({"event": "bad-request", "peer_pid": pid, "error": str(exc)})
            return error_reply(ErrorCode.DECODING_FAILURE, "malformed request to corecni daemon",
                               str(exc))
        except TimeoutError:
            return error_reply(ErrorCode.DECODING_FAILURE, "incomplete request to corecni "
                               "daemon", f"nothing more within {self.config.read_timeout}s")
        if request.op == wire.OP_HEALTH:
            return wire.encode_reply(0, json.dumps(self.health()) + "\n")
        if request.op == wire.OP_TAKEOVER:
            self._log({"event": "handing-over", "to_pid": pid})
            self.stop()
            self._closed.wait(timeout=self.config.timeout + 30)
            with self._cond:
                self._cond.wait_for(lambda: self._active <= 1, timeout=self.config.timeout + 30)
            return wire.encode_reply(0, json.dumps(self.health()) + "\n")
        return self._call(request, fds, pid)

    def _read_request(self, conn: socket.socket, fds: list[int]) -> wire.WireRequest:
        """The request and its descriptors (appended to ``fds`` as they arrive)."""
        anc_size = socket.CMSG_SPACE(wire.MAX_FDS * 4)
        data = bytearray()
        while len(data) < wire.REQUEST_HEAD.size:
            chunk, anc, flags, _ = conn.recvmsg(1 << 16, anc_size, socket.MSG_CMSG_CLOEXEC)
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.extend(struct.unpack(f"{len(payload) // 4}i",
                                             payload[:len(payload) // 4 * 4]))
            if flags & socket.MSG_CTRUNC:
                raise wire.WireError(f"more than {wire.MAX_FDS} descriptors")
            if not chunk:
                raise wire.WireError(f"connection closed after {len(data)} bytes")
            data += chunk
        op, fd_bits, lengths = wire.body_length(bytes(data[:wire.REQUEST_HEAD.size]))
        expected = bin(fd_bits).count("1")
        if len(fds) != expected:
            raise wire.WireError(f"request announces {expected} descriptors, "
                                 f"{len(fds)} arrived")
        total = sum(lengths)
        if total > self.config.max_request:
            raise wire.WireError(f"request of {total} bytes exceeds the limit of "
                                 f"{self.config.max_request}")
        body = bytes(data[wire.REQUEST_HEAD.size:])
        if len(body) < total:
            body += wire.recv_exact(conn, total - len(body))
        if len(body) != total:
            raise wire.WireError(f"{len(body) - total} bytes after the request")
        return wire.decode_body(op, fd_bits, lengths, body)

    def _call(self, request: wire.WireRequest, fds: list[int], peer_pid: int) -> bytes:
        network, version = _config_fields(request.stdin)
        caller_fd = fds[0] if request.fds & wire.FD_CALLER_NETNS else None
        netns_fd = fds[-1] if request.fds & wire.FD_CONTAINER_NETNS else None
        if caller_fd is None:
            return error_reply(ErrorCode.INVALID_ENVIRONMENT, "the caller's network namespace "
                               "did not come with the request", version=version)
        for fd, what in ((caller_fd, "the caller's namespace"), (netns_fd, "CNI_NETNS")):
            if fd is not None and not is_netns_fd(fd):
                return error_reply(ErrorCode.INVALID_ENVIRONMENT,
                                   f"{what} is not a network namespace",
                                   request.env.get("CNI_NETNS", "") if fd == netns_fd else "",
                                   version)
        call = _Call(request, caller_fd, netns_fd, peer_pid)
        fds.clear()  # the call owns them now: its worker closes them, even if abandoned
        start = time.monotonic()
        if not self._slots.acquire(timeout=self.config.timeout):
            call.close_fds()
            return self._finish(call, start, network, error_reply(
                ErrorCode.TRY_AGAIN_LATER, "corecni daemon is busy",
                f"{self.config.max_calls} calls running", version), ErrorCode.TRY_AGAIN_LATER)
        worker = threading.Thread(target=self._work, args=(call, network, start), daemon=True,
                                  name="corecni-call")
        worker.start()
        call.done.wait(self.config.timeout)
        with call.lock:
            if not call.finished:
                call.abandoned = True
                self._count(stuck=1)
        if call.abandoned:
            return self._finish(call, start, network, error_reply(
                ErrorCode.TRY_AGAIN_LATER, f"plugin {request.type} did not finish within "
                f"{self.config.timeout:g}s", "corecni daemon abandoned the call", version),
                ErrorCode.TRY_AGAIN_LATER)
        return self._finish(call, start, network, call.reply, call.code)

    def _work(self, call: _Call, network: str, start: float) -> None:
        from corecni import skel

        request = call.request
        try:
            env = {k: v for k, v in request.env.items() if k.startswith("CNI_")}
            original = env.get("CNI_NETNS", "")
            stdin = request.stdin
            if call.netns_fd is not None:
                # /proc/<pid>/fd/N, not /proc/self: an exec'd delegate can use it too
                env["CNI_NETNS"] = f"/proc/{os.getpid()}/fd/{call.netns_fd}"
                stdin = _alias_config(stdin, original, env["CNI_NETNS"])
            key = (network, env.get("CNI_CONTAINERID", ""), env.get("CNI_IFNAME", ""),
                   request.type) if call.command in _ATTACH_COMMANDS else None
            err = io.StringIO()
            with self._attachments.hold(key, self.config.timeout) as got:
                if not got:
                    reply = skel.Reply(1, json.dumps(CNIError(
                        ErrorCode.TRY_AGAIN_LATER, "another call for this attachment is still "
                        "running").to_dict(_config_fields(request.stdin)[1])) + "\n")
                else:
                    with entered_fd(call.caller_fd):
                        reply = skel.serve(request.type, self.loader(request.type,
                                                                     request.launcher),
                                           env, lambda: stdin, err,
                                           delegate=self._delegate)
            stdout, stderr = reply.stdout, err.getvalue()
            if call.netns_fd is not None:
                stdout = _unalias(stdout, env["CNI_NETNS"], original, json_text=True)
                stderr = _unalias(stderr, env["CNI_NETNS"], original)
            call.code = reply.error.code if reply.error is not None else 0
            call.reply = wire.encode_reply(reply.status, stdout, stderr)
        except BaseException as exc:  # skel.serve turns plugin failures into JSON already
            call.code = ErrorCode.INTERNAL
            call.reply = error_reply(ErrorCode.INTERNAL, "corecni daemon failed to serve the "
                                     "call", f"{type(exc).__name__}: {exc}")
        finally:
            call.close_fds()
            self._slots.release()
            with call.lock:
                call.finished = True
                if call.abandoned:  # it had been given up on; it is not stuck any more
                    self._count(stuck=-1)
            call.done.set()

    def _finish(self, call: _Call, start: float, network: str, reply: bytes,
                code: int) -> bytes:
        self._count(served=1)
        env = call.request.env
        self._log({"event": "call", "command": call.command, "type": call.request.type,
                   "network": network, "container": env.get("CNI_CONTAINERID", ""),
                   "ifname": env.get("CNI_IFNAME", ""), "peer_pid": call.peer_pid,
                   "ms": round((time.monotonic() - start) * 1000, 2), "code": code})
        return reply

    def _count(self, stuck: int = 0, served: int = 0) -> None:
        with self._counters:
            self.stuck += stuck
            self.served += served

    def _log(self, record: dict[str, Any]) -> None:
        line = json.dumps({"ts": round(time.time(), 3), **record}, separators=(",", ":"))
        with contextlib.suppress(OSError, ValueError):
            self.log.write(line + "\n")
            self.log.flush()


class _SharedDelegate:
    """The plugins' delegate inside the daemon: one invoker per CNI_PATH, kept for the
    daemon's life, so an IPAM delegation reuses the loaded plugin instead of loading
    it (a new PluginManager) on every call, as an exec'd launcher must."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self._invokers: dict[tuple[str, ...], Any] = {}
        self._lock = threading.Lock()

    def call(self, plugin_type: str, command: str, request: Request,
             config: Mapping[str, Any] | None = None) -> Result | None:
        with self._lock:
            invoker = self._invokers.get(request.path)
            if invoker is None:
                from corecni.invoke import Invoker
                from corecni.registry import Registry

                self._daemon._entry_points()
                invoker = Invoker(Registry(path=request.path, entry_points=False,
                                           observers=self._daemon._observers))
                self._invokers[request.path] = invoker
        result: Result | None = invoker.call(plugin_type, command, request, config)
        return result


def _alias_config(stdin: bytes, original: str, alias: str) -> bytes:
    """The config as the plugin must see it when CNI_NETNS is ``alias``: a prevResult
    interface in the runtime's ``original`` sandbox names ``alias`` instead (CHECK and
    DEL compare them). Anything unparseable is left for the plugin to reject."""
    try:
        data = json.loads(stdin)
        interfaces = data["prevResult"]["interfaces"]
    except (ValueError, KeyError, TypeError):
        return stdin
    if not isinstance(interfaces, list):
        return stdin
    changed = False
    for iface in interfaces:
        if isinstance(iface, dict) and original and iface.get("sandbox") == original:
            iface["sandbox"] = alias
            changed = True
    return json.dumps(data).encode() if changed else stdin


def _unalias(text: str, alias: str, original: str, json_text: bool = False) -> str:
    """Name the runtime's namespace path where the plugin saw ``/proc/<pid>/fd/N``."""
    import re

    if not text or alias not in text:
        return text
    replacement = json.dumps(original)[1:-1] if json_text else original
    return re.sub(re.escape(alias) + r"(?!\d)", lambda _: replacement, text)


def _sd_notify(state: str) -> None:
    """Tell systemd (Type=notify) about readiness/stopping; nothing without NOTIFY_SOCKET."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with contextlib.suppress(OSError), \
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.sendto(state.encode(), addr)


def run_daemon(config: DaemonConfig, log: IO[str] | None = None) -> int:
    """``corecni daemon``: run in the foreground until SIGTERM/SIGINT (or a takeover)."""
    daemon = Daemon(config, log)
    daemon.bind()
    daemon.start_services()
    previous = {sig: signal.signal(sig, lambda *_: daemon.stop())
                for sig in (signal.SIGTERM, signal.SIGINT)}
    real_stdout = sys.stdout
    sys.stdout = sys.stderr  # a stray print() in a hook must never reach a protocol stream
    try:
        daemon.serve_forever()
    finally:
        sys.stdout = real_stdout
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def main(socket_arg: str | None, timeout: float | None, max_calls: int, status: bool,
         without: tuple[str, ...] = ()) -> int:
    """``corecni daemon [--status]`` (the CLI's whole daemon verb)."""
    path = wire.socket_path(socket_arg)
    if status:
        try:
            health = wire.health(path)
        except (OSError, wire.WireError) as exc:
            print(f"corecni daemon: not answering at {path} ({exc})", file=sys.stderr)
            return 1
        print(json.dumps(health))
        return 0 if health.get("ready") else 1
    try:
        config = DaemonConfig(socket_path=path, max_calls=max_calls, without=without)
        if timeout:
            config.timeout = timeout
        return run_daemon(config)
    except DaemonError as exc:
        print(f"corecni daemon: {exc}", file=sys.stderr)
        return 1
