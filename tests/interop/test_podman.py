"""podman (CNI backend) runs a ``bridge -> portmap -> firewall -> tuning`` network on
corecni's plugins.

podman puts its bridge and rules in the namespace it runs in, so the whole podman
session runs inside a test network namespace (``nsenter --net``) and a private
mount namespace (``unshare -m``, its own ``/run/netns`` and ``/sys``): every bridge,
rule and container namespace lands there. Afterwards the machine's own namespace
must show no new link, rule or nft table (the ``root_netns_guard`` fixture, plus an
``iptables-save`` comparison here).

Setup as this machine needs it: a ``containers.conf`` in a temp dir (``CONTAINERS_CONF``)
with ``network_backend = "cni"``, ``cni_plugin_dirs`` (corecni's launchers; Go's
tuning until corecni's lands) and a temp network config dir; temp ``--root`` and
``--runroot`` (vfs); ``--runtime runc --cgroup-manager=cgroupfs`` and explicit
ulimits; an image imported offline from busybox-static.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import textwrap
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from corecni import daemon_wire as wire
from corecni import launcher
from corecni.testing import ns_name
from tests._daemon import running_daemon

pytestmark = [pytest.mark.interop, pytest.mark.root,
              pytest.mark.usefixtures("root_netns_guard")]

PODMAN, RUNC, BUSYBOX = shutil.which("podman"), shutil.which("runc"), "/bin/busybox"
SUBNET, GATEWAY, BRIDGE = "10.89.7.0/24", "10.89.7.1", "cni-ccni7"
HOST_PORT = 18080
CHAIN = ("bridge", "host-local", "portmap", "firewall", "tuning")


def _ours() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group="corecni.plugins")}


def plugin_dir(bindir: Path, shim: str | None = None) -> dict[str, str]:
    """corecni's launchers (or shims, with ``shim``) for every type of the chain it has;
    what it lacks from Go. Returns type -> "corecni" | "go"."""
    ours = _ours()
    launcher.install(str(bindir), [launcher.LauncherSpec(t, ours[t]) for t in CHAIN
                                   if t in ours], shim=shim)
    origin = {}
    for plugin_type in CHAIN:
        if plugin_type not in ours:
            shutil.copy(f"/usr/lib/cni/{plugin_type}", bindir / plugin_type)
        origin[plugin_type] = "corecni" if plugin_type in ours else "go"
    return origin


def write_setup(tmp: Path, shim: str | None = None) -> tuple[dict[str, str], Path]:
    bindir, confdir = tmp / "cni-bin", tmp / "cni-conf"
    confdir.mkdir()
    origin = plugin_dir(bindir, shim)
    (tmp / "containers.conf").write_text(textwrap.dedent(f"""\
        [engine]
        cgroup_manager = "cgroupfs"
        events_logger = "file"
        runtime = "runc"
        [network]
        network_backend = "cni"
        cni_plugin_dirs = ["{bindir}"]
        network_config_dir = "{confdir}"
        default_network = "ccninet"
        """))
    # podman's own CNI template (bridge -> portmap -> firewall -> tuning), host-local's
    # store moved into the test's temp dir
    (confdir / "ccninet.conflist").write_text(json.dumps({
        "cniVersion": "0.4.0", "name": "ccninet", "plugins": [
            {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": True,
             "hairpinMode": True,
             "ipam": {"type": "host-local", "routes": [{"dst": "0.0.0.0/0"}],
                      "ranges": [[{"subnet": SUBNET, "gateway": GATEWAY}]],
                      "dataDir": str(tmp / "ipam")}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
            {"type": "firewall", "backend": ""},
            {"type": "tuning"}]}, indent=1))
    rootfs = tmp / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    (rootfs / "www").mkdir()
    (rootfs / "www" / "index.html").write_text("hello from corecni's podman network\n")
    shutil.copy(BUSYBOX, rootfs / "bin" / "busybox")
    for applet in ("sh", "httpd", "wget", "sleep", "ip", "cat"):
        (rootfs / "bin" / applet).symlink_to("busybox")
    return origin, rootfs


SESSION = r"""
set -eu
mount -t tmpfs tmpfs /run/netns
mkdir -p $S/oldsys && mount --rbind /sys $S/oldsys
mount -t sysfs sysfs /sys  # /sys/class/net of this namespace, as ip netns exec does
mount --rbind $S/oldsys/fs/cgroup /sys/fs/cgroup  # runc needs the cgroup mounts
ip link set lo up
ip link add ccni-up type veth peer name ccni-up-peer
ip addr add 10.88.99.1/24 dev ccni-up
ip link set ccni-up up
P="podman --root $S/root --runroot $S/rr --storage-driver vfs --runtime runc \
   --cgroup-manager=cgroupfs --events-backend file"
RUN="--ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --network ccninet"
tar -C $T/rootfs -c . | $P import - localhost/ccni-bb:latest >/dev/null
$P run -d $RUN --name srv -p 10.88.99.1:{port}:80 -p {port2}:80 localhost/ccni-bb:latest \
    httpd -f -p 80 -h /www >/dev/null
SRV=$($P inspect srv --format '{{{{.NetworkSettings.Networks.ccninet.IPAddress}}}}')
echo "srv-ip $SRV"
for i in 1 2 3 4 5 6 7 8 9 10; do
  $P exec srv wget -qO- http://127.0.0.1:80/ >/dev/null 2>&1 && break; sleep 0.3; done
echo "peer $($P run --rm $RUN localhost/ccni-bb:latest wget -qO- http://$SRV:80/)"
echo "node $(wget -qO- http://10.88.99.1:{port}/ 2>&1 || busybox wget -qO- http://10.88.99.1:{port}/)"
echo "localhost $(busybox wget -qO- http://127.0.0.1:{port2}/)"
echo "rules-up $(iptables-save -t nat | grep -c 'CNI-DN-' || true)"
$P rm -f srv >/dev/null
echo "rules-down $(iptables-save -t nat | grep -c 'CNI-DN-' || true)"
echo "forward-down $(iptables-save -t filter | grep -c "$SRV/32" || true)"
echo "bridge-ports $(ip -o link show master {bridge} | wc -l)"
"""


@pytest.mark.skipif(PODMAN is None or RUNC is None or not os.path.exists(BUSYBOX),
                    reason="podman, runc or busybox-static not installed (make deps)")
@pytest.mark.parametrize("mode", ["launcher", "shim"])
def test_podman_network_on_corecni(netns_factory: Any, tmp_path: Path, mode: str,
                                   request: pytest.FixtureRequest) -> None:
    """With ``shim``: corecni's shims served by a running ``corecni daemon`` (podman's
    namespaces live on a tmpfs only its mount namespace sees: the shim passes them as
    descriptors)."""
    shim = launcher.shim_binary() if mode == "shim" else None
    if mode == "shim":
        assert shim is not None, "corecni's shim is not built (make venv builds it)"
        daemon = running_daemon(tmp_path / "daemon")
        proc_daemon = daemon.__enter__()
        request.addfinalizer(lambda: daemon.__exit__(None, None, None))
    origin, _ = write_setup(tmp_path, shim)
    node = netns_factory("podman")
    root_nat = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True,
                              text=True, check=False).stdout
    script = SESSION.format(port=HOST_PORT, port2=HOST_PORT + 1, bridge=BRIDGE)
    short = tempfile.mkdtemp(prefix="ccnip-", dir="/tmp")  # podman: runroot < 50 chars
    request.addfinalizer(lambda: shutil.rmtree(short, ignore_errors=True))
    env = {**os.environ, "T": str(tmp_path), "S": short,
           "CONTAINERS_CONF": str(tmp_path / "containers.conf"),
           **({wire.SOCKET_ENV: proc_daemon.socket} if mode == "shim" else {}),
           "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    proc = subprocess.run(["nsenter", f"--net=/run/netns/{ns_name(node)}", "unshare", "-m",
                           "--propagation", "private", "sh", "-c", script], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    out = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    assert proc.returncode == 0, (proc.stdout, proc.stderr, origin)
    srv = out["srv-ip"]
    assert srv.startswith("10.89.7.")
    assert out["peer"] == "hello from corecni's podman network"  # two containers talk
    assert out["node"] == "hello from corecni's podman network"  # -p HOST:CONTAINER
    assert out["localhost"] == "hello from corecni's podman network"
    assert int(out["rules-up"]) > 0
    assert out["rules-down"] == "0" and out["forward-down"] == "0"  # podman rm: no rule
    assert out["bridge-ports"] == "0"
    assert [f for f in (tmp_path / "ipam" / "ccninet").iterdir()
            if f.name[0].isdigit()] == []  # no IP held
    assert {t for t, o in origin.items() if o == "corecni"} >= {"bridge", "host-local",
                                                               "portmap", "firewall"}
    if mode == "shim":  # the calls were the daemon's, none fell back
        calls = proc_daemon.records()
        assert {c["type"] for c in calls} >= {"bridge", "portmap", "firewall"}, calls
        assert all(c["code"] == 0 for c in calls), calls
    # the machine's own namespace saw none of it
    assert subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True,
                          check=False).stdout.count("CNI-") == root_nat.count("CNI-")
