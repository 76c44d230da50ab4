"""The VXLAN backend's kernel state on one node, through the link layer's batches.

The node's device ``flannel.<VNI>`` (VXLAN, learning off, on the uplink's
public IP) holds ``<own subnet>.0/32``. For each remote lease: a route
``<subnet> via <subnet>.0 dev flannel.N onlink``, a permanent neighbour
``<subnet>.0 -> VTEP MAC`` and an FDB entry ``VTEP MAC -> public IP``: one
batch per sync, idempotent (replace semantics), and what a vanished lease
left behind is removed by comparing with what the kernel holds.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping

from corecni.net import Batch, Neighbour, NetBackend, Route
from corecni.net.base import FdbEntry
from corecni_contrib.flanneld.leases import Lease
from corecni_contrib.flanneld.netconfig import VXLAN_OVERHEAD, NetConfig


def gateway(subnet: ipaddress.IPv4Network) -> str:
    """The ``.0`` address a subnet is reached through (flannel's VTEP address)."""
    return str(subnet.network_address)


class VxlanNode:
    """Programs ``flannel.<VNI>`` and the peers' entries in namespace ``netns``."""

    def __init__(self, backend: NetBackend, conf: NetConfig, own: Lease, uplink: str,
                 netns: str | None = None) -> None:
        self.backend = backend
        self.conf = conf
        self.own = own
        self.uplink = uplink
        self.netns = netns
        self.device = conf.device

    def ensure_device(self) -> None:
        """Create (or keep) the VTEP with the lease's MAC, its address and MTU, up."""
        uplink = self.backend.link(self.uplink, self.netns)
        if uplink is None:
            raise RuntimeError(f"uplink {self.uplink} not found")
        mtu = uplink.mtu - VXLAN_OVERHEAD
        current = self.backend.link(self.device, self.netns)
        batch = self.backend.batch(self.netns)
        if current is not None and (current.kind != "vxlan" or current.mac != self.own.vtep_mac):
            batch.del_link(self.device)
            current = None
        if current is None:
            batch.add_vxlan(self.device, self.conf.vni, local=self.own.public_ip,
                            port=self.conf.port, dev=self.uplink, learning=False,
                            mac=self.own.vtep_mac, mtu=mtu)
        address = f"{gateway(self.own.subnet)}/32"
        have = {a.address for a in self.backend.addresses(self.netns, self.device)} \
            if current is not None else set()
        if address not in have:
            batch.add_address(self.device, address)
        batch.set_link(self.device, up=True)
        batch.commit()

    def sync(self, peers: Mapping[ipaddress.IPv4Network, Lease]) -> None:
        """Make the kernel hold exactly ``peers``' routes, neighbours and FDB entries."""
        want_routes = {str(s): lease for s, lease in peers.items()}
        batch: Batch = self.backend.batch(self.netns)
        # remove what belongs to no lease any more
        for route in self.backend.routes(self.netns, family=socket.AF_INET):
            if route.ifname == self.device and route.gateway and route.dst not in want_routes:
                batch.del_route(route, missing_ok=True)
        want_neigh = {gateway(s): lease.vtep_mac for s, lease in peers.items()}
        for neigh in self.backend.neighbours(self.netns, self.device):
            if want_neigh.get(neigh.address) != neigh.lladdr:
                batch.del_neighbour(neigh, missing_ok=True)
        want_fdb = {(lease.vtep_mac, lease.public_ip) for lease in peers.values()}
        for entry in self.backend.fdb(self.device, self.netns):
            if entry.dst and (entry.mac, entry.dst) not in want_fdb:
                batch.del_fdb(entry, missing_ok=True)
        # (re)program every peer: replace semantics make this idempotent
        for subnet, lease in peers.items():
            batch.add_fdb(FdbEntry(self.device, lease.vtep_mac, lease.public_ip))
            batch.add_neighbour(Neighbour(self.device, gateway(subnet), lease.vtep_mac))
            batch.add_route(Route(dst=str(subnet), gateway=gateway(subnet), ifname=self.device,
                                  onlink=True), replace=True)
        batch.commit()

    def remove(self) -> None:
        """Delete the VTEP (its routes, neighbours and FDB entries go with it)."""
        self.backend.batch(self.netns).del_link(self.device, missing_ok=True).commit()
