"""What a runtime tells the manager about a pod: the sandbox and, per network, its options.

``PodSandbox`` is kubelet's (id, name, namespace, uid, netns); ``NetworkOptions``
is go-cni's ``NamespaceOpts``: the capability arguments (``portMappings``,
``bandwidth``, ``ipRanges``, ``dns``, ``mac``, ``ips``, ``cgroupPath``, pod
annotations) a runtime hands to the plugins that declare them, plus extra
CNI_ARGS. All frozen: a runtime builds them with the ``with_*`` helpers:

    opts = NetworkOptions().with_port_mappings(PortMapping(8080, 80)).with_mac("02:..")
    pod = PodSandbox(id="c0ffee", name="web", namespace="default", uid="u1",
                     netns="/run/netns/web", networks=(PodNetwork(options=opts),))
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from corecni.spec.config import validate_container_id

#: the capability pod annotations travel under (containerd / CRI-O)
ANNOTATIONS_CAPABILITY = "io.kubernetes.cri.pod-annotations"


@attrs.frozen
class PortMapping:
    """One ``portMappings`` entry (``hostIP`` "" means every address)."""

    host_port: int
    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"hostPort": self.host_port, "containerPort": self.container_port,
                               "protocol": self.protocol}
        if self.host_ip:
            out["hostIP"] = self.host_ip
        return out


@attrs.frozen
class Bandwidth:
    """The ``bandwidth`` capability: rates in bits per second, bursts in bits."""

    ingress_rate: int = 0
    ingress_burst: int = 0
    egress_rate: int = 0
    egress_burst: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"ingressRate": self.ingress_rate, "ingressBurst": self.ingress_burst,
                "egressRate": self.egress_rate, "egressBurst": self.egress_burst}


@attrs.frozen
class IPRange:
    """One ``ipRanges`` entry (host-local's range keys)."""

    subnet: str
    range_start: str = ""
    range_end: str = ""
    gateway: str = ""

    def to_dict(self) -> dict[str, str]:
        out = {"subnet": self.subnet}
        for key, value in (("rangeStart", self.range_start), ("rangeEnd", self.range_end),
                           ("gateway", self.gateway)):
            if value:
                out[key] = value
        return out


@attrs.frozen
class DNSConfig:
    """The ``dns`` capability (kubelet's pod DNS)."""

    servers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, list[str]]:
        return {"servers": list(self.servers), "searches": list(self.searches),
                "options": list(self.options)}


def _frozen_mapping(value: Mapping[str, str] | None) -> Mapping[str, str]:
    return dict(value or {})


@attrs.frozen
class NetworkOptions:
    """Per-network runtime options; empty fields are not sent."""

    port_mappings: tuple[PortMapping, ...] = ()
    bandwidth: Bandwidth | None = None
    ip_ranges: tuple[tuple[IPRange, ...], ...] = ()
    dns: DNSConfig | None = None
    mac: str = ""
    ips: tuple[str, ...] = ()
    cgroup_path: str = ""
    annotations: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_mapping)
    labels: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_mapping)
    args: tuple[tuple[str, str], ...] = ()

    # ---- go-cni's WithCapability* helpers ----------------------------------
    def with_port_mappings(self, *mappings: PortMapping) -> NetworkOptions:
        return attrs.evolve(self, port_mappings=self.port_mappings + mappings)

    def with_bandwidth(self, bandwidth: Bandwidth) -> NetworkOptions:
        return attrs.evolve(self, bandwidth=bandwidth)

    def with_ip_ranges(self, *ranges: IPRange) -> NetworkOptions:
        """One range set (a list of ranges) per call, as the capability nests them."""
        return attrs.evolve(self, ip_ranges=(*self.ip_ranges, ranges))

    def with_dns(self, dns: DNSConfig) -> NetworkOptions:
        return attrs.evolve(self, dns=dns)

    def with_mac(self, mac: str) -> NetworkOptions:
        return attrs.evolve(self, mac=mac)

    def with_ips(self, *ips: str) -> NetworkOptions:
        return attrs.evolve(self, ips=self.ips + ips)

    def with_cgroup_path(self, path: str) -> NetworkOptions:
        return attrs.evolve(self, cgroup_path=path)

    def with_annotations(self, annotations: Mapping[str, str]) -> NetworkOptions:
        return attrs.evolve(self, annotations={**self.annotations, **annotations})

    def with_labels(self, labels: Mapping[str, str]) -> NetworkOptions:
        """Labels become CNI_ARGS (go-cni's ``WithLabels``)."""
        return attrs.evolve(self, labels={**self.labels, **labels})

    def with_args(self, **args: str) -> NetworkOptions:
        return attrs.evolve(self, args=self.args + tuple(args.items()))

    # ---- what the runtime sends --------------------------------------------
    def capability_args(self) -> dict[str, Any]:
        """The capability arguments; libcni passes each to the plugins declaring it."""
        caps: dict[str, Any] = {}
        if self.port_mappings:
            caps["portMappings"] = [p.to_dict() for p in self.port_mappings]
        if self.bandwidth is not None:
            caps["bandwidth"] = self.bandwidth.to_dict()
        if self.ip_ranges:
            caps["ipRanges"] = [[r.to_dict() for r in rs] for rs in self.ip_ranges]
        if self.dns is not None:
            caps["dns"] = self.dns.to_dict()
        if self.mac:
            caps["mac"] = self.mac
        if self.ips:
            caps["ips"] = list(self.ips)
        if self.cgroup_path:
            caps["cgroupPath"] = self.cgroup_path
        if self.annotations:
            caps[ANNOTATIONS_CAPABILITY] = dict(self.annotations)
        return caps

    def merged(self, base: NetworkOptions) -> NetworkOptions:
        """These options over ``base`` (the pod's options for every network)."""
        return NetworkOptions(
            port_mappings=base.port_mappings + self.port_mappings,
            bandwidth=self.bandwidth or base.bandwidth,
            ip_ranges=self.ip_ranges or base.ip_ranges,
            dns=self.dns or base.dns,
            mac=self.mac or base.mac,
            ips=self.ips or base.ips,
            cgroup_path=self.cgroup_path or base.cgroup_path,
            annotations={**base.annotations, **self.annotations},
            labels={**base.labels, **self.labels},
            args=base.args + self.args,
        )


@attrs.frozen
class PodNetwork:
    """One network to attach: ``name`` None is the default network, ``ifname`` None is
    the next free ``<prefix><N>`` (eth0, eth1, ...)."""

    name: str | None = None
    ifname: str | None = None
    options: NetworkOptions = attrs.Factory(NetworkOptions)


def _check_id(_: object, __: attrs.Attribute[str], value: str) -> None:
    validate_container_id(value)


@attrs.frozen
class PodSandbox:
    """A pod's sandbox as kubelet sees it, and the networks to attach it to."""

    id: str = attrs.field(validator=_check_id)
    netns: str
    name: str = ""
    namespace: str = ""
    uid: str = ""
    networks: tuple[PodNetwork, ...] = (PodNetwork(),)
    options: NetworkOptions = attrs.Factory(NetworkOptions)

    def k8s_args(self) -> tuple[tuple[str, str], ...]:
        """The CNI_ARGS kubelet passes (``buildCNIRuntimeConf``)."""
        return (("IgnoreUnknown", "1"), ("K8S_POD_NAMESPACE", self.namespace),
                ("K8S_POD_NAME", self.name), ("K8S_POD_INFRA_CONTAINER_ID", self.id),
                ("K8S_POD_UID", self.uid))
