"""What the integration tests of the contrib plugins share: runtimes, the node-bound
``Cni`` caller, fixtures, and kernel-state readers.

A "node" namespace stands in for the host and each container gets its own
namespace (``corecni.testing``'s fixtures). A plugin under test runs in-process
(registered with corecni's runtime, the thread inside the node namespace) or
exec'd through an installed launcher; Go's plugins (Debian's
containernetworking-plugins in ``/usr/lib/cni``) serve the IPAM types not run
in-process and the result comparisons. Kernel state is read back with
``ip -j``/``nft``/``/proc`` - never through the net backend under test.

A fixture defined here serves the test modules that import it (pytest finds
fixtures among a module's names); they name it in ``__all__`` so the import
counts as used. ``node_cni_fixtures``/``launcher_fixture`` make a module's own
fixtures for its plugin type.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest

from corecni import launcher, netns
from corecni.net import ENV_VAR, available_backends
from corecni.registry import Registry
from corecni.runtime import CNIRuntime
from corecni.spec.config import NetworkConfigList, RuntimeConf
from corecni.spec.errors import CNIError
from corecni.testing import ip_json, ns_name

GO_PLUGINS = "/usr/lib/cni"
NsFactory = Callable[..., str]
MODES = ("in-process", "exec")

#: ``pytestmark`` of the modules whose IPAM is Go's (exec'd from GO_PLUGINS)
WITH_GO_IPAM = [
    pytest.mark.root,
    pytest.mark.skipif(not os.path.exists(f"{GO_PLUGINS}/host-local"),
                       reason="Debian's Go IPAM plugins (containernetworking-plugins) missing"),
]

#: the corecni-contrib plugin behind each type the tests run as "ours"
CONTRIB = {
    "bridge": "corecni_contrib.bridge",
    "ptp": "corecni_contrib.ptp",
    "loopback": "corecni_contrib.loopback",
    "macvlan": "corecni_contrib.macvlan",
    "ipvlan": "corecni_contrib.ipvlan",
    "vlan": "corecni_contrib.vlan",
    "host-device": "corecni_contrib.host_device",
    "host-local": "corecni_contrib.host_local.plugin",
    "static": "corecni_contrib.static",
}


# --- running plugins -------------------------------------------------------------------

def install_launcher(bindir: Path, plugin_type: str) -> str:
    """Our ``plugin_type`` as ``corecni install`` puts it in ``bindir``; the launcher's path."""
    launcher.install(str(bindir), [launcher.LauncherSpec(plugin_type, CONTRIB[plugin_type])])
    return str(bindir / plugin_type)


def runtime(mode: str, tmp: Path, plugin_type: str = "", *,
            in_process: Mapping[str, str] | None = None,
            search: tuple[str, ...] = (GO_PLUGINS,), rollback: bool = True) -> CNIRuntime:
    """A runtime caching under ``tmp``, finding plugin binaries on ``search``.

    ``mode`` says how our ``plugin_type`` runs: "in-process" (registered, and so are
    the ``in_process`` types, to their targets; any other type is exec'd from
    ``search``), "exec" (its launcher installed in ``tmp/bin``, found first; nothing
    in-process) or "go" (not at all: only the plugins on ``search`` - Go's own -
    are exec'd).
    """
    path = search
    if mode == "exec":
        bindir = tmp / "bin"
        install_launcher(bindir, plugin_type)
        path = (str(bindir), *search)
    if mode == "in-process":
        registry = Registry(path=path, entry_points=False)
        registry.register(plugin_type, CONTRIB[plugin_type])
        for name, target in (in_process or {}).items():
            registry.register(name, target)
    else:
        registry = Registry(path=path, entry_points=False, in_process=False)
    return CNIRuntime(path=path, cache_dir=str(tmp / "cache"), registry=registry,
                      rollback=rollback)


def with_host_local(plugin_type: str, mode: str, tmp: Path, *,
                    rollback: bool = True) -> CNIRuntime:
    """Our ``plugin_type`` and our host-local, both in-process; or ``plugin_type`` exec'd
    (its IPAM then Go's host-local, exec'd by our plugin)."""
    return runtime(mode, tmp, plugin_type, in_process={"host-local": CONTRIB["host-local"]},
                   rollback=rollback)


def conflist(plugin: Mapping[str, Any], name: str = "testnet",
             version: str = "1.0.0") -> dict[str, Any]:
    """A network configuration list of the one ``plugin``."""
    return {"cniVersion": version, "name": name, "plugins": [dict(plugin)]}


@attrs.define
class Cni:
    """A runtime bound to a node namespace: every call runs with the thread inside it.

    ``conf`` is a whole network configuration list; ``kw`` goes to ``RuntimeConf``
    (``args``, ``capability_args``).
    """

    runtime: CNIRuntime
    node: str

    def net(self, conf: Mapping[str, Any]) -> NetworkConfigList:
        return NetworkConfigList.from_dict(conf)

    def add(self, conf: Mapping[str, Any], ctr: str, cid: str = "c1", ifname: str = "eth0",
            **kw: Any) -> dict[str, Any]:
        with netns.entered(self.node):
            result = self.runtime.add_network_list(self.net(conf),
                                                   RuntimeConf(cid, ifname, ctr, **kw))
        return dict(result.to_dict())

    def check(self, conf: Mapping[str, Any], ctr: str, cid: str = "c1", ifname: str = "eth0",
              **kw: Any) -> None:
        with netns.entered(self.node):
            self.runtime.check_network_list(self.net(conf), RuntimeConf(cid, ifname, ctr, **kw))

    def delete(self, conf: Mapping[str, Any], ctr: str, cid: str = "c1", ifname: str = "eth0",
               **kw: Any) -> None:
        with netns.entered(self.node):
            self.runtime.del_network_list(self.net(conf), RuntimeConf(cid, ifname, ctr, **kw))


class PluginCni(Cni):
    """``Cni`` for one plugin's config: each call wraps it into a 1.0.0 list ("testnet")."""

    def net(self, conf: Mapping[str, Any], version: str = "1.0.0") -> NetworkConfigList:
        return NetworkConfigList.from_dict(conflist(conf, version=version))

    def status(self, conf: Mapping[str, Any]) -> None:
        with netns.entered(self.node):
            self.runtime.get_status_network_list(self.net(conf, version="1.1.0"))


def plugin_cni(plugin_type: str, mode: str, node: str, tmp: Path,
               extra: Mapping[str, str] | None = None, go: bool = False) -> PluginCni:
    """Our ``plugin_type`` run from ``node`` (``mode``: in-process or exec'd), or Go's
    (``go``, for result comparisons). IPAM types are Go's, exec'd, except the
    ``extra`` types registered in-process."""
    return PluginCni(runtime("go" if go else mode, tmp, plugin_type, in_process=extra), node)


def go_plugin(plugin_type: str) -> tuple[str, pytest.MarkDecorator]:
    """Go's ``plugin_type`` binary, and the mark that skips a test when it is missing."""
    binary = f"{GO_PLUGINS}/{plugin_type}"
    return binary, pytest.mark.skipif(
        not os.access(binary, os.X_OK),
        reason=f"Go {plugin_type} (containernetworking-plugins) not installed")


def exec_plugin(binary: str, command: str, config: Mapping[str, Any], *, cid: str = "c1",
                ifname: str = "eth0", cni_args: str = "",
                timeout: float) -> tuple[int, dict[str, Any]]:
    """One exec of ``binary`` as a runtime makes it (CNI_* variables, config on stdin),
    in the test process' own namespace: its exit code and the JSON it printed."""
    env = {"PATH": os.environ["PATH"], "CNI_COMMAND": command, "CNI_CONTAINERID": cid,
           "CNI_NETNS": "/proc/self/ns/net", "CNI_IFNAME": ifname,
           "CNI_PATH": os.path.dirname(binary)}
    if cni_args:
        env["CNI_ARGS"] = cni_args
    proc = subprocess.run([binary], input=json.dumps(config).encode(), env=env,
                          capture_output=True, timeout=timeout, check=False)
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else {}


def ips_of(result: Mapping[str, Any]) -> list[str]:
    """The result's addresses, without their prefix length."""
    return [str(ip["address"]).split("/")[0] for ip in result["ips"]]


def host_local(tmp: Path, *subnets: str) -> dict[str, Any]:
    """host-local IPAM with its store in ``tmp/ipam``: a range set per subnet and a
    default route per subnet's family."""
    return {"type": "host-local", "dataDir": str(tmp / "ipam"),
            "ranges": [[{"subnet": subnet}] for subnet in subnets],
            "routes": [{"dst": "::/0" if ":" in subnet else "0.0.0.0/0"} for subnet in subnets]}


# --- fixtures ----------------------------------------------------------------------------

@pytest.fixture(params=available_backends())
def net_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The backend for in-process calls and, through the environment, exec'd plugins."""
    monkeypatch.setenv(ENV_VAR, str(request.param))
    return str(request.param)


def node_cni_fixtures(plugin_type: str) -> tuple[Any, Any]:
    """The ``cni`` and ``bare_cni`` fixtures of a module testing our ``plugin_type``: it
    and our host-local in-process from the node namespace, on each net backend
    (``net_backend``); ``bare_cni`` without rollback, so a failed ADD is not followed
    by the runtime's DEL."""

    @pytest.fixture
    def cni(net_backend: str, node_netns: str, tmp_path: Path) -> Cni:
        return Cni(with_host_local(plugin_type, "in-process", tmp_path), node_netns)

    @pytest.fixture
    def bare_cni(net_backend: str, node_netns: str, tmp_path: Path) -> Cni:
        return Cni(with_host_local(plugin_type, "in-process", tmp_path, rollback=False),
                   node_netns)

    return cni, bare_cni


def launcher_fixture(plugin_type: str) -> Any:
    """An ``ours`` fixture: the path of our ``plugin_type``'s launcher, installed in the
    test's ``tmp_path/bin``."""

    @pytest.fixture
    def ours(tmp_path: Path) -> str:
        return install_launcher(tmp_path / "bin", plugin_type)

    return ours


VARIANTS = [(b, m) for b in available_backends() for m in MODES]


@pytest.fixture(params=VARIANTS, ids=[f"{b}-{m}" for b, m in VARIANTS])
def variant(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """(net backend, run mode): the backend reaches exec'd plugins through the environment."""
    backend, mode = request.param
    monkeypatch.setenv(ENV_VAR, backend)
    return str(mode)


@contextlib.contextmanager
def unchanged(state: Callable[[], object]) -> Iterator[None]:
    """The thread ends in the namespace it started in, and ``state()`` reads as before."""
    before, inode = state(), netns.current_inode()
    yield
    assert netns.current_inode() == inode
    assert state() == before


def root_state() -> dict[str, Any]:
    """The machine's own namespace: its link names, nft tables and IPv4 forwarding."""
    links = {str(link["ifname"]) for link in ip_json(None, "link", "show")}
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True,
                            check=False).stdout
    with open("/proc/sys/net/ipv4/ip_forward") as fh:
        forward = fh.read()
    return {"links": links, "nft": tables, "forward": forward}


@pytest.fixture(autouse=True)
def root_namespace_untouched() -> Iterator[None]:
    """No test may change the machine's own namespace, nor leave the thread elsewhere."""
    with unchanged(root_state):
        yield


@pytest.fixture(autouse=True)
def thread_netns_unchanged() -> Iterator[None]:
    """No test may leave the thread in another namespace."""
    with unchanged(lambda: None):
        yield


NODE_LINKS = {"lo", "phys0", "phys0p"}


@pytest.fixture
def node(node_netns: str) -> str:
    """The node with its "NIC": veth phys0 (the master) <-> phys0p, both up."""
    sh(node_netns, "link", "add", "phys0", "type", "veth", "peer", "name", "phys0p")
    sh(node_netns, "link", "set", "phys0", "up")
    sh(node_netns, "link", "set", "phys0p", "up")
    return node_netns


# --- kernel state (read independently of the backend under test) -------------------------

def sh(ns: str, *args: str) -> None:
    """``ip ARGS`` in the namespace at ``ns``."""
    subprocess.run(["ip", "-n", ns_name(ns), *args], check=True, capture_output=True)


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    """The kernel destroys a deleted namespace's links asynchronously (cleanup_net)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def link_info(ns: str, name: str) -> dict[str, Any]:
    [item] = ip_json(ns, "-d", "link", "show", "dev", name)
    return dict(item)


def link_names(ns: str) -> set[str]:
    return {str(item["ifname"]) for item in ip_json(ns, "link", "show")}


def addrs(ns: str, name: str) -> set[str]:
    """The global addresses of ``name``, as ``address/prefix``."""
    items: list[dict[str, Any]] = [dict(i) for i in ip_json(ns, "addr", "show", "dev", name)]
    return {f"{a['local']}/{a['prefixlen']}" for item in items for a in item["addr_info"]
            if a.get("scope") == "global"}


def routes(ns: str, family: str, *args: str) -> list[dict[str, Any]]:
    return [dict(r) for r in ip_json(ns, family, "route", "show", *args)]


def default_via(ns: str) -> set[str]:
    return {str(r.get("gateway")) for r in ip_json(ns, "route", "show", "default")}


def sysctl(ns: str, key: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns_name(ns), "cat", f"/proc/sys/net/{key}"],
                          capture_output=True, text=True, check=True).stdout.strip()


def nft(ns: str, *args: str, check: bool = False) -> str:
    """``nft ARGS``' output in ``ns`` ("" when it fails, unless ``check``)."""
    return subprocess.run(["ip", "netns", "exec", ns_name(ns), "nft", *args],
                          capture_output=True, text=True, check=check).stdout


def masq_chains(ns: str) -> list[str]:
    """Per-attachment masquerade chains, whichever backend wrote them (iptables-nft's
    rules show up in nft too; its v4 and v6 chains share one name)."""
    return sorted(set(re.findall(r"chain (CNI-[0-9a-f]+)",
                                 nft(ns, "list", "ruleset", check=True))))


def _held(network_dir: Path) -> list[str]:
    """The addresses host-local holds in one network's directory (not its lock or
    last_reserved_ip.* bookkeeping)."""
    if not network_dir.exists():
        return []
    return sorted(f.name for f in network_dir.iterdir()
                  if f.name != "lock" and not f.name.startswith("last_reserved_ip."))


def leases(tmp: Path, network: str) -> list[str]:
    """What host-local (its store in ``tmp/ipam``) holds for ``network``."""
    return _held(tmp / "ipam" / network)


def reserved(ipam_dir: Path) -> list[str]:
    """Addresses host-local still holds, in any network under ``ipam_dir``."""
    if not ipam_dir.exists():
        return []
    return sorted(name for d in ipam_dir.iterdir() if d.is_dir() for name in _held(d))


# --- assertions --------------------------------------------------------------------------

@contextlib.contextmanager
def expect_error(code: int, *words: str) -> Iterator[None]:
    """A CNIError of ``code`` whose text names every one of ``words``."""
    with pytest.raises(CNIError) as info:
        yield
    assert info.value.code == code, repr(info.value)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def check_error(cni: Cni, conf: Mapping[str, Any], ctr: str, cid: str = "c1") -> str:
    """The text of the CNIError that CHECK raises (it must raise one)."""
    with pytest.raises(CNIError) as err:
        cni.check(conf, ctr, cid)
    return str(err.value)


def assert_one_address_result(result: dict[str, Any], ctr: str, mac: str, gateway: str,
                              dns: dict[str, Any]) -> None:
    """Go's result for a single ``eth0`` with one IPAM address (host-local's default
    route through ``gateway``), and that address and route in the container."""
    [ip] = result["ips"]
    assert addrs(ctr, "eth0") == {ip["address"]}
    assert default_via(ctr) == {gateway}
    assert result == {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "mac": mac, "sandbox": ctr}],
        "ips": [{"interface": 0, "address": ip["address"], "gateway": gateway}],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dns": dns,
    }


def assert_late_failures_leave_nothing(cni: Cni, conf: Mapping[str, Any], ctr: str, tmp: Path,
                                       nothing_left: Callable[..., None]) -> None:
    """Two ADDs of ``conf`` that fail once the plugin is under way, each followed by
    ``nothing_left(*links the container keeps)``: the IPAM plugin failing (host-local
    without ranges) after the link exists, and CNI_IFNAME taken in the container -
    refused with code 4, and the container's own link survives the rollback DEL."""
    with pytest.raises(CNIError):
        cni.add({**conf, "ipam": {"type": "host-local", "dataDir": str(tmp / "ipam")}}, ctr)
    nothing_left()
    sh(ctr, "link", "add", "eth0", "type", "veth", "peer", "name", "xp0")
    with expect_error(4, "eth0", "already exists"):
        cni.add(conf, ctr)
    nothing_left("eth0", "xp0")
