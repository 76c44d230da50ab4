"""firewall's nftables backend: one table, a container is two set elements.

``table inet corecni_firewall`` holds sets ``ctr4``/``ctr6`` of container
addresses (each element commented with its container ID) and a base chain
``forward`` (hook forward, priority filter) refilled on every ADD with the same
few rules::

    iifname vmap @isolation          # ingressPolicy same-bridge / isolated
    jump <admin chain>               # iptablesAdminChainName: the admin's rules, never flushed
    ip daddr @ctr4 ct state established,related accept
    ip saddr @ctr4 accept            # (and ip6 for ctr6)

A same-bridge network adds its bridge to set ``isolated`` and to map
``isolation`` (``"br" : jump iso-<hash>``); chain ``iso-<hash>`` drops what goes
from that bridge to another isolated bridge (and, for ``isolated``, back to the
same bridge). ADD is one nft transaction with no read that only adds elements
(and one to the marker set ``v-<hash of the rules>``, which makes it fail when
the rules of this config are not in place: then the declaration above, with its
flushes, goes into the same transaction - once per node and config). DEL
deletes the container's addresses (those of ``prevResult``, else found by
reading the table once, as GC does), so DEL needs no ``prevResult``.

As with any nftables ruleset, an ``accept`` here ends the packet's walk through
this table only: a drop policy in another table (iptables-nft's ``FORWARD``)
still applies.
"""

from __future__ import annotations

from corecni.kit import CNIError, ErrorCode
from corecni.kit.firewall import (
    NftElement,
    format_hash,
    nft_elements,
    nft_list_table,
    nft_run,
    nft_string,
)
from corecni_contrib.firewall.iptables import Address

TABLE = "corecni_firewall"
T = f"inet {TABLE}"


def iso_chain(bridge: str) -> str:
    return f"iso-{format_hash(12, '', bridge)}"


def _declare(admin: str, bridge: str | None, isolated: bool) -> list[str]:
    """Table, sets, the forward chain refilled with its rules, a bridge's isolation."""
    lines = [f"add table {T}",
             f"add set {T} ctr4 {{ type ipv4_addr; }}",
             f"add set {T} ctr6 {{ type ipv6_addr; }}",
             f"add set {T} isolated {{ type ifname; }}",
             f"add map {T} isolation {{ type ifname : verdict; }}",
             f"add chain {T} {admin}",
             f"add chain {T} forward {{ type filter hook forward priority filter; "
             "policy accept; }",
             f"flush chain {T} forward",
             f"add rule {T} forward iifname vmap @isolation",
             f"add rule {T} forward jump {admin}"]
    for ip, name in (("ip", "ctr4"), ("ip6", "ctr6")):
        lines += [f"add rule {T} forward {ip} daddr @{name} ct state established,related accept",
                  f"add rule {T} forward {ip} saddr @{name} accept"]
    if bridge:
        chain, quoted = iso_chain(bridge), f'"{nft_string(bridge)}"'
        lines += [f"add chain {T} {chain}", f"flush chain {T} {chain}",
                  f"add rule {T} {chain} oifname != {quoted} oifname @isolated drop"]
        if isolated:
            lines.append(f"add rule {T} {chain} oifname {quoted} drop")
        lines += [f"add element {T} isolated {{ {quoted} }}",
                  f"add element {T} isolation {{ {quoted} : jump {chain} }}"]
    return lines


def marker(admin: str, bridge: str | None = None, isolated: bool = False) -> str:
    """A set named by a hash of the declaration: it exists once those rules are in."""
    return f"v-{format_hash(16, '', chr(10).join(_declare(admin, bridge, isolated)))}"


def _element_lines(container_id: str, ips: list[Address]) -> list[str]:
    comment = nft_string(container_id)
    return [f'add element {T} {"ctr4" if a.version == 4 else "ctr6"} {{ {a} comment "{comment}" }}'
            for a in ips]


def render_add_fast(container_id: str, ips: list[Address], admin: str,
                    bridge: str | None = None, isolated: bool = False) -> str:
    """The container's elements, plus an element of the marker set (which fails the
    transaction when the rules of this config are not in place). Nothing deleted:
    a deleting nf_tables transaction waits for an RCU grace period."""
    return "\n".join([f"add element {T} {marker(admin, bridge, isolated)} {{ 1 }}",
                      *_element_lines(container_id, ips)]) + "\n"


def render_add(container_id: str, ips: list[Address], admin: str, bridge: str | None = None,
               isolated: bool = False) -> str:
    name = marker(admin, bridge, isolated)
    return "\n".join([*_declare(admin, bridge, isolated),
                      f"add set {T} {name} {{ type inet_service; }}",
                      f"add element {T} {name} {{ 1 }}",
                      *_element_lines(container_id, ips)]) + "\n"


def add(container_id: str, ips: list[Address], admin: str, bridge: str | None,
        isolated: bool) -> None:
    """The container's elements in one transaction; the declaration too when the marker
    of this config is missing (first ADD, another config's ADD refilled the chain)."""
    try:
        nft_run(render_add_fast(container_id, ips, admin, bridge, isolated))
    except CNIError:
        nft_run(render_add(container_id, ips, admin, bridge, isolated),
                "firewall: open forwarding")


def _containers(listing: dict[str, object] | None) -> list[NftElement]:
    return [e for e in nft_elements(listing) if e.set_name in ("ctr4", "ctr6")]


def remove(drop: set[str] | None = None, keep: set[str] | None = None,
           known: list[Address] | None = None) -> None:
    """Delete the addresses of containers in ``drop`` (DEL) or not in ``keep`` (GC).

    ``known`` (a DEL with the previous result) first deletes exactly those
    addresses without reading the table; if one is missing the transaction fails
    whole, and the table is read."""
    if known:
        script = "".join(f"delete element {T} {'ctr4' if a.version == 4 else 'ctr6'} "
                         f"{{ {a} }}\n" for a in known)
        try:
            nft_run(script, "firewall: remove rules")
            return
        except CNIError:
            pass
    listing = nft_list_table("inet", TABLE, "firewall: read rules")
    doomed = [e for e in _containers(listing)
              if (drop is not None and e.comment in drop)
              or (keep is not None and e.comment not in keep)]
    if doomed:
        nft_run("".join(f"delete element {T} {e.set_name} {{ {e.key} }}\n" for e in doomed),
                "firewall: remove rules")


def check(container_id: str, ips: list[Address], admin: str) -> None:
    listing = nft_list_table("inet", TABLE, "firewall CHECK")
    if listing is None:
        raise CNIError(ErrorCode.INTERNAL, f"firewall: table {T} missing")
    chains = {str(item["chain"]["name"]) for item in listing.get("nftables", [])
              if isinstance(item, dict) and isinstance(item.get("chain"), dict)}
    for chain in ("forward", admin):
        if chain not in chains:
            raise CNIError(ErrorCode.INTERNAL, f"firewall: chain {chain} missing in table {T}")
    have = {e.key for e in _containers(listing) if e.comment == nft_string(container_id)}
    for ip in ips:
        if str(ip) not in have:
            raise CNIError(ErrorCode.INTERNAL, f"firewall: address {ip} of container "
                           f"{container_id} missing in table {T}")
