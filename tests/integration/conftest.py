"""Fixtures of the contrib plugins' integration tests (the namespaces themselves come
from ``corecni.testing``, the pytest11 plugin).

A module testing one contrib type names it in ``PLUGIN_TYPE``; the ``cni``,
``bare_cni`` and ``ours`` fixtures read it from there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from corecni.net import ENV_VAR, available_backends
from corecni.testing import MODES, NodeCni, ip
from tests.integration._harness import install_launcher, with_host_local


def _plugin_type(request: pytest.FixtureRequest) -> str:
    plugin_type = getattr(request.module, "PLUGIN_TYPE", None)
    if not isinstance(plugin_type, str):
        raise pytest.UsageError(f"{request.module.__name__} uses {request.fixturename!r} "
                                "but names no PLUGIN_TYPE")
    return plugin_type


@pytest.fixture(params=available_backends())
def net_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The backend for in-process calls and, through the environment, exec'd plugins."""
    monkeypatch.setenv(ENV_VAR, str(request.param))
    return str(request.param)


VARIANTS = [(b, m) for b in available_backends() for m in MODES]


@pytest.fixture(params=VARIANTS, ids=[f"{b}-{m}" for b, m in VARIANTS])
def variant(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """(net backend, run mode): the mode; the backend reaches exec'd plugins through
    the environment."""
    backend, mode = request.param
    monkeypatch.setenv(ENV_VAR, backend)
    return str(mode)


@pytest.fixture
def cni(request: pytest.FixtureRequest, net_backend: str, node_netns: str,
        tmp_path: Path) -> NodeCni:
    """The module's PLUGIN_TYPE and our host-local, in-process from the node namespace,
    on each net backend."""
    return NodeCni(with_host_local(_plugin_type(request), "in-process", tmp_path), node_netns)


@pytest.fixture
def bare_cni(request: pytest.FixtureRequest, net_backend: str, node_netns: str,
             tmp_path: Path) -> NodeCni:
    """``cni`` without rollback: a failed ADD is not followed by the runtime's DEL, so a
    test sees what the plugin itself leaves behind."""
    return NodeCni(with_host_local(_plugin_type(request), "in-process", tmp_path,
                                   rollback=False), node_netns)


@pytest.fixture
def ours(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The path of the module's PLUGIN_TYPE launcher, installed in ``tmp_path/bin``."""
    return install_launcher(tmp_path / "bin", _plugin_type(request))


@pytest.fixture
def node(node_netns: str) -> str:
    """The node with its "NIC": veth phys0 (the master) <-> phys0p, both up."""
    ip(node_netns, "link", "add", "phys0", "type", "veth", "peer", "name", "phys0p")
    ip(node_netns, "link", "set", "phys0", "up")
    ip(node_netns, "link", "set", "phys0p", "up")
    return node_netns


@pytest.fixture(autouse=True)
def integration_safety_guards(root_netns_guard: None) -> None:
    """Every integration module, whether it opts in or not, runs under the guards of
    ``corecni.testing``'s ``root_netns_guard``: the machine's own namespace (links, nft
    tables, forwarding) reads the same after each test as before, and the thread ends
    in the namespace it started in. An integration test acts as root; a slip would
    otherwise reach the machine, or leave every later test running in the wrong place."""
