"""Subnet leases in etcd, in flannel's layout, so flannel's own tools can read them.

``<prefix>/subnets/<a.b.c.d>-<len>`` holds ``{"PublicIP", "PublicIPv6",
"BackendType", "BackendData": {"VNI", "VtepMAC"}}`` and is bound to an etcd
lease with a TTL that the daemon keeps alive: a node that dies loses its
subnet after the TTL, a node that restarts finds its own lease (by its public
IP) and keeps subnet and VTEP MAC, so its peers' routes stay valid.

A new lease is one etcd transaction "create if absent": two nodes racing for a
subnet cannot both get it.
"""

from __future__ import annotations

import ipaddress
import json
import random
from collections.abc import Mapping
from typing import Any

import attrs

from corecni.kit import random_mac
from corecni_contrib.etcd_store import EtcdStore
from corecni_contrib.flanneld.netconfig import NetConfig, lease_key, subnet_of_key


@attrs.frozen
class Lease:
    """One node's subnet and how to reach it."""

    subnet: ipaddress.IPv4Network
    public_ip: str
    vtep_mac: str
    vni: int = 1

    def to_json(self) -> str:
        return json.dumps({"PublicIP": self.public_ip, "PublicIPv6": None,
                           "BackendType": "vxlan",
                           "BackendData": {"VNI": self.vni, "VtepMAC": self.vtep_mac}})

    @classmethod
    def from_json(cls, subnet: ipaddress.IPv4Network, text: str) -> Lease | None:
        try:
            obj: Any = json.loads(text)
            data = obj.get("BackendData") or {}
            return cls(subnet, str(obj["PublicIP"]), str(data.get("VtepMAC", "")).lower(),
                       int(data.get("VNI", 1)))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


class LeaseManager:
    """Acquire, renew and list the subnet leases of one network prefix."""

    def __init__(self, store: EtcdStore, prefix: str, ttl: int = 60) -> None:
        self.store = store
        self.prefix = prefix.rstrip("/")
        self.ttl = ttl
        self.lease_id: str | None = None

    @property
    def subnets_prefix(self) -> str:
        return f"{self.prefix}/subnets/"

    def key(self, subnet: ipaddress.IPv4Network) -> str:
        return f"{self.subnets_prefix}{lease_key(subnet)}"

    def config(self) -> NetConfig:
        return NetConfig.from_json(self.store.get(f"{self.prefix}/config"))

    def all(self) -> dict[ipaddress.IPv4Network, Lease]:
        out = {}
        for key, value in self.store.get_prefix(self.subnets_prefix).items():
            subnet = subnet_of_key(key)
            lease = Lease.from_json(subnet, value) if subnet is not None else None
            if lease is not None:
                out[lease.subnet] = lease
        return out

    def acquire(self, conf: NetConfig, public_ip: str, rng: random.Random | None = None) \
            -> Lease:
        """Our lease: the one already held by ``public_ip`` (a restart keeps its subnet
        and MAC), else a free subnet won by CAS."""
        self.lease_id = self.store.grant_lease(self.ttl)
        existing = {s: lease for s, lease in self.all().items() if lease.public_ip == public_ip}
        for lease in existing.values():
            # rebind it to our new etcd lease, keeping subnet and MAC
            self.store.put(self.key(lease.subnet), lease.to_json(), self.lease_id)
            return lease
        taken = set(self.all())
        free = [s for s in conf.subnets() if s not in taken]
        (rng or random.Random()).shuffle(free)
        for subnet in free:
            lease = Lease(subnet, public_ip, random_mac(), conf.vni)
            if self.store.create_all({self.key(subnet): lease.to_json()}, self.lease_id):
                return lease
        raise RuntimeError(f"no free subnet left in {conf.network}")

    def renew(self, lease: Lease) -> None:
        """Keep the etcd lease alive; if it expired (etcd restarted, daemon paused),
        rebind the same subnet and MAC to a new one."""
        if self.lease_id is not None and self.store.keepalive(self.lease_id) > 0 \
                and self.store.get(self.key(lease.subnet)) is not None:
            return
        self.lease_id = self.store.grant_lease(self.ttl)
        if not self.store.create_all({self.key(lease.subnet): lease.to_json()}, self.lease_id):
            current = self.store.get(self.key(lease.subnet))
            held = Lease.from_json(lease.subnet, current) if current else None
            if held is None or held.public_ip != lease.public_ip:
                raise RuntimeError(f"subnet {lease.subnet} was taken by "
                                   f"{held.public_ip if held else 'another node'}")
            self.store.put(self.key(lease.subnet), lease.to_json(), self.lease_id)

    def peers(self, own: Lease) -> Mapping[ipaddress.IPv4Network, Lease]:
        return {s: lease for s, lease in self.all().items() if s != own.subnet}
