"""libcni's result cache, byte-compatible: a node can switch between Go libcni
and corecni with live containers and lose nothing.

``<cacheDir>/results/<network>-<containerID>-<ifname>`` holds::

    {"kind": "cniCacheV1", "containerId": ..., "config": <base64 of the list>,
     "ifName": ..., "networkName": ..., "netns": ..., "cniArgs": [[k, v]],
     "capabilityArgs": {...}, "result": {...}}

(Go marshals ``[]byte`` as base64, hence ``config``.) Files are 0600 in a
0700 directory and written atomically (to ``<name>.tmp<pid>``, then renamed),
so a crash never leaves half an entry; a writer killed before the rename leaves
its temporary file, which is never read as an entry and which GC removes
(``sweep_stale_writes``) once that process is gone.

The path is ambiguous (``n-x`` + ``c1`` and ``n`` + ``x-c1`` share one); it is
kept for libcni compatibility, and an entry is used or removed only when the
``networkName``/``containerId``/``ifName`` it stores are the caller's. A file
holding a bare result (libcni's pre-``cniCacheV1`` format) is still read.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import re
from typing import Any

import attrs

from corecni.spec.config import RuntimeConf
from corecni.spec.errors import CNIError, decoding_failure
from corecni.spec.result import Result

KIND = "cniCacheV1"
DEFAULT_DIR = "/var/lib/cni"
_TEMPORARY = re.compile(r"\.tmp(\d+)$")  # an entry being written by process <pid>


@attrs.frozen
class CachedAttachment:
    """One cache entry, as libcni's ``NetworkAttachment``."""

    network: str
    container_id: str
    ifname: str
    netns: str
    config: bytes = attrs.field(repr=False)
    args: tuple[tuple[str, str], ...] = ()
    capability_args: dict[str, Any] = attrs.field(factory=dict)
    raw_result: dict[str, Any] | None = attrs.field(default=None, repr=False)

    @property
    def file_name(self) -> str:
        """The name of the file this entry is kept in (``ResultCache.path``)."""
        return f"{self.network}-{self.container_id}-{self.ifname}"

    def belongs_to(self, network: str, rt: RuntimeConf) -> bool:
        """Whether this entry is the attachment ``(network, rt)`` (the path alone is
        ambiguous)."""
        return (self.network, self.container_id, self.ifname) == \
            (network, rt.container_id, rt.ifname)

    def runtime_conf(self, cache_dir: str = "") -> RuntimeConf:
        return RuntimeConf(container_id=self.container_id, ifname=self.ifname, netns=self.netns,
                           args=self.args, capability_args=self.capability_args,
                           cache_dir=cache_dir)

    def result(self) -> Result | None:
        return Result.from_dict(self.raw_result) if self.raw_result else None


@attrs.frozen
class ResultCache:
    directory: str = DEFAULT_DIR

    def path(self, network: str, rt: RuntimeConf) -> str:
        if not network or not rt.container_id or not rt.ifname:
            raise ValueError("cache file path requires network name, container ID and ifname "
                             f"({network!r}, {rt.container_id!r}, {rt.ifname!r})")
        return os.path.join(self.directory, "results",
                            f"{network}-{rt.container_id}-{rt.ifname}")

    def add(self, network: str, rt: RuntimeConf, config: bytes, result: Result | None) -> None:
        entry: dict[str, Any] = {
            "kind": KIND,
            "containerId": rt.container_id,
            "config": base64.b64encode(config).decode(),
            "ifName": rt.ifname,
            "networkName": network,
        }
        if rt.netns:
            entry["netns"] = rt.netns
        if rt.args:
            entry["cniArgs"] = [list(p) for p in rt.args]
        if rt.capability_args:
            entry["capabilityArgs"] = dict(rt.capability_args)
        if result is not None:
            entry["result"] = result.to_dict()
        fname = self.path(network, rt)
        os.makedirs(os.path.dirname(fname), mode=0o700, exist_ok=True)
        tmp = f"{fname}.tmp{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(entry, fh)
        os.replace(tmp, fname)

    def _read(self, network: str, rt: RuntimeConf) -> bytes | None:
        try:
            with open(self.path(network, rt), "rb") as fh:
                return fh.read()
        except OSError:  # libcni: a read error is "no cached result"
            return None

    def delete(self, network: str, rt: RuntimeConf) -> None:
        """Remove the entry, unless the file is another attachment's (same path)."""
        data = self._read(network, rt)
        entry = _parse(data) if data is not None else None
        if entry is not None and not entry.belongs_to(network, rt):
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(network, rt))

    def get(self, network: str, rt: RuntimeConf) -> CachedAttachment | None:
        """The entry, or None when absent, not in the cniCacheV1 format, or another
        attachment's."""
        data = self._read(network, rt)
        entry = _parse(data) if data is not None else None
        if entry is None or not entry.belongs_to(network, rt):
            return None
        return entry

    def get_result(self, network: str, rt: RuntimeConf) -> Result | None:
        """libcni's ``getCachedResult``: the cached result (None when there is no file, no
        result, or the entry is another attachment's); a file that cannot be read as an
        entry or as a bare (legacy) result raises code 6."""
        data = self._read(network, rt)
        if data is None:
            return None
        entry = _parse(data)
        if entry is not None:
            return entry.result() if entry.belongs_to(network, rt) else None
        try:
            obj = json.loads(data)
        except ValueError as exc:
            raise decoding_failure("cannot read cached result", str(exc)) from None
        if isinstance(obj, dict) and obj.get("kind") == KIND:
            raise decoding_failure("cannot read cached result", "malformed cniCacheV1 entry")
        try:
            return Result.from_dict(obj)  # a legacy file: the bare result
        except CNIError as exc:
            raise decoding_failure("cannot read cached result", str(exc)) from None

    def attachments(self, container_id: str = "") -> list[CachedAttachment]:
        """Every readable entry (libcni's ``GetCachedAttachments``)."""
        directory = os.path.join(self.directory, "results")
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            return []
        out = []
        for name in names:
            if container_id and container_id not in name:
                continue
            try:
                with open(os.path.join(directory, name), "rb") as fh:
                    entry = _parse(fh.read())
            except OSError:
                continue
            if entry is None or not entry.network or not entry.ifname:
                continue  # libcni skips entries that cannot name an attachment
            if entry.file_name != name:
                continue  # not where its attachment is kept: a killed writer's temporary
            if not container_id or entry.container_id == container_id:
                out.append(entry)
        return out


    def sweep_stale_writes(self) -> list[str]:
        """Remove the temporary files of writers that are gone (killed between writing
        and renaming); the names removed. A live writer's file stays."""
        directory = os.path.join(self.directory, "results")
        try:
            names = os.listdir(directory)
        except OSError:
            return []
        removed = []
        for name in names:
            found = _TEMPORARY.search(name)
            if found is None or _alive(int(found.group(1))):
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, name))
                removed.append(name)
        return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _parse(data: bytes) -> CachedAttachment | None:
    try:
        obj = json.loads(data)
        if not isinstance(obj, dict) or obj.get("kind") != KIND:
            return None
        raw_result = obj.get("result")
        return CachedAttachment(
            network=str(obj["networkName"]),
            container_id=str(obj["containerId"]),
            ifname=str(obj["ifName"]),
            netns=str(obj.get("netns", "")),
            config=base64.b64decode(obj.get("config") or ""),
            args=tuple((str(k), str(v)) for k, v in obj.get("cniArgs") or ()),
            capability_args=dict(obj.get("capabilityArgs") or {}),
            raw_result=raw_result if isinstance(raw_result, dict) else None,
        )
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None
