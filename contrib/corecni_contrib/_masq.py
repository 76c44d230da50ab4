"""IP masquerade for bridge and ptp (Go's ``ip.SetupIPMasqForNetworks``), one transaction per call.

Go installs its rules with one ``iptables`` exec per rule (plus lookups). Here
a whole ADD or DEL is rendered as text and handed to the kernel in one
transaction, and the rules always go into the namespace of the calling thread
(the node), because the tool is a child of that thread.

Two backends, selected by ``ipMasqBackend`` as in Go:

* ``nftables`` (chosen explicitly, or when no iptables is installed): one table
  ``inet corecni_masquerade`` with one base chain ``postrouting``; a network's
  subnet ``S`` owns a set ``masq4-<hash(network)>-<hash(S)>`` (``masq6-`` for v6)
  and one rule ``ip saddr @set ip daddr != S ip daddr != 224.0.0.0/4
  masquerade``. An attachment is one *element* per address, commented with its
  owner (a hash of network, container ID and interface), so an ADD is a single
  ``create element`` transaction: no chain or rule is added, nothing is read or
  deleted, and its cost does not grow with the attachments on the node (nft
  reads every chain of the namespace before each command: a chain per
  attachment would make every nft call on the node slower as pods come).
  The transaction fails as a whole when the subnet's set is missing (the first
  attachment on it: set and rule are then made together, under a lock) or when
  the address is already an element (a repeated ADD, or a leftover of a killed
  DEL: it is replaced). DEL deletes the elements of the addresses it is told of
  (the previous result) once a lookup shows they are this attachment's; without
  addresses it reads the table and deletes what the attachment owns.
* ``iptables`` (the default, as in Go): Go's exact layout (chain
  ``CNI-<hash(network+containerID)>``, comment ``name: "net" id: "cid"``, an ACCEPT for
  the own subnet, MASQUERADE for non-multicast, a POSTROUTING jump per address), so Go's
  bridge/ptp DEL removes our rules and ours removes Go's. iptables cannot delete "if
  present", so each address family costs one ``*-save`` read plus one ``*-restore
  --noflush`` write.

The iptables tools are exec'd (``subprocess`` is loaded only when masquerade is
actually configured, keeping the exec path of a plugin without it light); nft
runs in-process through libnftables (``corecni.kit.firewall``).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs

from corecni.kit.firewall import (
    NftElement,
    find_tool,
    format_chain_name,
    format_hash,
    iptables_comment,
    netfilter_lock,
    nft_command,
    nft_elements,
    nft_list_table,
    nft_run,
    run_tool,
)
from corecni.spec.errors import CNIError, ErrorCode
from corecni.spec.result import Result

NFT_TABLE = "corecni_masquerade"
NFT_LOCK = "masquerade-nft"
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
        """The owner token: names the attachment in element comments (and named the
        per-attachment chains of the former layout). Unlike Go's iptables chain, the
        interface is part of the identity: two interfaces of one container on one
        network are two owners."""
        return format_chain_name(self.network, f"{self.container_id}-{self.ifname}")

    @property
    def nft_comment(self) -> str:
        """Token first, so a cut comment still names its owner."""
        return f"{self.nft_chain} id: {_plain(self.container_id)} if: {_plain(self.ifname)}" \
            [:COMMENT_MAX]

    @property
    def legacy_nft_comment(self) -> str:
        """The rule comment of the former per-attachment chain layout (GC still
        collects such chains)."""
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


def result_addresses(result: Result | None) -> list[str]:
    """The addresses (interface form) of a previous result, for ``teardown``."""
    return [ip.address for ip in result.ips] if result is not None else []


def _family(address: str) -> int:
    return ipaddress.ip_interface(address).version


def _subnet(address: str) -> str:
    return str(ipaddress.ip_interface(address).network)


def _host(address: str) -> str:
    return str(ipaddress.ip_interface(address).ip)


# --- nftables rendering ----------------------------------------------------------

NFT_CHAIN = "postrouting"
_NFT_IP = {4: "ip", 6: "ip6"}
_NFT_ADDR = {4: "ipv4_addr", 6: "ipv6_addr"}


def nft_set_prefix(network: str, family: int) -> str:
    """The start of every set name of ``network`` (GC finds a network's sets by it)."""
    return f"masq{family}-{format_hash(12, '', network)}-"


def nft_set(network: str, address: str) -> str:
    """The set of the subnet ``address`` (interface form) is in."""
    return nft_set_prefix(network, _family(address)) + format_hash(8, "", _subnet(address))


def _nft_base() -> list[str]:
    return [f"add table inet {NFT_TABLE}",
            f"add chain inet {NFT_TABLE} {NFT_CHAIN} "
            "{ type nat hook postrouting priority srcnat; policy accept; }"]


def render_nft_subnet(network: str, address: str) -> list[str]:
    """The set of ``address``'s subnet and the one rule that masquerades its members:
    traffic to anything outside the subnet that is not multicast (Go's rule set)."""
    family, name = _family(address), nft_set(network, address)
    ip, subnet = _NFT_IP[family], _subnet(address)
    return [f"add set inet {NFT_TABLE} {name} {{ type {_NFT_ADDR[family]}; }}",
            f"add rule inet {NFT_TABLE} {NFT_CHAIN} {ip} saddr @{name} "
            f"{ip} daddr != {subnet} {ip} daddr != {MULTICAST[family]} masquerade "
            f'comment "{nft_comment_prefix(network)}subnet: {subnet}"']


def render_nft_element(verb: str, owner: Owner, address: str) -> str:
    """``create``/``add`` (with the owner's comment) or ``delete`` one address."""
    comment = f' comment "{owner.nft_comment}"' if verb != "delete" else ""
    return f"{verb} element inet {NFT_TABLE} {nft_set(owner.network, address)} " \
           f"{{ {_host(address)}{comment} }}"


def render_nft_setup_fast(owner: Owner, addresses: Sequence[str]) -> str:
    """The ADD of a new attachment on a subnet that has its set and rule: elements
    only. ``create`` fails (and so the whole transaction) when an address is
    already there; adding to a missing set fails too."""
    return "\n".join(render_nft_element("create", owner, a) for a in addresses) + "\n"


def render_nft_setup(owner: Owner, addresses: Sequence[str], listing: dict[str, Any] | None) \
        -> str:
    """The ADD decided on a read of the table (``listing``): the subnets' sets and
    rules where missing, an element already there replaced, then the elements."""
    have_sets = {item["set"]["name"] for item in (listing or {}).get("nftables", [])
                 if isinstance(item, dict) and isinstance(item.get("set"), dict)}
    present = {(e.set_name, e.key) for e in nft_elements(listing)}
    lines = _nft_base()
    for address in addresses:
        name = nft_set(owner.network, address)
        if name not in have_sets:
            lines += render_nft_subnet(owner.network, address)
            have_sets.add(name)
        if (name, _host(address)) in present:
            lines.append(render_nft_element("delete", owner, address))
        lines.append(render_nft_element("add", owner, address))
    return "\n".join(lines) + "\n"


def _picker(owners: Iterable[Owner] | None, keep: Iterable[Owner]) -> Callable[[str], bool]:
    """Whether an owner token is one of ``owners`` (any when None) and none of ``keep``."""
    wanted = None if owners is None else {o.nft_chain for o in owners}
    kept = {o.nft_chain for o in keep}
    return lambda token: token not in kept and (wanted is None or token in wanted)


def owned_nft_elements(listing: dict[str, Any] | None, network: str,
                       owners: Iterable[Owner] | None = None,
                       keep: Iterable[Owner] = ()) -> list[NftElement]:
    """Elements of ``network``'s sets that belong to ``owners`` (all owners when
    None), except those of ``keep``."""
    prefixes = (nft_set_prefix(network, 4), nft_set_prefix(network, 6))
    picked = _picker(owners, keep)
    found = []
    for element in nft_elements(listing):
        token = element.comment.split(" ", 1)[0]
        if element.set_name.startswith(prefixes) and token.startswith("CNI-") and picked(token):
            found.append(element)
    return found


def legacy_nft_chains(listing: dict[str, Any] | None, network: str,
                      owners: Iterable[Owner] | None = None,
                      keep: Iterable[Owner] = ()) -> list[str]:
    """Per-attachment chains of the former layout: ``network``'s, of ``owners`` (all
    when None), except ``keep``'s."""
    picked = _picker(owners, keep)
    prefix = nft_comment_prefix(network)
    stale = []
    for item in (listing or {}).get("nftables", []):
        rule = item.get("rule") if isinstance(item, dict) else None
        if not isinstance(rule, dict):
            continue
        chain, comment = rule.get("chain"), rule.get("comment")
        if isinstance(chain, str) and chain != NFT_CHAIN and isinstance(comment, str) and \
                comment.startswith(prefix) and picked(chain):
            stale.append(chain)
    return list(dict.fromkeys(stale))


def render_nft_teardown(elements: Iterable[NftElement] = (), chains: Iterable[str] = ()) -> str:
    """One transaction deleting ``elements`` and (former layout) ``chains``."""
    lines = [f"delete element inet {NFT_TABLE} {e.set_name} {{ {e.key} }}" for e in elements]
    lines += [f"delete chain inet {NFT_TABLE} {chain}" for chain in dict.fromkeys(chains)]
    return "\n".join(lines) + "\n" if lines else ""


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
        _nft_setup(owner, addresses, what)
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


def _nft_setup(owner: Owner, addresses: Sequence[str], what: str) -> None:
    status, _, _ = nft_command(render_nft_setup_fast(owner, addresses), what=what)
    if status == 0:
        return
    with netfilter_lock(NFT_LOCK):  # a read decides the write: no concurrent ADD between
        listing = nft_list_table("inet", NFT_TABLE, what)
        nft_run(render_nft_setup(owner, addresses, listing), what)


def teardown(backend: str | None, owner: Owner, addresses: Sequence[str] = ()) -> None:
    """Remove the attachment's rules; nothing there is not an error.

    ``addresses`` (interface form; the previous result's, when known) only spare
    the nftables backend a read of the whole table: without them the rules are
    still found by the attachment's identity, so this works after the
    container's namespace and cached result are gone. Call it while the
    addresses are still allocated to the attachment (before IPAM releases them):
    an element found under one of them is then this attachment's or a leftover.
    """
    what = "tear down IP masquerade"
    if _resolve(backend) == "nftables":
        _nft_teardown(owner, addresses, what)
        return
    for family in (4, 6):
        saved = run_tool(_SAVE[family], ["-t", "nat"], what=what)
        script = render_iptables_teardown(owner, saved)
        if script is not None:
            run_tool(_RESTORE[family], ["--noflush"], script, what)


_COMMENT = re.compile(r'comment "([^"]*)"')


def _nft_owner_of(owner: Owner, address: str, what: str) -> str | None:
    """The owner token of ``address``'s element (one kernel lookup, not a listing),
    or None when there is no such element (or set, or table)."""
    name = nft_set(owner.network, address)
    status, out, _ = nft_command(f"get element inet {NFT_TABLE} {name} {{ {_host(address)} }}",
                                 what=what)
    if status != 0:
        return None
    found = _COMMENT.search(out)
    return found.group(1).split(" ", 1)[0] if found else ""


def _nft_teardown(owner: Owner, addresses: Sequence[str], what: str) -> None:
    if addresses:
        mine = [a for a in addresses if _nft_owner_of(owner, a, what) == owner.nft_chain]
        if mine:
            nft_run("\n".join(render_nft_element("delete", owner, a) for a in mine) + "\n",
                    what)
            return
    _drop_listed(owner.network, what, owners=[owner])


def gc(backend: str | None, network: str, valid: Iterable[tuple[str, str]]) -> None:
    """SPEC GC for the nftables backend: drop ``network``'s elements (and chains of
    the former layout) that belong to no valid (container ID, ifname). Go's iptables
    layout cannot tell networks apart (Go does not collect it either), so it is
    left alone."""
    if _resolve(backend) != "nftables":
        return
    what = "GC IP masquerade"
    _drop_listed(network, what, keep=[Owner(network, cid, ifname) for cid, ifname in valid])


def _drop_listed(network: str, what: str, owners: Iterable[Owner] | None = None,
                 keep: Iterable[Owner] = ()) -> None:
    """Read the table once and delete, in one transaction, ``network``'s elements and
    former-layout chains of ``owners`` (any when None) but not of ``keep``."""
    owners = None if owners is None else list(owners)
    keep = list(keep)
    listing = nft_list_table("inet", NFT_TABLE, what)
    script = render_nft_teardown(owned_nft_elements(listing, network, owners, keep),
                                 legacy_nft_chains(listing, network, owners, keep))
    if script:
        nft_run(script, what)
