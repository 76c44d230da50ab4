"""corecni.testing: the pytest plugin and toolkit for CNI plugin authors (and corecni's suite).

Registered through the ``pytest11`` entry point, so ``pip install corecni``
gives every plugin project these fixtures:

* ``netns_factory`` - throwaway named network namespaces (``factory("node")``
  returns ``/run/netns/<prefix>node-<hex>``); all removed at teardown, even when
  the test fails. Needs root (the test is skipped otherwise).
* ``node_netns`` - a "node" namespace with ``lo`` up, standing in for the host:
  plugins that create bridges or firewall rules do it in there, never in the
  machine's own namespace. ``container_netns`` - one container namespace.
* ``in_node`` - the test body runs with its thread inside the node namespace.
* ``fake_net`` - a recording ``FakeBackend`` (no kernel behind it).
* ``chain_partners`` - a temporary CNI_PATH directory holding a launcher for
  every installed corecni plugin and, when present, Go's reference plugins.
* ``root_netns_guard`` - fails the test if it changed the machine's own
  namespace (links, nft tables, forwarding) or left the thread elsewhere; opt
  in with ``pytestmark = pytest.mark.usefixtures("root_netns_guard")``.

Names carry a configurable prefix (``corecni_netns_prefix`` ini option or the
``CORECNI_NETNS_PREFIX`` environment variable; default ``ccni-{pid}-``).

And these helpers, by concern:

* requests for a hook: ``plugin_request`` (config dict/keywords -> ``Request``,
  CNI_* defaults, ``prev_result``, ``net=FakeBackend()``), ``FakeBackend``,
  ``FakeDelegate``, ``make_link`` (a link to put in a fake namespace);
* running a plugin: ``run_in_process``, ``run_exec``, ``Outcome``,
  ``normalise_result``, ``expect_error``; whole lists from a node namespace:
  ``plugin_runtime``, ``chain_runtime``, ``NodeCni``, ``PluginCni``, ``conflist``;
* making plugins exec-able: ``entry_point_plugins``, ``plugin_target``,
  ``install_launchers``, ``cni_bin_dir``, ``go_plugin_path``, ``GO_PLUGINS``;
* kernel state, read with iproute2 (never through the backend under test):
  ``ip_json``, ``ip``, ``ping``, ``link_info``, ``link_names``, ``addrs``,
  ``routes``, ``default_via``, ``sysctl``, ``nft``, ``netns_state``,
  ``eventually``, ``dad_settled``, ``root_state``, ``unchanged``;
* namespaces: ``NetnsFactory``, ``netns_prefix``, ``ns_name``, ``needs_root``.

A unit test of a hook, no kernel needed:

    from corecni.testing import FakeBackend, plugin_request

    def test_sets_mtu():
        fake = FakeBackend()
        req = plugin_request(type="mine", mtu=1400, prev_result=PREV, net=fake)
        mine.meta_add(req, req.prev_result)
        assert fake.ops("set_link") == [(req.netns, "set_link", ("eth0",), {"mtu": 1400})]

An integration test, in-process and exec'd, each in its own node (the
chain's IPAM found in ``chain_partners``), compared:

    def test_same_both_ways(netns_factory, chain_partners, tmp_path):
        [binary] = install_launchers(tmp_path / "bin", ["mine"]).values()
        outcomes, states = [], []
        for mode in MODES:
            node, ctr = netns_factory("node"), netns_factory("ctr")
            req = plugin_request(CONF, netns=ctr, path=[chain_partners], net=None)
            outcome = run_in_process(req, node=node) if mode == "in-process" \
                else run_exec(binary, req, node=node)
            assert outcome.ok and ping(ctr, GATEWAY)
            outcomes.append(normalise_result(outcome))
            states.append(netns_state(ctr))
        assert outcomes[0] == outcomes[1] and states[0] == states[1]

``tests/example_dist`` in corecni's repository is a whole third-party
distribution tested this way.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from corecni import netns
from corecni.testing.fake_net import CTR, FakeBackend, FakeDelegate, make_link
from corecni.testing.kernel import (
    addrs,
    dad_settled,
    default_via,
    eventually,
    ip,
    ip_json,
    link_info,
    link_names,
    netns_state,
    nft,
    ping,
    root_state,
    routes,
    sysctl,
    unchanged,
)
from corecni.testing.namespaces import (
    DEFAULT_PREFIX,
    PREFIX_ENV,
    PREFIX_INI,
    NetnsFactory,
    netns_prefix,
    ns_name,
    remove_leftovers,
    set_prefix_template,
)
from corecni.testing.plugins import (
    GO_PLUGINS,
    cni_bin_dir,
    entry_point_plugins,
    go_plugin_path,
    install_launchers,
    plugin_target,
)
from corecni.testing.requests import plugin_request
from corecni.testing.running import (
    MODES,
    Mode,
    NodeCni,
    Outcome,
    PluginCni,
    chain_runtime,
    conflist,
    expect_error,
    normalise_result,
    plugin_runtime,
    run_exec,
    run_in_process,
)

__all__ = [
    "CTR",
    "DEFAULT_PREFIX",
    "GO_PLUGINS",
    "MODES",
    "PREFIX_ENV",
    "PREFIX_INI",
    "FakeBackend",
    "FakeDelegate",
    "Mode",
    "NetnsFactory",
    "NodeCni",
    "Outcome",
    "PluginCni",
    "addrs",
    "chain_runtime",
    "cni_bin_dir",
    "conflist",
    "dad_settled",
    "default_via",
    "entry_point_plugins",
    "eventually",
    "expect_error",
    "go_plugin_path",
    "install_launchers",
    "ip",
    "ip_json",
    "link_info",
    "link_names",
    "make_link",
    "needs_root",
    "netns_prefix",
    "netns_state",
    "nft",
    "normalise_result",
    "ns_name",
    "ping",
    "plugin_request",
    "plugin_runtime",
    "plugin_target",
    "root_state",
    "routes",
    "run_exec",
    "run_in_process",
    "session_prefix",
    "sysctl",
    "unchanged",
]


def needs_root() -> pytest.MarkDecorator:
    """A mark that skips a test when not run as root (namespaces need it)."""
    return pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")


def session_prefix() -> str:
    """Deprecated alias of ``netns_prefix`` (corecni 0.1)."""
    return netns_prefix()


# --- the pytest plugin -----------------------------------------------------------------

def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(PREFIX_INI, f"prefix of the network namespaces corecni.testing makes "
                  f"('{{pid}}' expands; env {PREFIX_ENV} overrides)", default=DEFAULT_PREFIX)


def pytest_configure(config: pytest.Config) -> None:
    set_prefix_template(str(config.getini(PREFIX_INI) or DEFAULT_PREFIX))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Last line of defence: remove any namespace this run made and lost track of."""
    remove_leftovers()


@pytest.fixture
def netns_factory() -> Iterator[Callable[..., str]]:
    """Make named namespaces (``factory(role, lo_up=True)`` -> path); all removed after."""
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    factory = NetnsFactory()
    try:
        yield factory
    finally:
        factory.cleanup()


@pytest.fixture
def node_netns(netns_factory: Callable[..., str]) -> str:
    """A namespace standing in for the node (host): ``lo`` up, nothing else."""
    return netns_factory("node")


@pytest.fixture
def container_netns(netns_factory: Callable[..., str]) -> str:
    """One container's namespace (``lo`` up)."""
    return netns_factory("ctr")


@pytest.fixture
def in_node(node_netns: str) -> Iterator[str]:
    """The test body runs with its thread inside the node namespace."""
    with netns.entered(node_netns):
        yield node_netns


@pytest.fixture
def fake_net() -> FakeBackend:
    """A recording link layer: hand it in with ``plugin_request(..., net=fake_net)``."""
    return FakeBackend()


@pytest.fixture
def chain_partners(tmp_path: Path) -> str:
    """A temporary CNI_PATH directory: a launcher for every installed corecni plugin,
    plus Go's reference plugins (``/usr/lib/cni``) for the types corecni lacks."""
    return cni_bin_dir(tmp_path / "cni-bin")


@pytest.fixture
def root_netns_guard() -> Iterator[None]:
    """Fails the test if it changed the machine's own namespace or left the thread in
    another one (opt in: ``pytest.mark.usefixtures("root_netns_guard")``)."""
    if os.geteuid() != 0:
        yield
        return
    with unchanged(root_state):
        yield
