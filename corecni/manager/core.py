"""``PodNetworkManager``: what kubelet's ``cniNetworkPlugin``, containerd's go-cni and
CRI-O's ocicni give Go runtimes, over corecni's runtime.

A pod is attached to the loopback network (``lo``) and then to its networks
(the default network unless it names others), each on the next interface
(``eth0``, ``eth1``...). A failure rolls back what the operation attached.
Teardown works from libcni's result cache, so it uses the configuration a
pod was attached with even when the file changed or vanished since, and it
succeeds when the pod's netns is already gone. GC removes every cached
attachment of a pod that is not in the valid list, then lets each plugin
collect (spec 1.1).

Thread-safe: operations on one pod are serialised, different pods run in
parallel, and GC excludes every other operation while it runs.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import attrs
import pluggy

from corecni.cache import DEFAULT_DIR as DEFAULT_CACHE_DIR
from corecni.cache import CachedAttachment
from corecni.config import DEFAULT_CONF_DIR, list_from_bytes
from corecni.hookspecs import PROJECT
from corecni.manager import hookspecs as manager_hookspecs
from corecni.manager.confsync import ConfigState, ConfigStore, ConfigWatcher
from corecni.manager.errors import (
    DeadlineExceededError,
    InvalidConfigError,
    ManagerError,
    NetworkNotFoundError,
    NotInitializedError,
    PluginError,
)
from corecni.manager.locks import KeyedLocks, SharedExclusiveLock
from corecni.manager.pod import PodNetwork, PodSandbox
from corecni.manager.result import InterfaceState, PodResult
from corecni.registry import Registry
from corecni.request import Attachment
from corecni.runtime import CNIRuntime
from corecni.spec.config import NetworkConfigList, RuntimeConf
from corecni.spec.errors import CNIError
from corecni.spec.result import IPConfig, Result

DEFAULT_PLUGIN_DIR = "/opt/cni/bin"
LOOPBACK_NETWORK = "cni-loopback"
_LOOPBACK_CONFIG = (b'{"cniVersion": "1.0.0", "name": "cni-loopback", '
                    b'"plugins": [{"type": "loopback"}]}')


@attrs.frozen
class _Attach:
    """One planned attachment: the network, the runtime conf and its result key."""

    network: NetworkConfigList
    rt: RuntimeConf


class _Deadline:
    def __init__(self, seconds: float | None) -> None:
        self.end = None if seconds is None else time.monotonic() + seconds

    def check(self, what: str) -> None:
        if self.end is not None and time.monotonic() > self.end:
            raise DeadlineExceededError(f"deadline exceeded before {what}")


class PodNetworkManager:
    """Attach pods to CNI networks (see the module docstring)."""

    def __init__(self, conf_dirs: Sequence[str] = (DEFAULT_CONF_DIR,),
                 plugin_dirs: Sequence[str] = (DEFAULT_PLUGIN_DIR,), *,
                 cache_dir: str = DEFAULT_CACHE_DIR, ifprefix: str = "eth",
                 loopback: bool = True, default_network: str | None = None,
                 min_networks: int = 1, max_networks: int = 0, in_process: bool = True,
                 parallel: bool = False, watch: bool = False, poll_interval: float = 1.0,
                 use_inotify: bool = True, timeout: float | None = None,
                 registry: Registry | None = None, observers: Iterable[object] = (),
                 validate: bool = True) -> None:
        self.conf_dirs = tuple(conf_dirs)
        self.ifprefix = ifprefix
        self.loopback = loopback
        self.min_networks = min_networks
        self.parallel = parallel
        self.registry = registry or Registry(path=tuple(plugin_dirs), in_process=in_process)
        self.runtime = CNIRuntime(cache_dir=cache_dir, registry=self.registry, timeout=timeout)
        self.store = ConfigStore(self.conf_dirs, self._validate if validate else None,
                                 default_network=default_network, max_networks=max_networks)
        self._pods = KeyedLocks()
        self._gc_lock = SharedExclusiveLock()
        self._pool: ThreadPoolExecutor | None = None
        self._observers = pluggy.PluginManager(PROJECT)
        self._observers.add_hookspecs(manager_hookspecs)
        for observer in observers:
            self._observers.register(observer)
        self._observers.check_pending()
        self.store.sync()
        self._watcher: ConfigWatcher | None = None
        if watch:
            self._watcher = ConfigWatcher(self.store, poll_interval=poll_interval,
                                          use_inotify=use_inotify)
            self._watcher.start()

    # ---- lifecycle -------------------------------------------------------------
    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> PodNetworkManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reload(self) -> ConfigState:
        """Re-read the conf dirs now (the watcher does this by itself)."""
        return self.store.sync()

    @property
    def config(self) -> ConfigState:
        return self.store.state

    def _validate(self, net: NetworkConfigList) -> None:
        """A list is usable when each plugin is found and speaks its version."""
        self.runtime.validate_network_list(net)

    # ---- observers -------------------------------------------------------------
    @contextlib.contextmanager
    def _observed(self, operation: str, pod_id: str, network: str) -> Iterator[None]:
        start = time.monotonic()
        error: BaseException | None = None
        try:
            yield
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._observers.hook.manager_operation_done(
                operation=operation, pod_id=pod_id, network=network,
                duration=time.monotonic() - start, error=error)

    # ---- readiness -------------------------------------------------------------
    def _ready_state(self) -> ConfigState:
        state = self.store.state
        if not state.ready or len(state.networks) < self.min_networks:
            dirs = ", ".join(self.conf_dirs)
            problems = "; ".join(f"{p}: {r}" for p, r in state.errors.items())
            raise NotInitializedError(
                f"cni config uninitialized: no valid CNI network configuration in {dirs}"
                + (f" ({problems})" if problems else "")
                + ". Has your network provider started?")
        return state

    def status(self) -> None:
        """Ready, or raise: ``NotInitializedError`` without a usable config, else the first
        network whose plugins answer STATUS with an error (``PluginError``, code 50/51)."""
        with self._observed("status", "", ""):
            state = self._ready_state()
            for name, net in state.networks.items():
                try:
                    self.runtime.get_status_network_list(net)
                except CNIError as exc:
                    raise PluginError(name, "status", exc) from None

    def is_ready(self) -> bool:
        try:
            self.status()
        except ManagerError:
            return False
        return True

    def config_errors(self) -> dict[str, str]:
        """Files that could not be used, with the reason (broken, duplicate, unserved)."""
        return dict(self.store.state.errors)

    def check_config(self) -> None:
        """Raise ``InvalidConfigError`` for the first conf file that cannot be used (a
        runtime's way to surface an operator's mistake; the manager keeps serving the
        last good config meanwhile)."""
        for path, reason in self.store.state.errors.items():
            raise InvalidConfigError(path, reason)

    # ---- planning --------------------------------------------------------------
    def _plan(self, pod: PodSandbox, state: ConfigState) -> list[_Attach]:
        plan = []
        used = set()
        auto = 0
        for entry in pod.networks:
            name = entry.name or state.default
            if name is None or name not in state.networks:
                where = next((p for p, n in state.files.items() if n == name), None)
                if where is None:
                    reason = next((f"{p}: {r}" for p, r in state.errors.items()), "")
                    raise NetworkNotFoundError(
                        f"no network {name!r} in {', '.join(self.conf_dirs)}"
                        + (f" (unusable config: {reason})" if reason else ""))
            assert name is not None
            ifname = entry.ifname
            if ifname is None:
                while f"{self.ifprefix}{auto}" in used:
                    auto += 1
                ifname = f"{self.ifprefix}{auto}"
            used.add(ifname)
            plan.append(_Attach(state.networks[name], self._runtime_conf(pod, entry, ifname)))
        return plan

    def _runtime_conf(self, pod: PodSandbox, entry: PodNetwork, ifname: str) -> RuntimeConf:
        options = entry.options.merged(pod.options)
        args = pod.k8s_args() + tuple(options.labels.items()) + options.args
        return RuntimeConf(container_id=pod.id, ifname=ifname, netns=pod.netns, args=args,
                           capability_args=options.capability_args())

    def _loopback(self, pod: PodSandbox) -> _Attach:
        return _Attach(list_from_bytes(_LOOPBACK_CONFIG, LOOPBACK_NETWORK),
                       RuntimeConf(container_id=pod.id, ifname="lo", netns=pod.netns,
                                   args=pod.k8s_args()))

    # ---- the operations --------------------------------------------------------
    def setup(self, pod: PodSandbox, deadline: float | None = None) -> PodResult:
        """Attach ``pod`` (loopback first, then its networks); all or nothing."""
        clock = _Deadline(deadline)
        with self._observed("setup", pod.id, ""), self._gc_lock.shared(), \
                self._pods.hold(pod.id):
            plan = self._plan(pod, self._ready_state())
            done: list[_Attach] = []
            results: dict[str, Result] = {}
            try:
                if self.loopback:
                    clock.check("the loopback network")
                    loop = self._loopback(pod)
                    results[LOOPBACK_NETWORK] = self._add(loop, pod.id)
                    done.append(loop)
                if self.parallel and len(plan) > 1:
                    self._add_parallel(plan, pod.id, done, results, clock)
                else:
                    for step in plan:
                        clock.check(f"network {step.network.name!r}")
                        results[step.network.name] = self._add(step, pod.id)
                        done.append(step)
                clock.check("returning the result")
            except BaseException:
                for step in reversed(done):
                    with contextlib.suppress(CNIError, ManagerError):
                        self._del(step, pod.id)
                raise
            return PodResult.aggregate(results)

    def _add(self, step: _Attach, pod_id: str) -> Result:
        name = step.network.name
        with self._observed("setup", pod_id, name):
            try:
                return self.runtime.add_network_list(step.network, step.rt)
            except CNIError as exc:
                raise PluginError(name, "setup", exc) from None

    def _add_parallel(self, plan: list[_Attach], pod_id: str, done: list[_Attach],
                      results: dict[str, Result], clock: _Deadline) -> None:
        clock.check("attaching the networks")
        pool = self._executor()
        futures = [(step, pool.submit(self._add, step, pod_id)) for step in plan]
        failure: BaseException | None = None
        for step, future in futures:
            try:
                results[step.network.name] = future.result()
                done.append(step)
            except BaseException as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="corecni-attach")
        return self._pool

    def _del(self, step: _Attach, pod_id: str) -> None:
        name = step.network.name
        with self._observed("teardown", pod_id, name):
            try:
                self.runtime.del_network_list(step.network, step.rt)
            except CNIError as exc:
                raise PluginError(name, "teardown", exc) from None

    def _attached(self, pod: PodSandbox) -> list[_Attach]:
        """What the cache says ``pod`` is attached to, with the config it was attached with
        (loopback last, the rest in reverse order of attachment: DEL order)."""
        entries = self.runtime.get_cached_attachments(pod.id)
        out = [_Attach(list_from_bytes(e.config, f"cache of {e.network}"),
                       e.runtime_conf(self.runtime.cache_dir)) for e in entries
               if e.config]
        loop = [a for a in out if a.network.name == LOOPBACK_NETWORK]
        rest = [a for a in out if a.network.name != LOOPBACK_NETWORK]
        return list(reversed(rest)) + loop

    def teardown(self, pod: PodSandbox, deadline: float | None = None) -> None:
        """Detach ``pod`` from everything it is attached to (by the cache), and from its
        requested networks that have no cache entry (DEL is idempotent). Every network
        is tried; the first failure is raised after the others were detached."""
        clock = _Deadline(deadline)
        with self._observed("teardown", pod.id, ""), self._gc_lock.shared(), \
                self._pods.hold(pod.id):
            steps = self._attached(pod)
            cached = {(s.network.name, s.rt.ifname) for s in steps}
            state = self.store.state
            if state.ready:
                with contextlib.suppress(NetworkNotFoundError):
                    for step in self._plan(pod, state):
                        if (step.network.name, step.rt.ifname) not in cached:
                            steps.insert(0, step)
            if self.loopback and (LOOPBACK_NETWORK, "lo") not in cached:
                steps.append(self._loopback(pod))
            failure: BaseException | None = None
            for step in steps:
                try:
                    clock.check(f"detaching network {step.network.name!r}")
                    self._del(step, pod.id)
                except (ManagerError, CNIError) as exc:
                    failure = failure or exc
            if failure is not None:
                raise failure

    def check(self, pod: PodSandbox) -> None:
        """CHECK every network the pod is attached to, with its cached config."""
        with self._observed("check", pod.id, ""), self._gc_lock.shared(), \
                self._pods.hold(pod.id):
            steps = self._attached(pod)
            if not steps:
                raise NetworkNotFoundError(f"pod {pod.id!r} is not attached to any network")
            for step in steps:
                with self._observed("check", pod.id, step.network.name):
                    try:
                        self.runtime.check_network_list(step.network, step.rt)
                    except CNIError as exc:
                        raise PluginError(step.network.name, "check", exc) from None

    def pod_status(self, pod: PodSandbox) -> PodResult:
        """The pod's networking: from the cached results, else read from its netns."""
        with self._pods.hold(pod.id):
            results: dict[str, Result] = {}
            for entry in self.runtime.get_cached_attachments(pod.id):
                result = entry.result()
                if result is not None:
                    results[entry.network] = result
            if results:
                return PodResult.aggregate(results)
            return _read_netns(pod.netns)

    def gc(self, valid_pods: Iterable[PodSandbox | str]) -> None:
        """Remove every attachment of a pod not in ``valid_pods`` (after a runtime crash,
        say), then let each network's plugins collect (spec 1.1 GC)."""
        valid = {p.id if isinstance(p, PodSandbox) else p for p in valid_pods}
        with self._observed("gc", "", ""), self._gc_lock.exclusive():
            entries = self.runtime.get_cached_attachments()
            networks: dict[str, NetworkConfigList] = dict(self.store.state.networks)
            for entry in entries:
                if entry.network not in networks and entry.config:
                    with contextlib.suppress(CNIError):
                        networks[entry.network] = list_from_bytes(entry.config, entry.network)
            failure: BaseException | None = None
            for name, net in networks.items():
                keep = [Attachment(e.container_id, e.ifname) for e in entries
                        if e.network == name and e.container_id in valid]
                try:
                    with self._observed("gc", "", name):
                        self.runtime.gc_network_list(net, keep)
                except CNIError as exc:
                    failure = failure or PluginError(name, "gc", exc)
            if failure is not None:
                raise failure

    def cached_attachments(self, pod_id: str = "") -> list[CachedAttachment]:
        """The result cache's entries (of one pod, or all)."""
        return self.runtime.get_cached_attachments(pod_id)


def _read_netns(netns: str) -> PodResult:
    """Interfaces and addresses as the kernel has them (no cached result)."""
    from corecni.net import get_backend  # only when there is no cached result

    if not netns or not os.path.exists(netns):
        return PodResult(interfaces={})
    backend = get_backend()
    interfaces: dict[str, InterfaceState] = {}
    for link in backend.links(netns):
        ips = tuple(IPConfig(address=a.address) for a in backend.addresses(netns, link.name))
        interfaces[link.name] = InterfaceState(link.name, link.mac, netns, ips)
    return PodResult(interfaces=interfaces)

