"""Observer hooks of the pod network manager: one call per finished operation.

An observer is any object with ``@corecni.kit.hookimpl`` functions named
here, handed to ``PodNetworkManager(observers=[...])``. It sees every
operation's timing and outcome without touching the manager or a plugin:
metrics (``corecni_contrib.metrics`` exports kubelet's operation-duration
histograms with prometheus-client), logging, tracing.
"""

from __future__ import annotations

from corecni.hookspecs import hookspec


@hookspec
def manager_operation_done(operation: str, pod_id: str, network: str, duration: float,
                           error: BaseException | None) -> None:
    """Called after each operation on one network of one pod, and once per
    whole-pod operation with ``network`` "".

    ``operation`` is ``setup``, ``teardown``, ``check``, ``status`` or ``gc``
    (``pod_id`` "" for ``status`` and ``gc``); ``duration`` is in seconds;
    ``error`` is what the operation raised, else ``None``. Return values are
    ignored; an observer that raises is a bug in the observer and propagates.
    """
