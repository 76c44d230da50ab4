"""``corecni``: what ``cnitool`` does, and more.

The cnitool verbs (add, check, del, gc, status) take cnitool's arguments and
environment variables (NETCONFPATH, CNI_PATH, CNI_IFNAME, CNI_ARGS, CAP_ARGS);
corecni adds flags for each of them, the other runtime operations (version,
validate) and node tooling (plugins, install, doctor, demo).

Output: ADD prints the result JSON on stdout; any error is one line on stderr
and exit status 1 (2 for a bad command line). This is the only place on the
runtime side where an error becomes text.

Layout, so a subcommand is easy to add: each one is a ``cmd_*`` function (what
it does) and a ``_parser_*`` function (its arguments, description and
examples); ``SUBCOMMANDS`` lists the parser functions in ``--help`` order.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import math
import os
import sys
import textwrap
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from corecni.spec.errors import CNIError, ErrorCode

DEFAULT_CNI_PATH = "/opt/cni/bin"
NETNS_DIRS = ("/run/netns", "/var/run/netns")  # where `ip netns add NAME` puts NAME


# ---------------------------------------------------------------------------
# the environment: one table, read through _env() and printed in --help
# ---------------------------------------------------------------------------

@attrs.frozen
class EnvVar:
    name: str
    default: str
    meaning: str


ENVIRONMENT: tuple[EnvVar, ...] = (
    EnvVar("NETCONFPATH", "/etc/cni/net.d", "directory of network config files"),
    EnvVar("CNI_PATH", DEFAULT_CNI_PATH, "plugin directories, ':'-separated"),
    EnvVar("CNI_IFNAME", "eth0", "interface name in the container, unless --ifname"),
    EnvVar("CNI_ARGS", "", "plugin arguments K=V;K=V, unless --args"),
    EnvVar("CAP_ARGS", "", "capability arguments (JSON object), unless --cap-args"),
    EnvVar("CNI_CONTAINERID", "cnitool-<sha512 of the netns path>",
           "container ID, unless --container-id"),
    EnvVar("CNI_CACHE_DIR", "/var/lib/cni", "result cache directory, unless --cache-dir"),
    EnvVar("CORECNI_PREFER", "python",
           "python|path: who serves a type found both ways, unless --prefer"),
    EnvVar("CORECNI_NET_BACKEND", "auto", "link layer for in-process plugins: "
           "native, pyroute2 or auto"),
    EnvVar("CORECNI_DAEMON_SOCKET", "/run/corecni/daemon.sock",
           "the node daemon's socket (daemon, shim), unless --socket"),
)
_ENV_BY_NAME = {var.name: var for var in ENVIRONMENT}


def _env(name: str, default: str | None = None) -> str:
    """An environment variable of ``ENVIRONMENT`` (a name outside it is a bug: --help
    would not list it)."""
    var = _ENV_BY_NAME[name]
    fallback = var.default if default is None else default
    return os.environ.get(name) or fallback


def environment_help() -> str:
    width = max(len(var.name) for var in ENVIRONMENT)
    lines = [f"  {var.name:<{width}}  {var.meaning}"
             + (f"; default {var.default}" if var.default else "") for var in ENVIRONMENT]
    return "environment:\n" + "\n".join(lines)


# ---------------------------------------------------------------------------
# argument types: refuse bad values on the command line, with the reason
# ---------------------------------------------------------------------------

def _seconds(text: str) -> float:
    """``--timeout``: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(
            f"must be a positive number of seconds, not {text!r}")
    return value


def _prefer(text: str) -> str:
    """``--prefer`` / CORECNI_PREFER (argparse checks a default only through its type)."""
    if text not in ("python", "path"):
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither 'python' nor 'path' (--prefer or CORECNI_PREFER)")
    return text


def _attachment(text: str) -> Any:
    """``gc --valid CONTAINERID[/IFNAME]``, both parts checked as the spec says."""
    from corecni.request import Attachment
    from corecni.spec.config import validate_container_id, validate_ifname

    container_id, _, ifname = text.partition("/")
    try:
        return Attachment(validate_container_id(container_id), validate_ifname(ifname or "eth0"))
    except CNIError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not CONTAINERID[/IFNAME]: {exc}") from None


def _container_id(text: str) -> str:
    from corecni.spec.config import validate_container_id

    try:
        return validate_container_id(text)
    except CNIError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _ifname(text: str) -> str:
    from corecni.spec.config import validate_ifname

    try:
        return validate_ifname(text)
    except CNIError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _cni_args(text: str) -> tuple[tuple[str, str], ...]:
    from corecni.spec.config import parse_cni_args

    try:
        return parse_cni_args(text)
    except CNIError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT, f"{what} is not valid JSON",
                       str(exc)) from None
    if not isinstance(value, dict):
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT, f"{what} must be a JSON object")
    return value


def _cap_args_flag(text: str) -> dict[str, Any]:
    try:
        return _json_object(text, "--cap-args")
    except CNIError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# ---------------------------------------------------------------------------
# what the verbs share
# ---------------------------------------------------------------------------

def cnitool_container_id(netns: str) -> str:
    """cnitool's default: ``cnitool-`` + the first 20 hex digits of sha512(netns)."""
    return "cnitool-" + hashlib.sha512(netns.encode()).hexdigest()[:20]


def resolve_netns(arg: str) -> str:
    """A netns argument as a path: a bare name (no ``/``) that is no file here is
    ``ip netns``'s ``/run/netns/NAME`` (or ``/var/run/netns/NAME`` where only that
    exists); anything else is made absolute, as cnitool does."""
    if "/" not in arg and arg not in (".", "..") and not os.path.exists(arg):
        for directory in NETNS_DIRS:
            candidate = os.path.join(directory, arg)
            if os.path.exists(candidate):
                return candidate
        return os.path.join(NETNS_DIRS[0], arg)  # DEL of a gone netns still works
    return os.path.abspath(arg)


def _runtime(ns: argparse.Namespace) -> Any:
    from corecni.registry import Registry, split_path
    from corecni.runtime import CNIRuntime

    path = split_path(_env("CNI_PATH"))
    registry = Registry(path=path, in_process=not ns.exec_only, prefer=ns.prefer)
    return CNIRuntime(path=path, cache_dir=ns.cache_dir, registry=registry, timeout=ns.timeout)


def _network(name: str) -> Any:
    from corecni.config import load_network

    return load_network(_env("NETCONFPATH"), name)


def _runtime_conf(ns: argparse.Namespace) -> Any:
    """cnitool's RuntimeConf, each field from its flag, else its env var, else default."""
    from corecni.spec.config import RuntimeConf

    netns_path = resolve_netns(ns.netns)
    cap_args = ns.cap_args if ns.cap_args is not None else \
        _json_object(_env("CAP_ARGS"), "CAP_ARGS") if _env("CAP_ARGS") else {}
    return RuntimeConf(
        container_id=ns.container_id or _env("CNI_CONTAINERID", "")
        or cnitool_container_id(netns_path),
        ifname=ns.ifname or _env("CNI_IFNAME"),
        netns=netns_path,
        args=ns.args if ns.args is not None else _cni_args_env(),
        capability_args=cap_args,
        cache_dir=ns.cache_dir,
    )


def _cni_args_env() -> tuple[tuple[str, str], ...]:
    from corecni.spec.config import parse_cni_args

    return parse_cni_args(_env("CNI_ARGS"))


# ---------------------------------------------------------------------------
# the subcommands: cmd_* does the work, _parser_* declares it
# ---------------------------------------------------------------------------

def cmd_add(ns: argparse.Namespace) -> int:
    result = _runtime(ns).add_network_list(_network(ns.network), _runtime_conf(ns))
    print(json.dumps(result.to_dict(), indent=2))
    return 0


def cmd_check(ns: argparse.Namespace) -> int:
    _runtime(ns).check_network_list(_network(ns.network), _runtime_conf(ns))
    return 0


def cmd_del(ns: argparse.Namespace) -> int:
    _runtime(ns).del_network_list(_network(ns.network), _runtime_conf(ns))
    return 0


def cmd_gc(ns: argparse.Namespace) -> int:
    _runtime(ns).gc_network_list(_network(ns.network), list(ns.valid))
    return 0


def cmd_status(ns: argparse.Namespace) -> int:
    net = _network(ns.network)
    _runtime(ns).get_status_network_list(net)
    print(f"{net.name}: ready")
    return 0


def cmd_version(ns: argparse.Namespace) -> int:
    info = _runtime(ns).get_version_info(ns.type)
    print(json.dumps(info.to_dict()))
    return 0


def cmd_validate(ns: argparse.Namespace) -> int:
    caps = _runtime(ns).validate_network_list(_network(ns.network))
    print(json.dumps({"network": ns.network, "valid": True, "capabilities": caps}))
    return 0


def _describe(ref: Any) -> str:
    return f"{ref.source} {ref.location}"


def _lookup_order(registry: Any) -> str:
    """Who serves a type found several ways, and how to change it (plugins, doctor)."""
    from corecni.registry import precedence

    return (f"{' > '.join(precedence(registry.prefer))} (prefer={registry.prefer}; "
            "--prefer or CORECNI_PREFER changes it)")


def cmd_plugins(ns: argparse.Namespace) -> int:
    registry = _runtime(ns).registry
    print(f"# order: {_lookup_order(registry)}"
          + ("; --exec-only: nothing in-process" if ns.exec_only else ""))
    for refs in registry.survey():
        winner = refs[0]
        how = "in-process" if winner.kind == "python" else "exec"
        line = f"{winner.type:<16} {how:<10} {winner.source:<12} {winner.location}"
        if refs[1:]:
            line += "  (shadows " + ", ".join(_describe(r) for r in refs[1:]) + ")"
        print(line)
    return 0


def cmd_install(ns: argparse.Namespace) -> int:
    from corecni import launcher
    from corecni.registry import OBSERVER_GROUP, PLUGIN_GROUP, _entry_points

    observers = tuple(ep.value for ep in _entry_points(OBSERVER_GROUP))
    available = {ep.name: ep.value for ep in _entry_points(PLUGIN_GROUP)}
    unknown = [t for t in ns.types if t not in available]
    if unknown:
        raise CNIError(ErrorCode.INVALID_NETWORK_CONFIG,
                       f"no Python plugin of type {', '.join(map(repr, unknown))}",
                       f"installed: {', '.join(sorted(available)) or 'none'}")
    chosen = ns.types or sorted(available)
    specs = [launcher.LauncherSpec(type=name, target=available[name], observers=observers)
             for name in dict.fromkeys(chosen)]
    if not specs:
        print("no Python plugins found (entry-point group corecni.plugins)", file=sys.stderr)
    shim = None if ns.no_shim else launcher.shim_binary()
    if shim is None and not ns.no_shim:
        print("corecni's exec shim is not built: installing Python launchers only",
              file=sys.stderr)
    for plugin_type, outcome in launcher.install(ns.dir, specs, force=ns.force, shim=shim):
        print(f"{plugin_type}: {outcome}")
    return 0


def cmd_doctor(ns: argparse.Namespace) -> int:
    """What this node would run with: backends, plugins, paths."""
    import platform

    from corecni import __version__
    from corecni.net import ENV_VAR, available_backends, get_backend

    print(f"corecni {__version__} on Python {platform.python_version()}")
    try:
        backend = get_backend().name
    except (RuntimeError, ValueError) as exc:
        backend = f"unavailable ({exc})"
    print(f"net backend: {backend} (available: {', '.join(available_backends())}; "
          f"{ENV_VAR}={os.environ.get(ENV_VAR, 'auto')})")
    try:
        from corecni import _native

        print(f"native module: {_native.ffi.string(_native.lib.cn_version()).decode()}")
    except ImportError as exc:
        print(f"native module: not built ({exc})")
    runtime = _runtime(ns)
    print(f"CNI_PATH: {':'.join(runtime.path) or '(empty)'}")
    print(f"cache dir: {ns.cache_dir}")
    refs = runtime.registry.discover()
    print(f"plugins: {len(refs)} "
          f"({sum(r.kind == 'python' for r in refs)} in-process, "
          f"{sum(r.kind == 'exec' for r in refs)} exec); `corecni plugins` lists them")
    print(f"lookup order: {_lookup_order(runtime.registry)}")
    _doctor_configs(_env("NETCONFPATH", "/etc/cni/net.d"))
    return 0


def _doctor_configs(directory: str) -> None:
    """Every config file in the directory with its state: what it loads as, or why not."""
    from corecni.config import load_dir

    if not os.path.exists(directory):
        print(f"config dir: {directory}: does not exist")
        return
    try:
        entries = load_dir(directory)
    except CNIError as exc:
        print(f"config dir: {directory}: {exc}")
        return
    usable = sum(e.network is not None for e in entries)
    print(f"config dir: {directory} ({len(entries)} files, {usable} loadable)")
    for entry in entries:
        fname = os.path.basename(entry.path)
        if entry.network is not None:
            net = entry.network
            print(f"  {fname}  ok: network {net.name!r} (cniVersion {net.cni_version}; "
                  f"plugins: {', '.join(p.type for p in net.plugins)})")
        else:
            assert entry.error is not None
            text = str(entry.error).removeprefix(f"{entry.path}: ")
            print(f"  {fname}  cannot be loaded: {text} (CNI error code {entry.error.code})")


def cmd_daemon(ns: argparse.Namespace) -> int:
    from corecni import daemon

    return daemon.main(ns.socket, ns.timeout, ns.max_calls, ns.status, tuple(ns.without))


def cmd_demo(ns: argparse.Namespace) -> int:
    from corecni.demo import run_demo

    return run_demo()


def cmd_new_plugin(ns: argparse.Namespace) -> int:
    """Generate a pip distribution for a new plugin (``corecni.scaffold``)."""
    from corecni.scaffold import generate

    root = generate(ns.name, ns.family, ns.dir)
    print(f"{root}: {ns.family} plugin {ns.name!r}; next: pip install -e '{root}[test]' "
          f"&& pytest {root}")
    return 0


# ---- parsers ---------------------------------------------------------------

SubParsers = Any  # argparse's _SubParsersAction, private in typeshed


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The options every subcommand accepts, before or after its name.

    The top-level copy carries the defaults; each subcommand's copy defaults to
    SUPPRESS so it only overrides what was actually given after the name.
    """
    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("global options (before or after the subcommand)")
    group.add_argument("--cache-dir", default=default(_env("CNI_CACHE_DIR")), metavar="DIR",
                       help="result cache directory (env CNI_CACHE_DIR, default /var/lib/cni)")
    group.add_argument("--timeout", type=_seconds, default=default(None), metavar="SECONDS",
                       help="seconds one plugin call may take (default: no limit, as libcni)")
    group.add_argument("--exec-only", action="store_true", default=default(False),
                       help="exec every plugin, even Python ones")
    group.add_argument("--prefer", type=_prefer, choices=("python", "path"),
                       default=default(_env("CORECNI_PREFER")),
                       help="when a type is both a Python plugin and on CNI_PATH: python "
                            "(default) runs it in-process, path follows CNI_PATH order "
                            "(env CORECNI_PREFER)")


def _subcommand(sub: SubParsers, name: str, func: Callable[[argparse.Namespace], int], *,
                summary: str, description: str, examples: str,
                environment: bool = False) -> argparse.ArgumentParser:
    """One subparser with its description, examples (and environment) in --help."""
    epilog = "examples:\n" + textwrap.indent(textwrap.dedent(examples).strip(), "  ")
    if environment:
        epilog += "\n\n" + environment_help()
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=summary, description=textwrap.dedent(description).strip(), epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _global_options(parser, suppress=True)
    parser.set_defaults(func=func)
    return parser


def _attachment_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("network", help="network name (the \"name\" of a config in NETCONFPATH)")
    parser.add_argument("netns", help="netns path, or a name from `ip netns` "
                                      "(tried as /run/netns/NAME, /var/run/netns/NAME)")
    parser.add_argument("--container-id", type=_container_id, default=None,
                        help="container ID (env CNI_CONTAINERID; default: cnitool's "
                             "cnitool-<hash of the netns path>)")
    parser.add_argument("--ifname", "-i", type=_ifname, default=None,
                        help="interface name in the container (env CNI_IFNAME, default eth0)")
    parser.add_argument("--args", type=_cni_args, default=None, metavar="K=V;K=V",
                        help="CNI_ARGS for the plugins (env CNI_ARGS)")
    parser.add_argument("--cap-args", type=_cap_args_flag, default=None, metavar="JSON",
                        help="capability arguments, e.g. '{\"portMappings\": [...]}' "
                             "(env CAP_ARGS)")


def _parser_add(sub: SubParsers) -> None:
    p = _subcommand(sub, "add", cmd_add, environment=True,
                    summary="ADD a container's netns to a network",
                    description="""
        ADD: run every plugin of the network's config list, in order, for one
        container network namespace; print the final result JSON. A failed ADD
        is rolled back (DEL over the plugins reached) before the error is shown.
        """,
                    examples="""
        ip netns add blue
        corecni add mynet blue
        corecni add mynet /var/run/netns/blue --ifname net1 --args 'IgnoreUnknown=1'
        corecni add mynet blue --cap-args '{"portMappings": [{"hostPort": 8080,
            "containerPort": 80, "protocol": "tcp"}]}'
        CNI_PATH=/usr/lib/cni corecni add --prefer path mynet blue
        """)
    _attachment_options(p)


def _parser_check(sub: SubParsers) -> None:
    p = _subcommand(sub, "check", cmd_check, environment=True,
                    summary="CHECK that an attachment is still as ADD left it",
                    description="""
        CHECK: ask every plugin of the network whether the attachment made by
        ADD (the cached result) is still in place. Silent when it is; one error
        line and exit status 1 when it is not.
        """,
                    examples="""
        corecni check mynet blue
        corecni check mynet blue --ifname net1
        """)
    _attachment_options(p)


def _parser_del(sub: SubParsers) -> None:
    p = _subcommand(sub, "del", cmd_del, environment=True,
                    summary="DEL a container's netns from a network",
                    description="""
        DEL: run every plugin of the network in reverse order to undo ADD, and
        drop the cached result. Idempotent: deleting twice, or after the netns
        is gone, succeeds.
        """,
                    examples="""
        corecni del mynet blue
        corecni del mynet /var/run/netns/blue --container-id abc123 --ifname net1
        """)
    _attachment_options(p)


def _parser_gc(sub: SubParsers) -> None:
    p = _subcommand(sub, "gc", cmd_gc, environment=True,
                    summary="GC a network: release what no valid attachment holds",
                    description="""
        GC: tell every plugin of the network which attachments are still valid
        (--valid, repeatable); plugins release everything else (IPAM leases,
        firewall entries). With no --valid, nothing is valid.
        """,
                    examples="""
        corecni gc mynet --valid abc123 --valid def456/net1
        corecni gc mynet
        """)
    p.add_argument("network", help="network name")
    p.add_argument("netns", nargs="?", default="", help="ignored (cnitool compatibility)")
    p.add_argument("--valid", action="append", default=[], type=_attachment,
                   metavar="CONTAINERID[/IFNAME]",
                   help="an attachment to keep (ifname default eth0); repeatable")


def _parser_status(sub: SubParsers) -> None:
    p = _subcommand(sub, "status", cmd_status, environment=True,
                    summary="STATUS: is the network ready for ADDs?",
                    description="""
        STATUS: ask every plugin of the network whether it can serve ADDs now.
        Prints "NETWORK: ready", or one error line and exit status 1.
        """,
                    examples="""
        corecni status mynet
        """)
    p.add_argument("network", help="network name")
    p.add_argument("netns", nargs="?", default="", help="ignored (cnitool compatibility)")


def _parser_version(sub: SubParsers) -> None:
    p = _subcommand(sub, "version", cmd_version,
                    summary="VERSION: which CNI versions a plugin type speaks",
                    description="""
        VERSION: print the plugin's version JSON (cniVersion, supportedVersions),
        from the implementation that serves the type (see `corecni plugins`).
        """,
                    examples="""
        corecni version bridge
        CNI_PATH=/usr/lib/cni corecni --exec-only version host-local
        """)
    p.add_argument("type", help="plugin type")


def _parser_validate(sub: SubParsers) -> None:
    p = _subcommand(sub, "validate", cmd_validate,
                    summary="check that every plugin of a network is usable",
                    description="""
        Validate a network config list as libcni does: every plugin exists and
        speaks the list's cniVersion. Prints the capabilities the list accepts.
        """,
                    examples="""
        corecni validate mynet
        NETCONFPATH=./net.d corecni validate mynet
        """)
    p.add_argument("network", help="network name")


def _parser_plugins(sub: SubParsers) -> None:
    _subcommand(sub, "plugins", cmd_plugins,
                summary="list plugin types: who serves each and what it shadows",
                description="""
        For every plugin type found (registered, entry points of group
        corecni.plugins, executables on CNI_PATH), the implementation that wins,
        how it is called (in-process or exec), why (its source: entry-point,
        launcher, path, registered) and which implementations it shadows.
        """,
                examples="""
        corecni plugins
        CNI_PATH=/usr/lib/cni corecni plugins --prefer path
        """)


def _parser_install(sub: SubParsers) -> None:
    p = _subcommand(sub, "install", cmd_install,
                    summary="write launchers for Python plugins into a CNI bin dir",
                    description="""
        Write one small launcher executable per Python plugin (entry-point group
        corecni.plugins) into a CNI bin directory, so runtimes that exec plugins
        (containerd, CRI-O, podman, Go libcni) find them. Files corecni did not
        write are kept unless --force.
        """,
                    examples="""
        corecni install                         # every type, into /opt/cni/bin
        corecni install --dir /opt/cni/bin host-local bridge
        corecni install --dir ./bin --force portmap
        corecni install --no-shim loopback      # Python launcher, no native shim
        """)
    p.add_argument("types", nargs="*", metavar="TYPE",
                   help="plugin types to install (default: every Python plugin)")
    p.add_argument("--dir", default=DEFAULT_CNI_PATH,
                   help=f"directory (default {DEFAULT_CNI_PATH})")
    p.add_argument("--force", action="store_true",
                   help="overwrite files that corecni did not write")
    p.add_argument("--no-shim", action="store_true",
                   help="write Python launchers only, not the native shim + launcher")


def _parser_daemon(sub: SubParsers) -> None:
    p = _subcommand(sub, "daemon", cmd_daemon,
                    summary="serve the native shim's calls (the node daemon, foreground)",
                    description="""
        The node daemon: serve the calls of corecni's native exec shim (installed
        by `corecni install`) over a root-only unix socket, running each plugin
        in-process through the same run path as an exec. --timeout is the
        per-call timeout here (default 120 s). With --status, print the running
        daemon's health JSON instead (exit 1 if it is not ready). The services
        installed as `corecni.daemon_services` entry points (contrib's `dhcp`:
        the DHCP lease service on /run/cni/dhcp.sock) run inside it unless left
        out with --without.
        """,
                    examples="""
        corecni daemon
        corecni daemon --socket /run/corecni/daemon.sock --max-calls 32
        corecni daemon --status
        corecni daemon --without dhcp
        """)
    p.add_argument("--socket", default=None,
                   help="unix socket (default $CORECNI_DAEMON_SOCKET or /run/corecni/daemon.sock)")
    p.add_argument("--max-calls", type=int, default=64, help="calls served at once")
    p.add_argument("--without", action="append", default=[], metavar="SERVICE",
                   help="do not run this service (repeatable; e.g. dhcp)")
    p.add_argument("--status", action="store_true",
                   help="print the running daemon's health JSON (exit 1 if not ready)")


def _parser_doctor(sub: SubParsers) -> None:
    _subcommand(sub, "doctor", cmd_doctor, environment=True,
                summary="show backends, native module, paths and plugins",
                description="""
        What this node would run with: the link-layer backend, the native
        module, CNI_PATH, the cache directory and the plugins found.
        """,
                examples="""
        corecni doctor
        CORECNI_NET_BACKEND=pyroute2 corecni doctor
        """)


def _parser_demo(sub: SubParsers) -> None:
    _subcommand(sub, "demo", cmd_demo,
                summary="attach a throwaway container netns and prove it works",
                description="""
        Create throwaway namespaces, ADD a container with corecni's plugins,
        prove connectivity, DEL it and remove everything. Needs root.
        """,
                examples="""
        sudo corecni demo
        """)


def _parser_new_plugin(sub: SubParsers) -> None:
    p = _subcommand(sub, "new-plugin", cmd_new_plugin,
                    summary="generate a pip distribution for a new plugin, tests included",
                    description="""
        Write NAME/ (in --dir): pyproject.toml with the corecni.plugins entry
        point NAME, a working plugin of the family written against corecni.kit,
        a README, and unit + integration tests (corecni.testing) that pass as
        generated.
        """,
                    examples="""
        corecni new-plugin my-alias --family meta --dir ~/src
        corecni new-plugin my-ipam --family ipam
        """)
    p.add_argument("name", help="the CNI type (also the distribution's name)")
    p.add_argument("--family", required=True, choices=("interface", "ipam", "meta"))
    p.add_argument("--dir", default=".", help="where to create NAME/ (default: .)")


SUBCOMMANDS: list[Callable[[SubParsers], None]] = [
    _parser_add, _parser_check, _parser_del, _parser_gc, _parser_status,
    _parser_version, _parser_validate, _parser_plugins, _parser_install,
    _parser_daemon, _parser_doctor, _parser_demo, _parser_new_plugin,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="corecni",
        description="Run CNI network configs as cnitool does (add, check, del, gc, status), "
                    "plus version, validate, and node tooling (plugins, install, doctor, demo).",
        epilog="examples:\n  corecni add mynet blue\n  corecni del mynet blue\n"
               "  corecni plugins\n  corecni SUBCOMMAND --help\n\n" + environment_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _global_options(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    for add_parser in SUBCOMMANDS:
        add_parser(sub)
    return parser


# ---------------------------------------------------------------------------
# errors: one line, the plugin named once, EPERM explained
# ---------------------------------------------------------------------------

_PRIVILEGE_WORDS = ("operation not permitted", "permission denied")
PRIVILEGE_HINT = "needs root / CAP_NET_ADMIN"


def _one_line(text: str) -> str:
    return " | ".join(part.strip() for part in text.splitlines() if part.strip())


def _needs_privilege(*texts: str) -> bool:
    text = " ".join(texts).lower()
    return any(word in text for word in _PRIVILEGE_WORDS) \
        or any(t.strip() in ("EPERM", "EACCES") for t in texts)


def format_error(exc: BaseException) -> str:
    """The one line a user reads: what failed, which plugin (once), and the CNI code."""
    if isinstance(exc, CNIError):
        text = exc.msg + (f": {exc.details}" if exc.details and exc.details not in exc.msg
                          else "")
        if exc.plugin and exc.plugin not in text:
            text = f"plugin {exc.plugin!r}: {text}"
        privileged = _needs_privilege(exc.msg, exc.details)
        suffix = f" (CNI error code {exc.code})"
    else:
        text = str(exc)
        privileged = isinstance(exc, OSError) and exc.errno in (errno.EPERM, errno.EACCES)
        suffix = ""
    if privileged:
        text += f" ({PRIVILEGE_HINT})"
    return _one_line(text) + suffix


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    try:
        code: int = ns.func(ns)
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `corecni plugins | head`
        sys.stderr.close()
        return 1
    except (CNIError, OSError) as exc:
        print(f"corecni {ns.command}: {format_error(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
