"""Bridge-port settings beyond the link-layer contract: VLANs, isolation, MAC spoof check.

``corecni.net`` has no request for bridge VLAN entries or the port isolation
flag yet, so they are sent with iproute2's ``bridge -batch -`` - one exec for
the whole port, in the calling thread's namespace (the node), never pyroute2.
When the contract grows those requests this module is the only caller to move.

The MAC spoof check (Go's ``macspoofchk``) is nftables, as in Go, but laid out
like the masquerade rules (``corecni_contrib._masq``): one bridge-family base
chain per attachment, so ADD and DEL are each a single idempotent ``nft -f``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from corecni.kit.firewall import format_hash, run_tool
from corecni_contrib._masq import Owner
from corecni_contrib.bridge.config import BridgeConf

SPOOF_TABLE = "corecni_macspoofchk"
NATIVE_VLAN = 1  # Go: a trunk without ``vlan`` gets VLAN 1 as its native VLAN


def _ranges(vids: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted VLAN ids as (first, last) runs, so a 200-299 trunk is one command."""
    runs: list[tuple[int, int]] = []
    for vid in sorted(set(vids)):
        if runs and runs[-1][1] == vid - 1:
            runs[-1] = (runs[-1][0], vid)
        else:
            runs.append((vid, vid))
    return runs


def port_commands(port: str, conf: BridgeConf, present_vids: Sequence[int] = ()) -> list[str]:
    """``bridge -batch`` lines for a new port, in Go's order: drop the default VLAN
    (unless ``preserveDefaultVlan``), the access/native VLAN, the trunk, isolation."""
    lines = []
    if conf.tags_port and not conf.preserve_default_vlan:
        lines += [f"vlan del dev {port} vid {vid}" for vid in present_vids]
    if conf.vlan:
        lines.append(f"vlan add dev {port} vid {conf.vlan} pvid untagged")
    for first, last in _ranges(conf.vlan_trunk):
        vid = str(first) if first == last else f"{first}-{last}"
        lines.append(f"vlan add dev {port} vid {vid}")
    if not conf.vlan and conf.vlan_trunk:
        lines.append(f"vlan add dev {port} vid {NATIVE_VLAN} pvid untagged")
    if conf.port_isolation:
        lines.append(f"link set dev {port} isolated on")
    return lines


def vids_from_json(text: str) -> list[int]:
    """VLAN ids in ``bridge -j vlan show dev X`` output (ranges expanded)."""
    vids: list[int] = []
    for entry in json.loads(text or "[]"):
        for vlan in entry.get("vlans", []):
            first = int(vlan["vlan"])
            vids.extend(range(first, int(vlan.get("vlanEnd", first)) + 1))
    return vids


def configure_port(port: str, conf: BridgeConf) -> None:
    """Apply VLAN and isolation settings to the bridge port ``port`` (no-op if none)."""
    present: list[int] = []
    if conf.tags_port and not conf.preserve_default_vlan:
        shown = run_tool("bridge", ["-j", "vlan", "show", "dev", port],
                         what=f"read VLANs of {port}")
        present = vids_from_json(shown)
    lines = port_commands(port, conf, present)
    if lines:
        run_tool("bridge", ["-batch", "-"], "\n".join(lines) + "\n",
                 f"set up VLAN/isolation on bridge port {port}")


# --- MAC spoof check --------------------------------------------------------------

def spoof_chain(owner: Owner) -> str:
    """Go names it ``cni-br-iface-<containerID>-<ifname>``; hashed here, because an
    ifname may hold characters an nft identifier may not."""
    return "cni-br-iface-" + format_hash(24, "", f"{owner.container_id}-{owner.ifname}")


def _spoof_comment(owner: Owner) -> str:
    text = f"macspoofchk-{owner.container_id}-{owner.ifname}"
    return text.replace('"', "").replace("\\", "")[:128]


def _spoof_chain_decl(chain: str) -> str:
    return (f"add chain bridge {SPOOF_TABLE} {chain} "
            "{ type filter hook prerouting priority -300; policy accept; }")


def render_spoof_setup(owner: Owner, port: str, mac: str) -> str:
    """Frames entering the bridge from ``port`` must carry the container's MAC."""
    chain = spoof_chain(owner)
    return "\n".join([
        f"add table bridge {SPOOF_TABLE}",
        _spoof_chain_decl(chain),
        f"flush chain bridge {SPOOF_TABLE} {chain}",
        f'add rule bridge {SPOOF_TABLE} {chain} iifname "{port}" ether saddr != {mac} drop '
        f'comment "{_spoof_comment(owner)}"',
    ]) + "\n"


def render_spoof_teardown(owner: Owner) -> str:
    chain = spoof_chain(owner)
    return "\n".join([f"add table bridge {SPOOF_TABLE}", _spoof_chain_decl(chain),
                      f"delete chain bridge {SPOOF_TABLE} {chain}"]) + "\n"


def spoof_setup(owner: Owner, port: str, mac: str) -> None:
    run_tool("nft", ["-f", "-"], render_spoof_setup(owner, port, mac), "set up macspoofchk")


def spoof_teardown(owner: Owner) -> None:
    run_tool("nft", ["-f", "-"], render_spoof_teardown(owner), "tear down macspoofchk")
