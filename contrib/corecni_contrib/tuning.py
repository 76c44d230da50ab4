"""tuning (meta): sysctls and link settings of the container interface.

Config keys, defaults and behaviour follow containernetworking/plugins'
``tuning`` (Debian ships 1.1.1; ``txQLen`` is from later releases):

* ``sysctl`` - a map of network sysctls written in the container namespace;
  keys use dots or slashes (``net.ipv4.conf.IFNAME.arp_filter``), ``IFNAME``
  (first occurrence) becomes CNI_IFNAME; a key outside ``net.`` or containing
  ``..`` is refused (code 7) before anything is written;
* ``mac`` - also from CNI_ARGS ``MAC`` and the ``mac`` capability
  (``runtimeConfig.mac``), each overriding the one before, as in Go; the result's
  interface gets the new MAC;
* ``mtu``, ``promisc`` (only ``true`` acts on ADD), ``allmulti``, ``txQLen``;
* ``args.cni`` may override ``sysctl`` (merged), ``mac``, ``promisc``, ``mtu``,
  ``allmulti`` and ``txQLen``;
* ``dataDir`` (default ``/run/cni/tuning``): the link's original MAC, MTU,
  promisc, allmulti and txQLen are saved there as Go saves them
  (``<containerID>_<ifname>.json``, keys ``mac``/``promisc``/``mtu``/``allmulti``/
  ``txQLen``) and restored on DEL, which never fails; either implementation's DEL
  restores the other's ADD.

A failed ADD leaves nothing: sysctls written so far get their old values back,
the link the settings it had before this ADD, and a saved file this ADD wrote
goes. A repeated ADD of the same attachment keeps the file its first ADD saved (the
link's originals, which DEL restores), and a failing one leaves it as it was. CHECK compares every
configured value with the kernel's.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from corecni import kit
from corecni.kit import CNIError, ErrorCode, Request, Result, hookimpl
from corecni.net import Link, NetBackend, NetError

DEFAULT_DATA_DIR = "/run/cni/tuning"


def sysctl_key(key: str, ifname: str) -> str:
    """Go's ``getSysctlFilename`` as a key below /proc/sys/net (``ipv4/ip_forward``):
    dots become slashes, ``IFNAME`` becomes the interface; code 7 for a key that is
    not a network sysctl or tries to climb out with ``..``."""
    if ".." in key:
        raise kit.config_error(f"invalid net sysctl key: {key!r}", "'..' is not allowed")
    path = key.replace(".", "/").replace("IFNAME", ifname, 1)
    parts = [p for p in path.split("/") if p]
    if len(parts) < 2 or parts[0] != "net":
        raise kit.config_error(f"invalid net sysctl key: {key!r}",
                               "only keys below /proc/sys/net are allowed")
    return "/".join(parts[1:])


def _sysctls(value: Any, label: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise kit.config_error(f"{label} must be a map of strings", repr(value)[:200])
    return dict(value)


def _opt_bool(obj: Mapping[str, Any], key: str) -> bool | None:
    return kit.bool_key(obj, key) if obj.get(key) is not None else None


def _opt_int(obj: Mapping[str, Any], key: str) -> int | None:
    if obj.get(key) is None:
        return None
    value = kit.int_key(obj, key)
    if value < 0:
        raise kit.config_error(f"{key} must not be negative", str(value))
    return value


@attrs.frozen
class TuningConfig:
    """The plugin's view of its config; validated (code 7) before anything is written."""

    data_dir: str = DEFAULT_DATA_DIR
    sysctl: dict[str, str] = attrs.Factory(dict)
    mac: str = ""
    promisc: bool = False
    mtu: int = 0
    allmulti: bool | None = None
    txqlen: int | None = None

    @classmethod
    def from_request(cls, request: Request) -> TuningConfig:
        raw = request.config.raw
        sysctl = _sysctls(raw.get("sysctl"), "'sysctl'")
        mac = kit.str_key(raw, "mac")
        mac = request.arg("MAC") or mac
        mac = kit.str_key(request.runtime_config, "mac") or mac
        promisc, mtu = kit.bool_key(raw, "promisc"), _opt_int(raw, "mtu") or 0
        allmulti, txqlen = _opt_bool(raw, "allmulti"), _opt_int(raw, "txQLen")
        cni_args = kit.dict_key(kit.dict_key(raw, "args"), "cni", "args.cni")
        if cni_args:
            sysctl |= _sysctls(cni_args.get("sysctl"), "args.cni.sysctl")
            mac = kit.str_key(cni_args, "mac") or mac
            promisc = bool(_opt_bool(cni_args, "promisc")) if "promisc" in cni_args else promisc
            mtu = _opt_int(cni_args, "mtu") or mtu
            allmulti = _opt_bool(cni_args, "allmulti") if "allmulti" in cni_args else allmulti
            txqlen = _opt_int(cni_args, "txQLen") if "txQLen" in cni_args else txqlen
        return cls(data_dir=kit.str_key(raw, "dataDir") or DEFAULT_DATA_DIR, sysctl=sysctl,
                   mac=kit.parse_mac(mac, "MAC address") if mac else "",
                   promisc=bool(promisc), mtu=mtu, allmulti=allmulti, txqlen=txqlen)

    def sysctl_keys(self, ifname: str) -> dict[str, str]:
        """Configured sysctl -> its key below /proc/sys/net."""
        return {key: sysctl_key(key, ifname) for key in self.sysctl}

    @property
    def touches_link(self) -> bool:
        return bool(self.mac or self.mtu or self.promisc or self.allmulti is not None
                    or self.txqlen is not None)


# --- the saved original settings (Go's configToRestore) ---------------------------------

def backup_path(data_dir: str, container_id: str, ifname: str) -> Path:
    return Path(data_dir) / f"{container_id}_{ifname}.json"


def backup_of(link: Link, conf: TuningConfig) -> dict[str, Any]:
    """What Go saves: only the settings this config changes."""
    saved: dict[str, Any] = {}
    if conf.mac:
        saved["mac"] = link.mac
    if conf.promisc:
        saved["promisc"] = link.promisc
    if conf.mtu:
        saved["mtu"] = link.mtu
    if conf.allmulti is not None:
        saved["allmulti"] = link.allmulti
    if conf.txqlen is not None:
        saved["txQLen"] = link.txqlen
    return saved


def _write_backup(path: Path, saved: Mapping[str, Any]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(saved, fh, indent=1)
    os.replace(tmp, path)


def _read_backup(path: Path) -> dict[str, Any] | None:
    """The settings an earlier ADD of the attachment saved (None: none, or unreadable)."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return saved if isinstance(saved, dict) else None


def restore(backend: NetBackend, netns: str, ifname: str, saved: Mapping[str, Any]) -> None:
    """Put the saved settings back in one request (MTU first: a MAC may need it)."""
    kw: dict[str, Any] = {}
    if isinstance(saved.get("mtu"), int) and saved["mtu"]:
        kw["mtu"] = saved["mtu"]
    if isinstance(saved.get("mac"), str) and saved["mac"]:
        kw["mac"] = saved["mac"]
    for key, arg in (("promisc", "promisc"), ("allmulti", "allmulti")):
        if isinstance(saved.get(key), bool):
            kw[arg] = saved[key]
    if isinstance(saved.get("txQLen"), int):
        kw["txqlen"] = saved["txQLen"]
    if kw:
        backend.batch(netns).set_link(ifname, **kw).commit()


@contextlib.contextmanager
def _locked(data_dir: str) -> Iterator[None]:
    """One tuning call at a time per data dir (ADD/DEL of one container may race)."""
    Path(data_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(Path(data_dir) / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# --- ADD ---------------------------------------------------------------------------------

def _write_sysctls(backend: NetBackend, netns: str, keys: Mapping[str, str],
                   values: Mapping[str, str], undo: kit.UndoStack) -> None:
    for key, path in keys.items():
        with kit.kernel_step(f"read sysctl {key}"):
            old = backend.sysctl_get(path, netns)
        with kit.kernel_step(f"write sysctl {key}={values[key]}"):
            backend.sysctl_set(path, values[key], netns)
        undo.push(functools.partial(backend.sysctl_set, path, old, netns))


def _tune_link(backend: NetBackend, request: Request, conf: TuningConfig,
               undo: kit.UndoStack) -> None:
    netns, ifname = request.netns, request.ifname
    with kit.kernel_step(f"look up {ifname} in {netns}"):
        link = backend.link(ifname, netns)
    if link is None:
        raise CNIError(ErrorCode.INTERNAL, f"failed to get {ifname!r}", netns)
    found = backup_of(link, conf)  # as this ADD finds them: what its undo puts back
    path = backup_path(conf.data_dir, request.container_id, ifname)
    previous = _read_backup(path)
    # A repeated ADD of the attachment keeps the settings its first ADD saved (the
    # link's originals: DEL restores those, not the tuned values this ADD finds) and
    # adds only what it tunes beyond them.
    saved = found if previous is None else {**found, **previous}
    if saved != previous:
        try:
            _write_backup(path, saved)
        except OSError as exc:
            raise CNIError(ErrorCode.IO_FAILURE, f"failed to save {path}", str(exc)) from None
        undo.push(lambda: path.unlink(missing_ok=True) if previous is None
                  else _write_backup(path, previous))
    undo.push(lambda: restore(backend, netns, ifname, found))
    with kit.kernel_step(f"tune {ifname} in {netns}"):
        backend.batch(netns).set_link(
            ifname, mac=conf.mac or None, promisc=True if conf.promisc else None,
            mtu=conf.mtu or None, allmulti=conf.allmulti, txqlen=conf.txqlen).commit()


def _with_mac(result: Result, ifname: str, mac: str) -> Result:
    """Go's ``updateResultsMacAddr``: every interface of that name gets the new MAC."""
    return attrs.evolve(result, interfaces=tuple(
        attrs.evolve(i, mac=mac) if i.name == ifname else i for i in result.interfaces))


@hookimpl
def meta_add(request: Request, prev_result: Result) -> Result:
    conf = TuningConfig.from_request(request)
    keys = conf.sysctl_keys(request.ifname)
    backend = request.net
    with _locked(conf.data_dir), kit.undo_on_failure() as undo:
        _write_sysctls(backend, request.netns, keys, conf.sysctl, undo)
        if conf.touches_link:
            _tune_link(backend, request, conf, undo)
    return _with_mac(prev_result, request.ifname, conf.mac) if conf.mac else prev_result


# --- DEL ---------------------------------------------------------------------------------

@hookimpl
def meta_del(request: Request, prev_result: Result | None) -> None:
    """Restore what ADD saved; a missing file, namespace or link means nothing to do, and
    a restore that fails keeps the file (Go's behaviour) but never fails the DEL."""
    raw = request.config.raw
    data_dir = raw.get("dataDir") if isinstance(raw.get("dataDir"), str) else ""
    path = backup_path(data_dir or DEFAULT_DATA_DIR, request.container_id, request.ifname)
    if not path.exists():
        return
    with _locked(str(path.parent)):
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        if not isinstance(saved, dict) or not request.netns or kit.netns_gone(request.netns):
            return
        try:
            if request.net.link(request.ifname, request.netns) is None:
                return
            restore(request.net, request.netns, request.ifname, saved)
        except NetError:
            return  # Go ignores restore errors on DEL; the file stays for a later DEL
        path.unlink(missing_ok=True)


# --- CHECK -------------------------------------------------------------------------------

def _drift(what: str, want: object, have: object) -> CNIError:
    return CNIError(ErrorCode.INTERNAL, f"Tuning configured {what} is {want}, "
                                        f"current value is {have}")


@hookimpl
def meta_check(request: Request, prev_result: Result) -> None:
    conf = TuningConfig.from_request(request)
    backend, netns, ifname = request.net, request.netns, request.ifname
    for key, path in conf.sysctl_keys(ifname).items():
        with kit.kernel_step(f"read sysctl {key}"):
            have = backend.sysctl_get(path, netns)
        if have != conf.sysctl[key]:
            raise _drift(f"value of /proc/sys/net/{path}", conf.sysctl[key], have)
    with kit.kernel_step(f"look up {ifname} in {netns}"):
        link = backend.link(ifname, netns)
    if link is None:
        raise CNIError(ErrorCode.INTERNAL, f"Cannot find container link {ifname}")
    if conf.mac and conf.mac != link.mac:
        raise _drift(f"Ethernet of {ifname}", conf.mac, link.mac)
    if conf.promisc != link.promisc:
        raise _drift(f"promisc of {ifname}", conf.promisc, link.promisc)
    if conf.mtu and conf.mtu != link.mtu:
        raise _drift(f"MTU of {ifname}", conf.mtu, link.mtu)
    if conf.allmulti is not None and conf.allmulti != link.allmulti:
        raise _drift(f"all-multicast mode of {ifname}", conf.allmulti, link.allmulti)
    if conf.txqlen is not None and conf.txqlen != link.txqlen:
        raise _drift(f"Transmit Queue Length of {ifname}", conf.txqlen, link.txqlen)
