"""Rule and command rendering of the reference plugins, without a kernel.

``corecni_contrib._masq`` (masquerade, nftables and Go's iptables layout) and
the bridge's port settings (VLAN/isolation ``bridge -batch`` lines, the MAC
spoof check): exact text, because the text is the contract with the tools, and
the names that must match Go's (pinned with values computed by Go's code).
"""

from __future__ import annotations

import pytest
from corecni_contrib import _masq
from corecni_contrib._masq import Owner
from corecni_contrib.bridge import ports
from corecni_contrib.bridge.config import BridgeConf

from corecni.kit import firewall
from corecni.plugin import Request
from corecni.spec.config import PluginConfig
from corecni.spec.errors import CNIError

OWNER = Owner("mynet", "c0ffee", "eth0")


# --- names shared with Go -------------------------------------------------------------

def test_chain_name_and_comment_match_go() -> None:
    # utils.FormatChainName("mynet", "c0ffee") and utils.FormatComment, run in Go
    assert firewall.format_chain_name("mynet", "c0ffee") == "CNI-15815ef49e0fdf04a746924c"
    assert OWNER.iptables_chain == "CNI-15815ef49e0fdf04a746924c"
    assert OWNER.iptables_comment == 'name: "mynet" id: "c0ffee"'
    # MustFormatHashWithPrefix(16, "", "mynet"), as Go's nftables backend hashes networks
    assert firewall.format_hash(16, "", "mynet") == "d23676b4f2d9fe04"


def test_nft_chain_tells_interfaces_apart() -> None:
    other = Owner("mynet", "c0ffee", "net1")
    assert OWNER.nft_chain != other.nft_chain
    assert OWNER.nft_chain == firewall.format_chain_name("mynet", "c0ffee-eth0")
    assert len(OWNER.nft_chain) == 28


def test_nft_comment_is_plain_and_bounded() -> None:
    odd = Owner("net", "x" * 200, 'e"th\\0')
    assert '"' not in odd.nft_comment and "\\" not in odd.nft_comment
    assert len(odd.nft_comment) == _masq.COMMENT_MAX
    assert odd.nft_comment.startswith(f"{odd.nft_chain} id: x")  # the owner survives the cut
    assert OWNER.nft_comment == f"{OWNER.nft_chain} id: c0ffee if: eth0"


# --- nftables ---------------------------------------------------------------------------

SET4 = "masq4-" + firewall.format_hash(12, "", "mynet") + "-" + \
    firewall.format_hash(8, "", "10.1.0.0/24")
SET6 = "masq6-" + firewall.format_hash(12, "", "mynet") + "-" + \
    firewall.format_hash(8, "", "fd01::/64")
ELEMENT_COMMENT = f'comment "{OWNER.nft_comment}"'


def test_nft_sets_are_per_network_and_subnet() -> None:
    assert _masq.nft_set("mynet", "10.1.0.5/24") == SET4
    assert _masq.nft_set("mynet", "10.1.0.9/24") == SET4  # one set for the subnet
    assert _masq.nft_set("mynet", "10.2.0.5/24") != SET4
    assert _masq.nft_set("other", "10.1.0.5/24") != SET4
    assert _masq.nft_set("mynet", "fd01::5/64") == SET6
    assert SET4.startswith(_masq.nft_set_prefix("mynet", 4))


def test_nft_fast_setup_only_creates_elements() -> None:
    """No chain, rule, read or delete: the ADD that does not grow with the node."""
    assert _masq.render_nft_setup_fast(OWNER, ["10.1.0.5/24", "fd01::5/64"]) == (
        f"create element inet corecni_masquerade {SET4} {{ 10.1.0.5 {ELEMENT_COMMENT} }}\n"
        f"create element inet corecni_masquerade {SET6} {{ fd01::5 {ELEMENT_COMMENT} }}\n")


def test_nft_setup_makes_missing_subnets_and_replaces_present_elements() -> None:
    listing = {"nftables": [
        {"set": {"name": SET4, "elem": [{"elem": {"val": "10.1.0.5", "comment": "CNI-old"}}]}}]}
    assert _masq.render_nft_setup(OWNER, ["10.1.0.5/24", "fd01::5/64"], listing) == (
        "add table inet corecni_masquerade\n"
        "add chain inet corecni_masquerade postrouting "
        "{ type nat hook postrouting priority srcnat; policy accept; }\n"
        f"delete element inet corecni_masquerade {SET4} {{ 10.1.0.5 }}\n"
        f"add element inet corecni_masquerade {SET4} {{ 10.1.0.5 {ELEMENT_COMMENT} }}\n"
        f"add set inet corecni_masquerade {SET6} {{ type ipv6_addr; }}\n"
        f"add rule inet corecni_masquerade postrouting ip6 saddr @{SET6} "
        "ip6 daddr != fd01::/64 ip6 daddr != ff00::/8 masquerade "
        'comment "corecni masq net: mynet, subnet: fd01::/64"\n'
        f"add element inet corecni_masquerade {SET6} {{ fd01::5 {ELEMENT_COMMENT} }}\n")
    first = _masq.render_nft_setup(OWNER, ["10.1.0.5/24"], None)  # no table yet
    assert f"add set inet corecni_masquerade {SET4} {{ type ipv4_addr; }}" in first
    assert "ip saddr @" + SET4 + " ip daddr != 10.1.0.0/24 ip daddr != 224.0.0.0/4" in first
    assert "delete" not in first


def test_owned_elements_and_legacy_chains() -> None:
    """DEL (``owners``) and GC (``keep``) find elements by the owner token of their
    comment, in the network's sets only; chains of the former layout too."""
    keep, drop = Owner("mynet", "a", "eth0"), Owner("mynet", "b", "eth0")
    stranger = Owner("othernet", "b", "eth0")
    listing = {"nftables": [
        {"set": {"name": SET4, "elem": [
            {"elem": {"val": "10.1.0.2", "comment": keep.nft_comment}},
            {"elem": {"val": "10.1.0.3", "comment": drop.nft_comment}},
            "10.1.0.4"]}},  # no comment: not ours
        {"set": {"name": _masq.nft_set("othernet", "10.1.0.5/24"),
                 "elem": [{"elem": {"val": "10.1.0.5", "comment": stranger.nft_comment}}]}},
        {"rule": {"chain": drop.nft_chain, "comment": drop.legacy_nft_comment}},
        {"rule": {"chain": "postrouting", "comment": "corecni masq net: mynet, subnet: x"}}]}
    gc = _masq.owned_nft_elements(listing, "mynet", keep=[keep])
    assert [(e.set_name, e.key) for e in gc] == [(SET4, "10.1.0.3")]
    assert _masq.legacy_nft_chains(listing, "mynet", keep=[keep]) == [drop.nft_chain]
    assert _masq.legacy_nft_chains(listing, "mynet", [keep]) == []
    assert [e.key for e in _masq.owned_nft_elements(listing, "mynet", [keep])] == ["10.1.0.2"]
    assert _masq.render_nft_teardown(gc, [drop.nft_chain]) == (
        f"delete element inet corecni_masquerade {SET4} {{ 10.1.0.3 }}\n"
        f"delete chain inet corecni_masquerade {drop.nft_chain}\n")
    assert _masq.render_nft_teardown() == ""


# --- iptables (Go's layout) ---------------------------------------------------------------

CHAIN = "CNI-15815ef49e0fdf04a746924c"
COMMENT = '"name: \\"mynet\\" id: \\"c0ffee\\""'


def test_iptables_setup_is_gos_rules() -> None:
    assert _masq.render_iptables_setup(OWNER, ["10.1.0.5/24"], saved="") == (
        "*nat\n"
        f":{CHAIN} - [0:0]\n"
        f"-A {CHAIN} -d 10.1.0.0/24 -j ACCEPT -m comment --comment {COMMENT}\n"
        f"-A {CHAIN} ! -d 224.0.0.0/4 -j MASQUERADE -m comment --comment {COMMENT}\n"
        f"-A POSTROUTING -s 10.1.0.5 -j {CHAIN} -m comment --comment {COMMENT}\n"
        "COMMIT\n"
    )


SAVED = f"""# Generated by iptables-save v1.8.9 (nf_tables)
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:{CHAIN} - [0:0]
-A POSTROUTING -s 10.1.0.5/32 -m comment --comment {COMMENT} -j {CHAIN}
-A POSTROUTING -s 10.9.9.9/32 -j CNI-someoneelse
-A {CHAIN} -d 10.1.0.0/24 -m comment --comment {COMMENT} -j ACCEPT
COMMIT
"""


def test_iptables_setup_adds_no_second_jump() -> None:
    script = _masq.render_iptables_setup(OWNER, ["10.1.0.5/24"], saved=SAVED)
    assert "-A POSTROUTING" not in script
    assert f":{CHAIN} - [0:0]" in script  # declaring flushes: a repeated ADD rewrites it


def test_iptables_teardown_deletes_exactly_the_saved_jumps() -> None:
    assert _masq.render_iptables_teardown(OWNER, SAVED) == (
        "*nat\n"
        f"-D POSTROUTING -s 10.1.0.5/32 -m comment --comment {COMMENT} -j {CHAIN}\n"
        f":{CHAIN} - [0:0]\n"
        f"-X {CHAIN}\n"
        "COMMIT\n"
    )
    assert _masq.render_iptables_teardown(OWNER, "*nat\nCOMMIT\n") is None


def test_unknown_backend_and_missing_tool() -> None:
    with pytest.raises(CNIError) as err:
        _masq.setup("pf", OWNER, ["10.1.0.5/24"])
    assert err.value.code == 7
    _masq.setup("nftables", OWNER, [])  # nothing to masquerade: no exec at all
    assert firewall.find_tool("no-such-netfilter-tool") is None
    with pytest.raises(CNIError, match="no-such-netfilter-tool is not installed"):
        firewall.run_tool("no-such-netfilter-tool", [])


# --- bridge port settings -----------------------------------------------------------------

def bridge_conf(**raw: object) -> BridgeConf:
    body = {"cniVersion": "1.0.0", "name": "n", "type": "bridge", **raw}
    return BridgeConf.from_request(Request.for_config("ADD", PluginConfig.from_dict(body)))


def test_vlan_access_port() -> None:
    assert ports.port_commands("veth0", bridge_conf(vlan=100), [1]) == [
        "vlan del dev veth0 vid 1", "vlan add dev veth0 vid 100 pvid untagged"]
    assert ports.port_commands("veth0", bridge_conf(vlan=100, preserveDefaultVlan=True), [1]) \
        == ["vlan add dev veth0 vid 100 pvid untagged"]


def test_vlan_trunk_ranges_native_vlan_and_isolation() -> None:
    trunk = [{"id": 101}, {"minID": 200, "maxID": 203}, {"id": 205}]
    assert ports.port_commands("veth0", bridge_conf(vlanTrunk=trunk, portIsolation=True), [1]) \
        == ["vlan del dev veth0 vid 1", "vlan add dev veth0 vid 101",
            "vlan add dev veth0 vid 200-203", "vlan add dev veth0 vid 205",
            "vlan add dev veth0 vid 1 pvid untagged", "link set dev veth0 isolated on"]
    assert ports.port_commands("veth0", bridge_conf(), [1]) == []


def test_vids_from_bridge_json() -> None:
    shown = '[{"ifname":"veth0","vlans":[{"vlan":1,"flags":["PVID"]},{"vlan":5,"vlanEnd":7}]}]'
    assert ports.vids_from_json(shown) == [1, 5, 6, 7]
    assert ports.vids_from_json("") == []


def test_spoof_check_rules() -> None:
    chain = ports.spoof_chain(OWNER)
    assert chain.startswith("cni-br-iface-")
    setup = ports.render_spoof_setup(OWNER, "veth1234abcd", "02:00:00:00:00:01")
    assert setup.splitlines() == [
        "add table bridge corecni_macspoofchk",
        f"add chain bridge corecni_macspoofchk {chain} "
        "{ type filter hook prerouting priority -300; policy accept; }",
        f"flush chain bridge corecni_macspoofchk {chain}",
        f'add rule bridge corecni_macspoofchk {chain} iifname "veth1234abcd" '
        'ether saddr != 02:00:00:00:00:01 drop comment "macspoofchk-c0ffee-eth0"',
    ]
    assert ports.render_spoof_teardown(OWNER).splitlines()[-1] == \
        f"delete chain bridge corecni_macspoofchk {chain}"


def test_iptables_setup_of_a_new_attachment_needs_no_read() -> None:
    # -N fails (the whole transaction) when the chain exists: the caller then reads first
    script = _masq.render_iptables_setup_new(OWNER, ["10.1.2.3/24"])
    assert script.splitlines()[:2] == ["*nat", f"-N {OWNER.iptables_chain}"]
    assert f"-A POSTROUTING -s 10.1.2.3 -j {OWNER.iptables_chain}" in script
