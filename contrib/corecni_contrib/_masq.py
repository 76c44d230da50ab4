"""IP masquerade for bridge and ptp (Go's ``ip.SetupIPMasqForNetworks``), one exec per call.

Go installs its rules with one ``iptables`` exec per rule (plus lookups). Here
a whole ADD or DEL is rendered as text and handed to the kernel in one
transaction, and the rules always go into the namespace of the calling thread
(the node), because the tool is a child of that thread.

Two backends, selected by ``ipMasqBackend`` as in Go:

* ``nftables`` (chosen explicitly, or when no iptables is installed): every attachment gets
  its own base chain ``CNI-<hash>`` in table ``inet corecni_masquerade``,
  hooked at postrouting. Because nothing is shared between attachments, ADD is
  "add chain, flush it, add its rules" and DEL is "add chain, delete it" - both
  idempotent in a single ``nft -f`` with no read first, and both families in
  one table. Rule comments name network, container and interface, so GC can
  find a network's chains.
* ``iptables`` (the default, as in Go): Go's exact layout (chain
  ``CNI-<hash(network+containerID)>``, comment ``name: "net" id: "cid"``, an ACCEPT for
  the own subnet, MASQUERADE for non-multicast, a POSTROUTING jump per address), so Go's
  bridge/ptp DEL removes our rules and ours removes Go's. iptables cannot delete "if
  present", so each address family costs one ``*-save`` read plus one ``*-restore
  --noflush`` write.

Tools are exec'd, never imported: ``subprocess`` is loaded only when masquerade
is actually configured, keeping the exec path of a plugin without it light.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from corecni.kit.firewall import find_tool, format_chain_name, iptables_comment, run_tool
from corecni.spec.errors import CNIError, ErrorCode

NFT_TABLE = "corecni_masquerade"
BACKENDS = ("iptables", "nftables")
MULTICAST = {4: "224.0.0.0/4", 6: "ff00::/8"}
COMMENT_MAX = 128  # nftables' NFT_USERDATA limit as knftables enforces it
_TIMEOUT = 30.0


# --- names and comments ----------------------------------------------------------


def _plain(text: str) -> str:
    """nft strings cannot escape quotes: drop them, as Go's nftables backend does."""
    return text.replace('"', "").replace("\\", "")


@attrs.frozen
class Owner:
    """The attachment a set of rules belongs to."""

    network: str
    container_id: str
    ifname: str

    @property
    def nft_chain(self) -> str:
        """Unlike Go's iptables chain, the interface is part of the identity: two
        interfaces of one container on one network must not share a chain."""
        return format_chain_name(self.network, f"{self.container_id}-{self.ifname}")

    @property
    def nft_comment(self) -> str:
        text = f"{nft_comment_prefix(self.network)}id: {_plain(self.container_id)}, " \
               f"if: {_plain(self.ifname)}"
        return text[:COMMENT_MAX]

    @property
    def iptables_chain(self) -> str:
        return format_chain_name(self.network, self.container_id)

    @property
    def iptables_comment(self) -> str:
        return iptables_comment(self.network, self.container_id)


def nft_comment_prefix(network: str) -> str:
    """Comments start with the network, so a truncated comment still tells it (for GC)."""
    return f"corecni masq net: {_plain(network)}, "


def _family(address: str) -> int:
    return ipaddress.ip_interface(address).version


def _subnet(address: str) -> str:
    return str(ipaddress.ip_interface(address).network)


def _host(address: str) -> str:
    return str(ipaddress.ip_interface(address).ip)


# --- nftables rendering ----------------------------------------------------------

def _nft_chain_decl(chain: str) -> str:
    return (f"add chain inet {NFT_TABLE} {chain} "
            "{ type nat hook postrouting priority srcnat; policy accept; }")


def render_nft_setup(owner: Owner, addresses: Sequence[str]) -> str:
    """One transaction: the attachment's chain, emptied, then one rule per address.

    Traffic from the address to anything outside its own subnet that is not
    multicast is masqueraded (Go's rule set, as one nft rule per address).
    """
    chain = owner.nft_chain
    lines = [f"add table inet {NFT_TABLE}", _nft_chain_decl(chain),
             f"flush chain inet {NFT_TABLE} {chain}"]
    for address in addresses:
        ip = "ip" if _family(address) == 4 else "ip6"
        lines.append(
            f"add rule inet {NFT_TABLE} {chain} {ip} saddr {_host(address)} "
            f"{ip} daddr != {_subnet(address)} {ip} daddr != {MULTICAST[_family(address)]} "
            f'masquerade comment "{owner.nft_comment}"')
    return "\n".join(lines) + "\n"


def render_nft_teardown(owners: Iterable[Owner] = (), chains: Iterable[str] = ()) -> str:
    """Delete chains whether or not they exist: declaring first makes the delete safe."""
    names = [o.nft_chain for o in owners] + list(chains)
    lines = [f"add table inet {NFT_TABLE}"]
    for chain in dict.fromkeys(names):
        lines += [_nft_chain_decl(chain), f"delete chain inet {NFT_TABLE} {chain}"]
    return "\n".join(lines) + "\n"


def stale_nft_chains(listing: dict[str, Any], network: str,
                     valid: Iterable[tuple[str, str]]) -> list[str]:
    """From ``nft -j list table``: chains of ``network`` owned by no valid attachment."""
    keep = {Owner(network, cid, ifname).nft_chain for cid, ifname in valid}
    prefix = nft_comment_prefix(network)
    stale = []
    for item in listing.get("nftables", []):
        rule = item.get("rule") if isinstance(item, dict) else None
        if not isinstance(rule, dict):
            continue
        chain, comment = rule.get("chain"), rule.get("comment")
        if isinstance(chain, str) and isinstance(comment, str) and \
                comment.startswith(prefix) and chain not in keep:
            stale.append(chain)
    return list(dict.fromkeys(stale))


# --- iptables rendering ----------------------------------------------------------

def _saved_lines(saved: str) -> list[str]:
    return [line.strip() for line in saved.splitlines()]


def _jumps(saved: str, chain: str) -> list[str]:
    """The POSTROUTING rules that jump to ``chain``, as ``iptables-save`` prints them."""
    return [line for line in _saved_lines(saved)
            if line.startswith("-A POSTROUTING ") and line.endswith(f" -j {chain}")]


def render_iptables_setup(owner: Owner, addresses: Sequence[str], saved: str) -> str:
    """``iptables-restore --noflush`` input for one family's ``addresses``.

    Declaring the chain flushes it, so a repeated ADD rewrites it; a POSTROUTING
    jump already in ``saved`` (the current ``-t nat`` dump) is not added twice.
    """
    chain, comment = owner.iptables_chain, json.dumps(owner.iptables_comment)
    family = _family(addresses[0])
    present = " ".join(_jumps(saved, chain))
    lines = ["*nat", f":{chain} - [0:0]"]
    for address in addresses:
        lines.append(f"-A {chain} -d {_subnet(address)} -j ACCEPT -m comment --comment {comment}")
    lines.append(f"-A {chain} ! -d {MULTICAST[family]} -j MASQUERADE "
                 f"-m comment --comment {comment}")
    for address in addresses:
        bits = 32 if family == 4 else 128
        if f"-s {_host(address)}/{bits} " not in present:
            lines.append(f"-A POSTROUTING -s {_host(address)} -j {chain} "
                         f"-m comment --comment {comment}")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def render_iptables_setup_new(owner: Owner, addresses: Sequence[str]) -> str:
    """The same rules for an attachment whose chain does not exist yet: ``-N`` makes
    the transaction fail as a whole when it does, and the caller reads first."""
    script = render_iptables_setup(owner, addresses, "")
    chain = owner.iptables_chain
    return script.replace(f":{chain} - [0:0]\n", f"-N {chain}\n", 1)


def render_iptables_teardown(owner: Owner, saved: str) -> str | None:
    """Input that removes the jumps and the chain, or None when neither exists."""
    chain = owner.iptables_chain
    jumps = _jumps(saved, chain)
    has_chain = any(line.startswith(f":{chain} ") for line in _saved_lines(saved))
    if not jumps and not has_chain:
        return None
    lines = ["*nat"]
    lines += ["-D" + jump[2:] for jump in jumps]
    if has_chain:
        lines += [f":{chain} - [0:0]", f"-X {chain}"]  # declaring flushes it first
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


# --- running the tools -----------------------------------------------------------


def default_backend() -> str:
    """iptables unless only nftables exists - Go's rule.

    The same default as Go keeps a node switchable between Go's and corecni's
    bridge/ptp with live containers: each DEL finds the other's rules. The
    nftables layout (one exec per ADD/DEL, no read first) is a config choice.
    """
    if find_tool("iptables-restore") or not find_tool("nft"):
        return "iptables"
    return "nftables"


def _resolve(backend: str | None) -> str:
    chosen = backend or default_backend()
    if chosen not in BACKENDS:
        raise CNIError(ErrorCode.INVALID_NETWORK_CONFIG, f"unknown ipmasq backend {chosen!r}",
                       f"expected one of {', '.join(BACKENDS)}")
    return chosen


_SAVE = {4: "iptables-save", 6: "ip6tables-save"}
_RESTORE = {4: "iptables-restore", 6: "ip6tables-restore"}


def setup(backend: str | None, owner: Owner, addresses: Sequence[str]) -> None:
    """Masquerade traffic from ``addresses`` (interface form) leaving their subnets."""
    if not addresses:
        return
    what = "set up IP masquerade"
    if _resolve(backend) == "nftables":
        run_tool("nft", ["-f", "-"], render_nft_setup(owner, addresses), what)
        return
    for family in (4, 6):
        mine = [a for a in addresses if _family(a) == family]
        if not mine:
            continue
        try:  # a new attachment: no read, so the cost does not grow with the node's rules
            run_tool(_RESTORE[family], ["--noflush"], render_iptables_setup_new(owner, mine))
            continue
        except CNIError:
            pass  # the chain exists (a repeated ADD): read, then rewrite it
        saved = run_tool(_SAVE[family], ["-t", "nat"], what=what)
        run_tool(_RESTORE[family], ["--noflush"],
                 render_iptables_setup(owner, mine, saved), what)


def teardown(backend: str | None, owner: Owner) -> None:
    """Remove the attachment's rules; nothing there is not an error. Needs no
    addresses, so it works after the container's namespace is gone."""
    what = "tear down IP masquerade"
    if _resolve(backend) == "nftables":
        run_tool("nft", ["-f", "-"], render_nft_teardown([owner]), what)
        return
    for family in (4, 6):
        saved = run_tool(_SAVE[family], ["-t", "nat"], what=what)
        script = render_iptables_teardown(owner, saved)
        if script is not None:
            run_tool(_RESTORE[family], ["--noflush"], script, what)


_MISSING = re.compile(r"No such file or directory|does not exist", re.IGNORECASE)


def gc(backend: str | None, network: str, valid: Iterable[tuple[str, str]]) -> None:
    """SPEC GC for the nftables backend: drop ``network``'s chains that belong to no
    valid (container ID, ifname). Go's iptables layout cannot tell networks apart
    (Go does not collect it either), so it is left alone."""
    if _resolve(backend) != "nftables":
        return
    import subprocess

    exe = find_tool("nft")
    if exe is None:
        return
    proc = subprocess.run([exe, "-j", "list", "table", "inet", NFT_TABLE], capture_output=True,
                          text=True, timeout=_TIMEOUT, check=False)
    if proc.returncode != 0:
        if _MISSING.search(proc.stderr):
            return  # no table: nothing was ever masqueraded here
        raise CNIError(ErrorCode.INTERNAL, "GC IP masquerade: nft list failed",
                       proc.stderr.strip()[-2000:])
    stale = stale_nft_chains(json.loads(proc.stdout or "{}"), network, valid)
    if stale:
        run_tool("nft", ["-f", "-"], render_nft_teardown(chains=stale), "GC IP masquerade")
