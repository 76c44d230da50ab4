"""The ``flannel`` CNI plugin: flannel's connectivity half, config-compatible with Go's.

It reads the node's lease from ``subnet.env`` (written by ``corecni flanneld``
or flannel's flanneld), builds the delegate's config exactly as Go's flannel
plugin does (``delegate.build``: by default bridge + host-local on the node's
subnet, a route to the cluster network, flannel's MTU, ``ipMasq`` when
flanneld does not masquerade), saves it under ``dataDir`` per container for
DEL, and calls the delegate: in-process when it is a Python plugin, exec'd
from CNI_PATH otherwise. DEL replays the saved config and removes it; a
missing file is not an error (the spec's DEL rule).

Keys: ``subnetFile`` (default ``/run/flannel/subnet.env``), ``dataDir``
(default ``/var/lib/cni/flannel``), ``delegate``, ``ipam``, ``runtimeConfig``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from corecni.kit import CNIError, ErrorCode, Request, Result, config_error, hookimpl, str_key
from corecni_contrib.flannel import delegate as delegate_conf
from corecni_contrib.flannel import subnet_env

DEFAULT_SUBNET_FILE = "/run/flannel/subnet.env"
DEFAULT_DATA_DIR = "/var/lib/cni/flannel"


def _paths(request: Request) -> tuple[str, str]:
    raw = request.config.raw
    subnet_file = str_key(raw, "subnetFile") or DEFAULT_SUBNET_FILE
    data_dir = str_key(raw, "dataDir") or DEFAULT_DATA_DIR
    if "\x00" in data_dir or "\x00" in subnet_file:
        raise config_error("'dataDir' and 'subnetFile' must not contain NUL")
    return subnet_file, data_dir


def _scratch(data_dir: str, container_id: str) -> str:
    return os.path.join(data_dir, container_id)


def _save(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


@hookimpl
def cni_add(request: Request) -> Result:
    subnet_file, data_dir = _paths(request)
    try:
        env = subnet_env.load(subnet_file)
    except subnet_env.SubnetEnvError as exc:
        raise CNIError(ErrorCode.INVALID_NETWORK_CONFIG,
                       f"failed to load flannel 'subnet.env' file: {exc}. "
                       "Check the flannel pod log for this node.") from None
    conf = delegate_conf.build(request.config.raw, env)
    data = json.dumps(conf).encode()
    path = _scratch(data_dir, request.container_id)
    try:
        _save(path, data)
    except OSError as exc:
        raise CNIError(ErrorCode.IO_FAILURE, f"failed to save the delegate config to {path}",
                       exc.strerror or str(exc)) from None
    try:
        result = request.delegate_call(str(conf["type"]), "ADD", conf)
    except CNIError as exc:
        raise CNIError(exc.code, f"failed to delegate add: {exc.msg}", exc.details) from None
    if result is None:
        raise CNIError(ErrorCode.INTERNAL, f"delegate {conf['type']!r} returned no result")
    return result


class _Unreadable(Exception):
    """The saved delegate config exists but cannot be parsed."""


def _saved(request: Request) -> tuple[str, dict[str, Any] | None]:
    """(path, the delegate config ADD saved for this container, or None when absent)."""
    _, data_dir = _paths(request)
    path = _scratch(data_dir, request.container_id)
    try:
        with open(path, "rb") as fh:
            conf = json.loads(fh.read())
    except FileNotFoundError:
        return path, None
    except OSError as exc:
        raise CNIError(ErrorCode.IO_FAILURE, f"failed to read {path}",
                       exc.strerror or str(exc)) from None
    except ValueError:
        raise _Unreadable(path) from None
    if not isinstance(conf, dict) or not isinstance(conf.get("type"), str):
        raise _Unreadable(path)
    return path, conf


@hookimpl
def cni_del(request: Request) -> None:
    try:
        path, conf = _saved(request)
    except _Unreadable as exc:
        os.remove(str(exc))  # Go's rule: nothing to replay; the link dies with the node
        return
    if conf is None:
        return  # never added, or already deleted
    if request.runtime_config:
        conf["runtimeConfig"] = dict(request.runtime_config)
    request.delegate_call(conf["type"], "DEL", conf)
    os.remove(path)


@hookimpl
def cni_check(request: Request) -> None:
    """Go's flannel plugin checks nothing; the delegate's CHECK does the work here."""
    try:
        path, conf = _saved(request)
    except _Unreadable as exc:
        raise CNIError(ErrorCode.INTERNAL, "flannel: saved delegate config is unreadable",
                       str(exc)) from None
    if conf is None:
        raise CNIError(ErrorCode.INTERNAL, "flannel: no saved delegate config", path)
    request.delegate_call(conf["type"], "CHECK", conf)
