"""bandwidth, tuning, sbr, vrf, tap and dummy without a kernel: config parsing as Go
parses it, bad input refused with the right code before anything is written, Go's
derived values (ifb name, tbf parameters, sysctl paths), and the requests they queue
(``corecni.testing.fake_net``). Kernel behaviour is in tests/integration."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from corecni_contrib import bandwidth, dummy, sbr, tap, tuning, vrf

from corecni.net import Rule, tbf_buffer
from corecni.request import Request
from corecni.spec.config import PluginConfig
from corecni.spec.errors import CNIError
from corecni.spec.result import Interface, IPConfig, Result
from corecni.testing.fake_net import CTR, FakeBackend

CONFIG_ERROR = 7


def request(conf: dict[str, Any], command: str = "ADD", *,
            args: tuple[tuple[str, str], ...] = (), prev: Result | None = None,
            net: FakeBackend | None = None, cid: str = "c1") -> Request:
    raw = {"cniVersion": "1.0.0", "name": "net1", **conf}
    return Request(command=command, config=PluginConfig.from_dict(raw), container_id=cid,
                   netns=CTR, ifname="eth0", args=args, prev_result=prev,
                   net=net or FakeBackend())


def refused(call: Any, code: int = CONFIG_ERROR) -> CNIError:
    with pytest.raises(CNIError) as info:
        call()
    assert info.value.code == code, info.value
    return info.value


# --- bandwidth ---------------------------------------------------------------------------

def test_bandwidth_values_are_gos() -> None:
    conf = bandwidth.BandwidthConfig.from_request(request(
        {"type": "bandwidth", "ingressRate": 8_000_000, "ingressBurst": 800_000,
         "egressRate": 1_000_000, "egressBurst": 125_000}))
    assert conf.ingress == bandwidth.Shape(rate=1_000_000, burst=100_000,
                                           limit=int(1_000_000 * 25_000 / 1e6) + 100_000)
    assert conf.egress is not None and conf.egress.rate == 125_000
    # the bucket as Go computes it: time2Tick(uint32(burst*1e6/rate))
    assert tbf_buffer(125_000, 15_625) == int(int(15_625 * 1e6 / 125_000) * 15.625)
    # ifb name: MustFormatHashWithPrefix(15, "bwp", name+containerID)
    digest = hashlib.sha512(b"net1c1").hexdigest()
    assert bandwidth.ifb_name("net1", "c1") == ("bwp" + digest)[:15]


def test_bandwidth_capability_used_only_without_config_keys() -> None:
    cap = {"bandwidth": {"ingressRate": 800, "ingressBurst": 80}}
    conf = bandwidth.BandwidthConfig.from_request(request(
        {"type": "bandwidth", "runtimeConfig": cap}))
    assert conf.ingress is not None and conf.ingress.rate == 100 and conf.egress is None
    conf = bandwidth.BandwidthConfig.from_request(request(
        {"type": "bandwidth", "egressRate": 800, "egressBurst": 80, "runtimeConfig": cap}))
    assert conf.ingress is None and conf.egress is not None
    assert not bandwidth.BandwidthConfig.from_request(request({"type": "bandwidth"})).shaping


@pytest.mark.parametrize(("keys", "message"), [
    ({"ingressRate": 1000}, "burst must also be set"),
    ({"egressBurst": 1000}, "rate must also be set"),
    ({"ingressRate": -1, "ingressBurst": 10}, "positive integer"),
    ({"egressRate": "1000", "egressBurst": 100}, "integer"),
    ({"ingressRate": 1000, "ingressBurst": 8 * 2**32}, "4GB"),
    ({"ingressRate": True, "ingressBurst": 100}, "integer"),
    ({"ingressRate": 4, "ingressBurst": 100}, "at least 8"),
])
def test_bandwidth_bad_input(keys: dict[str, Any], message: str) -> None:
    net = FakeBackend()
    req = request({"type": "bandwidth", **keys}, net=net,
                  prev=Result(interfaces=(Interface("veth1"),)))
    err = refused(lambda: bandwidth.meta_add(req, req.prev_result))
    assert message in err.msg
    assert net.log == []  # nothing written


def test_bandwidth_without_limits_passes_the_result_through() -> None:
    prev = Result(interfaces=(Interface("veth1"),))
    net = FakeBackend()
    assert bandwidth.meta_add(request({"type": "bandwidth"}, net=net, prev=prev), prev) is prev
    assert net.log == []


def test_bandwidth_del_needs_no_prev_result() -> None:
    net = FakeBackend()
    bandwidth.meta_del(request({"type": "bandwidth"}, "DEL", net=net), None)
    [(where, op, args, kw)] = net.log
    assert (where, op, args, kw) == (None, "del_link", (bandwidth.ifb_name("net1", "c1"),),
                                     {"missing_ok": True})


# --- tuning ------------------------------------------------------------------------------

@pytest.mark.parametrize(("key", "path"), [
    ("net.ipv4.conf.IFNAME.arp_filter", "ipv4/conf/eth0/arp_filter"),
    ("net/ipv4/ip_forward", "ipv4/ip_forward"),
    ("net.core.somaxconn", "core/somaxconn"),
])
def test_sysctl_keys(key: str, path: str) -> None:
    assert tuning.sysctl_key(key, "eth0") == path


@pytest.mark.parametrize("key", ["kernel.hostname", "net", "net/../kernel/x",
                                 "net.ipv4..conf", "vm.swappiness", "/proc/sys/net/x",
                                 "netfoo.x"])
def test_sysctl_keys_outside_net_are_refused(key: str) -> None:
    net = FakeBackend()
    req = request({"type": "tuning", "sysctl": {"net.core.somaxconn": "1024", key: "1"}},
                  net=net, prev=Result())
    refused(lambda: tuning.meta_add(req, Result()))
    assert net.log == []  # not even the good key was written


def test_tuning_mac_precedence_and_args() -> None:
    conf = tuning.TuningConfig.from_request(request(
        {"type": "tuning", "mac": "02:00:00:00:00:01", "mtu": 1400, "promisc": True,
         "runtimeConfig": {"mac": "02:00:00:00:00:03"}},
        args=(("MAC", "02:00:00:00:00:02"),)))
    assert (conf.mac, conf.mtu, conf.promisc, conf.allmulti, conf.txqlen) == (
        "02:00:00:00:00:03", 1400, True, None, None)
    conf = tuning.TuningConfig.from_request(request(
        {"type": "tuning", "mac": "02:00:00:00:00:01", "sysctl": {"net.a.b": "1"},
         "args": {"cni": {"mac": "02:AA:00:00:00:04", "allmulti": False, "txQLen": 5,
                          "sysctl": {"net.c.d": "2"}, "promisc": True}}},
        args=(("MAC", "02:00:00:00:00:02"),)))
    assert (conf.mac, conf.allmulti, conf.txqlen, conf.promisc) == (
        "02:aa:00:00:00:04", False, 5, True)
    assert conf.sysctl == {"net.a.b": "1", "net.c.d": "2"}
    assert conf.data_dir == "/run/cni/tuning"


@pytest.mark.parametrize("conf", [
    {"mac": "02:00:00:00:00"}, {"mtu": -1}, {"txQLen": -5}, {"allmulti": "yes"},
    {"sysctl": {"net.core.x": 1}}, {"sysctl": ["net.core.x"]}, {"promisc": 1},
])
def test_tuning_bad_input(conf: dict[str, Any]) -> None:
    net = FakeBackend()
    req = request({"type": "tuning", **conf}, net=net)
    refused(lambda: tuning.meta_add(req, Result()))
    assert net.log == []


def test_tuning_backup_file_is_gos(tmp_path: Path) -> None:
    net = FakeBackend()
    net.ns(CTR)["eth0"] = net.ns(CTR)["lo"].__class__(
        index=5, name="eth0", kind="veth", mtu=1500, mac="02:00:00:00:00:09", up=True,
        txqlen=1000)
    prev = Result(interfaces=(Interface("eth0", mac="02:00:00:00:00:09", sandbox=CTR),))
    req = request({"type": "tuning", "dataDir": str(tmp_path), "mac": "02:00:00:00:00:0a",
                   "mtu": 1400, "promisc": True, "allmulti": True, "txQLen": 77},
                  net=net, prev=prev)
    out = tuning.meta_add(req, prev)
    assert out.interfaces[0].mac == "02:00:00:00:00:0a"
    saved = json.loads((tmp_path / "c1_eth0.json").read_text())
    assert saved == {"mac": "02:00:00:00:00:09", "promisc": False, "mtu": 1500,
                     "allmulti": False, "txQLen": 1000}
    [(_, _, _, kw)] = [e for e in net.log if e[1] == "set_link"]
    assert kw == {"mac": "02:00:00:00:00:0a", "promisc": True, "mtu": 1400, "allmulti": True,
                  "txqlen": 77}


def _tuned_link(net: FakeBackend) -> None:
    net.ns(CTR)["eth0"] = net.ns(CTR)["lo"].__class__(
        index=5, name="eth0", kind="veth", mtu=1500, mac="02:00:00:00:00:09", up=True)


def test_tuning_repeated_add_keeps_the_originals(tmp_path: Path) -> None:
    """Found by tests/fuzz: a second ADD of the attachment saved the MTU it had tuned
    (1400) over the original, so DEL left 1400."""
    net = FakeBackend()
    _tuned_link(net)
    prev = Result(interfaces=(Interface("eth0", sandbox=CTR),))
    conf = {"type": "tuning", "dataDir": str(tmp_path), "mtu": 1400}
    for _ in range(2):
        tuning.meta_add(request(conf, net=net, prev=prev), prev)
    assert net.ns(CTR)["eth0"].mtu == 1400
    assert json.loads((tmp_path / "c1_eth0.json").read_text()) == {"mtu": 1500}
    tuning.meta_del(request(conf, "DEL", net=net, prev=prev), prev)
    assert net.ns(CTR)["eth0"].mtu == 1500
    assert not (tmp_path / "c1_eth0.json").exists()


def test_tuning_failed_add_leaves_a_live_attachment_alone(tmp_path: Path) -> None:
    """Found by tests/fuzz: an ADD failing on top of a live attachment wrote the
    settings it found into the saved file and then deleted the file (the live pod's DEL
    could no longer restore anything). Its undo now puts back what it found and leaves
    the file as it was."""
    import errno

    net = FakeBackend()
    _tuned_link(net)
    prev = Result(interfaces=(Interface("eth0", sandbox=CTR),))
    conf = {"type": "tuning", "dataDir": str(tmp_path), "mtu": 1400}
    tuning.meta_add(request(conf, net=net, prev=prev), prev)
    net.refuse[("set_link", "eth0")] = errno.EINVAL  # the tuning step of the next ADD fails
    with pytest.raises(CNIError):
        tuning.meta_add(request({**conf, "txQLen": 5}, net=net, prev=prev), prev)
    restores = [kw for _, op, _, kw in net.log if op == "set_link"]
    assert restores[-1]["mtu"] == 1400, restores  # what it found, not the saved 1500
    assert json.loads((tmp_path / "c1_eth0.json").read_text()) == {"mtu": 1500}
    net.refuse.pop(("set_link", "eth0"), None)
    tuning.meta_del(request(conf, "DEL", net=net, prev=prev), prev)
    assert net.ns(CTR)["eth0"].mtu == 1500


# --- sbr, vrf, tap, dummy ------------------------------------------------------------------

def test_sbr_ips_of_the_interface() -> None:
    prev = Result(interfaces=(Interface("veth0"), Interface("eth0", sandbox=CTR)),
                  ips=(IPConfig("10.0.0.2/24", "10.0.0.1", 1), IPConfig("10.1.0.2/24", None, 0),
                       IPConfig("fd00::2/64", "fd00::1", None)))
    assert [ip.address for ip in sbr.ips_of(prev, "eth0")] == ["10.0.0.2/24", "fd00::2/64"]
    err = refused(lambda: sbr.ips_of(Result(), "eth0"), 999)
    assert "No IP addresses" in err.msg


def test_sbr_table_key() -> None:
    assert sbr.first_table(request({"type": "sbr"})) == 100
    assert sbr.first_table(request({"type": "sbr", "table": 500})) == 500
    for bad in (254, 0, -3, "x"):
        refused(lambda bad=bad: sbr.first_table(request({"type": "sbr", "table": bad})))


def test_sbr_rule_shape() -> None:
    """The rule Go's sbr adds: the address as a host prefix, lookup the table."""
    ip = IPConfig("10.0.0.2/24", "10.0.0.1")
    assert sbr._host(ip) == "10.0.0.2/32"
    assert Rule(table=100, src=sbr._host(ip)).src == "10.0.0.2/32"
    assert sbr._host(IPConfig("fd00::2/64")) == "fd00::2/128"


@pytest.mark.parametrize(("module", "conf"), [
    (vrf, {"type": "vrf"}), (vrf, {"type": "vrf", "vrfname": "v", "table": -1}),
    (dummy, {"type": "dummy"}),
    (tap, {"type": "tap", "selinuxContext": "system_u:x"}), (tap, {"type": "tap", "mtu": -1}),
    (tap, {"type": "tap", "owner": -1}), (tap, {"type": "tap", "mac": "zz"}),
])
def test_interface_and_vrf_bad_input(module: Any, conf: dict[str, Any]) -> None:
    net = FakeBackend()
    req = request(conf, net=net, prev=Result())
    hook = getattr(module, "meta_add", None)
    refused(lambda: hook(req, Result()) if hook else module.cni_add(req))
    assert net.log == []


def test_tap_requests() -> None:
    net = FakeBackend()
    conf = tap.TapConfig.from_request(request(
        {"type": "tap", "mtu": 1300, "multiQueue": True, "owner": 0, "group": 0},
        args=(("MAC", "02:00:00:00:00:07"),)))
    batch = net.batch(CTR)
    conf.create(batch, "tmp0", None)
    batch.commit()
    [(where, op, args, kw)] = net.log
    assert (where, op, args) == (CTR, "add_tap", ("tmp0",))
    assert kw == {"mtu": 1300, "mac": "02:00:00:00:00:07", "multi_queue": True, "owner": 0,
                  "group": 0}
