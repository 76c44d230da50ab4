"""Netfilter from a plugin: Go's chain names and comments, and the tools run in one call.

Portmap, firewall and masquerade rules go into the namespace of the calling
thread (the node), because the tool is a child of that thread. A plugin
renders a whole ADD or DEL as text and hands it to the kernel in one
transaction (``iptables-restore --noflush``, ``nft -f``): never one process
per rule. Chain names and comments are Go's, so a node can switch between
Go's and corecni's plugins with live containers and either side's DEL finds
the other's rules.

Tools are exec'd, never imported: ``subprocess`` is loaded only when rules are
actually written, keeping the exec path of a plugin without them light.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
from collections.abc import Iterator, Sequence
from typing import Any

import attrs

from corecni.spec.errors import CNIError, ErrorCode

_TOOL_DIRS = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")
_TIMEOUT = 30.0


def format_hash(length: int, prefix: str, to_hash: str) -> str:
    """Go's ``utils.MustFormatHashWithPrefix``: prefix + sha512 hex, cut to ``length``."""
    return (prefix + hashlib.sha512(to_hash.encode()).hexdigest())[:length]


def format_chain_name(name: str, container_id: str) -> str:
    """Go's ``utils.FormatChainName``: ``CNI-`` and 24 hex digits, 28 characters."""
    return format_hash(28, "CNI-", name + container_id)


def iptables_comment(name: str, container_id: str) -> str:
    """Go's ``utils.FormatComment`` (``%q`` of names that are plain ASCII by the spec)."""
    return f"name: {json.dumps(name)} id: {json.dumps(container_id)}"


def find_tool(name: str) -> str | None:
    """``name`` on PATH or in the sbin directories a runtime's PATH may lack."""
    dirs = [*os.environ.get("PATH", "").split(os.pathsep), *_TOOL_DIRS]
    for directory in dirs:
        candidate = os.path.join(directory, name) if directory else ""
        if candidate and os.access(candidate, os.X_OK) and os.path.isfile(candidate):
            return candidate
    return None


def run_tool(name: str, args: Sequence[str], stdin: str = "", what: str = "") -> str:
    """Run a netfilter tool in the caller's namespace; its failure is a CNI error."""
    import subprocess  # only when rules are actually written

    exe = find_tool(name)
    if exe is None:
        raise CNIError(ErrorCode.INTERNAL, f"{what or name}: {name} is not installed",
                       f"looked in PATH and {', '.join(_TOOL_DIRS)}")
    try:
        proc = subprocess.run([exe, *args], input=stdin, capture_output=True, text=True,
                              timeout=_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CNIError(ErrorCode.INTERNAL, f"{what or name}: cannot run {name}",
                       str(exc)) from None
    if proc.returncode != 0:
        raise CNIError(ErrorCode.INTERNAL, f"{what or name}: {name} failed "
                       f"(exit status {proc.returncode})",
                       (proc.stderr.strip() or proc.stdout.strip())[-2000:])
    return proc.stdout


def have_iptables() -> bool:
    """Whether ``iptables-restore`` is installed (Go's default backend when it is)."""
    return find_tool("iptables-restore") is not None


# --- iptables: reading a *-save dump, writing one *-restore transaction ----------------

SAVE_TOOL = {4: "iptables-save", 6: "ip6tables-save"}
RESTORE_TOOL = {4: "iptables-restore", 6: "ip6tables-restore"}


@attrs.frozen
class SavedTable:
    """One table of an ``iptables-save`` dump: its chains and its rules, in order.

    ``rules`` keeps each ``-A`` line as the tool printed it (the canonical form:
    ``iptables-save`` normalises option order, ``-m tcp`` and prefix lengths), so
    a plugin can compare a rule it renders in that form with plain ``in``, and
    delete a rule by turning its ``-A`` into ``-D``.
    """

    name: str
    chains: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()

    def has_chain(self, chain: str) -> bool:
        return chain in self.chains

    def rules_of(self, chain: str) -> list[str]:
        """The ``-A <chain> ...`` lines of ``chain``."""
        head = f"-A {chain} "
        return [rule for rule in self.rules if rule.startswith(head)]

    def jumps_to(self, target: str, chain: str | None = None) -> list[str]:
        """Rules (of ``chain``, or any chain) whose verdict is ``-j <target>``."""
        rules = self.rules if chain is None else self.rules_of(chain)
        return [rule for rule in rules if rule.endswith(f" -j {target}")
                or f" -j {target} " in rule]


def parse_iptables_save(text: str) -> dict[str, SavedTable]:
    """``iptables-save`` output as ``{table: SavedTable}`` (comments and counters dropped)."""
    tables: dict[str, SavedTable] = {}
    name = ""
    chains: list[str] = []
    rules: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("*"):
            name, chains, rules = line[1:], [], []
        elif line.startswith(":") and name:
            chains.append(line[1:].split(" ", 1)[0])
        elif line.startswith("-A ") and name:
            rules.append(line)
        elif line == "COMMIT" and name:
            tables[name] = SavedTable(name, tuple(chains), tuple(rules))
            name = ""
    return tables


def rule_comment(rule: str) -> str | None:
    """The ``--comment`` text of a saved rule (unquoted), or None."""
    try:
        words = shlex.split(rule)
    except ValueError:
        return None
    for i, word in enumerate(words[:-1]):
        if word == "--comment":
            return words[i + 1]
    return None


def quote_comment(text: str) -> str:
    """A comment as ``iptables-save`` prints it (and ``iptables-restore`` reads it)."""
    return json.dumps(text)


def iptables_save(family: int, table: str, what: str = "") -> SavedTable:
    """``ip(6)tables-save -t table`` in the caller's namespace, parsed."""
    text = run_tool(SAVE_TOOL[family], ["-t", table], what=what)
    return parse_iptables_save(text).get(table, SavedTable(table))


def iptables_restore(family: int, script: str, what: str = "") -> None:
    """One ``ip(6)tables-restore --noflush`` transaction: all of it lands, or none."""
    run_tool(RESTORE_TOOL[family], ["--noflush"], script, what)


# --- nftables --------------------------------------------------------------------------

def nft_string(text: str, limit: int = 128) -> str:
    """Text fit for an nft quoted string (a comment): nft cannot escape quotes, so
    they and backslashes are dropped, and it is cut to nft's comment limit."""
    return text.replace('"', "").replace("\\", "")[:limit]


def nft_run(script: str, what: str = "") -> None:
    """One ``nft -f -`` transaction in the caller's namespace."""
    run_tool("nft", ["-f", "-"], script, what)


def nft_list_table(family: str, table: str, what: str = "") -> dict[str, Any] | None:
    """``nft -j list table`` as JSON, or None when the table does not exist."""
    import subprocess  # only when rules are actually read

    exe = find_tool("nft")
    if exe is None:
        raise CNIError(ErrorCode.INTERNAL, f"{what or 'nft'}: nft is not installed")
    try:
        proc = subprocess.run([exe, "-j", "list", "table", family, table],
                              capture_output=True, text=True, timeout=_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CNIError(ErrorCode.INTERNAL, f"{what or 'nft'}: cannot run nft", str(exc)) from None
    if proc.returncode != 0:
        if "No such file or directory" in proc.stderr:
            return None
        raise CNIError(ErrorCode.INTERNAL, f"{what or 'nft'}: nft list failed",
                       proc.stderr.strip()[-2000:])
    data = json.loads(proc.stdout or "{}")
    return data if isinstance(data, dict) else None


@attrs.frozen
class NftElement:
    """One element of a set or map in an ``nft -j`` listing.

    ``key`` is the element as nft syntax (``10.0.0.2 . tcp . 8080``), ready to
    go into ``delete element``; ``comment`` is its comment ("" when none).
    """

    set_name: str
    key: str
    comment: str


def _nft_value(value: Any) -> str:
    if isinstance(value, dict):
        if "concat" in value:
            return " . ".join(_nft_value(v) for v in value["concat"])
        if "prefix" in value:
            prefix = value["prefix"]
            return f"{_nft_value(prefix['addr'])}/{prefix['len']}"
        if "range" in value:
            low, high = value["range"]
            return f"{_nft_value(low)}-{_nft_value(high)}"
        if "elem" in value:
            return _nft_value(value["elem"].get("val"))
    if isinstance(value, str) and not value.replace(".", "").replace(":", "").isalnum():
        return json.dumps(value)
    return str(value)


def nft_elements(listing: dict[str, Any] | None) -> Iterator[NftElement]:
    """Every element of every set and map in ``listing`` (``nft -j list ...``)."""
    for item in (listing or {}).get("nftables", []):
        if not isinstance(item, dict):
            continue
        body = item.get("set") or item.get("map")
        if not isinstance(body, dict):
            continue
        for elem in body.get("elem", []):
            key = elem[0] if isinstance(elem, list) else elem  # a map's [key, value]
            comment = ""
            if isinstance(key, dict) and "elem" in key:
                comment = str(key["elem"].get("comment", ""))
            yield NftElement(str(body.get("name", "")), _nft_value(key), comment)


# --- serialising writers ---------------------------------------------------------------

LOCK_DIR = "/run/corecni"


@contextlib.contextmanager
def netfilter_lock(name: str) -> Iterator[None]:
    """An exclusive ``flock`` on ``/run/corecni/<name>.lock`` for a read-then-write.

    A plugin that reads a ``*-save`` dump and writes a ``--noflush`` transaction
    decided on it (shared chains exist? this jump already there?) holds this so a
    concurrent ADD of another container cannot change the answer in between. The
    lock is node-wide (one file), which only ever serialises, never breaks, calls
    made in different namespaces.
    """
    import fcntl

    os.makedirs(LOCK_DIR, mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(LOCK_DIR, f"{name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
