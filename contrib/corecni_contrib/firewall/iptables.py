"""firewall's iptables backend: Go's ``filter`` layout (1.1.1), one transaction per family.

::

    FORWARD (first):  -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
    CNI-FORWARD (first): -m comment --comment "CNI firewall plugin admin overrides"
                         -j CNI-ADMIN   (iptablesAdminChainName: the admin's own rules)
    CNI-FORWARD:      -d <ip>/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
                      -s <ip>/32 -j ACCEPT            (per container address)

and for ``ingressPolicy`` ``same-bridge`` (``isolated`` as in Go's master) the
``CNI-ISOLATION-STAGE-1/2`` chains, jumped to from the top of FORWARD. Rules are
rendered as ``iptables-save`` prints them, so one read tells what exists and a
single ``--noflush`` write adds only what is missing (Go: ``InsertUnique``). A
new container on a set-up node with the ``open`` policy skips the read of the
table (see ``render_add_fast`` and ``shared_rules_present``); a repeated ADD may
then hold an address's rules twice, and DEL deletes copies until none is left.
Go's DEL removes the per-address rules only, keyed by address; so does this one,
so either implementation's DEL cleans the other's ADD.
"""

from __future__ import annotations

import ipaddress

from corecni.kit import CNIError, ErrorCode
from corecni.kit.firewall import (
    SavedTable,
    iptables_is_nft,
    iptables_restore,
    iptables_save,
    netfilter_lock,
    nft_chain_rules,
    nft_rule_jumps,
)

FORWARD_CHAIN = "CNI-FORWARD"
STAGE1, STAGE2 = "CNI-ISOLATION-STAGE-1", "CNI-ISOLATION-STAGE-2"
FORWARD_JUMP = f'-A FORWARD -m comment --comment "CNI firewall plugin rules" -j {FORWARD_CHAIN}'
POLICY_COMMENT = '-m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge)"'
ISOLATED_COMMENT = '-m comment --comment "CNI firewall plugin rules (ingressPolicy: isolated)"'
LOCK = "firewall-iptables"
_MAX_COPIES = 4

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def admin_jump(admin: str) -> str:
    return (f'-A {FORWARD_CHAIN} -m comment --comment "CNI firewall plugin admin overrides" '
            f"-j {admin}")


def address_rules(ip: Address) -> list[str]:
    host = f"{ip}/{32 if ip.version == 4 else 128}"
    return [f"-A {FORWARD_CHAIN} -d {host} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            f"-A {FORWARD_CHAIN} -s {host} -j ACCEPT"]


def isolation_rules(bridge: str, isolated: bool) -> tuple[list[str], list[str]]:
    """(rules to put first, rules to append) of the isolation chains for ``bridge``."""
    first = [f"-A {STAGE1} -i {bridge} ! -o {bridge} {POLICY_COMMENT} -j {STAGE2}",
             f"-A {STAGE2} -o {bridge} {POLICY_COMMENT} -j DROP"]
    if isolated:
        first.append(f"-A {STAGE1} -i {bridge} -o {bridge} {ISOLATED_COMMENT} -j DROP")
    last = [f"-A {STAGE1} {POLICY_COMMENT} -j RETURN", f"-A {STAGE2} {POLICY_COMMENT} -j RETURN"]
    return first, last


def _insert(rule: str) -> str:
    """``-A CHAIN spec`` as ``-I CHAIN 1 spec``."""
    _, chain, spec = rule.split(" ", 2)
    return f"-I {chain} 1 {spec}"


def render_add(saved: SavedTable, ips: list[Address], admin: str,
               bridge: str | None = None, isolated: bool = False) -> str | None:
    """Only what is missing; None when everything is there already."""
    chains = [FORWARD_CHAIN, admin] + ([STAGE1, STAGE2] if bridge else [])
    lines = ["*filter"] + [f":{c} - [0:0]" for c in chains if not saved.has_chain(c)]
    body: list[str] = []

    def first(rule: str) -> None:
        if rule not in saved.rules:
            body.append(_insert(rule))

    def last(rule: str) -> None:
        if rule not in saved.rules and rule not in body:
            body.append(rule)

    first(FORWARD_JUMP)
    first(admin_jump(admin))
    for ip in ips:
        for rule in address_rules(ip):
            last(rule)
    if bridge:
        first(f"-A FORWARD {POLICY_COMMENT} -j {STAGE1}")
        prepend, append = isolation_rules(bridge, isolated)
        for rule in prepend:
            first(rule)
        for rule in append:
            last(rule)
    if not body and len(lines) == 1:
        return None
    return "\n".join([*lines, *body, "COMMIT"]) + "\n"


def render_del(saved: SavedTable, ips: list[Address]) -> str | None:
    doomed = [rule for ip in ips for rule in address_rules(ip) if rule in saved.rules]
    if not doomed:
        return None
    return "\n".join(["*filter", *("-D" + rule[2:] for rule in doomed), "COMMIT"]) + "\n"


def _by_family(ips: list[Address]) -> dict[int, list[Address]]:
    out: dict[int, list[Address]] = {}
    for ip in ips:
        out.setdefault(ip.version, []).append(ip)
    return out


def render_add_fast(ips: list[Address], admin: str, checked: bool = False) -> str:
    """The no-read ADD on a node whose chains exist: the address rules appended to
    ``CNI-FORWARD`` (which fails the transaction when that chain is missing). Unless
    ``checked`` (``shared_rules_present`` saw the jumps), the admin jump is deleted
    and put back first too: ``-D`` fails the whole transaction when the chain or the
    jump is missing and the caller reads instead, but a deletion costs the
    transaction an RCU grace period (~10 ms)."""
    jump = admin_jump(admin)
    guard = [] if checked else ["-D" + jump[2:], _insert(jump)]
    return "\n".join(["*filter", *guard,
                      *(rule for ip in ips for rule in address_rules(ip)), "COMMIT"]) + "\n"


def shared_rules_present(family: int, admin: str) -> bool | None:
    """The ``FORWARD`` jump to ``CNI-FORWARD`` and the admin chain, seen through nft
    chain by chain (iptables-nft's rules are nf_tables rules; the cost does not
    depend on the rest of the table). The admin jump inside ``CNI-FORWARD`` is not
    read: that chain holds two rules per pod (a repeated ADD repairs it, CHECK
    reports it). None when nft cannot see the rules (legacy iptables)."""
    if not iptables_is_nft(family):
        return None
    table = "ip" if family == 4 else "ip6"
    try:
        rules = nft_chain_rules(table, "filter", "FORWARD", admin,
                                what="firewall: read the shared chains")
    except CNIError:
        return None
    return rules is not None and any(nft_rule_jumps(r, FORWARD_CHAIN) for r in rules["FORWARD"])


def add(ips: list[Address], admin: str, bridge: str | None, isolated: bool) -> None:
    """Per family: one ``*-restore`` without a read of the table for an ``open``
    policy on a set-up node (so the cost does not grow with the node's rules);
    otherwise, or when that fails, one ``*-save`` read and one ``*-restore`` of what
    is missing."""
    for family, mine in sorted(_by_family(ips).items()):
        what = f"firewall: open IPv{family} forwarding"
        if bridge is None:
            present = shared_rules_present(family, admin)
            if present is not False:
                try:
                    iptables_restore(family, render_add_fast(mine, admin, bool(present)))
                    continue
                except CNIError:
                    pass
        with netfilter_lock(LOCK):
            script = render_add(iptables_save(family, "filter", what), mine, admin, bridge,
                                isolated)
            if script is not None:
                iptables_restore(family, script, what)


def remove(ips: list[Address]) -> None:
    """Per family: ``-D`` of the exact rules in one transaction (no read); if one of
    them is gone, read what is there and delete that."""
    for family, mine in sorted(_by_family(ips).items()):
        what = f"firewall: remove IPv{family} rules"
        rules = [rule for ip in mine for rule in address_rules(ip)]
        script = "\n".join(["*filter", *("-D" + r[2:] for r in rules), "COMMIT"]) + "\n"
        removed = 0
        for _ in range(_MAX_COPIES):  # an ADD without a read may have doubled them
            try:
                iptables_restore(family, script)
            except CNIError:
                break
            removed += 1
        if removed:
            continue
        with netfilter_lock(LOCK):
            partial = render_del(iptables_save(family, "filter", what), mine)
            if partial is not None:
                iptables_restore(family, partial, what)


def check(ips: list[Address], admin: str) -> None:
    for family, mine in sorted(_by_family(ips).items()):
        saved = iptables_save(family, "filter", "firewall CHECK")
        for chain in (FORWARD_CHAIN, admin):
            if not saved.has_chain(chain):
                raise CNIError(ErrorCode.INTERNAL, f"firewall: chain {chain} missing in the "
                               f"IPv{family} filter table")
        for rule in [FORWARD_JUMP, admin_jump(admin)] + \
                [r for ip in mine for r in address_rules(ip)]:
            if rule not in saved.rules:
                raise CNIError(ErrorCode.INTERNAL, f"firewall: expected rule not found in the "
                               f"IPv{family} filter table", rule)
