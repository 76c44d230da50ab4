"""One lease kept alive: renew at T1, rebind at T2, give up at expiry.

A ``Maintainer`` owns one lease and a descriptor of its namespace, and runs a
thread that sleeps until the next renewal point, enters the namespace, and
renews (unicast to the server) before T2, rebinds (broadcast) after it. A
failed attempt is retried after half the time left to the next boundary (RFC
2131 4.4.5), at least ``MIN_RETRY`` seconds. When the lease expires the
interface is set down, as Go's daemon does, and the lease is dropped. An
interface or namespace that has gone ends the lease without a word to the
server (nothing is left to release it from). A namespace the runtime dropped
without a DEL (its path gone, no process in it: ``nsref.abandoned``) would live
on only through our descriptor: its lease is released and the descriptor closed,
so neither the namespace nor the address leaks (Go's daemon keeps both).

``renew_cap`` makes renewals earlier than T1 (a renewal every ``renew_cap``
seconds at most): tests watch a renewal without waiting for dnsmasq's 2-minute
minimum lease, and a node may choose to renew more often.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs

from corecni.kit import netns_entered
from corecni_contrib.dhcp import client, nsref, transport
from corecni_contrib.dhcp.lease import Holder, Lease

MIN_RETRY = 1.0
MAX_RETRY = 60.0

Log = Callable[[dict[str, Any]], None]


class Maintainer:
    def __init__(self, lease: Lease, netns_fd: int | None, *, save: Callable[[Lease], None],
                 drop: Callable[[Lease], None], log: Log, renew_cap: float | None = None) -> None:
        self.lease = lease
        self.netns_fd = netns_fd
        self._save, self._drop, self._log = save, drop, log
        self.renew_cap = renew_cap
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()  # one exchange on this lease at a time
        # released or replaced: the service has removed (or rewritten) its file, so no
        # renewal still in flight may save it again (guarded by _lock)
        self._retired = False
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"dhcp-{lease.holder.ifname}")
        self.renewals = 0

    # ---- control ----------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def halt(self, timeout: float = 5.0) -> None:
        """Stop the renewals (keeping the namespace descriptor, for a release)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop maintaining (the lease stays with the server and on disk)."""
        self.halt(timeout)
        self._close_fd()

    def retire(self, timeout: float = 5.0) -> None:
        """Stop maintaining a lease the service is done with (a new acquisition
        replaces it): unlike ``stop``, a renewal still in flight once ``halt`` stopped
        waiting for it is not saved (it would overwrite its successor's file)."""
        with self._lock:
            self._retired = True
        self.stop(timeout)

    def adopt(self, netns_fd: int, holder: Holder | None = None) -> bool:
        """A namespace descriptor for a lease that had none (after a restart) or a
        newer one; takes ownership of ``netns_fd``. With ``holder`` (the namespace's
        path and identity as the caller knows them now), the lease records it; True
        when that changed the lease (the caller persists it)."""
        with self._lock:
            old, self.netns_fd = self.netns_fd, netns_fd
            changed = False
            if holder is not None and holder != self.lease.holder:
                self.lease = attrs.evolve(self.lease, holder=holder)
                changed = True
        if old is not None:
            with contextlib.suppress(OSError):
                os.close(old)
        self._wake.set()
        return changed

    def _close_fd(self) -> None:
        with self._lock:
            fd, self.netns_fd = self.netns_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    # ---- exchanges in the namespace ---------------------------------------------
    def in_netns(self, work: Callable[[], Any]) -> Any:
        if self.netns_fd is None:
            raise LookupError("the lease's network namespace is not known")
        with netns_entered(nsref.fd_path(self.netns_fd)):
            if not transport.link_exists(self.lease.holder.ifname):
                raise LookupError(f"interface {self.lease.holder.ifname} is gone")
            return work()

    def release(self) -> None:
        """DHCPRELEASE, best effort (the namespace may be gone already)."""
        lease = self.lease

        def send() -> None:
            with transport.PacketTransport(lease.holder.ifname) as tr:
                client.release(tr, lease.options, lease.ip, lease.server, lease.server_mac)
        try:
            with self._lock:
                self._retired = True  # whatever happens: never saved again
                self.in_netns(send)
            self._log({"event": "dhcp-released", "clientId": lease.holder.client_id,
                       "ip": str(lease.ip)})
        except (OSError, LookupError) as exc:
            self._log({"event": "dhcp-release-skipped", "clientId": lease.holder.client_id,
                       "ip": str(lease.ip), "reason": str(exc)})

    def _renew(self, rebind: bool) -> Lease:
        lease = self.lease

        def exchange() -> client.Binding:
            with transport.PacketTransport(lease.holder.ifname) as tr:
                try:
                    return client.renew(tr, lease.options, lease.ip, lease.server,
                                        lease.server_mac, rebind=rebind)
                except client.DhcpNak:
                    # refused: start over, asking for the same address (Go re-acquires)
                    return client.acquire(tr, lease.options, requested=lease.ip)
        with self._lock:
            binding = self.in_netns(exchange)
        return Lease.from_binding(lease.holder, lease.options, binding, lease.server)

    def _set_down(self) -> None:
        def down() -> None:
            transport.set_down(self.lease.holder.ifname)
        with contextlib.suppress(OSError, LookupError):
            self.in_netns(down)

    # ---- the loop ---------------------------------------------------------------------
    def _run(self) -> None:
        next_try = self.lease.renew_at(self.renew_cap)
        while not self._stop.is_set():
            now = time.time()
            if now < next_try:
                self._wake.wait(min(next_try - now, 3600))
                self._wake.clear()
                continue
            lease = self.lease
            if now >= lease.expires_at:
                self._log({"event": "dhcp-expired", "clientId": lease.holder.client_id,
                           "ip": str(lease.ip)})
                self._set_down()
                self._drop(lease)
                return
            holder = lease.holder
            if self.netns_fd is not None and nsref.abandoned(
                    holder.netns, (holder.netns_dev, holder.netns_ino)):
                self._log({"event": "dhcp-orphaned", "clientId": holder.client_id,
                           "ip": str(lease.ip), "netns": holder.netns})
                self.release()
                self._drop(lease)
                self._close_fd()
                return
            rebind = now >= lease.rebind_at
            try:
                new = self._renew(rebind)
            except LookupError as exc:
                if self.netns_fd is None:  # not adopted yet (restart): wait for ADD or expiry
                    next_try = min(lease.expires_at, now + MAX_RETRY)
                    continue
                self._log({"event": "dhcp-gone", "clientId": lease.holder.client_id,
                           "ip": str(lease.ip), "reason": str(exc)})
                self._drop(lease)
                return
            except (OSError, client.DhcpTimeout, client.DhcpNak) as exc:
                boundary = lease.expires_at if rebind else lease.rebind_at
                wait = max(MIN_RETRY, min(MAX_RETRY, (boundary - time.time()) / 2))
                if self.renew_cap is not None:
                    wait = min(wait, max(MIN_RETRY, self.renew_cap))
                next_try = time.time() + wait
                self._log({"event": "dhcp-renew-failed", "clientId": lease.holder.client_id,
                           "ip": str(lease.ip), "rebind": rebind, "error": str(exc),
                           "retry_in": round(wait, 1)})
                continue
            with self._lock:  # not retired (released, replaced) while it was in flight
                if self._retired:
                    return
                new = attrs.evolve(new, holder=self.lease.holder)  # adopted meanwhile?
                if self._stop.is_set():  # stopped meanwhile: the renewal counts, keep it
                    self._save(new)
                    self.lease = new
                    return
                self.lease = new
                self.renewals += 1
                self._save(new)
            if new.ip != lease.ip:
                self._log({"event": "dhcp-address-changed", "clientId": lease.holder.client_id,
                           "old": str(lease.ip), "new": str(new.ip)})
            self._log({"event": "dhcp-renewed", "clientId": new.holder.client_id,
                       "ip": str(new.ip), "rebind": rebind, "expires": round(new.expires_at, 1)})
            next_try = new.renew_at(self.renew_cap)
