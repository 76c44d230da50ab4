"""Contrib plugins and bad input (issue 12): DEL never fails on CNI_ARGS (item 3), and
host-local names the key it refuses (items 11, 12, 14)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from corecni import launcher, skel

PLUGINS = {
    "bridge": "corecni_contrib.bridge",
    "ptp": "corecni_contrib.ptp",
    "macvlan": "corecni_contrib.macvlan",
    "ipvlan": "corecni_contrib.ipvlan",
    "vlan": "corecni_contrib.vlan",
    "host-device": "corecni_contrib.host_device",
    "loopback": "corecni_contrib.loopback",
    "host-local": "corecni_contrib.host_local.plugin",
    "static": "corecni_contrib.static",
    # the container-side ones (their DEL touches only the namespace, gone here, and
    # files); bandwidth, portmap and firewall act in the node namespace - the test's
    # own here - so tests/fuzz runs theirs (all 17) inside a test node
    "tuning": "corecni_contrib.tuning",
    "sbr": "corecni_contrib.sbr",
    "tap": "corecni_contrib.tap",
    "dummy": "corecni_contrib.dummy",
    "vrf": "corecni_contrib.vrf",
}
PREV_RESULT = {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": "/x"}],
               "ips": [{"address": "10.9.0.5/24", "interface": 0}]}
BAD_ARGS = ["IP=zz;MAC=zz:zz;GATEWAY=x", "K=a=b;some;extra;args", "IP=10.0.0.300/24",
            "IgnoreUnknown=1;MAC=01:02"]


@pytest.mark.parametrize("args", BAD_ARGS)
@pytest.mark.parametrize("plugin_type", sorted(PLUGINS))
def test_del_never_fails_on_cni_args(plugin_type: str, args: str, tmp_path: Path) -> None:
    ipam_type = plugin_type if plugin_type in ("host-local", "static") else "host-local"
    config = {"cniVersion": "1.0.0", "name": "delnet", "type": plugin_type,
              "master": "nic0", "vlanId": 5, "device": "dev0",
              "ipam": {"type": ipam_type, "dataDir": str(tmp_path / "ipam"),
                       "ranges": [[{"subnet": "10.9.0.0/24"}]],
                       "addresses": [{"address": "10.9.0.5/24"}]}}
    if plugin_type in ("loopback", "tuning", "sbr", "vrf"):
        del config["ipam"]
    if plugin_type in ("tuning", "sbr", "vrf"):  # meta: chained after an interface plugin
        config.update(prevResult=PREV_RESULT, vrfname="vrf0",
                      dataDir=str(tmp_path / "tuning"), mac="02:00:00:00:00:01")
    environ = {"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0",
               "CNI_NETNS": str(tmp_path / "gone"), "CNI_PATH": str(tmp_path / "bin"),
               "CNI_ARGS": args}
    # the IPAM plugins as `corecni install` puts them on CNI_PATH (found there, run
    # in-process)
    launcher.install(str(tmp_path / "bin"), [launcher.LauncherSpec(t, PLUGINS[t])
                                             for t in ("host-local", "static")])
    out, err = io.StringIO(), io.StringIO()
    status = skel.run(plugin_type, PLUGINS[plugin_type], environ=environ,
                      stdin=io.BytesIO(json.dumps(config).encode()), stdout=out, stderr=err)
    assert status == 0, (out.getvalue(), err.getvalue())
    assert out.getvalue() == ""


@pytest.mark.parametrize(("ipam", "code", "words"), [
    ({"dataDir": "/tmp/a\x00b"}, 7, ("ipam.dataDir", "NUL")),
    ({"dataDir": "/tmp/a\udcffb"}, 7, ("ipam.dataDir", "UTF-8")),
    ({"ranges": [[{"subnet": "0.0.0.0/0"}]]}, 7, ("whole address space",)),
    ({"ranges": [[{"subnet": "::/0"}]]}, 7, ("whole address space",)),
    ({"type": 5}, 7, ("ipam.type",)),
])
def test_host_local_bad_input_names_the_key(ipam: dict[str, object], code: int,
                                            words: tuple[str, ...], tmp_path: Path) -> None:
    """Issue 12 items 11, 12, 14: code 7 naming the key, not 999 with a Python name."""
    section = {"type": "host-local", "dataDir": str(tmp_path / "ipam"),
               "ranges": [[{"subnet": "10.9.0.0/24"}]], **ipam}
    config = {"cniVersion": "1.0.0", "name": "n", "type": "host-local", "ipam": section}
    environ = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0",
               "CNI_NETNS": "/proc/self/ns/net", "CNI_NETNS_OVERRIDE": "1",
               "CNI_PATH": str(tmp_path / "bin")}
    out, err = io.StringIO(), io.StringIO()
    # a surrogate-escaped byte goes out as the raw (non-UTF-8) byte it stands for
    data = json.dumps(config, ensure_ascii=False).encode("utf-8", "surrogateescape")
    status = skel.run("host-local", PLUGINS["host-local"], environ=environ,
                      stdin=io.BytesIO(data), stdout=out, stderr=err)
    answer = json.loads(out.getvalue())
    assert status == 1 and answer["code"] == code, answer
    for word in words:
        assert word in answer["msg"] + answer.get("details", ""), answer
    assert not (tmp_path / "ipam").exists() or not any((tmp_path / "ipam").rglob("10.*"))
