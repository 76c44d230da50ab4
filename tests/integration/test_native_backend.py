"""The native backend's own promises, against the real kernel in throwaway namespaces.

The behaviour it shares with the pyroute2 backend is covered by
``test_net_backend.py`` (parametrized over both); this file checks what only the
native batcher has: one sendmsg per phase, ACK-to-request mapping, rollback of
a partially applied phase, ENOBUFS, EPERM, chunking of huge batches, thread
safety of the per-thread setns, read-back parity with pyroute2 and that
pyroute2 is never imported.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from corecni import netns
from corecni.net.base import Neighbour, NetError, Route
from corecni.testing import ip_json, ns_name

pytest.importorskip("corecni._native")
from corecni.net.native_backend import NativeBackend, NativeBatch

pytestmark = pytest.mark.root

NsFactory = Callable[..., str]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def be() -> NativeBackend:
    return NativeBackend()


@pytest.fixture(autouse=True)
def _thread_netns_unchanged() -> Iterator[None]:
    before = netns.current_inode()
    yield None
    assert netns.current_inode() == before


def names(path: str) -> set[str]:
    return {str(item["ifname"]) for item in ip_json(path, "link", "show")}


def ip(path: str, *args: str) -> None:
    subprocess.run(["ip", "-n", ns_name(path), *args], check=True)


def run_python(code: str, *wrapper: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([*wrapper, sys.executable, "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, cwd=ROOT, env=env, check=False)


@pytest.fixture
def bridge_node(be: NativeBackend, node_netns: str) -> str:
    (be.batch(node_netns).add_bridge("br0").set_link("br0", up=True)
     .add_address("br0", "10.66.0.1/24").commit())
    return node_netns


# --- one syscall per phase --------------------------------------------------------

def test_container_attach_is_one_sendmsg_per_namespace(be: NativeBackend, bridge_node: str,
                                                        container_netns: str) -> None:
    node, ctr = bridge_node, container_netns
    host = (be.batch(node)
            .add_veth("veth1", "eth0", peer_netns=ctr, mtu=1400)
            .set_link("veth1", master="br0", up=True))
    host.commit()
    assert host.stats["sendmsgs"] == 1 and host.stats["phases"] == 1
    assert host.stats["messages"] == 2 and host.stats["recvs"] == 1
    inside = (be.batch(ctr)
              .set_link("eth0", up=True)
              .add_address("eth0", "10.66.0.2/24")
              .add_address("eth0", "fd66::2/64", nodad=True)
              .add_route(Route(dst="0.0.0.0/0", gateway="10.66.0.1", ifname="eth0"))
              .add_neighbour(Neighbour("eth0", "10.66.0.1", "02:00:00:00:66:01")))
    inside.commit()
    assert inside.stats["sendmsgs"] == 1 and inside.stats["messages"] == 5
    [default] = ip_json(ctr, "route", "show", "default")
    assert default["gateway"] == "10.66.0.1"
    assert ip_json(node, "link", "show", "veth1")[0]["master"] == "br0"


def test_a_link_created_earlier_in_the_batch_is_used_later(be: NativeBackend, node_netns: str,
                                                           container_netns: str) -> None:
    """The bridge's index is needed for IFLA_MASTER / the address: a second phase."""
    batch = (be.batch(node_netns)
             .add_bridge("br7")
             .add_veth("v7", "eth0", peer_netns=container_netns)
             .set_link("v7", master="br7", up=True)
             .add_address("br7", "10.7.0.1/24")
             .set_link("br7", up=True))
    batch.commit()
    assert batch.stats["phases"] == 2 and batch.stats["sendmsgs"] == 2
    assert ip_json(node_netns, "link", "show", "v7")[0]["master"] == "br7"
    out = subprocess.run(["ip", "-n", ns_name(node_netns), "-4", "-o", "addr", "show", "br7"],
                         check=True, capture_output=True, text=True).stdout
    assert "inet 10.7.0.1/24" in out


def test_huge_batches_are_chunked_and_every_ack_collected(be: NativeBackend,
                                                          node_netns: str) -> None:
    be.batch(node_netns).add_bridge("big0").commit()
    batch = be.batch(node_netns)
    for i in range(1500):
        batch.add_address("big0", f"10.{100 + i // 250}.{i % 250}.1/32")
    batch.commit()
    assert batch.stats["messages"] == 1500 and batch.stats["sendmsgs"] >= 2
    got = {a.address for a in be.addresses(node_netns, ifname="big0")}
    assert len(got) == 1500


# --- errors, each naming the request ----------------------------------------------

def test_eexist_and_enodev_name_the_request(be: NativeBackend, node_netns: str) -> None:
    be.batch(node_netns).add_bridge("x0").commit()
    cases: list[tuple[Callable[[], NativeBatch], int, str, str]] = [
        (lambda: be.batch(node_netns).add_bridge("x0"), errno.EEXIST, "add_bridge", "x0"),
        (lambda: be.batch(node_netns).add_veth("x0", "x0p"), errno.EEXIST, "add_veth",
         "x0 peer x0p"),
        (lambda: be.batch(node_netns).set_link("ghost0", up=True), errno.ENODEV, "set_link",
         "ghost0"),
        (lambda: be.batch(node_netns).del_link("ghost0"), errno.ENODEV, "del_link", "ghost0"),
        (lambda: be.batch(node_netns).add_address("ghost0", "10.0.0.1/24"), errno.ENODEV,
         "add_address", "ghost0 10.0.0.1/24"),
        (lambda: be.batch(node_netns).add_macvlan("m0", "ghost0"), errno.ENODEV,
         "add_macvlan", "m0 on ghost0"),
    ]
    for make, err, op, obj in cases:
        with pytest.raises(NetError) as info:
            make().commit()
        assert (info.value.errno, info.value.op, info.value.obj) == (err, op, obj)
        assert str(info.value).startswith(f"{op} {obj}: {errno.errorcode[err]}")
    assert names(node_netns) == {"lo", "x0"}


def test_request_4_of_7_fails_and_the_phase_is_rolled_back(
        be: NativeBackend, bridge_node: str, container_netns: str) -> None:
    node, ctr = bridge_node, container_netns
    before = names(node)
    batch = (be.batch(node)
             .add_veth("a0", "a0p", peer_netns=ctr)                        # 0
             .set_link("a0", master="br0", up=True)                        # 1
             .add_bridge("nb1")                                            # 2
             .add_route(Route(dst="10.50.0.0/16", gateway="192.0.2.1"))    # 3: unreachable
             .add_veth("b0", "b0p", peer_netns=ctr)                        # 4
             .set_link("b0", up=True)                                      # 5
             .add_bridge("nb2"))                                           # 6
    with pytest.raises(NetError) as info:
        batch.commit()
    exc = info.value
    assert (exc.errno, exc.op, exc.obj) == (errno.ENETUNREACH, "add_route",
                                            "10.50.0.0/16 via 192.0.2.1")
    assert "rolled back 4 created link(s)" in exc.detail
    assert exc.detail.split(";")[0].strip()  # the kernel's extended ACK message
    # everything went out in one sendmsg; the kernel ran 4..6 too, so they are undone
    assert batch.stats["sendmsgs"] == 1 and batch.stats["rolled_back"] == 4
    assert names(node) == before
    assert names(ctr) == {"lo"}
    assert "master" not in str(ip_json(node, "link", "show", "br0"))


def test_every_failure_is_mapped_to_its_own_request(be: NativeBackend, node_netns: str) -> None:
    be.batch(node_netns).add_bridge("e0").commit()
    batch = (be.batch(node_netns)
             .add_bridge("f0")
             .add_bridge("e0")                       # EEXIST
             .set_link("f0", mtu=70000)              # EINVAL (too big for a bridge)
             .set_link("nosuch", up=True))           # ENODEV
    with pytest.raises(NetError) as info:
        batch.commit()
    assert (info.value.op, info.value.obj, info.value.errno) == ("add_bridge", "e0",
                                                                 errno.EEXIST)
    assert "also failed: set_link f0: EINVAL, set_link nosuch: ENODEV" in info.value.detail
    assert names(node_netns) == {"lo", "e0"}


def test_eperm_without_cap_net_admin(node_netns: str) -> None:
    """CAP_NET_ADMIN dropped (CAP_SYS_ADMIN kept for setns): the kernel refuses."""
    code = f"""
        import errno, sys
        from corecni.net.native_backend import NativeBackend, NativeBatch
        from corecni.net.base import NetError
        try:
            NativeBackend().batch({node_netns!r}).add_bridge("p0").add_bridge("p1").commit()
        except NetError as exc:
            assert (exc.errno, exc.op, exc.obj) == (errno.EPERM, "add_bridge", "p0"), exc
            print("EPERM-OK", exc)
        # reading needs no privilege
        assert [l.name for l in NativeBackend().links({node_netns!r})] == ["lo"]
    """
    proc = run_python(code, "setpriv", "--inh-caps=-net_admin", "--bounding-set=-net_admin",
                      "--")
    assert proc.returncode == 0, proc.stderr
    assert "EPERM-OK add_bridge p0: EPERM" in proc.stdout
    assert names(node_netns) == {"lo"}


def test_eperm_entering_a_namespace_from_a_user_namespace(node_netns: str) -> None:
    code = f"""
        import errno
        from corecni.net.native_backend import NativeBackend, NativeBatch
        from corecni.net.base import NetError
        try:
            NativeBackend().batch({node_netns!r}).add_bridge("p0").commit()
        except NetError as exc:
            assert (exc.errno, exc.op) == (errno.EPERM, "commit"), exc
            assert {node_netns!r} in exc.obj
            print("EPERM-OK")
    """
    proc = run_python(code, "unshare", "--user", "--map-root-user", "--")
    if proc.returncode != 0 and "unshare" in proc.stderr:
        pytest.skip(f"cannot create a user namespace: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    assert "EPERM-OK" in proc.stdout


def test_enobufs_when_acks_overrun_the_socket(node_netns: str, container_netns: str) -> None:
    """A receive buffer too small for the ACKs: the first request whose ACK was dropped
    is reported (its outcome is unknown) and everything the batch may have created is
    removed again."""
    tiny = NativeBackend(rcvbuf=1)
    batch = tiny.batch(node_netns).add_veth("o0", "o0p", peer_netns=container_netns)
    for i in range(40):
        batch.add_bridge(f"ob{i}")
    with pytest.raises(NetError) as info:
        batch.commit()
    assert info.value.errno == errno.ENOBUFS and info.value.op == "add_bridge"
    assert "receive buffer overrun" in info.value.detail
    assert batch.stats["sendmsgs"] == 1
    assert names(node_netns) == {"lo"} and names(container_netns) == {"lo"}
    # the same batch with the automatic sizing goes through
    batch = NativeBackend().batch(node_netns)
    for i in range(400):
        batch.add_bridge(f"ob{i}")
    batch.commit()
    assert len(names(node_netns)) == 401


def test_missing_and_bogus_namespaces(be: NativeBackend, tmp_path: Path) -> None:
    with pytest.raises(NetError) as info:
        be.batch("/run/netns/ccni-nope").add_bridge("x").commit()
    assert (info.value.errno, info.value.op) == (errno.ENOENT, "commit")
    not_ns = tmp_path / "plain"
    not_ns.write_text("")
    with pytest.raises(NetError) as info:
        be.batch(str(not_ns)).add_bridge("x").commit()
    assert info.value.errno == errno.EINVAL
    with pytest.raises(NetError) as info:
        be.links("/run/netns/ccni-nope")
    assert (info.value.errno, info.value.op) == (errno.ENOENT, "links")
    with pytest.raises(NetError) as info:
        be.batch(None).add_veth("v0", "v0p", peer_netns=str(not_ns)).commit()
    assert (info.value.errno, info.value.op) == (errno.EINVAL, "add_veth")


# --- threads and namespaces ------------------------------------------------------

def test_parallel_commits_from_threads(be: NativeBackend, bridge_node: str,
                                       netns_factory: NsFactory) -> None:
    """setns is per thread: concurrent commits into different namespaces never mix."""
    ctrs = [netns_factory("ctr") for _ in range(4)]
    errors: list[BaseException] = []

    def worker(k: int, ctr: str) -> None:
        try:
            own = netns.current_inode()
            for j in range(5):
                host = f"t{k}x{j}"
                (be.batch(bridge_node)
                 .add_veth(host, f"eth{j}", peer_netns=ctr)
                 .set_link(host, master="br0", up=True).commit())
                (be.batch(ctr).set_link(f"eth{j}", up=True)
                 .add_address(f"eth{j}", f"10.66.{k + 1}.{j + 2}/24").commit())
                assert netns.current_inode() == own
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k, c)) for k, c in enumerate(ctrs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for k, ctr in enumerate(ctrs):
        assert names(ctr) == {"lo"} | {f"eth{j}" for j in range(5)}
        got = {a.address for a in be.addresses(ctr, family=2) if a.ifname != "lo"}
        assert got == {f"10.66.{k + 1}.{j + 2}/24" for j in range(5)}


# --- reads agree with the pyroute2 backend ---------------------------------------

def test_reads_are_identical_to_the_pyroute2_backend(be: NativeBackend, bridge_node: str,
                                                     container_netns: str) -> None:
    pytest.importorskip("pyroute2")
    from corecni.net.pyroute2_backend import Pyroute2Backend

    node, ctr = bridge_node, container_netns
    (be.batch(node)
     .add_veth("veth1", "eth0", peer_netns=ctr, mtu=1450)
     .set_link("veth1", master="br0", up=True, hairpin=True, alias="pod a")
     .add_veth("plain0", "plain1", mac="02:00:00:00:01:01")
     .set_link("plain1", promisc=True)
     .add_veth("phys0", "phys0p")
     .add_macvlan("mvvepa", "phys0", mode="vepa")
     .add_macvlan("mvpriv", "phys0", mode="private")
     .add_macvlan("mvpass", "plain0", mode="passthru")
     .add_macvlan("mvbr", "phys0", mode="bridge", netns=ctr)
     .commit())
    (be.batch(ctr)
     .set_link("eth0", up=True)
     .add_address("eth0", "10.66.0.2/24")
     .add_address("eth0", "fd66::2/64", nodad=True)
     .add_route(Route(dst="0.0.0.0/0", gateway="10.66.0.1"))
     .add_route(Route(dst="10.99.0.0/16", gateway="10.66.0.1", table=100, priority=9,
                      mtu=1300, advmss=1200, src="10.66.0.2"))
     .add_route(Route(dst="::/0", gateway="fd66::1"))
     .add_neighbour(Neighbour("eth0", "10.66.0.1", "02:00:00:00:66:01"))
     .add_neighbour(Neighbour("eth0", "fd66::1", "02:00:00:00:66:02"))
     .commit())
    py = Pyroute2Backend()
    for path in (node, ctr):
        assert be.links(path) == py.links(path)
        assert be.link("veth1", path) == py.link("veth1", path)
        assert be.addresses(path) == py.addresses(path)
        assert be.addresses(path, ifname="eth0", family=10) == py.addresses(
            path, ifname="eth0", family=10)
        for table in (254, 100, None):
            assert be.routes(path, table=table) == py.routes(path, table=table)
        assert be.routes(path, family=10) == py.routes(path, family=10)
        ours = {n for n in be.neighbours(path) if n.permanent}
        theirs = {n for n in py.neighbours(path) if n.permanent}
        assert ours == theirs
    assert len({n for n in be.neighbours(ctr) if n.permanent}) == 2
    modes = {x.name: x.mode for p in (node, ctr) for x in be.links(p) if x.kind == "macvlan"}
    assert modes == {"mvvepa": "vepa", "mvpriv": "private", "mvpass": "passthru",
                     "mvbr": "bridge"}
    for key in ("ipv4/ip_forward", "ipv6/conf/eth0/accept_dad"):
        assert be.sysctl_get(key, ctr) == py.sysctl_get(key, ctr)


# --- pyroute2 stays out --------------------------------------------------------

def test_native_attach_never_imports_pyroute2(node_netns: str, container_netns: str) -> None:
    code = f"""
        import sys
        from corecni.net import get_backend, Route
        be = get_backend("native")
        assert be.name == "native"
        (be.batch({node_netns!r}).add_bridge("br0").set_link("br0", up=True)
           .add_address("br0", "10.66.0.1/24").commit())
        (be.batch({node_netns!r}).add_veth("veth1", "eth0", peer_netns={container_netns!r})
           .set_link("veth1", master="br0", up=True).commit())
        (be.batch({container_netns!r}).set_link("eth0", up=True)
           .add_address("eth0", "10.66.0.2/24")
           .add_route(Route(dst="0.0.0.0/0", gateway="10.66.0.1")).commit())
        be.links({container_netns!r}); be.addresses({container_netns!r})
        be.routes({container_netns!r}); be.neighbours({container_netns!r})
        be.sysctl_set("ipv4/ip_forward", "1", {node_netns!r})
        loaded = sorted(m for m in sys.modules if m.split(".")[0] == "pyroute2")
        assert not loaded, loaded
        print("NO-PYROUTE2")
    """
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert "NO-PYROUTE2" in proc.stdout
    assert "eth0" in names(container_netns)


# --- link kinds this kernel may lack ---------------------------------------------------

@pytest.mark.parametrize("kind", ["ipvlan", "vlan", "macvlan"])
def test_sub_interfaces_in_the_container(be: NativeBackend, node_netns: str,
                                         container_netns: str, kind: str) -> None:
    """Created on a node link directly inside the container. Kernels without the
    driver answer EOPNOTSUPP: the request is named, the batch rolled back, the test
    skipped (the request bytes are checked in tests/unit/test_native_messages.py)."""
    node, ctr = node_netns, container_netns
    batch = be.batch(node).add_veth("phys0", "phys0p").set_link("phys0", up=True)
    if kind == "ipvlan":
        batch.add_ipvlan("sub0", "phys0", mode="l2", flag="bridge", netns=ctr, mtu=1400)
    elif kind == "vlan":
        batch.add_vlan("sub0", "phys0", 42, netns=ctr, mtu=1400)
    else:
        batch.add_macvlan("sub0", "phys0", mode="private", netns=ctr, mtu=1400,
                          mac="02:00:00:00:5b:01")
    try:
        batch.commit()
    except NetError as exc:
        if exc.errno != errno.EOPNOTSUPP:
            raise
        assert (exc.op, exc.obj) == (f"add_{kind}", "sub0 on phys0")
        assert names(node) == {"lo"} and names(ctr) == {"lo"}  # phys0 rolled back
        pytest.skip(f"kernel cannot create {kind} links here: {exc}")
    link = be.link("sub0", ctr)
    assert link is not None and (link.kind, link.mtu) == (kind, 1400)
    assert "sub0" not in names(node)
    if kind == "macvlan":
        assert link.mac == "02:00:00:00:5b:01"
        data = ip_json(ctr, "-d", "link", "show", "sub0")[0]["linkinfo"]["info_data"]
        assert data["mode"] == "private"
    assert (link.mode, link.vlan_id) == {"ipvlan": ("l2", None), "vlan": (None, 42),
                                         "macvlan": ("private", None)}[kind]
