"""What can go wrong for an embedding runtime, one exception class per kind.

A runtime reacts differently to each: *not initialised* (no usable network
config yet: report the node not ready and retry), *invalid config* (a file
the operator must fix; names it), *not found* (a network a pod asked for does
not exist), *plugin error* (a plugin refused: its CNI code says whether to
retry), *deadline exceeded*. Every one is a ``ManagerError``.
"""

from __future__ import annotations

from corecni.spec.errors import CNIError


class ManagerError(Exception):
    """Base of every error the pod network manager raises."""


class NotInitializedError(ManagerError):
    """No usable network configuration is loaded (ocicni's "cni config uninitialized")."""


class InvalidConfigError(ManagerError):
    """A configuration file cannot be used; ``path`` names it, ``reason`` says why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class NetworkNotFoundError(ManagerError):
    """A pod asked for a network that no loaded configuration provides."""


class DeadlineExceededError(ManagerError):
    """The operation's deadline passed; what it had done was rolled back."""


class PluginError(ManagerError):
    """A plugin (or the runtime around it) failed; ``error`` is the CNI error with its
    code, ``network`` the network being worked on."""

    def __init__(self, network: str, operation: str, error: CNIError) -> None:
        super().__init__(f"{operation} network {network!r}: {error}")
        self.network = network
        self.operation = operation
        self.error = error

    @property
    def code(self) -> int:
        return int(self.error.code)
