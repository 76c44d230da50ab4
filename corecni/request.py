"""What a hook receives: ``Request`` (one CNI call) and ``Attachment`` (a live pair for GC).

These are the contract's own types, so they live beside ``hookspecs`` and below
the loader (``plugin``), the runtime side (``runtime``, ``invoke``) and the
plugin side (``skel``): every one of them imports this module, none of them is
imported here.

The CNI_* variables are one table, ``ENV``: each row names the variable, the
``Request`` field it fills, the commands that require it and its validator.
``skel`` reads a plugin's environment through the table, ``invoke`` writes an
exec'd plugin's environment through it (``Request.environ``): one source of
truth for both sides of the protocol.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from corecni.spec.config import (
    PluginConfig,
    format_cni_args,
    parse_cni_args,
    validate_container_id,
    validate_ifname,
)
from corecni.spec.errors import CNIError, ErrorCode
from corecni.spec.result import Result

if TYPE_CHECKING:
    from corecni.net.base import NetBackend

#: every command of SPEC 1.1.0
COMMANDS = ("ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION")
_ATTACH = frozenset({"ADD", "DEL", "CHECK"})


@attrs.frozen
class Attachment:
    """A (container ID, ifname) pair a runtime still considers live (for GC)."""

    container_id: str
    ifname: str

    def to_dict(self) -> dict[str, str]:
        return {"containerID": self.container_id, "ifname": self.ifname}


class Delegate(Protocol):
    """How a plugin calls another plugin (its IPAM, or a meta plugin's delegate).

    Implemented by ``corecni.invoke.Invoker``: in-process for a Python plugin,
    exec from CNI_PATH otherwise. Plugins reach it through ``Request.ipam_add``
    & co. or ``Request.delegate_call``.
    """

    def call(self, plugin_type: str, command: str, request: Request,
             config: Mapping[str, Any] | None = None) -> Result | None: ...


def _split_path(value: str) -> tuple[str, ...]:
    return tuple(p for p in value.split(os.pathsep) if p)


@attrs.frozen
class EnvVar:
    """One CNI_* variable: the ``Request`` field it fills and when it is required.

    ``validate`` runs only for the commands in ``validate_for`` and only on a
    non-empty value; a ``probe`` validator looks at the system (the netns) and runs
    after every plain one, so a bad CNI_IFNAME is refused before any path is touched.
    ``parse`` turns the text into the field's value and ``format`` back (for an
    exec'd plugin's environment).
    """

    name: str
    field: str
    required_for: frozenset[str]
    validate: Callable[[str], object] | None = None
    validate_for: frozenset[str] = frozenset(COMMANDS)
    parse: Callable[[str], Any] = str
    format: Callable[[Any], str] = str
    probe: bool = False


def validate_netns_path(path: str) -> str:
    """ADD/CHECK need a live namespace: gone -> CNI code 3, not a netns -> code 4.

    Shared by the runtime (before any plugin runs) and the plugin side (skel).
    """
    from corecni import netns  # ctypes, only when a namespace is named

    try:
        netns.check_netns(path)
    except netns.NetnsError as exc:
        if exc.errno == 2:
            raise CNIError(ErrorCode.UNKNOWN_CONTAINER, "network namespace does not exist",
                           path) from None
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT, "CNI_NETNS is not a network namespace",
                       f"{path}: {exc.strerror}") from None
    return path


def netns_gone(path: str) -> bool:
    """DEL's test: True when the namespace no longer exists (its links went with it);
    a path that exists but is not a network namespace is CNI code 4."""
    from corecni import netns

    try:
        netns.check_netns(path)
    except netns.NetnsError as exc:
        if exc.errno == 2:
            return True
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT, "CNI_NETNS is not a network namespace",
                       f"{path}: {exc.strerror}") from None
    return False


def _lenient_args(text: str) -> tuple[tuple[str, str], ...]:
    return parse_cni_args(text, strict=False)


#: The CNI_* variables (SPEC 1.1.0 "Parameters"), in the order Go's skel checks them.
ENV: tuple[EnvVar, ...] = (
    EnvVar("CNI_COMMAND", "command", frozenset(COMMANDS)),
    EnvVar("CNI_CONTAINERID", "container_id", _ATTACH, validate_container_id),
    EnvVar("CNI_NETNS", "netns", frozenset({"ADD", "CHECK"}), validate_netns_path,
           validate_for=frozenset({"ADD", "CHECK"}), probe=True),
    EnvVar("CNI_IFNAME", "ifname", _ATTACH, validate_ifname),
    # never refused here (Go's skel passes it through): plugins read the keys they ask for
    EnvVar("CNI_ARGS", "args", frozenset(), parse=_lenient_args, format=format_cni_args),
    EnvVar("CNI_PATH", "path", frozenset({"ADD", "DEL", "CHECK", "GC", "STATUS"}),
           parse=_split_path, format=os.pathsep.join),
)


#: Go's CNI_NETNS_OVERRIDE: "1"/"true" lets a plugin serve its own namespace
NETNS_OVERRIDE = "CNI_NETNS_OVERRIDE"


def refuse_own_netns(command: str, netns: str, environ: Mapping[str, str]) -> None:
    """Go's skel (libcni >= 1.2): on ADD, DEL and CHECK, CNI_NETNS naming the plugin's
    own namespace is refused (the plugin would configure - on DEL tear down - the
    node's own interfaces) unless CNI_NETNS_OVERRIDE is "1" or "true". Go answers
    with its ErrInvalidNetNS (8), a code SPEC 1.1.0 does not define; this is the
    spec's code for a bad variable, 4, with Go's message."""
    from corecni.netns import is_own_netns

    if command not in _ATTACH or not netns:
        return
    if environ.get(NETNS_OVERRIDE, "").upper() in ("1", "TRUE"):
        return
    if is_own_netns(netns):
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT,
                       "plugin's netns and netns from CNI_NETNS should not be the same", netns)


def read_env(command: str, environ: Mapping[str, str]) -> dict[str, Any]:
    """The ``Request`` fields of ``command`` read from ``environ`` through ``ENV``.

    Missing required variables are one code-4 error listing them all (Go's
    skel message); each present value is validated, then parsed.
    """
    missing = [v.name for v in ENV if command in v.required_for and not environ.get(v.name)]
    if missing:
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT,
                       f"required env variables [{','.join(missing)}] missing")
    for var in sorted(ENV, key=lambda v: v.probe):  # stable: table order within each pass
        text = environ.get(var.name, "")
        if var.validate is not None and text and command in var.validate_for:
            var.validate(text)
    return {var.field: var.parse(environ.get(var.name, "")) for var in ENV}


@attrs.frozen
class Request:
    """One CNI call as a plugin hook sees it.

    ``command``, ``container_id``, ``netns``, ``ifname``, ``args`` (CNI_ARGS
    pairs) and ``path`` (CNI_PATH) are the spec's parameters; ``config`` is the
    parsed stdin; ``prev_result`` the chained or cached result; GC's
    ``valid_attachments`` come from ``cni.dev/valid-attachments``. ``net`` is
    the link layer to use: the caller hands it in (the runner fills it with the
    node's configured backend), so tests pass a fake once and a plugin has no
    other way to reach the kernel's links.
    """

    command: str
    config: PluginConfig
    container_id: str = ""
    netns: str = ""
    ifname: str = ""
    args: tuple[tuple[str, str], ...] = ()
    path: tuple[str, ...] = ()
    prev_result: Result | None = None
    valid_attachments: tuple[Attachment, ...] = ()
    delegate: Delegate | None = attrs.field(default=None, eq=False, repr=False)
    net_backend: NetBackend | None = attrs.field(default=None, eq=False, repr=False,
                                                 alias="net")

    @classmethod
    def for_config(cls, command: str, config: PluginConfig, *, container_id: str = "",
                   netns: str = "", ifname: str = "", args: tuple[tuple[str, str], ...] = (),
                   path: tuple[str, ...] = (), net: NetBackend | None = None) -> Request:
        """The request for ``config``: prevResult and GC's valid attachments read from it."""
        return cls(command=command, config=config, container_id=container_id, netns=netns,
                   ifname=ifname, args=args, path=path, prev_result=config.prev_result,
                   valid_attachments=valid_attachments(config) if command == "GC" else (),
                   net=net)

    # ---- the spec's parameters, derived views -------------------------------
    @property
    def cni_version(self) -> str:
        return self.config.cni_version

    @property
    def args_dict(self) -> dict[str, str]:
        return dict(self.args)

    def arg(self, key: str, default: str = "") -> str:
        """The CNI_ARGS value of ``key`` (``IP``, ``MAC``, ``K8S_POD_NAME``...), else
        ``default``; the last one wins, as in Go's ``LoadArgs``. The one way plugins
        read CNI_ARGS: unknown keys are ignored (every runtime sends some)."""
        value = default
        for name, text in self.args:
            if name == key:
                value = text
        return value

    @property
    def runtime_config(self) -> Mapping[str, Any]:
        """The ``runtimeConfig`` the runtime injected for the plugin's capabilities
        (``portMappings``, ``bandwidth``, ``ips``, ``mac``...); empty when none."""
        value = self.config.raw.get("runtimeConfig")
        return value if isinstance(value, dict) else {}

    def capability(self, name: str, default: Any = None) -> Any:
        """``runtimeConfig[name]``: a capability argument, or ``default``."""
        return self.runtime_config.get(name, default)

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of an exec'd plugin serving this request (``ENV`` written out)."""
        env = dict(os.environ if base is None else base)
        for var in ENV:
            env[var.name] = var.format(getattr(self, var.field))
        return env

    @property
    def net(self) -> NetBackend:
        """The link layer handed in with this request (see the class docstring)."""
        if self.net_backend is None:
            raise CNIError(ErrorCode.INTERNAL, "no link layer was handed in with this request",
                           "run the plugin through corecni (LoadedPlugin.run), or pass net=")
        return self.net_backend

    # ---- delegation: Go's ipam.ExecAdd/ExecDel/ExecCheck and invoke.DelegateAdd ----
    def _ipam_type(self) -> str:
        ipam = self.config.ipam
        ptype = ipam.get("type") if ipam else None
        if not isinstance(ptype, str) or not ptype:
            raise CNIError(ErrorCode.INVALID_NETWORK_CONFIG, "missing ipam.type",
                           f"plugin {self.config.type!r} needs an 'ipam' section with a 'type'")
        return ptype

    def delegate_call(self, plugin_type: str, command: str | None = None,
                      config: Mapping[str, Any] | None = None) -> Result | None:
        """Run ``plugin_type`` for this attachment (``command`` defaults to this one's),
        with ``config`` as its whole network config (default: this config).

        In-process when the delegate is a Python plugin, exec'd from CNI_PATH
        otherwise; its CNIError propagates unchanged.
        """
        if self.delegate is None:
            raise CNIError(ErrorCode.INTERNAL, "no delegate available for this request")
        return self.delegate.call(plugin_type, command or self.command,
                                  attrs.evolve(self, command=command or self.command), config)

    def ipam_add(self, plugin_type: str | None = None) -> Result:
        """ADD on the config's IPAM plugin (or ``plugin_type``); its Result."""
        ptype = plugin_type or self._ipam_type()
        result = self.delegate_call(ptype, "ADD")
        if result is None:
            raise CNIError(ErrorCode.INTERNAL, "IPAM plugin returned no result", ptype)
        return result

    def ipam_del(self, plugin_type: str | None = None) -> None:
        """DEL on the IPAM plugin; releasing nothing is not an error for it."""
        self.delegate_call(plugin_type or self._ipam_type(), "DEL")

    def ipam_check(self, plugin_type: str | None = None) -> None:
        self.delegate_call(plugin_type or self._ipam_type(), "CHECK")

    def ipam_status(self, plugin_type: str | None = None) -> None:
        """STATUS on the IPAM plugin (its 50/51 error propagates)."""
        self.delegate_call(plugin_type or self._ipam_type(), "STATUS")

    def ipam_gc(self, plugin_type: str | None = None) -> None:
        """GC on the IPAM plugin with this request's valid attachments."""
        self.delegate_call(plugin_type or self._ipam_type(), "GC")


def valid_attachments(config: PluginConfig) -> tuple[Attachment, ...]:
    """``cni.dev/valid-attachments`` of a GC config as ``Attachment``s."""
    raw = config.raw.get("cni.dev/valid-attachments") or []
    if not isinstance(raw, list):
        raise CNIError(ErrorCode.INVALID_NETWORK_CONFIG,
                       "cni.dev/valid-attachments must be a list")
    out = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("containerID"), str):
            raise CNIError(ErrorCode.INVALID_NETWORK_CONFIG,
                           "bad entry in cni.dev/valid-attachments", repr(item))
        out.append(Attachment(item["containerID"], str(item.get("ifname", ""))))
    return tuple(out)
