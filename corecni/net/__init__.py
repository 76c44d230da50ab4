"""Link-layer backends behind one contract (``corecni.net.base``).

``get_backend()`` picks the implementation: the compiled native batcher when it
is built, else pyroute2. Backend modules are imported only when selected, so
importing this package costs no more than the contract types.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable

from corecni.net._common import tbf_buffer, tbf_burst
from corecni.net.base import (
    ETH_P_ALL,
    TC_H_INGRESS,
    TC_H_INGRESS_HANDLE,
    TC_H_ROOT,
    Address,
    Batch,
    FdbEntry,
    Filter,
    Link,
    Neighbour,
    NetBackend,
    NetError,
    Qdisc,
    Route,
    Rule,
    tc_handle,
)

__all__ = [
    "BACKENDS",
    "ENV_VAR",
    "ETH_P_ALL",
    "TC_H_INGRESS",
    "TC_H_INGRESS_HANDLE",
    "TC_H_ROOT",
    "Address",
    "Batch",
    "FdbEntry",
    "Filter",
    "Link",
    "Neighbour",
    "NetBackend",
    "NetError",
    "Qdisc",
    "Route",
    "Rule",
    "available_backends",
    "get_backend",
    "tbf_buffer",
    "tbf_burst",
    "tc_handle",
]

ENV_VAR = "CORECNI_NET_BACKEND"


def _native_backend() -> tuple[NetBackend | None, str]:
    """(backend, "") when the native backend can run here, else (None, why not)."""
    try:
        importlib.import_module("corecni._native")
    except (ImportError, OSError) as exc:
        return None, f"the compiled extension corecni._native is not importable ({exc})"
    try:
        module = importlib.import_module("corecni.net.native_backend")
    except (ImportError, OSError) as exc:
        return None, f"corecni.net.native_backend is not importable ({exc})"
    backend_cls = getattr(module, "NativeBackend", None)
    if backend_cls is None:
        return None, "corecni.net.native_backend has no NativeBackend class"
    backend: NetBackend = backend_cls()
    return backend, ""


def _pyroute2_backend() -> tuple[NetBackend | None, str]:
    """pyroute2 itself is imported by the backend on first use, not here."""
    if importlib.util.find_spec("pyroute2") is None:  # found, not imported
        return None, "pyroute2 is not installed"
    from corecni.net.pyroute2_backend import Pyroute2Backend

    return Pyroute2Backend(), ""


# The backends, preferred first: the one table the selection, ``auto`` and
# ``available_backends`` read. A loader returns (backend, "") or (None, why not).
_LOADERS: dict[str, Callable[[], tuple[NetBackend | None, str]]] = {
    "native": _native_backend,
    "pyroute2": _pyroute2_backend,
}
BACKENDS = tuple(_LOADERS)


def get_backend(name: str | None = None) -> NetBackend:
    """The backend named ``name``, else by ``$CORECNI_NET_BACKEND``, else ``auto``.

    ``auto`` takes the first of ``BACKENDS`` that loads; asking for one by name
    when it cannot load is an error, so a misconfigured node is noticed instead
    of quietly running slower.
    """
    choice = (name or os.environ.get(ENV_VAR) or "auto").strip().lower()
    if choice == "auto":
        reasons = []
        for candidate, load in _LOADERS.items():
            backend, reason = load()
            if backend is not None:
                return backend
            reasons.append(f"{candidate}: {reason}")
        raise RuntimeError(f"no net backend can load here ({'; '.join(reasons)})")
    if choice not in _LOADERS:
        raise ValueError(
            f"unknown net backend {choice!r} (from {'argument' if name else ENV_VAR}); "
            f"expected auto or one of {', '.join(BACKENDS)}"
        )
    backend, reason = _LOADERS[choice]()
    if backend is None:
        raise RuntimeError(f"net backend {choice!r} is unavailable: {reason}")
    return backend


def available_backends() -> list[str]:
    """Names of the backends that load on this machine, preferred first."""
    return [name for name, load in _LOADERS.items() if load()[0] is not None]
