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

import hashlib
import json
import os
from collections.abc import Sequence

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
