"""kubelet-style operation metrics for corecni's pod network manager (prometheus-client).

An observer, not a plugin: hand it to the manager and expose the registry::

    from prometheus_client import start_http_server
    from corecni_contrib.metrics import ManagerMetrics

    metrics = ManagerMetrics()
    manager = PodNetworkManager(..., observers=[metrics])
    start_http_server(9101, addr="127.0.0.1")

The series are kubelet's ``network_plugin_operations_*`` under a ``corecni_``
prefix, labelled with ``operation_type`` as kubelet labels them
(``set_up_pod``, ``tear_down_pod``, ``check_pod``, ``status``, ``gc``), so the
dashboards and alerts written for kubelet carry over. Only whole-pod
operations are counted (per-network calls would count one pod twice).
Requires the ``metrics`` extra (``pip install corecni-contrib[metrics]``).
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from corecni.kit import hookimpl

#: the manager's operation -> kubelet's operation_type label
OPERATION_TYPES = {"setup": "set_up_pod", "teardown": "tear_down_pod", "check": "check_pod",
                   "status": "status", "gc": "gc"}
#: kubelet's buckets: 5 ms doubling to ~10 s (prometheus.ExponentialBuckets(0.005, 2, 12))
BUCKETS = tuple(0.005 * 2 ** i for i in range(12))


class ManagerMetrics:
    """Duration histogram, operation and error counters of the manager's operations."""

    def __init__(self, registry: CollectorRegistry | None = None,
                 prefix: str = "corecni") -> None:
        where = REGISTRY if registry is None else registry
        self.duration = Histogram(
            f"{prefix}_network_plugin_operations_duration_seconds",
            "Latency in seconds of network plugin operations, by operation type.",
            ["operation_type"], registry=where, buckets=BUCKETS)
        self.operations = Counter(
            f"{prefix}_network_plugin_operations",
            "Cumulative number of network plugin operations, by operation type.",
            ["operation_type"], registry=where)
        self.errors = Counter(
            f"{prefix}_network_plugin_operations_errors",
            "Cumulative number of network plugin operation errors, by operation type.",
            ["operation_type"], registry=where)

    @hookimpl
    def manager_operation_done(self, operation: str, pod_id: str, network: str,
                               duration: float, error: BaseException | None) -> None:
        if network:
            return
        kind = OPERATION_TYPES.get(operation, operation)
        self.duration.labels(kind).observe(duration)
        self.operations.labels(kind).inc()
        if error is not None:
            self.errors.labels(kind).inc()
