"""The flannel plugin's delegate config equals Go's for flannel's documented subnet.env files.

The vectors are flannel-io/cni-plugin's own (flannel_linux_test.go): input
netconf, subnet.env, and the delegate config Go's plugin saves under dataDir.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from corecni_contrib.flannel import delegate, subnet_env

from corecni.kit import CNIError

IPV4 = "FLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=10.1.17.1/24\nFLANNEL_MTU=1472\n" \
       "FLANNEL_IPMASQ=true\n"
IPV6 = "FLANNEL_IPV6_NETWORK=fc00::/48\nFLANNEL_IPV6_SUBNET=fc00::1/64\nFLANNEL_MTU=1472\n" \
       "FLANNEL_IPMASQ=true\n"
DUAL = "FLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=10.1.17.1/24\n" \
       "FLANNEL_IPV6_NETWORK=fc00::/48\nFLANNEL_IPV6_SUBNET=fc00::1/64\nFLANNEL_MTU=1472\n" \
       "FLANNEL_IPMASQ=true\n"
TWO_NETWORKS = "FLANNEL_NETWORK=10.1.0.0/16,192.168.0.0/16\nFLANNEL_SUBNET=10.1.17.1/24\n" \
               "FLANNEL_MTU=1472\nFLANNEL_IPMASQ=true\n"
INPUT = {"name": "cni-flannel", "type": "flannel"}


def expected(routes: list[str], ranges: list[str]) -> dict[str, Any]:
    return {"ipMasq": False, "isGateway": True, "mtu": 1472, "name": "cni-flannel",
            "type": "bridge",
            "ipam": {"type": "host-local", "routes": [{"dst": r} for r in routes],
                     "ranges": [[{"subnet": s}] for s in ranges]}}


@pytest.mark.parametrize(("env", "want"), [
    (IPV4, expected(["10.1.0.0/16"], ["10.1.17.0/24"])),
    (TWO_NETWORKS, expected(["10.1.0.0/16", "192.168.0.0/16"], ["10.1.17.0/24"])),
    (IPV6, expected(["fc00::/48"], ["fc00::/64"])),
    (DUAL, expected(["10.1.0.0/16", "fc00::/48"], ["10.1.17.0/24", "fc00::/64"])),
], ids=["ipv4", "ipv4-two-networks", "ipv6", "dual-stack"])
def test_delegate_config_matches_go(env: str, want: dict[str, Any]) -> None:
    assert delegate.build(INPUT, subnet_env.parse(env)) == want


def test_input_ipam_is_kept_and_completed_as_go_does() -> None:
    raw = {**INPUT, "cniVersion": "1.0.0",
           "ipam": {"type": "my-ipam", "unknown-param": "unknown-value",
                    "routes": [{"dst": "10.96.0.0/12"}]}}
    conf = delegate.build(raw, subnet_env.parse(IPV4))
    assert conf["cniVersion"] == "1.0.0"
    assert conf["ipam"] == {"type": "my-ipam", "unknown-param": "unknown-value",
                            "routes": [{"dst": "10.96.0.0/12"}, {"dst": "10.1.0.0/16"}],
                            "ranges": [[{"subnet": "10.1.17.0/24"}]]}


def test_the_seeds_delegate_keys_win() -> None:
    """kube-flannel's 10-flannel.conflist: hairpinMode and isDefaultGateway pass through."""
    raw = {**INPUT, "delegate": {"hairpinMode": True, "isDefaultGateway": True}}
    conf = delegate.build(raw, subnet_env.parse(IPV4.replace("IPMASQ=true", "IPMASQ=false")))
    assert conf["hairpinMode"] is True and conf["isDefaultGateway"] is True
    assert conf["ipMasq"] is True  # flanneld does not masquerade: the bridge does
    assert conf["isGateway"] is True


@pytest.mark.parametrize(("given", "message"), [
    ({"type": 7}, r"must have \(string\) 'type' field"),
    ({"name": "x"}, "must not have 'name' field"),
    ({"ipam": {}}, "must not have 'ipam' field"),
])
def test_bad_delegate_is_refused_as_go_does(given: dict[str, Any], message: str) -> None:
    with pytest.raises(CNIError, match=message) as info:
        delegate.build({**INPUT, "delegate": given}, subnet_env.parse(IPV4))
    assert info.value.code == 7


def test_subnet_env_parsing_and_missing_keys_as_go() -> None:
    env = subnet_env.parse(DUAL)
    assert [str(n) for n in env.networks] == ["10.1.0.0/16"]
    assert str(env.subnet) == "10.1.17.0/24" and str(env.ipv6_subnet) == "fc00::/64"
    assert env.mtu == 1472 and env.ipmasq is True
    with pytest.raises(subnet_env.SubnetEnvError,
                       match="missing FLANNEL_NETWORK, FLANNEL_IPV6_NETWORK, FLANNEL_SUBNET, "
                             "FLANNEL_IPV6_SUBNET, FLANNEL_MTU, FLANNEL_IPMASQ"):
        subnet_env.parse("foo=bar")


def test_render_round_trips(tmp_path: Path) -> None:
    text = subnet_env.render(network="10.1.0.0/16", subnet="10.1.17.1/24", mtu=1450,
                             ipmasq=True)
    (tmp_path / "subnet.env").write_text(text)
    env = subnet_env.load(str(tmp_path / "subnet.env"))
    assert str(env.subnet) == "10.1.17.0/24" and env.mtu == 1450 and env.ipmasq is True
    json.dumps(delegate.build(INPUT, env))
