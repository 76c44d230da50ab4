"""Link-layer backends behind one contract (``corecni.net.base``).

``get_backend()`` picks the implementation: the compiled native batcher when it
is built, else pyroute2. Backend modules are imported only when selected, so
importing this package costs no more than the contract types.
"""

from __future__ import annotations

import importlib
import importlib.util
import os

from corecni.net.base import Address, Batch, Link, Neighbour, NetBackend, NetError, Route

__all__ = [
    "BACKENDS",
    "ENV_VAR",
    "Address",
    "Batch",
    "Link",
    "Neighbour",
    "NetBackend",
    "NetError",
    "Route",
    "available_backends",
    "get_backend",
]

ENV_VAR = "CORECNI_NET_BACKEND"
BACKENDS = ("native", "pyroute2")


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


def _pyroute2_backend() -> NetBackend:
    # pyroute2 itself is imported by the backend on first use, not here.
    from corecni.net.pyroute2_backend import Pyroute2Backend

    return Pyroute2Backend()


def get_backend(name: str | None = None) -> NetBackend:
    """The backend named ``name``, else by ``$CORECNI_NET_BACKEND``, else ``auto``.

    ``auto`` prefers native and falls back to pyroute2 silently; asking for
    ``native`` explicitly when it cannot load is an error, so a misconfigured
    node is noticed instead of quietly running slower.
    """
    choice = (name or os.environ.get(ENV_VAR) or "auto").strip().lower()
    if choice == "pyroute2":
        return _pyroute2_backend()
    if choice in ("native", "auto"):
        backend, reason = _native_backend()
        if backend is not None:
            return backend
        if choice == "native":
            raise RuntimeError(f"net backend 'native' is unavailable: {reason}")
        return _pyroute2_backend()
    raise ValueError(
        f"unknown net backend {choice!r} (from {'argument' if name else ENV_VAR}); "
        "expected auto, native or pyroute2"
    )


def available_backends() -> list[str]:
    """Names of the backends that load on this machine, preferred first."""
    names = []
    if _native_backend()[0] is not None:
        names.append("native")
    if importlib.util.find_spec("pyroute2") is not None:  # found, not imported
        names.append("pyroute2")
    return names
