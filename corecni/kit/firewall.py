"""Netfilter from a plugin: Go's chain names and comments, and the tools run in one call.

Portmap, firewall and masquerade rules go into the namespace of the calling
thread (the node), because the tool is a child of that thread. A plugin
renders a whole ADD or DEL as text and hands it to the kernel in one
transaction (``iptables-restore --noflush``, ``nft -f``): never one process
per rule. Chain names and comments are Go's, so a node can switch between
Go's and corecni's plugins with live containers and either side's DEL finds
the other's rules.

The iptables tools are exec'd (``subprocess`` is loaded only when rules are
actually written, keeping the exec path of a plugin without them light); nft
runs in-process through libnftables when it loads (``nft_command``), else as
the ``nft`` tool.

nf_tables makes any transaction that deletes something (a rule, a set
element, a flushed chain) wait for an RCU grace period, ~10 ms here, while one
that only adds takes ~1 ms: an ADD fast path should add, never delete.
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


def _exited_within(pid: int, seconds: float) -> bool:
    """Whether process ``pid`` (a child: it stays until reaped) exits in time."""
    import select

    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        return True  # no pidfd here: the caller's wait blocks instead
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(max(1, int(seconds * 1000))))
    finally:
        os.close(fd)


def _spawn(exe: str, args: Sequence[str], stdin: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of one tool run, killed after ``_TIMEOUT``.

    Not ``subprocess.run(timeout=...)``: with a timeout, Python waits for the exit
    by polling with sleeps (1 ms, then 2, 4 ... ms), which costs a short-lived
    tool about a millisecond. Here the pipes are served until they close and the
    exit is then awaited on a pidfd, so nothing sleeps.
    """
    import select
    import selectors
    import subprocess  # only when rules are actually written
    import time

    argv = [exe, *args]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    deadline = time.monotonic() + _TIMEOUT
    data, sent = stdin.encode(), 0
    out: list[bytes] = []
    err: list[bytes] = []
    sink = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
    try:
        with selectors.PollSelector() as sel:
            if data:
                sel.register(proc.stdin, selectors.EVENT_WRITE)
            else:
                proc.stdin.close()
            sel.register(proc.stdout, selectors.EVENT_READ)
            sel.register(proc.stderr, selectors.EVENT_READ)
            while sel.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise subprocess.TimeoutExpired(argv, _TIMEOUT)
                for key, _ in sel.select(left):
                    if key.fileobj is proc.stdin:
                        try:
                            sent += os.write(key.fd, data[sent:sent + select.PIPE_BUF])
                        except BrokenPipeError:
                            sent = len(data)
                        if sent >= len(data):
                            sel.unregister(proc.stdin)
                            proc.stdin.close()
                        continue
                    chunk = os.read(key.fd, 65536)
                    if chunk:
                        sink[key.fd].append(chunk)
                    else:
                        sel.unregister(key.fileobj)
        if not _exited_within(proc.pid, deadline - time.monotonic()):
            raise subprocess.TimeoutExpired(argv, _TIMEOUT)
        status = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            pipe.close()
    return status, b"".join(out).decode(errors="replace"), b"".join(err).decode(errors="replace")


def run_tool(name: str, args: Sequence[str], stdin: str = "", what: str = "") -> str:
    """Run a netfilter tool in the caller's namespace; its failure is a CNI error.

    ``nft -f -`` (a script on stdin) runs in-process through libnftables when it
    loads: the same parser and transaction as the tool, without a process."""
    import subprocess  # only when rules are actually written

    if name == "nft" and list(args) == ["-f", "-"] and _libnftables() is not None:
        status, out, err = nft_command(stdin, what=what)  # the same transaction, no process
        if status != 0:
            raise CNIError(ErrorCode.INTERNAL, f"{what or name}: nft failed "
                           f"(exit status {status})", (err.strip() or out.strip())[-2000:])
        return out
    exe = find_tool(name)
    if exe is None:
        raise CNIError(ErrorCode.INTERNAL, f"{what or name}: {name} is not installed",
                       f"looked in PATH and {', '.join(_TOOL_DIRS)}")
    try:
        status, out, err = _spawn(exe, args, stdin)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CNIError(ErrorCode.INTERNAL, f"{what or name}: cannot run {name}",
                       str(exc)) from None
    if status != 0:
        raise CNIError(ErrorCode.INTERNAL, f"{what or name}: {name} failed "
                       f"(exit status {status})", (err.strip() or out.strip())[-2000:])
    return out


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
#
# nft is driven in-process through libnftables (the library the ``nft`` tool is a thin
# front end of: same parser, same transaction, same messages), which saves a process
# per call; without the library (or with CORECNI_NFT_EXEC=1) the ``nft`` tool is run.
# A context is made per call, in the calling thread: its netlink socket then lives in
# the namespace that thread is in (the node), exactly as a child process would.

NFT_EXEC_ENV = "CORECNI_NFT_EXEC"
_NFT_LIBRARY = "libnftables.so.1"
_NFT_CTX_OUTPUT_JSON = 1 << 4
_nft_lib: Any = None  # None: not loaded yet; False: not available
_nft_lock: Any = None


def _libnftables() -> Any:
    """The loaded library, or None when it is missing (or exec is forced)."""
    global _nft_lib, _nft_lock
    if os.environ.get(NFT_EXEC_ENV) == "1":
        return None
    if _nft_lib is None:
        import ctypes
        import threading

        try:
            lib = ctypes.CDLL(_NFT_LIBRARY)
        except OSError:
            _nft_lib = False
            return None
        ptr, text = ctypes.c_void_p, ctypes.c_char_p
        lib.nft_ctx_new.argtypes, lib.nft_ctx_new.restype = [ctypes.c_uint32], ptr
        for name in ("nft_ctx_free", "nft_ctx_buffer_output", "nft_ctx_buffer_error"):
            getattr(lib, name).argtypes = [ptr]
        lib.nft_ctx_output_set_flags.argtypes = [ptr, ctypes.c_uint]
        lib.nft_run_cmd_from_buffer.argtypes = [ptr, text]
        lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
        for name in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
            getattr(lib, name).argtypes, getattr(lib, name).restype = [ptr], text
        _nft_lock = threading.Lock()  # libnftables keeps some process-wide state
        _nft_lib = lib
    return _nft_lib or None


def _nft_in_process(scripts: Sequence[str], json_output: bool) -> list[tuple[int, str, str]] | None:
    """(status, output, errors) of each script run by libnftables, one after the
    other in one context; None without the library."""
    lib = _libnftables()
    if lib is None:
        return None
    done = []
    with _nft_lock:
        ctx = lib.nft_ctx_new(0)
        if not ctx:
            return None
        try:
            lib.nft_ctx_buffer_output(ctx)  # never onto our stdout (a plugin's result)
            lib.nft_ctx_buffer_error(ctx)
            if json_output:
                lib.nft_ctx_output_set_flags(ctx, _NFT_CTX_OUTPUT_JSON)
            for script in scripts:
                status = lib.nft_run_cmd_from_buffer(ctx, script.encode())
                out = lib.nft_ctx_get_output_buffer(ctx) or b""  # (reading resets them)
                err = lib.nft_ctx_get_error_buffer(ctx) or b""
                done.append((1 if status else 0, out.decode(errors="replace"),
                             err.decode(errors="replace")))
        finally:
            lib.nft_ctx_free(ctx)
    return done


def _nft_exec(args: Sequence[str], stdin: str, what: str) -> tuple[int, str, str]:
    import subprocess  # only when rules are actually written or read

    exe = find_tool("nft")
    if exe is None:
        raise CNIError(ErrorCode.INTERNAL, f"{what or 'nft'}: nft is not installed",
                       f"looked in PATH and {', '.join(_TOOL_DIRS)}")
    try:
        return _spawn(exe, args, stdin)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CNIError(ErrorCode.INTERNAL, f"{what or 'nft'}: cannot run nft",
                       str(exc)) from None


def nft_command(script: str, json_output: bool = False, what: str = "") -> tuple[int, str, str]:
    """(status, output, errors) of ``script`` (nft syntax, one transaction) in the
    calling thread's namespace: in-process when libnftables loads, else ``nft -f -``."""
    return nft_commands([script], json_output, what)[0]


def nft_commands(scripts: Sequence[str], json_output: bool = False,
                 what: str = "") -> list[tuple[int, str, str]]:
    """``nft_command`` of each script in turn (in-process: one libnftables context).
    One buffer cannot hold several ``list`` commands, hence separate scripts."""
    done = _nft_in_process(scripts, json_output)
    if done is not None:
        return done
    if json_output:  # ``-j -f -`` would read stdin as JSON input first, consuming it
        return [_nft_exec(["-j", script], "", what) for script in scripts]
    return [_nft_exec(["-f", "-"], script, what) for script in scripts]


def nft_run(script: str, what: str = "") -> None:
    """One nft transaction in the caller's namespace; its failure is a CNI error."""
    status, out, err = nft_command(script, what=what)
    if status != 0:
        raise CNIError(ErrorCode.INTERNAL, f"{what or 'nft'}: nft failed "
                       f"(exit status {status})", (err.strip() or out.strip())[-2000:])


def _listed(answer: tuple[int, str, str], what: str) -> Any:
    """The JSON of one ``nft -j list`` answer; None when the object does not exist,
    any other failure a CNI error."""
    status, out, err = answer
    if status != 0:
        if "No such file or directory" in err:
            return None
        raise CNIError(ErrorCode.INTERNAL, f"{what or 'nft'}: nft list failed",
                       err.strip()[-2000:])
    return json.loads(out or "{}")


def _nft_listing(command: str, what: str) -> dict[str, Any] | None:
    data = _listed(nft_command(command, json_output=True, what=what), what)
    return data if isinstance(data, dict) else None


def nft_list_table(family: str, table: str, what: str = "") -> dict[str, Any] | None:
    """``nft -j list table`` as JSON, or None when the table does not exist."""
    return _nft_listing(f"list table {family} {table}", what)


def nft_chain_rules(family: str, table: str, *chains: str,
                    what: str = "") -> dict[str, list[dict[str, Any]]] | None:
    """The rules of a few chains (``nft -j list chain``, each rule's JSON body, by
    chain); None when the table or any of the chains does not exist. Each chain is
    listed alone: the kernel and nft then read that chain only, so the cost does
    not depend on the rest of the table (a listing of several chains at once
    would read all of it)."""
    found: dict[str, list[dict[str, Any]]] = {}
    answers = nft_commands([f"list chain {family} {table} {chain}" for chain in chains],
                           json_output=True, what=what)
    for chain, answer in zip(chains, answers, strict=True):
        doc = _listed(answer, what)
        if doc is None:
            return None
        found[chain] = [item["rule"] for item in
                        (doc.get("nftables", []) if isinstance(doc, dict) else [])
                        if isinstance(item, dict) and isinstance(item.get("rule"), dict)]
    return found


def nft_rule_jumps(rule: dict[str, Any], target: str) -> bool:
    """Whether an ``nft -j`` rule body ends in ``jump <target>`` (also for a rule
    iptables-nft wrote: its verdicts are native)."""
    return any(isinstance(e, dict) and isinstance(e.get("jump"), dict)
               and e["jump"].get("target") == target for e in rule.get("expr", []))


def nft_string(text: str, limit: int = 128) -> str:
    """Text fit for an nft quoted string (a comment): nft cannot escape quotes, so
    they and backslashes are dropped, and it is cut to nft's comment limit."""
    return text.replace('"', "").replace("\\", "")[:limit]


_IPTABLES_NFT: dict[str, bool] = {}


def iptables_is_nft(family: int = 4) -> bool:
    """Whether ``ip(6)tables-restore`` is iptables-nft, whose rules nft can list
    (legacy iptables keeps them where nft cannot see)."""
    tool = RESTORE_TOOL[family]
    if tool not in _IPTABLES_NFT:
        exe = find_tool(tool)
        name = os.path.basename(os.path.realpath(exe)) if exe else ""
        _IPTABLES_NFT[tool] = "nft" in name
    return _IPTABLES_NFT[tool]


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
