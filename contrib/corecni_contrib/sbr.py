"""sbr (meta): source-based routing, a routing table per interface address.

Behaviour follows containernetworking/plugins' ``sbr`` (Debian ships 1.1.1);
``table`` is the key later releases added:

* for each IP of CNI_IFNAME in the previous result: a rule ``from <ip>/32``
  (``/128``) ``lookup <table>``; a default route via the IP's gateway in that
  table; the interface's routes of the main table whose source or gateway lies
  in the IP's subnet (or that have neither) copied into it;
* tables are the first IDs from 100 (or ``table``) that no rule uses yet, one per
  IP;
* then the interface's routes are removed from the main table;
* DEL removes every rule whose source is an address of the interface (its
  tables go with the interface); CHECK verifies each IP has its rule.

No IP for the interface is an error, as in Go. All of it happens in the
container namespace, which is locked (flock on the namespace file, as Go's
filemutex does) so two sbr calls for one container do not pick the same table.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import socket
from collections.abc import Iterator

import attrs

from corecni import kit
from corecni.kit import CNIError, ErrorCode, IPConfig, Request, Result, hookimpl
from corecni.net import NetBackend, Route, Rule

FIRST_TABLE = 100
RT_TABLE_MAIN = 254


@contextlib.contextmanager
def _netns_locked(path: str) -> Iterator[None]:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def first_table(request: Request) -> int:
    raw = request.config.raw
    if raw.get("table") is None:
        return FIRST_TABLE
    table = kit.int_key(raw, "table")
    if not 0 < table < 2**32 or table in (253, 254, 255):
        raise kit.config_error(f"invalid table {table}", "use a table other than "
                                                         "default, main and local")
    return table


def ips_of(prev: Result, ifname: str) -> list[IPConfig]:
    """Go's ``getIPCfgs``: the IPs of ``ifname`` (an IP naming no interface counts)."""
    if not prev.ips:
        raise CNIError(ErrorCode.INTERNAL, f"No IP addresses supplied on interface: {ifname}")
    out = []
    for ip in prev.ips:
        idx = ip.interface
        if idx is not None and 0 <= idx < len(prev.interfaces) \
                and prev.interfaces[idx].name != ifname:
            continue
        out.append(ip)
    return out


def _next_free(used: set[int], candidate: int) -> int:
    while candidate in used:
        candidate += 1
    return candidate


def _host(ip: IPConfig) -> str:
    iface = ipaddress.ip_interface(ip.address)
    return f"{iface.ip}/{iface.max_prefixlen}"


def _belongs(route: Route, ip: IPConfig) -> bool:
    """Go's test: the route's source or gateway is in the IP's subnet, or it has neither."""
    net = ipaddress.ip_interface(ip.address).network
    if route.src is None and route.gateway is None:
        return True
    return any(a is not None and ipaddress.ip_address(a) in net
               for a in (route.src, route.gateway))


def _plan(backend: NetBackend, netns: str, ifname: str, ips: list[IPConfig],
          first: int) -> tuple[list[Rule], list[Route], list[Route]]:
    """(rules, routes to add, main-table routes to delete) for ``ips``."""
    with kit.kernel_step(f"list rules and routes in {netns}"):
        used = {r.table for r in backend.rules(netns)}
        mine = [r for r in backend.routes(netns, table=RT_TABLE_MAIN) if r.ifname == ifname]
        if backend.link(ifname, netns) is None:
            raise CNIError(ErrorCode.INTERNAL, f"Cannot find network interface {ifname}")
    rules: list[Rule] = []
    routes: list[Route] = []
    table = _next_free(used, first)
    for ip in ips:
        family = socket.AF_INET6 if ":" in ip.address else socket.AF_INET
        rules.append(Rule(table=table, src=_host(ip), family=family))
        if ip.gateway:
            default = "::/0" if family == socket.AF_INET6 else "0.0.0.0/0"
            routes.append(Route(dst=default, gateway=ip.gateway, ifname=ifname, table=table))
        routes += [attrs.evolve(r, table=table) for r in mine if _belongs(r, ip)]
        table = _next_free(used, table + 1)
    return rules, routes, mine


@hookimpl
def meta_add(request: Request, prev_result: Result) -> Result:
    first = first_table(request)
    ips = ips_of(prev_result, request.ifname)
    backend, netns, ifname = request.net, request.netns, request.ifname
    with _netns_locked(netns):
        rules, routes, old = _plan(backend, netns, ifname, ips, first)
        batch = backend.batch(netns)
        for rule in rules:
            batch.add_rule(rule)
        for route in routes:
            batch.add_route(route, replace=True)
        with kit.undo_on_failure() as undo:
            undo.push(lambda: _remove(backend, netns, rules, routes))
            with kit.kernel_step(f"add source-based routing for {ifname}"):
                batch.commit()
            batch = backend.batch(netns)
            for route in old:
                batch.del_route(route, missing_ok=True)
            with kit.kernel_step(f"move {ifname}'s routes out of the main table"):
                batch.commit()
    return prev_result


def _remove(backend: NetBackend, netns: str, rules: list[Rule], routes: list[Route]) -> None:
    batch = backend.batch(netns)
    for rule in rules:
        batch.del_rule(rule, missing_ok=True)
    for route in routes:
        batch.del_route(route, missing_ok=True)
    batch.commit()


@hookimpl
def meta_del(request: Request, prev_result: Result | None) -> None:
    """Go's ``tidyRules``: drop every rule whose source is an address of the interface.
    A namespace or interface that is gone has no rules left to tidy."""
    netns, ifname, backend = request.netns, request.ifname, request.net
    if not netns or kit.netns_gone(netns):
        return
    with _netns_locked(netns), kit.kernel_step(f"delete the rules of {ifname}", gone_ok=True):
        if backend.link(ifname, netns) is None:
            return
        mine = {a.address.split("/")[0] for a in backend.addresses(netns, ifname)}
        batch = backend.batch(netns)
        for rule in backend.rules(netns):
            if rule.src is not None and rule.src.split("/")[0] in mine:
                batch.del_rule(rule, missing_ok=True)
        batch.commit()


@hookimpl
def meta_check(request: Request, prev_result: Result) -> None:
    """Every IP of the interface still has its source rule, and its table a route."""
    netns, backend = request.netns, request.net
    ips = ips_of(prev_result, request.ifname)
    with kit.kernel_step(f"list rules in {netns}"):
        rules = backend.rules(netns)
    for ip in ips:
        rule = next((r for r in rules if r.src == _host(ip)), None)
        if rule is None:
            raise CNIError(ErrorCode.INTERNAL, f"no source-based rule for {ip.address}")
        with kit.kernel_step(f"list routes of table {rule.table}"):
            if not backend.routes(netns, table=rule.table):
                raise CNIError(ErrorCode.INTERNAL,
                               f"table {rule.table} of {ip.address} has no routes")
