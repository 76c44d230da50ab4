"""dhcp IPAM against dnsmasq, leases held by the lease service inside ``corecni daemon``.

dnsmasq serves DHCP on a bridge in a server namespace (``_dhcp_lab``); each
container namespace gets a veth to it. The plugin runs the way a runtime
reaches it on a node: exec'd as the native shim, served by a real daemon
process (whose environment puts the lease service's socket and state in the
test's temp dir). dnsmasq's lease file and log are the server's view: what it
handed out, renewed and got back. ``CORECNI_DHCP_RENEW_CAP=1`` makes the
service renew every second instead of at T1 (60 s of dnsmasq's 2-minute
minimum lease), so a renewal is observed without waiting minutes.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from corecni import daemon_wire as wire
from corecni import launcher
from corecni.spec.errors import CNIError
from corecni.testing import (
    GO_PLUGINS,
    NodeCni,
    addrs,
    ip,
    ns_name,
    ping,
    plugin_runtime,
    plugin_target,
)
from tests._daemon import DaemonProc, start_daemon
from tests.integration._dhcp_lab import (
    SERVER_IP,
    SUBNET,
    Dnsmasq,
    server_namespace,
    start_dnsmasq,
)
from tests.integration._dhcp_lab import (
    wire as wire_link,
)

pytestmark = pytest.mark.root

NsFactory = Callable[..., str]


def client_id_hex(cid: str, network: str = "dhcpnet", ifname: str = "eth0") -> str:
    """How dnsmasq's lease file shows Go's client identifier (type 0 + text)."""
    return ":".join(f"{b:02x}" for b in b"\0" + f"{cid}/{network}/{ifname}".encode())


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    """Poll ``predicate`` until it is true (its value). What the tests wait for is paced
    by the lease service's renewal points (``CORECNI_DHCP_RENEW_CAP``: 1 s) and by
    exchanges in flight, which wait for the server up to the DHCP timeout (10 s), on a
    shared 2-core machine: the deadline is generous, as only a failing test waits it."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@attrs.define
class Lab:
    """dnsmasq + a running daemon + the shims; calls go through the shim like a runtime's."""

    tmp: Path
    server: str
    dnsmasq: Dnsmasq
    bindir: str
    daemon: DaemonProc
    netns_factory: NsFactory
    renew_cap: str = "1"

    @property
    def dhcp_socket(self) -> str:
        return str(self.tmp / "d" / "run" / "dhcp.sock")

    @property
    def state_dir(self) -> Path:
        return self.tmp / "d" / "dhcp-state"

    def start_daemon(self) -> DaemonProc:
        self.daemon = start_daemon(str(self.tmp / "d" / "run" / "d.sock"),
                                   self.tmp / "d" / "daemon.log",
                                   env={"CORECNI_DHCP_RENEW_CAP": self.renew_cap})
        wait_for(lambda: "dhcp" in self.daemon.health().get("services", []),
                 "the DHCP lease service")
        return self.daemon

    def container(self) -> str:
        """A container namespace whose (down) eth0 is wired to the server's bridge."""
        ctr = self.netns_factory("dhcpctr", lo_up=False)
        wire_link(self.server, ctr, "eth0")
        return ctr

    def conf(self, **ipam: Any) -> dict[str, Any]:
        return {"cniVersion": "1.0.0", "name": "dhcpnet", "type": "dhcp",
                "ipam": {"type": "dhcp", "daemonSocketPath": self.dhcp_socket, **ipam}}

    def call(self, command: str, ctr: str, cid: str = "c1", conf: dict[str, Any] | None = None,
             ptype: str = "dhcp", caller: str | None = None, ifname: str = "eth0",
             args: str = "") -> subprocess.CompletedProcess[bytes]:
        env = {"PATH": os.environ["PATH"], "CNI_COMMAND": command, "CNI_CONTAINERID": cid,
               "CNI_NETNS": ctr, "CNI_IFNAME": ifname, "CNI_PATH": self.bindir,
               "CNI_ARGS": args, wire.SOCKET_ENV: self.daemon.socket}
        cmd = [os.path.join(self.bindir, ptype)]
        if caller is not None:
            cmd = ["ip", "netns", "exec", ns_name(caller), *cmd]
        out = subprocess.run(cmd, input=json.dumps(conf or self.conf()).encode(), env=env,
                             capture_output=True, check=False, timeout=60)
        assert b"no corecni daemon" not in out.stderr, "the shim fell back"
        return out

    def ok(self, command: str, ctr: str, **kw: Any) -> dict[str, Any]:
        out = self.call(command, ctr, **kw)
        assert out.returncode == 0, out
        return json.loads(out.stdout) if out.stdout.strip() else {}

    def error(self, command: str, ctr: str, **kw: Any) -> dict[str, Any]:
        out = self.call(command, ctr, **kw)
        assert out.returncode == 1, out
        error: dict[str, Any] = json.loads(out.stdout)
        return error

    def stored(self) -> list[dict[str, Any]]:
        """The leases the service keeps on disk (a file it removes between the listing
        and the read is not one)."""
        out = []
        for path in sorted(self.state_dir.glob("lease-*.json")):
            try:
                out.append(json.loads(path.read_text()))
            except FileNotFoundError:
                continue
        return out


@pytest.fixture
def lab(tmp_path: Path, netns_factory: NsFactory) -> Iterator[Lab]:
    shim = launcher.shim_binary()
    if shim is None:
        pytest.fail("corecni/corecni-shim is not built (make venv builds it)")
    bindir = str(tmp_path / "bin")
    launcher.install(bindir, [launcher.LauncherSpec(t, plugin_target(t))
                              for t in ("dhcp", "macvlan", "bridge")], shim=shim)
    server = server_namespace(netns_factory)
    dnsmasq = start_dnsmasq(server, "br0", tmp_path / "dnsmasq")
    lab = Lab(tmp_path, server, dnsmasq, bindir, None, netns_factory)  # type: ignore[arg-type]
    try:
        lab.start_daemon()
        yield lab
    finally:
        if lab.daemon is not None:
            lab.daemon.stop()
        dnsmasq.stop()


def configure(ctr: str, result: dict[str, Any]) -> str:
    """Put the leased address on eth0 (what an interface plugin does); the address."""
    address = result["ips"][0]["address"]
    ip(ctr, "addr", "add", address, "dev", "eth0")
    ip(ctr, "link", "set", "eth0", "up")
    return str(address.split("/")[0])


def acks(lab: Lab, address: str) -> int:
    return len([line for line in lab.dnsmasq.log_lines("DHCPACK") if f" {address} " in line])


def test_lease_ping_renew_reuse_release(lab: Lab) -> None:
    ctr = lab.container()
    result = lab.ok("ADD", ctr)
    assert result["cniVersion"] == "1.0.0"
    [ipc] = result["ips"]
    address = configure(ctr, result)
    assert ipaddress.ip_address(address) in SUBNET and ipc["address"].endswith("/24")
    assert ipc["gateway"] == SERVER_IP
    assert result["routes"] == [{"dst": "0.0.0.0/0", "gw": SERVER_IP}]
    lease = lab.dnsmasq.lease_of(address)
    assert lease is not None and lease.client_id == client_id_hex("c1"), lab.dnsmasq.leases()
    assert ping(ctr, SERVER_IP), "the container does not reach the DHCP server"
    [stored] = lab.stored()
    assert (stored["ip"], stored["clientId"]) == (address, "c1/dhcpnet/eth0")

    # renewal: the server sees a REQUEST and moves the lease's expiry forward
    first = lease.expires
    wait_for(lambda: acks(lab, address) >= 3, "two renewals (DHCPACKs) of the lease")
    def moved() -> Any:
        entry = lab.dnsmasq.lease_of(address)
        return entry if entry is not None and entry.expires > first else None
    renewed = wait_for(moved, "the lease's expiry to move forward")
    assert renewed.client_id == lease.client_id
    assert lab.dnsmasq.log_lines("DHCPREQUEST")

    # the same attachment again: the same lease, no second one at the server
    again = lab.ok("ADD", ctr)
    assert again["ips"] == result["ips"]
    assert [entry.ip for entry in lab.dnsmasq.leases()] == [address]
    lab.ok("CHECK", ctr, conf={**lab.conf(), "prevResult": result})

    # DEL: DHCPRELEASE, forgotten by the server and the service; DEL again is fine
    lab.ok("DEL", ctr)
    wait_for(lambda: lab.dnsmasq.lease_of(address) is None, "dnsmasq to drop the lease")
    wait_for(lambda: any(address in line for line in lab.dnsmasq.log_lines("DHCPRELEASE")),
             "dnsmasq to log the DHCPRELEASE")  # its log is written behind the lease file
    assert lab.stored() == []
    lab.ok("DEL", ctr)
    err = lab.error("CHECK", ctr, conf={**lab.conf(), "prevResult": result})
    assert "no DHCP lease held for eth0" in err["msg"]


def test_two_containers_two_leases_and_gc(lab: Lab) -> None:
    ctrs = [lab.container(), lab.container()]
    results = [lab.ok("ADD", ctr, cid=f"c{i}") for i, ctr in enumerate(ctrs)]
    addresses = [configure(ctr, r) for ctr, r in zip(ctrs, results, strict=True)]
    assert addresses[0] != addresses[1]
    held = {entry.client_id: entry.ip for entry in lab.dnsmasq.leases()}
    assert held == {client_id_hex("c0"): addresses[0], client_id_hex("c1"): addresses[1]}
    for ctr in ctrs:
        assert ping(ctr, SERVER_IP)
    # GC with only c0 valid releases c1's lease
    gc = {**lab.conf(), "cniVersion": "1.1.0",
          "cni.dev/valid-attachments": [{"containerID": "c0", "ifname": "eth0"}]}
    lab.ok("GC", ctrs[0], conf=gc, cid="")
    wait_for(lambda: any(f" {addresses[1]} " in line
                         for line in lab.dnsmasq.log_lines("DHCPRELEASE")),
             "GC to release c1's lease (dnsmasq's DHCPRELEASE)")
    wait_for(lambda: lab.dnsmasq.lease_of(addresses[1]) is None, "dnsmasq to drop it")
    assert lab.dnsmasq.lease_of(addresses[0]) is not None
    assert not [line for line in lab.dnsmasq.log_lines("DHCPRELEASE")
                if f" {addresses[0]} " in line]
    assert [s["clientId"] for s in lab.stored()] == ["c0/dhcpnet/eth0"]
    lab.ok("DEL", ctrs[0], cid="c0")


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL", "takeover"])
def test_daemon_restart_keeps_and_renews(lab: Lab, how: str) -> None:
    """Stopped, killed, or replaced by a new daemon on the same socket (which takes over:
    the old one stops its services before the new one starts its own)."""
    ctr = lab.container()
    result = lab.ok("ADD", ctr)
    address = configure(ctr, result)
    old = lab.daemon
    if how != "takeover":
        old.stop(getattr(signal, how))
    before = acks(lab, address)
    renewed_before = len(lab.daemon.records("dhcp-renewed"))  # the log is appended to
    lab.start_daemon()
    assert old.proc.wait(30) == (-signal.SIGKILL if how == "SIGKILL" else 0)
    assert len(old.records("dhcp-service-stopped")) == (0 if how == "SIGKILL" else 1)
    wait_for(lambda: len(lab.daemon.records("dhcp-renewed")) >= renewed_before + 2,
             "renewals by the restarted daemon")
    wait_for(lambda: acks(lab, address) >= before + 2, "the server to ACK them")
    reloaded = [r for r in lab.daemon.records("dhcp-reloaded") if r["ip"] == address]
    assert reloaded and reloaded[-1]["netnsFound"], lab.daemon.log.read_text()
    # the same attachment after the restart: the same lease, still one at the server
    again = lab.ok("ADD", ctr)
    assert again["ips"] == result["ips"]
    assert [(e.ip, e.client_id) for e in lab.dnsmasq.leases()] == \
        [(address, client_id_hex("c1"))]
    # and another container still gets another address
    other = lab.container()
    assert lab.ok("ADD", other, cid="c2")["ips"][0]["address"] != result["ips"][0]["address"]
    lab.ok("DEL", ctr)
    lab.ok("DEL", other, cid="c2")
    wait_for(lambda: lab.dnsmasq.leases() == [], "both leases released")


@pytest.mark.parametrize("road", ["shim", "in-process"])
def test_macvlan_with_dhcp(lab: Lab, netns_factory: NsFactory, tmp_path: Path,
                           road: str) -> None:
    """Chained the way users run it: macvlan on the node's "NIC" (a veth to the server's
    bridge), its ipam dhcp; either exec'd as the shim from the node namespace (macvlan
    and dhcp then run in the daemon), or in-process in corecni's runtime: the lease is
    the service's either way."""
    node = netns_factory("dhcpnode")
    wire_link(lab.server, node, "phys0", up=True)
    ctr = netns_factory("dhcpctr")
    conf = {"cniVersion": "1.0.0", "name": "dhcpnet", "type": "macvlan", "master": "phys0",
            "ipam": {"type": "dhcp", "daemonSocketPath": lab.dhcp_socket}}
    runtime = NodeCni(plugin_runtime("in-process", tmp_path / "rt", {
        t: plugin_target(t) for t in ("macvlan", "dhcp")}), node)
    listed = {"cniVersion": "1.0.0", "name": "dhcpnet", "plugins": [conf]}

    def call(command: str, **kw: Any) -> dict[str, Any]:
        if road == "shim":
            return lab.ok(command, ctr, conf=kw.get("conf", conf), ptype="macvlan",
                          caller=node)
        verb = {"ADD": runtime.add, "CHECK": runtime.check, "DEL": runtime.delete}[command]
        return verb(listed, ctr) or {}

    result = call("ADD")
    address = result["ips"][0]["address"]
    assert [a for a in addrs(ctr, "eth0") if a.startswith("10.77.")] == [address]
    assert ping(ctr, SERVER_IP)
    lease = lab.dnsmasq.lease_of(address.split("/")[0])
    assert lease is not None and lease.client_id == client_id_hex("c1")
    assert [s["ip"] for s in lab.stored()] == [address.split("/")[0]]  # held by the service
    call("CHECK", conf={**conf, "prevResult": result})
    call("DEL")
    wait_for(lambda: lab.dnsmasq.leases() == [], "the macvlan lease released")
    assert "eth0" not in {link for link in _links(ctr)}


def link_flags(ns: str, name: str) -> list[str]:
    out = subprocess.run(["ip", "-n", ns_name(ns), "-j", "link", "show", name],
                         capture_output=True, text=True, check=True).stdout
    return [str(flag) for flag in json.loads(out)[0]["flags"]]


def _links(ns: str) -> list[str]:
    out = subprocess.run(["ip", "-n", ns_name(ns), "-j", "link"], capture_output=True,
                         text=True, check=True).stdout
    return [str(link["ifname"]) for link in json.loads(out)]


def test_namespace_dropped_without_del(lab: Lab) -> None:
    """The runtime deletes the namespace and never calls DEL: the service notices at the
    next renewal point that only its own descriptor keeps the namespace, releases the
    lease and lets go (Go's daemon would keep both alive)."""
    ctr = lab.container()
    address = configure(ctr, lab.ok("ADD", ctr))
    subprocess.run(["ip", "netns", "del", ns_name(ctr)], check=True)
    wait_for(lambda: any(f" {address} " in line
                         for line in lab.dnsmasq.log_lines("DHCPRELEASE")),
             "the orphan's lease released (dnsmasq's DHCPRELEASE)")
    wait_for(lambda: lab.dnsmasq.lease_of(address) is None, "dnsmasq to drop the lease")
    assert [r["ip"] for r in lab.daemon.records("dhcp-orphaned")] == [address]
    wait_for(lambda: lab.stored() == [], "the orphan's lease forgotten by the service")
    lab.ok("DEL", ctr)  # the late DEL still succeeds


def test_errors(lab: Lab, netns_factory: NsFactory) -> None:
    ctr = lab.container()
    # bad config keys: code 7 naming the key, nothing asked of the server
    for ipam, key in ((dict(request=[{"option": "no-such-option"}]), "ipam.request[0].option"),
                      (dict(provide=[{"option": "host-name", "value": 7}]),
                       "ipam.provide[0].value"),
                      (dict(timeout="soon"), "ipam.timeout"),
                      (dict(broadcast="yes"), "ipam.broadcast"),
                      (dict(priority="high"), "ipam.priority"),
                      (dict(daemonSocketPath="relative.sock"), "ipam.daemonSocketPath")):
        err = lab.error("ADD", ctr, conf=lab.conf(**ipam))
        assert err["code"] == 7 and key in err["msg"], (ipam, err)
    # no lease service there: code 11 naming the socket; DEL still succeeds
    err = lab.error("ADD", ctr, conf=lab.conf(daemonSocketPath="/nonexistent/dhcp.sock"))
    assert err["code"] == 11 and "/nonexistent/dhcp.sock" in err["msg"], err
    lab.ok("DEL", ctr, conf=lab.conf(daemonSocketPath="/nonexistent/dhcp.sock"))
    # CNI_IFNAME names no interface in the namespace
    err = lab.error("ADD", ctr, ifname="eth9")
    assert err["code"] == 4 and "eth9" in err["msg"], err
    # no server answers: a clear timeout, nothing kept by the service or the server
    lonely = netns_factory("dhcpctr")
    ip(lonely, "link", "add", "eth0", "type", "veth", "peer", "name", "dead0")
    err = lab.error("ADD", lonely, cid="lonely", conf=lab.conf(timeout="1s"))
    assert err["code"] == 11 and "no DHCP lease for eth0 within 1s" in err["msg"], err
    assert lab.stored() == [] and lab.dnsmasq.leases() == []
    assert "UP" not in link_flags(lonely, "eth0")  # set up for DHCP, down again after
    # the socket is root's only: another user cannot even connect
    refused = subprocess.run(["/usr/bin/python3", "-c", "import socket, sys; "
                              "socket.socket(socket.AF_UNIX).connect(sys.argv[1])",
                              lab.dhcp_socket], user=65534, capture_output=True, text=True,
                             check=False)
    assert refused.returncode != 0 and "PermissionError" in refused.stderr, refused
    status = {**lab.conf(), "cniVersion": "1.1.0"}
    lab.ok("STATUS", ctr, conf=status)
    err = lab.error("STATUS", ctr, conf={**status, "ipam": {
        "type": "dhcp", "daemonSocketPath": "/nonexistent/dhcp.sock"}})
    assert err["code"] == 50, err
    assert lab.ok("ADD", ctr)["ips"]  # the service is still fine
    lab.ok("DEL", ctr)


def _veth_plugin(lab: Lab, netns_factory: NsFactory, tmp_path: Path, road: str,
                 conf: dict[str, Any]) -> Callable[..., dict[str, Any]]:
    """ADD/CHECK/DEL of ``conf`` (one plugin, its ipam dhcp) from a fresh node namespace,
    exec'd as the shim (served by the daemon) or in-process in corecni's runtime; the
    node namespace is ``call.node``."""
    node = netns_factory("dhcpnode")
    ctr = netns_factory("dhcpctr")
    runtime = NodeCni(plugin_runtime("in-process", tmp_path / "rt", {
        t: plugin_target(t) for t in (conf["type"], "dhcp")}), node)
    listed = {"cniVersion": "1.0.0", "name": "dhcpnet", "plugins": [conf]}

    def call(command: str, **kw: Any) -> dict[str, Any]:
        if road == "shim":
            return lab.ok(command, ctr, conf=kw.get("conf", conf), ptype=conf["type"],
                          caller=node)
        verb = {"ADD": runtime.add, "CHECK": runtime.check, "DEL": runtime.delete}[command]
        return verb(listed, ctr) or {}

    call.node, call.ctr = node, ctr  # type: ignore[attr-defined]
    return call


@pytest.mark.parametrize("road", ["shim", "in-process"])
def test_bridge_with_dhcp(lab: Lab, netns_factory: NsFactory, tmp_path: Path,
                          road: str) -> None:
    """bridge + dhcp, Go's order: the veth is a port of the bridge before the lease is
    asked for, so the DHCP exchange goes out through the bridge. The node's bridge
    ``cni0`` has an uplink port to the server's segment (where dnsmasq serves); the
    container gets a lease, reaches the server, and DEL releases the lease (through
    the container interface, before the veth goes); DEL again is fine."""
    conf = {"cniVersion": "1.0.0", "name": "dhcpnet", "type": "bridge", "bridge": "cni0",
            "ipam": {"type": "dhcp", "daemonSocketPath": lab.dhcp_socket}}
    call = _veth_plugin(lab, netns_factory, tmp_path, road, conf)
    node, ctr = call.node, call.ctr  # type: ignore[attr-defined]
    ip(node, "link", "add", "cni0", "type", "bridge")
    wire_link(lab.server, node, "uplink", up=True)
    ip(node, "link", "set", "uplink", "master", "cni0")
    ip(node, "link", "set", "cni0", "up")
    result = call("ADD")
    [ipc] = result["ips"]
    address = ipc["address"].split("/")[0]
    assert ipaddress.ip_address(address) in SUBNET and ipc["gateway"] == SERVER_IP
    assert [a for a in addrs(ctr, "eth0") if a.startswith("10.77.")] == [ipc["address"]]
    assert ping(ctr, SERVER_IP), "the container does not reach the DHCP server"
    lease = lab.dnsmasq.lease_of(address)
    assert lease is not None and lease.client_id == client_id_hex("c1"), lab.dnsmasq.leases()
    assert [s["ip"] for s in lab.stored()] == [address]
    host = result["interfaces"][1]["name"]
    assert _master(node, host) == "cni0"
    call("CHECK", conf={**conf, "prevResult": result})
    call("DEL")
    wait_for(lambda: lab.dnsmasq.lease_of(address) is None, "dnsmasq to drop the lease")
    wait_for(lambda: any(address in line for line in lab.dnsmasq.log_lines("DHCPRELEASE")),
             "dnsmasq to log the DHCPRELEASE")
    assert lab.stored() == []
    assert _links(ctr) == ["lo"] and host not in _links(node)
    assert "cni0" in _links(node)  # the node's own bridge stays
    call("DEL")


def test_bridge_dhcp_failure_after_the_lease(lab: Lab, netns_factory: NsFactory,
                                             tmp_path: Path) -> None:
    """A step after the lease fails (``isGateway``: the DHCP router address, but the
    bridge holds another one): the lease goes back to the server (the DHCPRELEASE
    leaves through the container interface, still there), then the veth goes."""
    conf = {"cniVersion": "1.0.0", "name": "dhcpnet", "type": "bridge", "bridge": "cni0",
            "isGateway": True,
            "ipam": {"type": "dhcp", "daemonSocketPath": lab.dhcp_socket}}
    call = _veth_plugin(lab, netns_factory, tmp_path, "in-process", conf)
    node, ctr = call.node, call.ctr  # type: ignore[attr-defined]
    ip(node, "link", "add", "cni0", "type", "bridge")
    ip(node, "addr", "add", "10.77.0.250/24", "dev", "cni0")
    wire_link(lab.server, node, "uplink", up=True)
    ip(node, "link", "set", "uplink", "master", "cni0")
    ip(node, "link", "set", "cni0", "up")
    with pytest.raises(CNIError) as info:
        call("ADD")
    assert "already has an IP address different from 10.77.0.1/24" in info.value.msg, info.value
    wait_for(lambda: lab.dnsmasq.log_lines("DHCPRELEASE"), "the lease released")
    wait_for(lambda: lab.dnsmasq.leases() == [], "dnsmasq to drop the lease")
    assert lab.stored() == [] and _links(ctr) == ["lo"]
    assert sorted(_links(node)) == ["cni0", "lo", "uplink"]
    assert addrs(node, "cni0") == {"10.77.0.250/24"}


@pytest.mark.parametrize("ptype", ["bridge", "ptp"])
def test_veth_plugins_with_dhcp_no_server(lab: Lab, netns_factory: NsFactory, tmp_path: Path,
                                          ptype: str) -> None:
    """No DHCP server behind the link (a bridge with no uplink; ptp's host end, a bare
    point-to-point peer): the lease service runs the exchange on the container's eth0 -
    it exists when IPAM runs (else code 4 naming it) - and times out with code 11. The
    failed ADD leaves nothing: no veth in node or container, not the bridge it created,
    nothing held by the service or the server."""
    conf: dict[str, Any] = {"cniVersion": "1.0.0", "name": "dhcpnet", "type": ptype, "ipam": {
        "type": "dhcp", "daemonSocketPath": lab.dhcp_socket, "timeout": "1s"}}
    if ptype == "bridge":
        conf["bridge"] = "cni0"
    call = _veth_plugin(lab, netns_factory, tmp_path, "in-process", conf)
    node, ctr = call.node, call.ctr  # type: ignore[attr-defined]
    before = _links(node)
    with pytest.raises(CNIError) as info:
        call("ADD")
    assert info.value.code == 11 and "no DHCP lease for eth0 within 1s" in info.value.msg, \
        info.value
    assert _links(ctr) == ["lo"] and _links(node) == before == ["lo"]
    assert lab.stored() == [] and lab.dnsmasq.leases() == []
    call("DEL")


def _master(ns: str, name: str) -> str:
    out = subprocess.run(["ip", "-n", ns_name(ns), "-j", "link", "show", name],
                         capture_output=True, text=True, check=True).stdout
    return str(json.loads(out)[0].get("master", ""))


def test_lease_reattached_by_check_after_restart(lab: Lab, tmp_path: Path) -> None:
    """A namespace the restarted service cannot find (kept by the runtime at a path of its
    own, seen under the daemon as /proc/<pid>/fd/N): the lease is kept, not renewed, and
    the attachment's next CHECK hands the namespace back; renewals resume."""
    named = lab.container()
    pinned = tmp_path / "runtime-netns"
    pinned.touch()
    subprocess.run(["mount", "--bind", named, str(pinned)], check=True)
    try:
        subprocess.run(["ip", "netns", "del", ns_name(named)], check=True)  # only ours now
        ctr = str(pinned)
        result = lab.ok("ADD", ctr)
        address = configure_at(ctr, result)
        lab.daemon.stop(signal.SIGKILL)
        lab.start_daemon()
        [reloaded] = [r for r in lab.daemon.records("dhcp-reloaded")]
        assert reloaded["ip"] == address and not reloaded["netnsFound"]
        lab.ok("CHECK", ctr, conf={**lab.conf(), "prevResult": result})
        assert [r["ip"] for r in lab.daemon.records("dhcp-reattached")] == [address]
        renewed = len(lab.daemon.records("dhcp-renewed"))
        wait_for(lambda: len(lab.daemon.records("dhcp-renewed")) > renewed,
                 "a renewal after the re-attach")
        lab.ok("DEL", ctr)
        wait_for(lambda: lab.dnsmasq.leases() == [], "the lease released")
    finally:
        subprocess.run(["umount", str(pinned)], check=False)


def configure_at(ns_path: str, result: dict[str, Any]) -> str:
    """``configure`` for a namespace that has no ``ip netns`` name."""
    address = result["ips"][0]["address"]
    for args in (["addr", "add", address, "dev", "eth0"], ["link", "set", "eth0", "up"]):
        subprocess.run(["nsenter", f"--net={ns_path}", "ip", *args], check=True)
    return str(address.split("/")[0])


@pytest.mark.skipif(not os.path.exists(f"{GO_PLUGINS}/dhcp"),
                    reason="Debian's Go plugins (containernetworking-plugins) missing")
def test_node_switches_from_gos_dhcp_daemon(lab: Lab, tmp_path: Path) -> None:
    """Go's ``dhcp daemon`` got the lease; the node moves to corecni's service: the same
    attachment gets the same address (Go's client identifier), never a second lease."""
    ctr = lab.container()
    ip(ctr, "link", "set", "eth0", "up")
    go_sock = str(tmp_path / "go" / "dhcp.sock")
    go_daemon = subprocess.Popen([f"{GO_PLUGINS}/dhcp", "daemon", "-socketpath", go_sock],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: os.path.exists(go_sock), "Go's dhcp daemon socket")
        env = {"PATH": os.environ["PATH"], "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1",
               "CNI_NETNS": ctr, "CNI_IFNAME": "eth0", "CNI_PATH": GO_PLUGINS}
        go_conf = {**lab.conf(daemonSocketPath=go_sock), "cniVersion": "0.4.0"}
        out = subprocess.run([f"{GO_PLUGINS}/dhcp"], input=json.dumps(go_conf).encode(),
                             env=env, capture_output=True, check=False, timeout=60)
        assert out.returncode == 0, out
        go_address = json.loads(out.stdout)["ips"][0]["address"]
    finally:
        go_daemon.terminate()  # Go's daemon keeps its leases at the server when it stops
        go_daemon.wait(10)
    assert [e.client_id for e in lab.dnsmasq.leases()] == [client_id_hex("c1")]
    ours = lab.ok("ADD", ctr)
    assert ours["ips"][0]["address"] == go_address
    assert [(e.ip, e.client_id) for e in lab.dnsmasq.leases()] == \
        [(go_address.split("/")[0], client_id_hex("c1"))]
    lab.ok("DEL", ctr)
    wait_for(lambda: lab.dnsmasq.leases() == [], "corecni's DEL to release it")
