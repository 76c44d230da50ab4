"""The DHCP lease service: holds every lease of the node, inside ``corecni daemon``.

Go's ``dhcp daemon`` is a separate process; here the node daemon runs the
service (entry point ``dhcp`` in the ``corecni.daemon_services`` group), so one
long-running process serves both the shim's calls and the leases. The ``dhcp``
IPAM plugin only talks to it over the socket (``protocol``), whether the
plugin itself runs in corecni's runtime, an exec'd launcher or the daemon.

Settings (environment of ``corecni daemon``, all optional):

* ``CORECNI_DHCP_SOCKET``: the socket (default ``/run/cni/dhcp.sock``, Go's);
* ``CORECNI_DHCP_STATE_DIR``: where leases are persisted (``/var/lib/cni/dhcp``);
* ``CORECNI_DHCP_RENEW_CAP``: renew at most this many seconds after each
  binding, before T1 (tests, and nodes that want early renewals).

On start the stored leases are loaded and their namespaces found again
(``nsref.reopen``), and their maintenance resumes; a lease whose namespace is
gone waits for its attachment's next call or its expiry. On stop nothing is
released: leases stay with the server and on disk for the next start.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from corecni.kit import netns_entered
from corecni.spec.errors import CNIError, ErrorCode
from corecni_contrib.dhcp import client, nsref, protocol, transport
from corecni_contrib.dhcp.lease import Holder, Lease
from corecni_contrib.dhcp.maintainer import Log, Maintainer
from corecni_contrib.dhcp.store import DEFAULT_STATE_DIR, LeaseStore

SOCKET_ENV, STATE_ENV, RENEW_CAP_ENV = ("CORECNI_DHCP_SOCKET", "CORECNI_DHCP_STATE_DIR",
                                        "CORECNI_DHCP_RENEW_CAP")
_UCRED = struct.Struct("3i")


class ServiceError(RuntimeError):
    """The service cannot start (another one serves the socket, bind failed...)."""


def _stderr_log(record: dict[str, Any]) -> None:
    import json

    print(json.dumps({"ts": round(time.time(), 3), **record}), file=sys.stderr, flush=True)


class LeaseService:
    def __init__(self, socket_path: str = protocol.DEFAULT_SOCKET,
                 state_dir: str = DEFAULT_STATE_DIR, renew_cap: float | None = None,
                 log: Log | None = None) -> None:
        self.socket_path = socket_path
        self.store = LeaseStore(state_dir)
        self.renew_cap = renew_cap
        self.log = log or _stderr_log
        self._leases: dict[str, Maintainer] = {}
        self._guard = threading.Lock()
        self._client_locks: dict[str, threading.Lock] = {}
        self._listener: socket.socket | None = None
        self._inode = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_environ(cls, log: Log | None = None) -> LeaseService:
        cap = os.environ.get(RENEW_CAP_ENV, "")
        return cls(os.environ.get(SOCKET_ENV) or protocol.DEFAULT_SOCKET,
                   os.environ.get(STATE_ENV) or DEFAULT_STATE_DIR,
                   float(cap) if cap else None, log)

    # ---- lifecycle ----------------------------------------------------------------
    def start(self) -> None:
        self._bind()
        self._load()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="dhcp-service")
        self._thread.start()
        self.log({"event": "dhcp-service-ready", "socket": self.socket_path,
                  "leases": len(self._leases), "stateDir": self.store.directory})

    def stop(self) -> None:
        """Stop serving and maintaining; leases stay bound (server and disk)."""
        self._stopping.set()
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                if os.stat(self.socket_path).st_ino == self._inode:
                    os.unlink(self.socket_path)
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        if self._thread is not None:
            self._thread.join(5)
        with self._guard:
            maintainers = list(self._leases.values())
            self._leases.clear()
        for m in maintainers:  # all told first, so their exchanges end together
            m.halt(timeout=0)
        for m in maintainers:
            m.stop()
        self.log({"event": "dhcp-service-stopped", "leases": len(maintainers)})

    def health(self) -> dict[str, Any]:
        with self._guard:
            return {"socket": self.socket_path, "leases": len(self._leases)}

    def _bind(self) -> None:
        path = self.socket_path
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, mode=0o700, exist_ok=True)
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            probe.settimeout(2.0)
            probe.connect(path)
        except OSError:
            pass  # nothing answers: a stale file at most
        else:
            raise ServiceError(f"another DHCP lease service answers at {path}")
        finally:
            probe.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        umask = os.umask(0o177)
        try:
            listener.bind(path)
        except OSError as exc:
            listener.close()
            raise ServiceError(f"cannot bind {path}: {exc.strerror}") from None
        finally:
            os.umask(umask)
        os.chmod(path, 0o600)
        listener.listen(128)
        self._inode = os.stat(path).st_ino
        self._listener = listener

    def _load(self) -> None:
        now = time.time()
        for path, item in self.store.load():
            if isinstance(item, Exception):
                self.log({"event": "dhcp-store-unreadable", "path": path, "error": str(item)})
                continue
            lease = item
            if now >= lease.expires_at:
                self.log({"event": "dhcp-expired", "clientId": lease.holder.client_id,
                          "ip": str(lease.ip), "while": "stopped"})
                self.store.remove(lease.holder.client_id)
                continue
            fd = nsref.reopen(lease.holder.netns, (lease.holder.netns_dev,
                                                    lease.holder.netns_ino))
            self.log({"event": "dhcp-reloaded", "clientId": lease.holder.client_id,
                      "ip": str(lease.ip), "netnsFound": fd is not None})
            self._track(lease, fd)

    def _track(self, lease: Lease, fd: int | None) -> Maintainer:
        m = Maintainer(lease, fd, save=self.store.save, drop=self._dropped, log=self.log,
                       renew_cap=self.renew_cap)
        with self._guard:
            self._leases[lease.holder.client_id] = m
        m.start()
        return m

    def _dropped(self, lease: Lease) -> None:
        """A maintainer gave its lease up (expired, interface gone)."""
        cid = lease.holder.client_id
        with self._guard:
            m = self._leases.get(cid)
            if m is not None and m.lease.holder == lease.holder:
                del self._leases[cid]
        self.store.remove(cid)

    @contextlib.contextmanager
    def _client_lock(self, cid: str) -> Iterator[None]:
        with self._guard:
            lock = self._client_locks.setdefault(cid, threading.Lock())
        with lock:
            yield

    # ---- serving ---------------------------------------------------------------------
    def _serve(self) -> None:
        while not self._stopping.is_set():
            listener = self._listener
            if listener is None:
                return
            try:
                conn, _ = listener.accept()
            except OSError:
                if self._stopping.is_set():
                    return
                time.sleep(0.1)
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True,
                             name="dhcp-call").start()

    def _handle(self, conn: socket.socket) -> None:
        fds: list[int] = []
        with conn:
            try:
                conn.settimeout(10.0)
                _, uid, _ = _UCRED.unpack(conn.getsockopt(socket.SOL_SOCKET,
                                                          socket.SO_PEERCRED, _UCRED.size))
                if uid != 0:
                    raise CNIError(ErrorCode.INVALID_ENVIRONMENT, "permission denied",
                                   f"the DHCP lease service serves uid 0 only (peer {uid})")
                try:
                    request, fds = protocol.receive_request(conn)
                except (ValueError, OSError) as exc:
                    raise CNIError(ErrorCode.DECODING_FAILURE,
                                   "bad request to the DHCP lease service", str(exc)) from None
                reply = self.dispatch(request, fds)
            except CNIError as exc:
                reply = protocol.error_reply(exc)
            except OSError as exc:
                reply = protocol.error_reply(CNIError(ErrorCode.IO_FAILURE,
                                                      "DHCP lease service I/O failure",
                                                      str(exc)))
            except Exception as exc:  # one bad call never takes the service down
                reply = protocol.error_reply(CNIError(ErrorCode.INTERNAL,
                                                      "DHCP lease service failure",
                                                      f"{type(exc).__name__}: {exc}"))
            finally:
                for fd in fds:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            import json

            with contextlib.suppress(OSError):
                conn.settimeout(10.0)
                conn.sendall(json.dumps(reply).encode())

    def dispatch(self, request: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        """Serve one request; descriptors this takes over are removed from ``fds``."""
        op = request.get("op")
        if op == "status":
            return {"ok": True, **self.health()}
        if op == "gc":
            return self.gc(str(request.get("network", "")),
                           {(str(c), str(i)) for c, i in request.get("valid", [])})
        holder_fields = (str(request.get("containerID", "")), str(request.get("network", "")),
                         str(request.get("ifname", "")))
        if op == "release":
            self.release(*holder_fields)
            return {"ok": True}
        if op == "check":
            answer = self.check(*holder_fields)
            if fds:  # re-attach a lease whose namespace was not found after a restart
                self._reattach(*holder_fields, str(request.get("netns", "")), fds)
            return answer
        if op == "allocate":
            if not fds:
                raise CNIError(ErrorCode.INVALID_ENVIRONMENT,
                               "the container's network namespace did not come with the "
                               "request")
            fd = fds.pop(0)
            try:
                options = client.ClientOptions(
                    client_id=Holder(*holder_fields, netns="").client_id,
                    request=tuple(int(c) for c in request.get("request", [])),
                    provide={int(k): bytes.fromhex(v)
                             for k, v in dict(request.get("provide", {})).items()},
                    broadcast=bool(request.get("broadcast", False)),
                    timeout=float(request.get("timeout", 10.0)))
                return self.allocate(*holder_fields, str(request.get("netns", "")), fd, options)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.close(fd)
                raise
        raise CNIError(ErrorCode.DECODING_FAILURE, f"unknown operation {op!r}")

    # ---- operations -----------------------------------------------------------------
    def allocate(self, container_id: str, network: str, ifname: str, netns_path: str,
                 fd: int, options: client.ClientOptions) -> dict[str, Any]:
        """The attachment's lease: the one held already, else a new one. Owns ``fd``."""
        dev, ino = nsref.identity(fd)
        holder = Holder(container_id, network, ifname, nsref.stable_path(netns_path, fd),
                        dev, ino)
        cid = holder.client_id
        with self._client_lock(cid):
            with self._guard:
                held = self._leases.get(cid)
            if held is not None and time.time() < held.lease.expires_at:
                # the same attachment: same lease, never a second one
                if held.adopt(fd, holder):
                    self.store.save(held.lease)
                self.log({"event": "dhcp-reused", "clientId": cid, "ip": str(held.lease.ip)})
                return self._answer(held.lease)
            requested = None
            if held is not None:
                requested = held.lease.ip
                held.retire()
            lease = self._acquire(holder, fd, options, requested)
            try:
                answer = self._answer(lease)
                try:
                    self.store.save(lease)
                except OSError as exc:
                    raise CNIError(ErrorCode.IO_FAILURE, "cannot persist the DHCP lease",
                                   f"{self.store.directory}: {exc.strerror or exc}") from None
            except BaseException:
                self._release_now(lease, fd)
                os.close(fd)
                raise
            self._track(lease, fd)
            self.log({"event": "dhcp-acquired", "clientId": cid, "ip": str(lease.ip),
                      "server": str(lease.server), "leaseTime": lease.lease_time})
            return answer

    def _acquire(self, holder: Holder, fd: int, options: client.ClientOptions,
                 requested: ipaddress.IPv4Address | None) -> Lease:
        def run() -> client.Binding:
            if not transport.link_exists(holder.ifname):
                raise CNIError(ErrorCode.INVALID_ENVIRONMENT,
                               f"interface {holder.ifname} not found in the container's "
                               "network namespace", holder.netns)
            raised = transport.ensure_up(holder.ifname)  # as Go's daemon does
            try:
                with transport.PacketTransport(holder.ifname) as tr:
                    return client.acquire(tr, options, requested)
            except BaseException:
                if raised:  # no lease: leave the link as we found it
                    with contextlib.suppress(OSError):
                        transport.set_down(holder.ifname)
                raise
        try:
            with netns_entered(nsref.fd_path(fd)):
                binding = run()
        except client.DhcpTimeout as exc:
            raise CNIError(ErrorCode.TRY_AGAIN_LATER,
                           f"no DHCP lease for {holder.ifname} within {options.timeout:g}s",
                           f"{exc}; client id {holder.client_id!r}") from None
        except client.DhcpNak as exc:
            raise CNIError(ErrorCode.TRY_AGAIN_LATER, f"DHCP server refused a lease for "
                           f"{holder.ifname}", str(exc)) from None
        except OSError as exc:
            raise CNIError(ErrorCode.IO_FAILURE, f"DHCP on {holder.ifname} failed",
                           f"{exc.strerror or exc}") from None
        return Lease.from_binding(holder, options, binding)

    def _release_now(self, lease: Lease, fd: int) -> None:
        def send() -> None:
            with transport.PacketTransport(lease.holder.ifname) as tr:
                client.release(tr, lease.options, lease.ip, lease.server, lease.server_mac)
        with contextlib.suppress(OSError, CNIError), netns_entered(nsref.fd_path(fd)):
            send()

    @staticmethod
    def _answer(lease: Lease) -> dict[str, Any]:
        try:
            ip = lease.ip_config()
        except ValueError as exc:
            raise CNIError(ErrorCode.INTERNAL, str(exc), f"DHCPACK from {lease.server}") \
                from None
        return {"ip": ip.address, "gateway": ip.gateway,
                "routes": [r.to_dict() for r in lease.routes()],
                "expires": lease.expires_at, "server": str(lease.server)}

    def release(self, container_id: str, network: str, ifname: str) -> None:
        """DHCPRELEASE and forget; nothing held is not an error (DEL is idempotent)."""
        cid = Holder(container_id, network, ifname, "").client_id
        with self._client_lock(cid):
            with self._guard:
                held = self._leases.pop(cid, None)
            if held is None:
                self.store.remove(cid)
                return
            held.halt()
            if held.netns_fd is None:  # not found since a restart: look once more
                fd = nsref.reopen(held.lease.holder.netns, (held.lease.holder.netns_dev,
                                                            held.lease.holder.netns_ino))
                if fd is not None:
                    held.adopt(fd)
            held.release()
            held.stop()
            self.store.remove(cid)

    def check(self, container_id: str, network: str, ifname: str) -> dict[str, Any]:
        cid = Holder(container_id, network, ifname, "").client_id
        with self._guard:
            held = self._leases.get(cid)
        if held is None:
            raise CNIError(ErrorCode.INTERNAL, f"no DHCP lease held for {ifname}",
                           f"client id {cid!r}")
        if time.time() >= held.lease.expires_at:
            raise CNIError(ErrorCode.INTERNAL, f"the DHCP lease of {ifname} has expired",
                           f"{held.lease.ip}, client id {cid!r}")
        return self._answer(held.lease)

    def _reattach(self, container_id: str, network: str, ifname: str, netns_path: str,
                  fds: list[int]) -> None:
        cid = Holder(container_id, network, ifname, "").client_id
        with self._guard:
            held = self._leases.get(cid)
        if held is None or held.netns_fd is not None:
            return
        fd = fds.pop(0)
        dev, ino = nsref.identity(fd)
        holder = Holder(container_id, network, ifname, nsref.stable_path(netns_path, fd),
                        dev, ino)
        if held.adopt(fd, holder):
            self.store.save(held.lease)
        self.log({"event": "dhcp-reattached", "clientId": cid, "ip": str(held.lease.ip)})

    def gc(self, network: str, valid: set[tuple[str, str]]) -> dict[str, Any]:
        """Release this network's leases whose attachment is not in ``valid``."""
        with self._guard:
            stale = [m.lease.holder for m in self._leases.values()
                     if m.lease.holder.network == network
                     and (m.lease.holder.container_id, m.lease.holder.ifname) not in valid]
        for holder in stale:
            self.release(holder.container_id, holder.network, holder.ifname)
        return {"ok": True, "released": len(stale)}


def daemon_service(log: Callable[[dict[str, Any]], None] | None = None) -> LeaseService:
    """The ``corecni.daemon_services`` entry point: the service as configured by the
    daemon's environment."""
    return LeaseService.from_environ(log)
