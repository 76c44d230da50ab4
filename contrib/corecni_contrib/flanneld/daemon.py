"""``corecni-flanneld``: flannel's reachability daemon (VXLAN backend) on etcd.

Started once per node: it leases the node a subnet (keeping the one it had
across restarts), writes ``subnet.env`` for the flannel CNI plugin, creates
``flannel.<VNI>``, and keeps every peer's route, neighbour and FDB entry in
step with the leases in etcd: an etcd watch wakes it on any change, and a
periodic resync repairs whatever a missed event or an etcd outage left.
flannel's etcd layout and flags (``--etcd-endpoints``, ``--etcd-prefix``,
``--iface``, ``--public-ip``, ``--subnet-file``, ``--ip-masq``) are kept, so
flannel's tools read what it writes.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

from corecni.kit import CNIError
from corecni.net import NetBackend, get_backend
from corecni_contrib.etcd_store import EtcdStore
from corecni_contrib.flannel import subnet_env
from corecni_contrib.flanneld.leases import Lease, LeaseManager
from corecni_contrib.flanneld.netconfig import DEFAULT_PREFIX, VXLAN_OVERHEAD, NetConfig
from corecni_contrib.flanneld.vxlan import VxlanNode

log = logging.getLogger("corecni.flanneld")


class Flanneld:
    def __init__(self, store: EtcdStore, *, prefix: str = DEFAULT_PREFIX, uplink: str,
                 public_ip: str = "", subnet_file: str = "/run/flannel/subnet.env",
                 ip_masq: bool = False, ttl: int = 60, resync: float = 2.0,
                 backend: NetBackend | None = None) -> None:
        self.leases = LeaseManager(store, prefix, ttl)
        self.store = store
        self.uplink = uplink
        self.public_ip = public_ip
        self.subnet_file = subnet_file
        self.ip_masq = ip_masq
        self.resync = resync
        self.backend = backend or get_backend()
        self.stop = threading.Event()
        self._wake = threading.Event()
        self.lease: Lease | None = None
        self.conf: NetConfig | None = None
        self._cancel_watch: Callable[[], None] | None = None
        self._watch_lock = threading.Lock()

    def _public_ip(self) -> str:
        if self.public_ip:
            return self.public_ip
        for address in self.backend.addresses(None, self.uplink):
            if ":" not in address.address:
                return address.address.split("/")[0]
        raise RuntimeError(f"uplink {self.uplink} has no IPv4 address (give --public-ip)")

    def _write_subnet_env(self, conf: NetConfig, lease: Lease, mtu: int) -> None:
        first = lease.subnet.network_address + 1
        text = subnet_env.render(network=str(conf.network),
                                 subnet=f"{first}/{lease.subnet.prefixlen}", mtu=mtu,
                                 ipmasq=self.ip_masq)
        os.makedirs(os.path.dirname(self.subnet_file) or ".", exist_ok=True)
        tmp = f"{self.subnet_file}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, self.subnet_file)  # the CNI plugin never reads half a file

    def start(self) -> VxlanNode:
        """Lease, subnet.env, VTEP, first sync (retrying while etcd is unreachable)."""
        while not self.stop.is_set():
            try:
                self.conf = self.leases.config()
                self.lease = self.leases.acquire(self.conf, self._public_ip())
                break
            except CNIError as exc:
                log.warning("etcd: %s; retrying", exc)
                self.stop.wait(1.0)
        assert self.conf is not None and self.lease is not None
        node = VxlanNode(self.backend, self.conf, self.lease, self.uplink)
        node.ensure_device()
        uplink = self.backend.link(self.uplink)
        mtu = (uplink.mtu if uplink else 1500) - VXLAN_OVERHEAD
        self._write_subnet_env(self.conf, self.lease, mtu)
        log.info("leased %s (VTEP %s) for %s", self.lease.subnet, self.lease.vtep_mac,
                 self.lease.public_ip)
        node.sync(self.leases.peers(self.lease))
        return node

    def _watch(self) -> None:
        """Wake the main loop on every change under subnets/ (reconnecting on errors)."""
        while not self.stop.is_set():
            try:
                events, cancel = self.store.watch_prefix(self.leases.subnets_prefix)
            except CNIError:
                self.stop.wait(1.0)
                continue
            with self._watch_lock:
                self._cancel_watch = cancel
            if self.stop.is_set():
                cancel()
                break
            try:
                for _event in events:
                    self._wake.set()
                    if self.stop.is_set():
                        break
            except Exception:  # the stream broke (etcd restarted): reconnect
                self.stop.wait(0.5)
            finally:
                cancel()

    def run(self) -> None:
        node = self.start()
        assert self.lease is not None
        threading.Thread(target=self._watch, name="flanneld-watch", daemon=True).start()
        renew_every = max(1.0, self.leases.ttl / 3)
        renewed = time.monotonic()
        while not self.stop.is_set():
            self._wake.wait(timeout=self.resync)
            self._wake.clear()
            if self.stop.is_set():
                break
            try:
                if time.monotonic() - renewed >= renew_every:
                    self.leases.renew(self.lease)
                    renewed = time.monotonic()
                node.sync(self.leases.peers(self.lease))
            except CNIError as exc:
                log.warning("etcd: %s (keeping the current routes)", exc)
            except RuntimeError as exc:
                log.error("%s", exc)
        with self._watch_lock:
            if self._cancel_watch is not None:
                self._cancel_watch()  # its reader threads would keep the process alive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="corecni-flanneld", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: corecni-flanneld --etcd-endpoints http://10.0.0.5:2379 --iface eth0")
    parser.add_argument("--etcd-endpoints", default="http://127.0.0.1:2379",
                        help="comma-separated etcd client URLs")
    parser.add_argument("--etcd-prefix", default=DEFAULT_PREFIX, help="flannel's key prefix")
    parser.add_argument("--iface", required=True, help="the uplink interface")
    parser.add_argument("--public-ip", default="", help="default: the uplink's IPv4 address")
    parser.add_argument("--subnet-file", default="/run/flannel/subnet.env")
    parser.add_argument("--ip-masq", action="store_true",
                        help="flanneld masquerades (the CNI plugin then does not)")
    parser.add_argument("--subnet-lease-ttl", type=int, default=60,
                        help="seconds; renewed every third of it")
    parser.add_argument("--resync", type=float, default=2.0, help="full resync period (s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s flanneld %(message)s")
    daemon = Flanneld(EtcdStore(args.etcd_endpoints.split(",")), prefix=args.etcd_prefix,
                      uplink=args.iface, public_ip=args.public_ip,
                      subnet_file=args.subnet_file, ip_masq=args.ip_masq,
                      ttl=args.subnet_lease_ttl, resync=args.resync)

    def stop(signum: int, frame: FrameType | None) -> None:
        daemon.stop.set()
        daemon._wake.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    daemon.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
