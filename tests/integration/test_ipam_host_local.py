"""host-local exec'd through launchers: concurrency, and sharing a data dir with Go's plugin.

Every call here is a real exec with CNI_* variables and stdin, as a runtime
makes it. IPAM touches no interface, so no namespace is needed: CNI_NETNS
points at the test process's own namespace, which nothing here changes.

Go's plugin (Debian's containernetworking-plugins 1.1.1) gets ``cniVersion``
1.0.0, the newest it speaks.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from corecni_contrib.host_local.store import Store

from tests.integration._harness import exec_plugin, go_plugin

GO, needs_go = go_plugin("host-local")
PLUGIN_TYPE = "host-local"  # the conftest fixture ours installs its launcher


def conf(data_dir: Path, subnet: str = "10.88.0.0/24", name: str = "ipamnet",
         **ipam: Any) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": name, "type": "bridge",
            "ipam": {"type": "host-local", "dataDir": str(data_dir),
                     "ranges": [[{"subnet": subnet}]], **ipam}}


def call(binary: str, command: str, config: dict[str, Any], cid: str, ifname: str = "eth0",
         cni_args: str = "") -> tuple[int, dict[str, Any]]:
    return exec_plugin(binary, command, config, cid=cid, ifname=ifname, cni_args=cni_args,
                       timeout=120)


def add_ok(binary: str, config: dict[str, Any], cid: str, ifname: str = "eth0",
           cni_args: str = "") -> str:
    rc, out = call(binary, "ADD", config, cid, ifname, cni_args)
    assert rc == 0, (binary, out)
    assert "interfaces" not in out
    return str(out["ips"][0]["address"])


def ok(binary: str, command: str, config: dict[str, Any], cid: str,
       ifname: str = "eth0") -> None:
    rc, out = call(binary, command, config, cid, ifname)
    assert rc == 0, (binary, command, out)


def ip_files(data_dir: Path, network: str = "ipamnet") -> dict[str, bytes]:
    d = data_dir / network
    return {p.name: p.read_bytes() for p in d.iterdir()
            if p.name != "lock" and not p.name.startswith("last_reserved_ip.")} \
        if d.exists() else {}


# ---------------------------------------------------------------------------
# ours, exec'd
# ---------------------------------------------------------------------------

def test_exec_lifecycle_and_error_json(ours: str, tmp_path: Path) -> None:
    config = conf(tmp_path / "state")
    assert add_ok(ours, config, "c1") == "10.88.0.2/24"
    ok(ours, "CHECK", config, "c1")
    ok(ours, "DEL", config, "c1")
    ok(ours, "DEL", config, "c1")
    rc, out = call(ours, "CHECK", config, "c1")
    assert rc == 1 and out["code"] == 999 and "Failed to find address" in out["msg"]
    rc, out = call(ours, "ADD", conf(tmp_path / "state", subnet="10.88.0.1/24"), "c2")
    assert rc == 1 and out["code"] == 7 and out["msg"].startswith("invalid range set 0:")
    assert ip_files(tmp_path / "state") == {}


def test_fifty_concurrent_adds_then_dels(ours: str, tmp_path: Path) -> None:
    config = conf(tmp_path / "state")
    cids = [f"ctr-{i:02d}" for i in range(50)]
    with ThreadPoolExecutor(max_workers=50) as pool:
        addresses = list(pool.map(lambda cid: add_ok(ours, config, cid), cids))
    assert len(set(addresses)) == 50
    files = ip_files(tmp_path / "state")
    assert len(files) == 50
    assert {f"{name}/24" for name in files} == set(addresses)
    assert sorted(v.split(b"\r\n")[0].decode() for v in files.values()) == cids
    with ThreadPoolExecutor(max_workers=50) as pool:
        list(pool.map(lambda cid: ok(ours, "DEL", config, cid), cids))
    assert ip_files(tmp_path / "state") == {}


DUMP = """
import atexit, json, sys
path, out = sys.argv[1], sys.argv[2]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv = [path]
exec(compile(open(path).read(), path, "exec"), {"__name__": "__main__"})
"""


def test_exec_path_is_import_light(ours: str, tmp_path: Path) -> None:
    dump = tmp_path / "modules.json"
    env = {"PATH": os.environ["PATH"], "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1",
           "CNI_NETNS": "/proc/self/ns/net", "CNI_IFNAME": "eth0",
           "CNI_PATH": os.path.dirname(ours), "CNI_NETNS_OVERRIDE": "1"}
    proc = subprocess.run([sys.executable, "-sE", "-c", DUMP, ours, str(dump)],
                          input=json.dumps(conf(tmp_path / "s")).encode(), env=env,
                          capture_output=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    modules = set(json.loads(dump.read_text()))
    assert "corecni_contrib.host_local.plugin" in modules
    assert modules & {"pyroute2", "importlib.metadata", "corecni.registry", "corecni.invoke",
                      "subprocess", "corecni.net"} == set()


# ---------------------------------------------------------------------------
# ours and Go's on one data dir
# ---------------------------------------------------------------------------

@needs_go
@pytest.mark.interop
def test_alternating_adds_share_the_walk(ours: str, tmp_path: Path) -> None:
    """Each continues after the other's last_reserved_ip: a gapless sequence, no duplicate."""
    config = conf(tmp_path / "state")
    got = [add_ok(GO if i % 2 else ours, config, f"c{i}") for i in range(10)]
    assert got == [f"10.88.0.{i}/24" for i in range(2, 12)]
    files = ip_files(tmp_path / "state")
    assert files == {f"10.88.0.{i + 2}": f"c{i}\r\neth0".encode() for i in range(10)}
    last = (tmp_path / "state" / "ipamnet" / "last_reserved_ip.0").read_bytes()
    assert last == b"10.88.0.11"


@needs_go
@pytest.mark.interop
@pytest.mark.parametrize(("first", "second"), [("go", "ours"), ("ours", "go")])
def test_last_reserved_ip_is_honoured(ours: str, tmp_path: Path, first: str,
                                      second: str) -> None:
    impl = {"go": GO, "ours": ours}
    config = conf(tmp_path / "state")
    assert add_ok(impl[first], config, "a") == "10.88.0.2/24"
    assert add_ok(impl[first], config, "b") == "10.88.0.3/24"
    ok(impl[first], "DEL", config, "a")
    # .2 is free again, but the walk continues after .3
    assert add_ok(impl[second], config, "c") == "10.88.0.4/24"
    # and a last_reserved_ip written by hand (say, by an older node) is followed too
    (tmp_path / "state" / "ipamnet" / "last_reserved_ip.0").write_text("10.88.0.100")
    assert add_ok(impl[second], config, "d") == "10.88.0.101/24"


@needs_go
@pytest.mark.interop
@pytest.mark.parametrize(("adder", "deleter"), [("go", "ours"), ("ours", "go")])
def test_del_and_check_by_the_other_implementation(ours: str, tmp_path: Path, adder: str,
                                                   deleter: str) -> None:
    impl = {"go": GO, "ours": ours}
    config = conf(tmp_path / "state")
    config["ipam"]["ranges"].append([{"subnet": "fd88::/64"}])
    add_ok(impl[adder], config, "x1")
    add_ok(impl[adder], config, "x1", ifname="net1")
    add_ok(impl[adder], config, "x2")
    ok(impl[deleter], "CHECK", config, "x1")
    ok(impl[deleter], "DEL", config, "x1")
    assert sorted(ip_files(tmp_path / "state")) == \
        ["10.88.0.3", "10.88.0.4", "fd88::3", "fd88::4"]
    rc, _ = call(impl[deleter], "CHECK", config, "x1")
    assert rc == 1
    ok(impl[deleter], "DEL", config, "x1", ifname="net1")
    ok(impl[deleter], "DEL", config, "x2")
    assert ip_files(tmp_path / "state") == {}


@needs_go
@pytest.mark.interop
def test_concurrent_mixed_adds_never_collide(ours: str, tmp_path: Path) -> None:
    config = conf(tmp_path / "state")
    jobs = [(GO if i % 2 else ours, f"m{i:02d}") for i in range(40)]
    with ThreadPoolExecutor(max_workers=40) as pool:
        addresses = list(pool.map(lambda job: add_ok(job[0], config, job[1]), jobs))
    assert len(set(addresses)) == 40 and len(ip_files(tmp_path / "state")) == 40
    with ThreadPoolExecutor(max_workers=40) as pool:
        list(pool.map(lambda job: ok(GO if job[0] == ours else ours, "DEL", config, job[1]),
                      jobs))
    assert ip_files(tmp_path / "state") == {}


@needs_go
@pytest.mark.interop
def test_go_waits_for_our_lock(tmp_path: Path) -> None:
    config = conf(tmp_path / "state")
    done = threading.Event()
    result: list[str] = []

    def go_add() -> None:
        result.append(add_ok(GO, config, "waiter"))
        done.set()

    with Store(str(tmp_path / "state"), "ipamnet") as store:
        thread = threading.Thread(target=go_add)
        thread.start()
        time.sleep(0.5)
        assert not done.is_set(), "Go's host-local ran while we held the lock"
        assert store.reserve("holder", "eth0", ipaddress.ip_address("10.88.0.2"), 0)
    assert done.wait(30)
    thread.join(30)
    assert result == ["10.88.0.3/24"]  # it saw our reservation and our last_reserved_ip


@needs_go
@pytest.mark.interop
def test_requested_ip_taken_by_the_other_implementation(ours: str, tmp_path: Path) -> None:
    config = conf(tmp_path / "state")
    assert add_ok(GO, config, "g", cni_args="IgnoreUnknown=1;IP=10.88.0.50") == "10.88.0.50/24"
    rc, out = call(ours, "ADD", config, "o", cni_args="IP=10.88.0.50")
    assert rc == 1 and "10.88.0.50 is not available" in out["msg"]
    assert add_ok(ours, config, "o", cni_args="IP=10.88.0.60") == "10.88.0.60/24"
    rc, out = call(GO, "ADD", config, "g2", cni_args="IgnoreUnknown=1;IP=10.88.0.60")
    assert rc == 1 and "10.88.0.60 is not available" in out["msg"]


# ---------------------------------------------------------------------------
# same input, same output: ours vs Go's on fresh data dirs
# ---------------------------------------------------------------------------

DIFFERENTIAL: list[tuple[str, dict[str, Any], str]] = [
    ("readme", {"ranges": [
        [{"subnet": "10.10.0.0/16", "rangeStart": "10.10.1.20", "rangeEnd": "10.10.3.50",
          "gateway": "10.10.0.254"}, {"subnet": "172.16.5.0/24"}],
        [{"subnet": "3ffe:ffff:0:01ff::/64", "rangeStart": "3ffe:ffff:0:01ff::0010",
          "rangeEnd": "3ffe:ffff:0:01ff::0020"}]],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.10.5.1"},
                   {"dst": "3ffe:ffff:0:01ff::1/64"}]}, ""),
    ("legacy", {"subnet": "10.77.0.0/24", "rangeStart": "10.77.0.100",
                "gateway": "10.77.0.254"}, ""),
    ("requested", {"ranges": [[{"subnet": "10.66.0.0/24"}], [{"subnet": "fd66::/64"}]]},
     "IgnoreUnknown=1;IP=fd66::42"),
    ("requested-cidr", {"ranges": [[{"subnet": "10.66.0.0/24"}]]}, "IP=10.66.0.9/24"),
    ("two-v4-sets", {"ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "10.2.0.0/24"}]]}, ""),
]


@needs_go
@pytest.mark.interop
@pytest.mark.parametrize("version", ["1.0.0", "0.3.1", "0.2.0"])
@pytest.mark.parametrize(("label", "ipam", "cni_args"), DIFFERENTIAL,
                         ids=[d[0] for d in DIFFERENTIAL])
def test_same_result_as_go(ours: str, tmp_path: Path, version: str, label: str,
                           ipam: dict[str, Any], cni_args: str) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("domain example.com\nnameserver 192.0.2.53\nsearch a b\noptions ndots:2\n")
    outputs = []
    for impl, state in ((GO, "go"), (ours, "ours")):
        config = conf(tmp_path / state, resolvConf=str(resolv))
        config["cniVersion"] = version
        config["ipam"].pop("ranges")
        config["ipam"].update(ipam)
        outputs.append(call(impl, "ADD", config, "c1", cni_args=cni_args))
    (go_rc, go_out), (our_rc, our_out) = outputs
    assert our_rc == go_rc
    if go_rc:  # 0.2.0 and two addresses of one family: both refuse (ours with code 7)
        assert label == "two-v4-sets" and version == "0.2.0"
        assert (go_out["code"], our_out["code"]) == (999, 7)
        assert "does not support more than 1 address per family" in go_out["msg"]
        assert "does not support more than 1 address per family" in our_out["msg"]
    else:
        assert our_out == go_out
    assert ip_files(tmp_path / "ours") == ip_files(tmp_path / "go")


@needs_go
@pytest.mark.interop
def test_exhaustion_message_matches_go(ours: str, tmp_path: Path) -> None:
    outs = []
    for impl, state in ((GO, "go"), (ours, "ours")):
        config = conf(tmp_path / state, subnet="10.99.0.0/30")
        add_ok(impl, config, "first")
        outs.append(call(impl, "ADD", config, "second"))
    (go_rc, go_out), (our_rc, our_out) = outs
    assert go_rc == our_rc == 1
    assert our_out["msg"] == go_out["msg"] == \
        "failed to allocate for range 0: no IP addresses available in range set: " \
        "10.99.0.1-10.99.0.2"
    assert our_out["code"] == go_out["code"] == 999
