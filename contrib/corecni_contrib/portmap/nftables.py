"""portmap's nftables backend: one table, per-network maps, a container is elements.

Go's nftables portmap adds a rule per mapping to shared chains. Here everything
lives in ``table inet corecni_portmap`` and a network ``N`` (``h`` = a hash of
its name) owns:

* maps ``dn4-h``/``dn6-h`` (``proto . hostPort : containerIP . containerPort``)
  and ``dnh4-h``/``dnh6-h`` (the same keyed by a ``hostIP`` too);
* sets ``masq4-h``/``masq6-h`` (``saddr . daddr`` pairs to masquerade: the
  container to itself - hairpin - and 127.0.0.1 to it - localhost) and
  ``all4-h``/``all6-h`` (containers of a ``masqAll`` network);
* base chains ``pre-h``/``out-h`` (DNAT at prerouting and output, after the
  network's ``conditionsV4``/``conditionsV6``) and ``post-h`` (masquerade).

A container's ADD is one nft transaction that *adds elements* commented with
the container ID, so the work per ADD does not depend on how many containers
the node holds; it also adds to the network's marker set (``v-<h>-<hash of the
rules>``), which fails the transaction when the network's chains are not in
place with the current config's rules. Then, once per network (or config
change), the chains are declared, flushed and refilled and the marker made, in
the same transaction as the elements. Nothing on the ADD path deletes (an
nf_tables transaction that deletes waits for an RCU grace period, ~10 ms).
DEL deletes the container's elements in one transaction: exactly those ADD
wrote when the mappings and previous result are known, else it reads the table
once and deletes the elements whose comment names the container (also GC).
A host port another container of the network holds is refused (the kernel
answers EEXIST for the whole transaction): nothing is half-written.
"""

from __future__ import annotations

from collections.abc import Iterable

from corecni.kit import CNIError, ErrorCode
from corecni.kit.firewall import (
    NftElement,
    format_hash,
    nft_elements,
    nft_list_table,
    nft_run,
    nft_string,
)
from corecni_contrib.portmap.config import IPInterface, PortMapConf, PortMapping

TABLE = "corecni_portmap"
_ADDR = {4: "ipv4_addr", 6: "ipv6_addr"}
_IP = {4: "ip", 6: "ip6"}
_PROTOS = "meta l4proto { tcp, udp, sctp }"


def net_hash(network: str) -> str:
    return format_hash(12, "", network)


def set_names(network: str) -> dict[str, str]:
    h = net_hash(network)
    return {f"{kind}{family}": f"{kind}{family}-{h}"
            for kind in ("dn", "dnh", "masq", "all") for family in (4, 6)}


def _declare(conf: PortMapConf) -> list[str]:
    """Table, the network's maps and sets, its chains refilled with its rules."""
    h, names = net_hash(conf.network), set_names(conf.network)
    t = f"inet {TABLE}"
    lines = [f"add table {t}"]
    for family in (4, 6):
        addr = _ADDR[family]
        lines += [
            f"add map {t} {names[f'dn{family}']} "
            f"{{ type inet_proto . inet_service : {addr} . inet_service; }}",
            f"add map {t} {names[f'dnh{family}']} "
            f"{{ type {addr} . inet_proto . inet_service : {addr} . inet_service; }}",
            f"add set {t} {names[f'masq{family}']} {{ type {addr} . {addr}; }}",
            f"add set {t} {names[f'all{family}']} {{ type {addr}; }}",
        ]
    for chain, hook, prio in (("pre", "prerouting", "dstnat"), ("out", "output", "-100"),
                              ("post", "postrouting", "srcnat")):
        lines += [f"add chain {t} {chain}-{h} "
                  f"{{ type nat hook {hook} priority {prio}; policy accept; }}",
                  f"flush chain {t} {chain}-{h}"]
    for family in (4, 6):
        ip = _IP[family]
        cond = " ".join(conf.conditions(family))
        head = f"{cond} " if cond else ""
        for chain in ("pre", "out"):
            lines += [
                f"add rule {t} {chain}-{h} {head}meta nfproto {'ipv4' if family == 4 else 'ipv6'}"
                f" fib daddr type local {_PROTOS} dnat {ip} to {ip} daddr . meta l4proto . "
                f"th dport map @{names[f'dnh{family}']}",
                f"add rule {t} {chain}-{h} {head}meta nfproto {'ipv4' if family == 4 else 'ipv6'}"
                f" fib daddr type local {_PROTOS} dnat {ip} to meta l4proto . th dport map "
                f"@{names[f'dn{family}']}",
            ]
        if conf.snat:
            lines += [f"add rule {t} post-{h} {ip} saddr . {ip} daddr @{names[f'masq{family}']}"
                      " masquerade",
                      f"add rule {t} post-{h} {ip} daddr @{names[f'all{family}']} masquerade"]
    return lines


def _dnat_key(mapping: PortMapping) -> str:
    key = f"{mapping.protocol} . {mapping.host_port}"
    return f"{mapping.dest_ip} . {key}" if mapping.dest_ip else key


def elements(conf: PortMapConf, ip: IPInterface) -> list[tuple[str, str, str]]:
    """(set or map, key, value or "") of one container address."""
    family, names, cip = ip.version, set_names(conf.network), str(ip.ip)
    out = []
    for mapping in conf.mappings:
        if mapping.serves(family):
            kind = "dnh" if mapping.dest_ip else "dn"
            out.append((names[f"{kind}{family}"], _dnat_key(mapping),
                        f"{cip} . {mapping.container_port}"))
    if conf.snat and conf.mappings:
        if conf.masq_all:
            out.append((names[f"all{family}"], cip, ""))
        else:
            out.append((names[f"masq{family}"], f"{cip} . {cip}", ""))
            if family == 4:
                out.append((names["masq4"], f"127.0.0.1 . {cip}", ""))
    return out


def marker(conf: PortMapConf) -> str:
    """The network's marker set, named by a hash of its chains and rules as
    ``_declare`` renders them: it exists only once those rules are in place."""
    digest = format_hash(12, "", "\n".join(_declare(conf)))
    return f"v-{net_hash(conf.network)}-{digest}"


def _element_lines(conf: PortMapConf, ips: Iterable[IPInterface]) -> list[str]:
    comment = nft_string(conf.container_id)
    lines = []
    for ip in ips:
        for name, key, value in elements(conf, ip):
            tail = f" : {value}" if value else ""
            lines.append(f'add element inet {TABLE} {name} {{ {key} comment "{comment}"{tail} }}')
    return lines


def render_add_fast(conf: PortMapConf, ips: Iterable[IPInterface]) -> str:
    """A container on a network whose chains are in place: its elements only (and an
    element of the marker set, which fails the transaction when the marker - so the
    network's current rules - is missing). Nothing is deleted or flushed: in
    nf_tables a transaction that deletes waits for an RCU grace period."""
    return "\n".join([f"add element inet {TABLE} {marker(conf)} {{ 1 }}",
                      *_element_lines(conf, ips)]) + "\n"


def render_add(conf: PortMapConf, ips: Iterable[IPInterface]) -> str:
    """The whole declaration (chains flushed and refilled), the marker, the elements."""
    name = marker(conf)
    return "\n".join([*_declare(conf), f"add set inet {TABLE} {name} {{ type inet_service; }}",
                      f"add element inet {TABLE} {name} {{ 1 }}",
                      *_element_lines(conf, ips)]) + "\n"


def _conflict(conf: PortMapConf, exc: CNIError) -> CNIError:
    return CNIError(ErrorCode.INVALID_NETWORK_CONFIG,
                    f"portmap: a host port of container {conf.container_id} is already "
                    f"mapped to another container on network {conf.network!r}", exc.details)


def add(conf: PortMapConf, ips: list[IPInterface]) -> None:
    """One transaction adding elements; the first ADD of a network (or of a changed
    config) declares its chains first."""
    for script in (render_add_fast(conf, ips), render_add(conf, ips)):
        try:
            nft_run(script, "portmap: set up port forwarding")
            return
        except CNIError as exc:
            if "File exists" in exc.details:
                raise _conflict(conf, exc) from None
            if script != render_add_fast(conf, ips):
                raise


def _owned(listing: object, network: str) -> list[NftElement]:
    names = set(set_names(network).values())
    return [e for e in nft_elements(listing if isinstance(listing, dict) else None)
            if e.set_name in names]


def render_delete(items: Iterable[NftElement]) -> str:
    return "".join(f"delete element inet {TABLE} {e.set_name} {{ {e.key} }}\n" for e in items)


def render_delete_known(conf: PortMapConf, ips: Iterable[IPInterface]) -> str:
    """``delete element`` of exactly the elements ADD wrote (it fails as a whole when
    one is missing, and the caller reads the table instead)."""
    return "".join(f"delete element inet {TABLE} {name} {{ {key} }}\n"
                   for ip in ips for name, key, _ in elements(conf, ip))


def remove(network: str, keep: set[str] | None = None, drop: set[str] | None = None,
           known: tuple[PortMapConf, list[IPInterface]] | None = None) -> None:
    """Delete the elements of containers in ``drop`` (DEL) or not in ``keep`` (GC).

    ``known`` (a DEL that has the mappings and the previous result) first deletes
    exactly those elements without reading the table."""
    if known is not None and known[1]:
        script = render_delete_known(*known)
        if script:
            try:
                nft_run(script, "portmap: remove port forwarding")
                return
            except CNIError:
                pass  # one is missing (or was never added): read what is there
    listing = nft_list_table("inet", TABLE, "portmap: read port forwarding")
    if listing is None:
        return
    doomed = [e for e in _owned(listing, network)
              if (drop is not None and e.comment in drop)
              or (keep is not None and e.comment not in keep)]
    if doomed:
        nft_run(render_delete(doomed), "portmap: remove port forwarding")


def check(conf: PortMapConf, ips: list[IPInterface]) -> None:
    listing = nft_list_table("inet", TABLE, "portmap CHECK")
    have = {(e.set_name, e.key) for e in _owned(listing, conf.network)
            if e.comment == nft_string(conf.container_id)}
    h = net_hash(conf.network)
    chains = {str(item["chain"]["name"]) for item in (listing or {}).get("nftables", [])
              if isinstance(item, dict) and isinstance(item.get("chain"), dict)}
    for chain in (f"pre-{h}", f"out-{h}", f"post-{h}"):
        if chain not in chains:
            raise CNIError(ErrorCode.INTERNAL, f"portmap: chain {chain} missing in table "
                           f"inet {TABLE}")
    for ip in ips:
        for name, key, _ in elements(conf, ip):
            if (name, key) not in have:
                raise CNIError(ErrorCode.INTERNAL, f"portmap: element {key} of container "
                               f"{conf.container_id} missing in {name}")
