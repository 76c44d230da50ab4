"""``corecni``: what ``cnitool`` does, and more.

Environment, as cnitool: NETCONFPATH (config dir, default /etc/cni/net.d),
CNI_PATH (plugin dirs, default /opt/cni/bin), CNI_IFNAME (default eth0),
CNI_ARGS, CAP_ARGS (JSON capability arguments). Beyond cnitool: the container
ID from ``--container-id`` or CNI_CONTAINERID (default: cnitool's hash of the
netns path) and the cache dir from ``--cache-dir`` or CNI_CACHE_DIR (default
/var/lib/cni).

Output: ADD prints the result JSON on stdout; any error is one line on stderr
and exit status 1. This is the only place on the runtime side where an error
becomes text.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from corecni.spec.errors import CNIError, ErrorCode

DEFAULT_CNI_PATH = "/opt/cni/bin"


def cnitool_container_id(netns: str) -> str:
    """cnitool's default: ``cnitool-`` + the first 20 hex digits of sha512(netns)."""
    return "cnitool-" + hashlib.sha512(netns.encode()).hexdigest()[:20]


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name) or default


def _cap_args() -> dict[str, Any]:
    raw = _env("CAP_ARGS")
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT, "CAP_ARGS is not valid JSON", str(exc)) \
            from None
    if not isinstance(value, dict):
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT, "CAP_ARGS must be a JSON object")
    return value


def _runtime(ns: argparse.Namespace) -> Any:
    from corecni.registry import Registry, split_path
    from corecni.runtime import CNIRuntime

    path = split_path(_env("CNI_PATH", DEFAULT_CNI_PATH))
    registry = Registry(path=path, in_process=not ns.exec_only)
    return CNIRuntime(path=path, cache_dir=ns.cache_dir, registry=registry, timeout=ns.timeout)


def _network(name: str) -> Any:
    from corecni.config import load_network

    return load_network(_env("NETCONFPATH", "/etc/cni/net.d"), name)


def cmd_attach(ns: argparse.Namespace) -> int:
    from corecni.plugin import Attachment
    from corecni.spec.config import RuntimeConf, parse_cni_args

    runtime = _runtime(ns)
    net = _network(ns.network)
    if ns.command == "status":
        runtime.get_status_network_list(net)
        return 0
    if ns.command == "gc":
        valid = [Attachment(*a.split("/", 1)) if "/" in a else Attachment(a, "eth0")
                 for a in ns.valid]
        runtime.gc_network_list(net, valid)
        return 0
    if not ns.netns:
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT, f"{ns.command} needs a netns path")
    netns_path = os.path.abspath(ns.netns)
    rt = RuntimeConf(
        container_id=ns.container_id or _env("CNI_CONTAINERID")
        or cnitool_container_id(netns_path),
        ifname=_env("CNI_IFNAME", "eth0"),
        netns=netns_path,
        args=parse_cni_args(_env("CNI_ARGS")),
        capability_args=_cap_args(),
        cache_dir=ns.cache_dir,
    )
    if ns.command == "add":
        result = runtime.add_network_list(net, rt)
        print(json.dumps(result.to_dict(), indent=2))
    elif ns.command == "check":
        runtime.check_network_list(net, rt)
    else:
        runtime.del_network_list(net, rt)
    return 0


def cmd_version(ns: argparse.Namespace) -> int:
    info = _runtime(ns).get_version_info(ns.type)
    print(json.dumps(info.to_dict()))
    return 0


def cmd_validate(ns: argparse.Namespace) -> int:
    caps = _runtime(ns).validate_network_list(_network(ns.network))
    print(json.dumps({"network": ns.network, "valid": True, "capabilities": caps}))
    return 0


def cmd_plugins(ns: argparse.Namespace) -> int:
    runtime = _runtime(ns)
    for ref in runtime.registry.discover():
        how = "in-process" if ref.kind == "python" else "exec"
        print(f"{ref.type:<16} {how:<10} {ref.source:<12} {ref.location}")
    return 0


def cmd_install(ns: argparse.Namespace) -> int:
    from corecni import launcher
    from corecni.registry import OBSERVER_GROUP, PLUGIN_GROUP, _entry_points

    observers = tuple(ep.value for ep in _entry_points(OBSERVER_GROUP))
    specs = [launcher.LauncherSpec(type=ep.name, target=ep.value, observers=observers)
             for ep in _entry_points(PLUGIN_GROUP)]
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
    return 0


def cmd_daemon(ns: argparse.Namespace) -> int:
    from corecni import daemon

    return daemon.main(ns.socket, ns.timeout, ns.max_calls, ns.status)


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="corecni", description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default=_env("CNI_CACHE_DIR", "/var/lib/cni"))
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds one plugin call may take (default: no limit, as libcni)")
    parser.add_argument("--exec-only", action="store_true",
                        help="exec every plugin, even Python ones")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("add", "check", "del"):
        p = sub.add_parser(name, help=f"{name.upper()} a container to a network")
        p.add_argument("network")
        p.add_argument("netns")
        p.add_argument("--container-id", default="")
        p.set_defaults(func=cmd_attach)
    p = sub.add_parser("gc", help="GC a network (keep --valid CONTAINERID[/IFNAME] ...)")
    p.add_argument("network")
    p.add_argument("netns", nargs="?", default="")
    p.add_argument("--valid", action="append", default=[])
    p.set_defaults(func=cmd_attach)
    p = sub.add_parser("status", help="STATUS of every plugin of a network")
    p.add_argument("network")
    p.add_argument("netns", nargs="?", default="")
    p.set_defaults(func=cmd_attach)
    p = sub.add_parser("version", help="VERSION of a plugin type")
    p.add_argument("type")
    p.set_defaults(func=cmd_version)
    p = sub.add_parser("validate", help="check that every plugin of a network is usable")
    p.add_argument("network")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("plugins", help="list discovered plugins and how each is called")
    p.set_defaults(func=cmd_plugins)
    p = sub.add_parser("install", help="write launchers for Python plugins into a CNI bin dir")
    p.add_argument("--dir", default=DEFAULT_CNI_PATH)
    p.add_argument("--force", action="store_true",
                   help="overwrite files that corecni did not write")
    p.add_argument("--no-shim", action="store_true",
                   help="write Python launchers only, not the native shim + launcher")
    p.set_defaults(func=cmd_install)
    p = sub.add_parser("daemon", help="serve the native shim's calls (foreground; --timeout "
                       "is the per-call timeout, default 120 s)")
    p.add_argument("--socket", default=None,
                   help="unix socket (default $CORECNI_DAEMON_SOCKET or /run/corecni/daemon.sock)")
    p.add_argument("--max-calls", type=int, default=64, help="calls served at once")
    p.add_argument("--status", action="store_true",
                   help="print the running daemon's health JSON (exit 1 if not ready)")
    p.set_defaults(func=cmd_daemon)
    p = sub.add_parser("doctor", help="show backends, native module, paths and plugins")
    p.set_defaults(func=cmd_doctor)
    p = sub.add_parser("demo", help="attach a throwaway container netns and prove it works")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser(
        "new-plugin", help="generate a pip distribution for a new plugin, tests included",
        description="Write NAME/ (in --dir): pyproject.toml with the corecni.plugins entry "
        "point NAME, a working plugin of the family written against corecni.kit, a README, "
        "and unit + integration tests (corecni.testing) that pass as generated.",
        epilog="example: corecni new-plugin my-alias --family meta --dir ~/src",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="the CNI type (also the distribution's name)")
    p.add_argument("--family", required=True, choices=("interface", "ipam", "meta"))
    p.add_argument("--dir", default=".", help="where to create NAME/ (default: .)")
    p.set_defaults(func=cmd_new_plugin)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    try:
        code: int = ns.func(ns)
        return code
    except CNIError as exc:
        print(f"corecni {ns.command}: {exc} (CNI error code {exc.code})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        print(f"corecni {ns.command}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `corecni plugins | head`
        sys.stderr.close()
        return 1


if __name__ == "__main__":
    sys.exit(main())
