"""bridge ADD that fails leaves the node as it found it (issue 12, items 10, 11, 14).

Run without the runtime's rollback, so what stays is what the plugin itself left:
no bridge this ADD created (nor its gateway address), no veth, no lease. A bridge
that was there before (shared with other pods) stays, with its addresses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from corecni.spec.errors import CNIError
from corecni.testing import NodeCni, addrs, conflist, expect_error, ip, link_names
from tests.integration._harness import NsFactory, host_local, reserved, runtime

pytestmark = pytest.mark.root

BRIDGE = "cnifault0"


def conf(tmp: Path, name: str = "faultnet", **plugin: Any) -> dict[str, Any]:
    return conflist({"type": "bridge", "bridge": BRIDGE, "isGateway": True,
                     "ipam": host_local(tmp, "10.93.0.0/24"), **plugin}, name)


@pytest.fixture(params=["in-process", "exec"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def bare(mode: str, netns_factory: NsFactory, tmp_path: Path) -> NodeCni:
    """Our bridge (in-process, with our host-local; or exec'd, with Go's), no rollback."""
    in_process = {"host-local": "corecni_contrib.host_local.plugin"}
    return NodeCni(runtime(mode, tmp_path, "bridge", in_process=in_process, rollback=False),
               netns_factory("node"))


def bad_ipam(tmp: Path) -> list[tuple[dict[str, Any], str]]:
    """(ipam section, a word of the error) pairs that fail at the IPAM step."""
    afile = tmp / "a-file"
    afile.write_text("")
    return [
        ({"type": "no-such-ipam"}, "no-such-ipam"),
        ({**host_local(tmp, "10.93.0.0/24"), "dataDir": str(afile / "sub")}, ""),
        ({"type": "host-local", "dataDir": str(tmp / "ipam")}, ""),  # no ranges
    ]


def test_failed_ipam_leaves_no_bridge(bare: NodeCni, netns_factory: NsFactory,
                                      tmp_path: Path) -> None:
    ctr = netns_factory("ctr")
    for ipam, word in bad_ipam(tmp_path):
        cfg = conf(tmp_path)
        cfg["plugins"][0]["ipam"] = ipam
        with pytest.raises(Exception) as info:
            bare.add(cfg, ctr)
        assert word in str(info.value)
        assert link_names(bare.node) == {"lo"}, ipam
        assert link_names(ctr) == {"lo"}


def test_bad_ip_arg_leaves_no_bridge(bare: NodeCni, netns_factory: NsFactory,
                                     tmp_path: Path) -> None:
    ctr = netns_factory("ctr")
    for value in ("zz", "10.99.0.5", "10.93.0.5=1"):
        with pytest.raises(Exception):  # noqa: B017 - the code differs between plugins
            bare.add(conf(tmp_path), ctr, args=(("IP", value),))
        assert link_names(bare.node) == {"lo"}, value
        assert reserved(tmp_path / "ipam") == []


def test_failure_after_the_bridge_removes_only_what_this_add_made(
        bare: NodeCni, netns_factory: NsFactory, tmp_path: Path) -> None:
    """The container's ifname is taken: refused before the bridge exists. A clash in
    the bridge's addresses after creating it: the new bridge goes again."""
    ctr = netns_factory("ctr")
    ip(ctr, "link", "add", "eth0", "type", "veth", "peer", "name", "xp0")
    with expect_error(4, "eth0"):
        bare.add(conf(tmp_path), ctr)
    assert link_names(bare.node) == {"lo"}
    assert reserved(tmp_path / "ipam") == []


def test_existing_bridge_and_its_address_stay(bare: NodeCni, netns_factory: NsFactory,
                                              tmp_path: Path) -> None:
    """A bridge that was there before the failed ADD (another pod's) is not touched."""
    ctr = netns_factory("ctr")
    ip(bare.node, "link", "add", BRIDGE, "type", "bridge")
    ip(bare.node, "addr", "add", "10.93.0.1/24", "dev", BRIDGE)
    cfg = conf(tmp_path)
    cfg["plugins"][0]["ipam"] = {"type": "no-such-ipam"}
    with pytest.raises(Exception):  # noqa: B017
        bare.add(cfg, ctr)
    assert link_names(bare.node) == {"lo", BRIDGE}
    assert addrs(bare.node, BRIDGE) == {"10.93.0.1/24"}


@pytest.mark.parametrize("subnet", ["0.0.0.0/0", "::/0"])
def test_whole_address_space_subnet_is_refused(bare: NodeCni, mode: str, netns_factory: NsFactory,
                                               tmp_path: Path, subnet: str) -> None:
    ctr = netns_factory("ctr")
    cfg = conf(tmp_path)
    cfg["plugins"][0]["ipam"] = host_local(tmp_path, subnet)
    with pytest.raises(CNIError) as info:
        bare.add(cfg, ctr)
    if mode == "in-process":  # ours; exec'd, the IPAM is Go's (999, nothing to allocate)
        assert info.value.code == 7 and "whole address space" in str(info.value), info.value
    assert link_names(bare.node) == {"lo"}
    assert link_names(ctr) == {"lo"}


@pytest.mark.parametrize(("key", "value", "word"), [
    ("bridge", "", "bridge"),
    ("ipam", {"type": 5}, "ipam.type"),
])
def test_go_refuses_these_keys(bare: NodeCni, netns_factory: NsFactory, tmp_path: Path,
                               key: str, value: Any, word: str) -> None:
    ctr = netns_factory("ctr")
    cfg = conf(tmp_path)
    cfg["plugins"][0][key] = value
    with expect_error(7, word):
        bare.add(cfg, ctr)
    assert link_names(bare.node) == {"lo"}


def test_bad_mac_arg_is_refused(bare: NodeCni, netns_factory: NsFactory, tmp_path: Path) -> None:
    ctr = netns_factory("ctr")
    with expect_error(7, "MAC"):
        bare.add(conf(tmp_path), ctr, args=(("MAC", "zz:zz"),))
    assert link_names(bare.node) == {"lo"}
    assert reserved(tmp_path / "ipam") == []


def test_failure_after_creating_the_bridge_removes_it(bare: NodeCni, netns_factory: NsFactory,
                                                      tmp_path: Path) -> None:
    """A multicast MAC is refused by the kernel only when the veth is made - after the
    bridge: the bridge this ADD created goes, and the address is released."""
    ctr = netns_factory("ctr")
    with pytest.raises(CNIError):
        bare.add(conf(tmp_path), ctr, args=(("MAC", "01:00:5e:00:00:01"),))
    assert link_names(bare.node) == {"lo"}
    assert link_names(ctr) == {"lo"}
    assert reserved(tmp_path / "ipam") == []


def test_del_never_fails_on_cni_args(bare: NodeCni, mode: str, netns_factory: NsFactory,
                                     tmp_path: Path) -> None:
    if mode == "exec":
        pytest.skip("exec'd, the IPAM is Go's host-local 1.1.1: it refuses unknown CNI_ARGS")
    ctr = netns_factory("ctr")
    for args in ((("MAC", "zz:zz"),), (("IP", "zz"),), (("K", "a=b"),)):
        bare.delete(conf(tmp_path), ctr, args=args)
    cfg = conf(tmp_path)
    cfg["plugins"][0]["bridge"] = ""
    bare.delete(cfg, ctr)
