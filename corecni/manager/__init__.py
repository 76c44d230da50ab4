"""Runtime embedding: the pod network manager (kubelet / go-cni / ocicni in Python).

    from corecni.manager import PodNetworkManager, PodSandbox

    with PodNetworkManager(["/etc/cni/net.d"], ["/opt/cni/bin"], watch=True) as cni:
        cni.status()                                   # raises until a config is usable
        result = cni.setup(PodSandbox(id="c0ffee", netns="/run/netns/web",
                                      name="web", namespace="default", uid="u1"))
        print(result.interfaces["eth0"].ips)
        cni.teardown(...)

See ``docs/embedding.md`` for the whole tour (sync and asyncio).
"""

from corecni.manager.aio import AsyncPodNetworkManager
from corecni.manager.confsync import ConfigState, ConfigStore, ConfigWatcher
from corecni.manager.core import LOOPBACK_NETWORK, PodNetworkManager
from corecni.manager.errors import (
    DeadlineExceededError,
    InvalidConfigError,
    ManagerError,
    NetworkNotFoundError,
    NotInitializedError,
    PluginError,
)
from corecni.manager.pod import (
    Bandwidth,
    DNSConfig,
    IPRange,
    NetworkOptions,
    PodNetwork,
    PodSandbox,
    PortMapping,
)
from corecni.manager.result import InterfaceState, PodResult

__all__ = [
    "LOOPBACK_NETWORK",
    "AsyncPodNetworkManager",
    "Bandwidth",
    "ConfigState",
    "ConfigStore",
    "ConfigWatcher",
    "DNSConfig",
    "DeadlineExceededError",
    "IPRange",
    "InterfaceState",
    "InvalidConfigError",
    "ManagerError",
    "NetworkNotFoundError",
    "NetworkOptions",
    "NotInitializedError",
    "PluginError",
    "PodNetwork",
    "PodNetworkManager",
    "PodResult",
    "PodSandbox",
    "PortMapping",
]
