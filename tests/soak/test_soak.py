"""Concurrent ADDs under random SIGKILLs, then DEL and GC: nothing duplicated, nothing left.

``SOAK_ADDS`` (``make test``: 24; ``make soak``: 200) ADDs run ``SOAK_PARALLEL`` (12) at a
time, each a runtime process (``corecni add``, half of them ``--exec-only`` so the
plugins are processes of their own) in the node namespace, each for its own container
namespace, on one bridge network with host-local IPAM and masquerading. A killer picks
runtime and plugin processes at random and SIGKILLs them mid-flight. Then every
attachment is DELeted (no kills) and the network GCed with no valid attachment.

Asserted: no address handed to two containers (results, the IPAM store and the kernel
agree); afterwards no veth, no address in the IPAM store, no cache entry, no
masquerade chain or rule is left, and the IPAM store's lock can be taken at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs
import pytest

from corecni.testing import NetnsFactory, ns_name
from tests.fuzz._node import (
    META_HOST,
    REPO,
    Node,
    firewall,
    links_and_addresses,
    store_files,
)

pytestmark = pytest.mark.root

ADDS = int(os.environ.get("SOAK_ADDS", "24"))
PARALLEL = int(os.environ.get("SOAK_PARALLEL", "12"))
KILL_EVERY = float(os.environ.get("SOAK_KILL_EVERY", "0.4"))  # seconds between kills
NETWORK = "soaknet"
BRIDGE = "soak0"


@attrs.define
class Soak:
    node: Node
    confdir: Path
    cache_dir: Path
    ctrs: list[str]
    live: set[int] = attrs.Factory(set)  # pids of runtime processes now running
    lock: threading.Lock = attrs.Factory(threading.Lock)
    kills: Counter[str] = attrs.Factory(Counter)

    def env(self) -> dict[str, str]:
        return {**os.environ, "NETCONFPATH": str(self.confdir),
                "CNI_PATH": str(self.node.bindir), "CNI_CACHE_DIR": str(self.cache_dir),
                "PYTHONPATH": REPO}

    def runtime(self, *args: str, killable: bool = False) -> subprocess.CompletedProcess[str]:
        """``corecni ARGS`` inside the node namespace (as the node's runtime)."""
        cmd = ["ip", "netns", "exec", ns_name(self.node.node), sys.executable, "-m",
               "corecni.cli", *args]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=self.env(), start_new_session=True)
        if killable:
            with self.lock:
                self.live.add(proc.pid)
        try:
            out, err = proc.communicate(timeout=300)
        finally:
            with self.lock:
                self.live.discard(proc.pid)
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _descendants(pid: int) -> list[int]:
    out: list[int] = []
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            children = [int(c) for c in fh.read().split()]
    except OSError:
        return out
    for child in children:
        out.append(child)
        out.extend(_descendants(child))
    return out


def _killer(soak: Soak, stop: threading.Event, rng: random.Random) -> None:
    """SIGKILL a random runtime process, or one of the plugins it runs, now and then."""
    while not stop.wait(KILL_EVERY * rng.uniform(0.5, 1.5)):
        with soak.lock:
            roots = sorted(soak.live)
        if not roots:
            continue
        root = rng.choice(roots)  # `ip netns exec` execs the runtime: same pid
        plugin_pids = _descendants(root)  # the plugins it exec'd (and theirs)
        if plugin_pids and rng.random() < 0.7:
            victim, what = rng.choice(plugin_pids), "plugin"
        else:
            victim, what = root, "runtime"
        try:
            os.kill(victim, signal.SIGKILL)
            soak.kills[what] += 1
        except ProcessLookupError:
            pass


@pytest.fixture
def soak(tmp_path: Path) -> Iterator[Soak]:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    factory = NetnsFactory()
    try:
        node = Node.make(factory, tmp_path)
        confdir = tmp_path / "net.d"
        confdir.mkdir()
        (confdir / "10-soak.conflist").write_text(json.dumps({
            "cniVersion": "1.0.0", "name": NETWORK,
            "plugins": [{"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": True,
                         "ipam": {"type": "host-local", "dataDir": str(node.data_dir),
                                  "ranges": [[{"subnet": "10.71.0.0/16"}]],
                                  "routes": [{"dst": "0.0.0.0/0"}]}}]}))
        ctrs = [factory("ctr", lo_up=False) for _ in range(ADDS)]
        yield Soak(node=node, confdir=confdir, cache_dir=tmp_path / "cache", ctrs=ctrs)
    finally:
        factory.cleanup()


def container_ipv4(ctr: str) -> set[str]:
    return {address.split("/")[0] for name, *_, addresses in links_and_addresses(ctr)
            if name == "eth0" for address in addresses}


def test_concurrent_adds_with_kills_leave_nothing(soak: Soak) -> None:
    rng = random.Random(int(os.environ.get("SOAK_SEED", "12")))
    modes = [["--exec-only"] if i % 2 else [] for i in range(ADDS)]

    def add(i: int) -> tuple[int, subprocess.CompletedProcess[str]]:
        return i, soak.runtime(*modes[i], "add", NETWORK, soak.ctrs[i], "--container-id",
                               f"soak{i}", killable=True)

    stop = threading.Event()
    killer = threading.Thread(target=_killer, args=(soak, stop, rng), daemon=True)
    killer.start()
    try:
        with ThreadPoolExecutor(PARALLEL) as pool:
            outcomes = list(pool.map(add, range(ADDS)))
    finally:
        stop.set()
        killer.join()
    done = {i: json.loads(p.stdout) for i, p in outcomes if p.returncode == 0}
    failed = {i: p for i, p in outcomes if p.returncode != 0}
    print(f"\nsoak: {ADDS} ADDs, {PARALLEL} at a time: {len(done)} succeeded, "
          f"{len(failed)} failed or killed; kills {dict(soak.kills)}")
    for i, proc in failed.items():
        assert "Traceback" not in proc.stderr, (i, proc.stderr)
        # a killed runtime dies by signal; a killed plugin is a plugin error to the runtime
        assert proc.returncode in (1, -signal.SIGKILL, 128 + signal.SIGKILL), (i, proc)

    # no address is given twice: results, store and kernel
    addresses = [ip["address"].split("/")[0] for r in done.values() for ip in r["ips"]]
    assert len(addresses) == len(set(addresses)), Counter(addresses).most_common(3)
    held = [name for name in store_files(soak.node.data_dir)]
    assert len(held) == len(set(held))
    in_kernel = [a for ctr in soak.ctrs for a in container_ipv4(ctr)]
    assert len(in_kernel) == len(set(in_kernel)), Counter(in_kernel).most_common(3)
    for i, result in done.items():
        assert {ip["address"].split("/")[0] for ip in result["ips"]} <= \
            container_ipv4(soak.ctrs[i])

    # DEL every attachment (even the failed ones: a runtime retries DEL), then GC
    for i in range(ADDS):
        proc = soak.runtime("del", NETWORK, soak.ctrs[i], "--container-id", f"soak{i}")
        assert proc.returncode == 0, (i, proc.stderr)
    proc = soak.runtime("gc", NETWORK)
    assert proc.returncode == 0, proc.stderr

    node_links = {name for name, kind, *_ in links_and_addresses(soak.node.node)}
    assert node_links <= {"lo", BRIDGE, "phys0", "phys0p", "hostdev0", "hostdev0p",
                          META_HOST}, node_links
    for ctr in soak.ctrs:
        assert {name for name, *_ in links_and_addresses(ctr)} == {"lo"}, ctr
    assert store_files(soak.node.data_dir) == frozenset()
    results = soak.cache_dir / "results"
    assert not results.exists() or sorted(os.listdir(results)) == []
    rules = firewall(soak.node.node)
    assert "CNI-" not in rules and "soak" not in rules, rules
    lock_file = soak.node.data_dir / NETWORK / "lock"
    if lock_file.exists():
        fd = os.open(lock_file, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if anyone holds it
        finally:
            os.close(fd)
