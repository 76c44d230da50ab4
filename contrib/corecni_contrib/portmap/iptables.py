"""portmap's iptables backend: Go's layout (1.1.1, the version Debian ships), one
``*-restore --noflush`` transaction per address family.

The ``nat`` table holds, as Go writes it::

    PREROUTING, OUTPUT: -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
    CNI-HOSTPORT-DNAT:  -p tcp -m comment --comment "dnat name: ..." -m multiport
                        --dports 8080,8443 -j CNI-DN-<hash(network+containerID)>
    CNI-DN-<hash>:      hairpin and localhost marks, then the DNAT, per mapping
    POSTROUTING (first): -m comment ... -j CNI-HOSTPORT-MASQ  (mark -> MASQUERADE)
    CNI-HOSTPORT-SETMARK: MARK --set-xmark <1 << markMasqBit>

so Go's portmap DEL removes a container corecni added, and the reverse: a node can
switch implementations with live pods. Rules are rendered in the canonical form
``iptables-save`` prints, which lets CHECK compare them as text.

Go runs one ``iptables`` process per rule and per lookup. Here a new container
on a node whose shared chains exist costs one ``*-restore --noflush`` per family
and no read of the table, so the cost does not grow with the rules already on
the node: the shared rules are seen by listing their (small) chains through
nft (``shared_rules_present``), and the transaction is built to fail as a whole
when the chains it relies on are missing (see ``render_add_fast``). Otherwise -
first container, repeated ADD, repairs - it is one ``*-save`` read (declaring an
existing shared chain would flush other containers' jumps) and one ``*-restore``
write, under a node-wide lock so a concurrent ADD cannot change the answer in
between. DEL likewise: ``-D`` of the
exact jumps when the mappings are known, else read and delete what is there.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from corecni.kit import CNIError, ErrorCode
from corecni.kit.firewall import (
    SavedTable,
    format_hash,
    iptables_is_nft,
    iptables_restore,
    iptables_save,
    netfilter_lock,
    nft_chain_rules,
    nft_rule_jumps,
    quote_comment,
    rule_comment,
)
from corecni_contrib.portmap.config import IPInterface, PortMapConf

DNAT_CHAIN = "CNI-HOSTPORT-DNAT"
SETMARK_CHAIN = "CNI-HOSTPORT-SETMARK"
MASQ_CHAIN = "CNI-HOSTPORT-MASQ"
OLD_SNAT_CHAIN = "CNI-HOSTPORT-SNAT"
TOP_JUMP = f"-m addrtype --dst-type LOCAL -j {DNAT_CHAIN}"
MASQ_JUMP = f'-m comment --comment "CNI portfwd requiring masquerade" -j {MASQ_CHAIN}'
MULTIPORT_MAX = 15  # multiport takes up to 15 ports per rule
COMMENT_MAX = 255
LOCK = "portmap-iptables"
#: test hook: SIGKILL the plugin right after the IPv4 transaction (crash mid-ADD)
KILL_AFTER_V4 = "CORECNI_TEST_PORTMAP_KILL_AFTER_V4"


def dnat_chain(network: str, container_id: str) -> str:
    """Go's ``MustFormatChainNameWithPrefix(network, containerID, "DN-")``."""
    return format_hash(28, "CNI-DN-", network + container_id)


def old_snat_chain(network: str, container_id: str) -> str:
    """The chain portmap used before 0.7; Go still removes it on DEL, so do we."""
    return format_hash(28, "CNI-SN-", network + container_id)


def dnat_comment(network: str, container_id: str) -> str:
    """Go's ``trimComment(fmt.Sprintf(`dnat name: "%s" id: "%s"`, ...))``."""
    text = f'dnat name: "{network}" id: "{container_id}"'
    return text if len(text) <= COMMENT_MAX else text[:253] + "..."


def mark(bit: int) -> str:
    value = 1 << bit
    return f"{value:#x}/{value:#x}"


def setmark_rule(bit: int) -> str:
    return (f'-A {SETMARK_CHAIN} -m comment --comment "CNI portfwd masquerade mark" '
            f"-j MARK --set-xmark {mark(bit)}")


def masq_rule(bit: int) -> str:
    return f"-A {MASQ_CHAIN} -m mark --mark {mark(bit)} -j MASQUERADE"


def _host(address: str, family: int) -> str:
    return f"{address}/{32 if family == 4 else 128}"


def _to(ip: IPInterface, port: int) -> str:
    return f"{ip.ip}:{port}" if ip.version == 4 else f"[{ip.ip}]:{port}"


def entry_rules(conf: PortMapConf, family: int) -> list[str]:
    """The ``CNI-HOSTPORT-DNAT`` jumps: per protocol (sorted), up to 15 host ports each.

    As in Go, every mapping's port is listed, whatever the family of its hostIP.
    """
    chain = dnat_chain(conf.network, conf.container_id)
    comment = quote_comment(dnat_comment(conf.network, conf.container_id))
    by_proto: dict[str, list[int]] = {}
    for mapping in conf.mappings:
        by_proto.setdefault(mapping.protocol, []).append(mapping.host_port)
    extra = " ".join(conf.conditions(family))
    rules = []
    for proto in sorted(by_proto):
        ports = by_proto[proto]
        for i in range(0, len(ports), MULTIPORT_MAX):
            dports = ",".join(str(p) for p in ports[i:i + MULTIPORT_MAX])
            rule = f"-A {DNAT_CHAIN} -p {proto} -m comment --comment {comment} " \
                   f"-m multiport --dports {dports}"
            rules.append(f"{rule} {extra} -j {chain}" if extra else f"{rule} -j {chain}")
    return rules


def chain_rules(conf: PortMapConf, ip: IPInterface) -> list[str]:
    """The container chain: per mapping, hairpin mark, localhost mark (IPv4), DNAT."""
    family = ip.version
    chain = dnat_chain(conf.network, conf.container_id)
    setmark = conf.external_set_mark_chain or SETMARK_CHAIN
    rules = []
    for mapping in conf.mappings:
        if not mapping.serves(family):
            continue
        dst = f"-d {_host(mapping.dest_ip, family)}" if mapping.dest_ip else ""
        match = f"-p {mapping.protocol} -m {mapping.protocol} --dport {mapping.host_port}"

        def rule(*parts: str) -> str:
            return " ".join(part for part in (f"-A {chain}", *parts) if part)

        if conf.snat:
            rules.append(rule("" if conf.masq_all else f"-s {ip.network}", dst, match,
                              f"-j {setmark}"))
            if family == 4 and not conf.masq_all:
                rules.append(rule("-s 127.0.0.1/32", dst, match, f"-j {setmark}"))
        rules.append(rule(dst, match, f"-j DNAT --to-destination "
                                      f"{_to(ip, mapping.container_port)}"))
    return rules


def render_add(conf: PortMapConf, ip: IPInterface, saved: SavedTable) -> str:
    """``iptables-restore --noflush`` input adding the container's rules for one family.

    Shared chains are declared only when missing (declaring flushes); the
    container's chain is declared always, so a repeated ADD rewrites it.
    """
    chain = dnat_chain(conf.network, conf.container_id)
    lines = ["*nat"]
    body: list[str] = []

    def ensure_chain(name: str) -> None:
        if not saved.has_chain(name):
            lines.append(f":{name} - [0:0]")

    if conf.snat and conf.external_set_mark_chain is None:
        ensure_chain(SETMARK_CHAIN)
        ensure_chain(MASQ_CHAIN)
        if setmark_rule(conf.mark_masq_bit) not in saved.rules:
            body.append(setmark_rule(conf.mark_masq_bit))
        if masq_rule(conf.mark_masq_bit) not in saved.rules:
            body.append(masq_rule(conf.mark_masq_bit))
        if f"-A POSTROUTING {MASQ_JUMP}" not in saved.rules:
            body.append(f"-I POSTROUTING 1 {MASQ_JUMP}")
    ensure_chain(DNAT_CHAIN)
    for parent in ("PREROUTING", "OUTPUT"):
        if f"-A {parent} {TOP_JUMP}" not in saved.rules:
            body.append(f"-A {parent} {TOP_JUMP}")
    lines.append(f":{chain} - [0:0]")  # new, or flushed for a repeated ADD
    body += ["-D" + jump[2:] for jump in saved.jumps_to(chain, DNAT_CHAIN)]
    body += chain_rules(conf, ip)
    body += entry_rules(conf, ip.version)
    return "\n".join([*lines, *body, "COMMIT"]) + "\n"


def render_del(saved: SavedTable, chains: list[str]) -> str | None:
    """Input removing ``chains`` and every jump to them, or None if none exists."""
    script = ["*nat"]
    for chain in chains:
        script += ["-D" + jump[2:] for jump in saved.jumps_to(chain)]
    for chain in chains:
        if saved.has_chain(chain):
            script += [f":{chain} - [0:0]", f"-X {chain}"]  # declaring flushes it first
    if len(script) == 1:
        return None
    return "\n".join([*script, "COMMIT"]) + "\n"


def render_add_fast(conf: PortMapConf, ip: IPInterface, checked: bool = False) -> str:
    """The no-read ADD of a new container on a node that has the shared chains.

    ``-N`` fails when the container's chain exists (a repeated ADD), and a jump to
    a missing chain fails: any failure aborts the whole transaction and the caller
    takes the read-then-write path, which repairs. Unless ``checked`` (the shared
    rules were seen by ``shared_rules_present``), the shared SETMARK/MASQ rules are
    deleted and added back too (``-D`` fails when one is missing); that deletion
    costs the transaction an RCU grace period (~10 ms), which ``checked`` avoids.
    """
    chain = dnat_chain(conf.network, conf.container_id)
    lines = ["*nat", f"-N {chain}"]
    if conf.snat and conf.external_set_mark_chain is None and not checked:
        for rule in (setmark_rule(conf.mark_masq_bit), masq_rule(conf.mark_masq_bit)):
            lines += ["-D" + rule[2:], rule]
    lines += chain_rules(conf, ip) + entry_rules(conf, ip.version)
    return "\n".join([*lines, "COMMIT"]) + "\n"


def _xt_target(rule: dict[str, Any], name: str) -> bool:
    return any(isinstance(e, dict) and isinstance(e.get("xt"), dict)
               and e["xt"].get("type") == "target" and e["xt"].get("name") == name
               for e in rule.get("expr", []))


def _matches_mark(rule: dict[str, Any], bit: int) -> bool:
    return any(isinstance(e, dict) and isinstance(e.get("match"), dict)
               and e["match"].get("right") == 1 << bit for e in rule.get("expr", []))


def shared_rules_present(conf: PortMapConf, family: int) -> bool | None:
    """Whether the shared rules a new container relies on are there, read chain by
    chain through nft (iptables-nft's rules are nf_tables rules; each listing costs
    the same whatever else the table holds): the ``PREROUTING``/``OUTPUT`` jumps,
    the SETMARK rule and the MASQ rule with this ``markMasqBit``. The masquerade
    jump in ``POSTROUTING`` is not read: that chain holds a rule per masqueraded
    pod, and reading it would cost more the more pods the node has (a
    ``POSTROUTING`` flushed under live pods is repaired by a repeated ADD and
    reported by CHECK). None when nft cannot see the rules (legacy iptables).
    """
    if not iptables_is_nft(family):
        return None
    table = "ip" if family == 4 else "ip6"
    shared = conf.snat and conf.external_set_mark_chain is None
    chains = ("PREROUTING", "OUTPUT", *((SETMARK_CHAIN, MASQ_CHAIN) if shared else ()))
    try:
        rules = nft_chain_rules(table, "nat", *chains, what="portmap: read the shared chains")
    except CNIError:
        return None
    if rules is None:
        return False
    if not all(any(nft_rule_jumps(r, DNAT_CHAIN) for r in rules[parent])
               for parent in ("PREROUTING", "OUTPUT")):
        return False
    return not shared or (
        any(_xt_target(r, "MARK") for r in rules[SETMARK_CHAIN])
        and any(_xt_target(r, "MASQUERADE") and _matches_mark(r, conf.mark_masq_bit)
                for r in rules[MASQ_CHAIN]))


def render_del_fast(conf: PortMapConf, family: int) -> str:
    """The no-read DEL when the mappings are known: ``-D`` of the exact jumps (it
    fails, and the caller reads instead, when one is not there)."""
    chain = dnat_chain(conf.network, conf.container_id)
    lines = ["*nat", *("-D" + rule[2:] for rule in entry_rules(conf, family)),
             f":{chain} - [0:0]", f"-X {chain}"]
    return "\n".join([*lines, "COMMIT"]) + "\n"


def _try(family: int, script: str) -> bool:
    try:
        iptables_restore(family, script)
    except CNIError:
        return False
    return True


def add(conf: PortMapConf, ips: list[IPInterface]) -> None:
    """Per family, v4 first: one ``*-restore`` of a new container when the node is set
    up (no read of the table, so the cost does not grow with the node's rules);
    otherwise one ``*-save`` read and one ``*-restore`` write under the lock."""
    for ip in sorted(ips, key=lambda ip: ip.version):
        what = f"portmap: set up IPv{ip.version} port forwarding"
        present = shared_rules_present(conf, ip.version)
        if present is False or not _try(ip.version,
                                         render_add_fast(conf, ip, checked=bool(present))):
            with netfilter_lock(LOCK):
                saved = iptables_save(ip.version, "nat", what)
                iptables_restore(ip.version, render_add(conf, ip, saved), what)
        if ip.version == 4 and os.environ.get(KILL_AFTER_V4):
            os.kill(os.getpid(), signal.SIGKILL)


def remove(network: str, container_ids: list[str], families: tuple[int, ...] = (4, 6),
           conf: PortMapConf | None = None) -> None:
    """Remove the containers' chains and jumps (Go's and ours); absent is fine.

    With ``conf`` (one container whose mappings are known) each family first tries
    the no-read DEL; otherwise, or when that fails, it reads and deletes what is
    there.
    """
    chains = [c for cid in container_ids
              for c in (dnat_chain(network, cid), old_snat_chain(network, cid))]
    for family in families:
        if conf is not None and conf.mappings and _try(family, render_del_fast(conf, family)):
            continue
        what = f"portmap: remove IPv{family} port forwarding"
        with netfilter_lock(LOCK):
            saved = iptables_save(family, "nat", what)
            script = render_del(saved, chains)
            if script is not None:
                iptables_restore(family, script, what)


def check(conf: PortMapConf, ips: list[IPInterface]) -> None:
    """Every rule ADD writes is there (compared in ``iptables-save``'s form)."""
    chain = dnat_chain(conf.network, conf.container_id)
    for ip in ips:
        saved = iptables_save(ip.version, "nat", "portmap CHECK")
        where = f"IPv{ip.version} nat table"
        if not saved.has_chain(chain):
            raise CNIError(ErrorCode.INTERNAL, f"portmap: chain {chain} missing in the {where}")
        expected = chain_rules(conf, ip)
        if not conf.conditions(ip.version):
            expected += entry_rules(conf, ip.version)
        else:  # conditions are printed in the tool's own form: count the jumps
            want, have = len(entry_rules(conf, ip.version)), len(saved.jumps_to(chain, DNAT_CHAIN))
            if have < want:
                raise CNIError(ErrorCode.INTERNAL, f"portmap: {DNAT_CHAIN} lacks jumps to "
                               f"{chain} in the {where}", f"{have} of {want}")
        expected += [f"-A {parent} {TOP_JUMP}" for parent in ("PREROUTING", "OUTPUT")]
        if conf.snat and conf.external_set_mark_chain is None:
            expected += [setmark_rule(conf.mark_masq_bit), masq_rule(conf.mark_masq_bit),
                         f"-A POSTROUTING {MASQ_JUMP}"]
        for rule in expected:
            if rule not in saved.rules:
                raise CNIError(ErrorCode.INTERNAL, f"portmap: rule missing in the {where}", rule)


def stale_containers(saved: SavedTable, network: str, keep: set[str]) -> list[str]:
    """Container IDs of ``network`` with a jump in ``CNI-HOSTPORT-DNAT`` but not in ``keep``."""
    head = f'dnat name: "{network}" id: "'
    found = []
    for rule in saved.rules_of(DNAT_CHAIN):
        comment = rule_comment(rule) or ""
        if comment.startswith(head) and comment.endswith('"'):
            cid = comment[len(head):-1]
            if cid not in keep and rule.endswith(f" -j {dnat_chain(network, cid)}"):
                found.append(cid)
    return list(dict.fromkeys(found))


def gc(network: str, keep: set[str]) -> None:
    """SPEC GC: remove the chains of ``network``'s containers not in ``keep``."""
    for family in (4, 6):
        saved = iptables_save(family, "nat", "portmap GC")
        stale = stale_containers(saved, network, keep)
        if stale:
            remove(network, stale, (family,))
