"""What the integration tests of the contrib plugins share besides fixtures (those are
in ``conftest.py`` and ``corecni.testing``): runtimes set up for a contrib type,
host-local's config and store, and assertions about Go-compatible results.

A "node" namespace stands in for the host and each container gets its own
namespace (``corecni.testing``'s fixtures). A plugin under test runs in-process
(registered with corecni's runtime, the thread inside the node namespace) or
exec'd through an installed launcher; Go's plugins (Debian's
containernetworking-plugins in ``/usr/lib/cni``) serve the IPAM types not run
in-process and the result comparisons. Which module serves a contrib type is
read from the installed ``corecni.plugins`` entry points, never copied here.
Kernel state is read back with ``corecni.testing``'s readers (``ip -j``,
``nft``, ``/proc``) - never through the net backend under test.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from corecni.runtime import CNIRuntime
from corecni.spec.errors import CNIError
from corecni.testing import (
    GO_PLUGINS,
    NodeCni,
    PluginCni,
    addrs,
    default_via,
    expect_error,
    install_launchers,
    ip,
    nft,
    plugin_runtime,
    plugin_target,
)

NsFactory = Callable[..., str]

#: ``pytestmark`` of the modules whose IPAM is Go's (exec'd from GO_PLUGINS)
WITH_GO_IPAM = [
    pytest.mark.root,
    pytest.mark.skipif(not os.path.exists(f"{GO_PLUGINS}/host-local"),
                       reason="Debian's Go IPAM plugins (containernetworking-plugins) missing"),
]

#: the node's links before any plugin ran (``node`` fixture: lo and the "NIC" pair)
NODE_LINKS = {"lo", "phys0", "phys0p"}


# --- running plugins -------------------------------------------------------------------

def install_launcher(bindir: Path, plugin_type: str) -> str:
    """Our ``plugin_type`` as ``corecni install`` puts it in ``bindir``; the launcher's path."""
    return install_launchers(bindir, [plugin_type])[plugin_type]


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
    ours = {plugin_type: plugin_target(plugin_type)} if plugin_type else {}
    return plugin_runtime("path" if mode == "go" else mode,  # type: ignore[arg-type]
                          tmp, ours, partners=in_process, search=search, rollback=rollback)


def with_host_local(plugin_type: str, mode: str, tmp: Path, *,
                    rollback: bool = True) -> CNIRuntime:
    """Our ``plugin_type`` and our host-local, both in-process; or ``plugin_type`` exec'd
    (its IPAM then Go's host-local, exec'd by our plugin)."""
    return runtime(mode, tmp, plugin_type,
                   in_process={"host-local": plugin_target("host-local")}, rollback=rollback)


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
    in the test process' own namespace: its exit code and the JSON it printed (an IPAM
    plugin's raw output, compared byte for byte with Go's)."""
    env = {"PATH": os.environ["PATH"], "CNI_COMMAND": command, "CNI_CONTAINERID": cid,
           "CNI_NETNS": "/proc/self/ns/net", "CNI_IFNAME": ifname,
           "CNI_PATH": os.path.dirname(binary), "CNI_NETNS_OVERRIDE": "1"}
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


# --- state the kernel readers of corecni.testing do not cover -----------------------------

def masq_chains(ns: str) -> list[str]:
    """The attachments that have masquerade rules, whichever backend wrote them: Go's
    per-attachment chains (iptables-nft's rules show up in nft too; its v4 and v6
    chains share one name) and the owners of corecni's nftables set elements."""
    ruleset = nft(ns, "list", "ruleset", check=True)
    return sorted(set(re.findall(r"chain (CNI-[0-9a-f]+)", ruleset))
                  | set(re.findall(r'comment "(CNI-[0-9a-f]+) id: ', ruleset)))


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
    """Addresses host-local still holds, in any network under ``ipam_dir`` (a network
    name never starts with a dot: ``.corecni-ids`` holds host-local's hints)."""
    if not ipam_dir.exists():
        return []
    return sorted(name for d in ipam_dir.iterdir() if d.is_dir() and not d.name.startswith(".")
                  for name in _held(d))


# --- assertions --------------------------------------------------------------------------

def check_error(cni: NodeCni, conf: Mapping[str, Any], ctr: str, cid: str = "c1") -> str:
    """The text of the CNIError that CHECK raises (it must raise one)."""
    with pytest.raises(CNIError) as err:
        cni.check(conf, ctr, cid)
    return str(err.value)


def assert_one_address_result(result: dict[str, Any], ctr: str, mac: str, gateway: str,
                              dns: dict[str, Any]) -> None:
    """Go's result for a single ``eth0`` with one IPAM address (host-local's default
    route through ``gateway``), and that address and route in the container."""
    [address] = result["ips"]
    assert addrs(ctr, "eth0") == {address["address"]}
    assert default_via(ctr) == {gateway}
    assert result == {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "mac": mac, "sandbox": ctr}],
        "ips": [{"interface": 0, "address": address["address"], "gateway": gateway}],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dns": dns,
    }


#: the suite's recording IPAM test plugin (tests/plugins/fixed_ipam.py)
FIXED_IPAM = {"fixed-ipam": "tests.plugins.fixed_ipam"}


def logged_calls(log: Path) -> list[tuple[str, str]]:
    """(plugin, command) of each call a tests/plugins plugin recorded in ``log``."""
    if not log.exists():
        return []
    return [(c["who"], c["command"]) for c in map(json.loads, log.read_text().splitlines())]


def assert_status_is_ipams(plugin_type: str, mode: str, node: str, tmp: Path,
                           conf: Mapping[str, Any]) -> None:
    """STATUS of an interface plugin is its IPAM plugin's: "ready" without IPAM; with
    IPAM, the IPAM plugin is asked (its log shows STATUS) and its 50 comes back."""
    install_launchers(tmp / "bin", FIXED_IPAM)  # on CNI_PATH for the exec'd plugin
    cni = plugin_cni(plugin_type, mode, node, tmp, extra=FIXED_IPAM)
    cni.status(conf)
    log = tmp / "ipam.log"  # the test plugins log where the (whole) config says
    ipam = {"type": "fixed-ipam"}
    cni.status({**conf, "log": str(log), "ipam": ipam})
    assert logged_calls(log) == [("fixed-ipam", "STATUS")]
    with expect_error(50, "not ready"):
        cni.status({**conf, "log": str(log),
                    "ipam": {**ipam, "fail": {"STATUS": [50, "not ready"]}}})
    assert logged_calls(log) == [("fixed-ipam", "STATUS")] * 2


def assert_late_failures_leave_nothing(cni: NodeCni, conf: Mapping[str, Any], ctr: str,
                                       tmp: Path, nothing_left: Callable[..., None]) -> None:
    """Two ADDs of ``conf`` that fail once the plugin is under way, each followed by
    ``nothing_left(*links the container keeps)``: the IPAM plugin failing (host-local
    without ranges) after the link exists, and CNI_IFNAME taken in the container -
    refused with code 4, and the container's own link survives the rollback DEL."""
    with pytest.raises(CNIError):
        cni.add({**conf, "ipam": {"type": "host-local", "dataDir": str(tmp / "ipam")}}, ctr)
    nothing_left()
    ip(ctr, "link", "add", "eth0", "type", "veth", "peer", "name", "xp0")
    with expect_error(4, "eth0", "already exists"):
        cni.add(conf, ctr)
    nothing_left("eth0", "xp0")
