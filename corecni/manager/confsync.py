"""The manager's view of the conf dirs: loaded, validated, and kept in sync.

``ConfigStore.sync()`` reads every file of the conf dirs in lexical order and
validates each list (plugins found, versions spoken). What it keeps is the
rule a node operator can rely on: a file that breaks never replaces the last
good config loaded from it (the error is reported, naming the file), a new
broken file is reported and ignored, and the default network is the fixed
name or else the first valid file (kubelet's rule).

``ConfigWatcher`` calls ``sync`` when the dirs change: inotify through
``inotify_simple`` (a tiny maintained ctypes wrapper over the three syscalls:
it gives the raw events and leaves debounce and directory recreation to us,
which is what we need; watchdog would bring its own thread model and
platform layers), debounced, surviving a conf dir deleted and recreated
(its parent is watched too); a polling loop where inotify is unavailable.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from corecni.config import conf_files, load_file
from corecni.spec.config import NetworkConfigList
from corecni.spec.errors import CNIError


@attrs.frozen
class ConfigState:
    """One consistent view: networks by name (lexical file order), their files, the
    files that could not be used (path -> reason) and the default network's name."""

    networks: Mapping[str, NetworkConfigList] = attrs.field(factory=dict)
    files: Mapping[str, str] = attrs.field(factory=dict)  # path -> network name
    errors: Mapping[str, str] = attrs.field(factory=dict)  # path -> reason
    default: str | None = None

    @property
    def ready(self) -> bool:
        return self.default is not None


Validator = Callable[[NetworkConfigList], object]


class ConfigStore:
    """Loads the conf dirs; thread-safe; ``state`` is always the last consistent view."""

    def __init__(self, conf_dirs: Sequence[str], validate: Validator | None = None, *,
                 default_network: str | None = None, max_networks: int = 0) -> None:
        self.conf_dirs = tuple(conf_dirs)
        self._validate = validate
        self._default_network = default_network
        self._max_networks = max_networks
        self._lock = threading.Lock()
        self._state = ConfigState()
        self._good: dict[str, NetworkConfigList] = {}  # path -> last good

    @property
    def state(self) -> ConfigState:
        with self._lock:
            return self._state

    def _load(self, path: str) -> NetworkConfigList:
        net = load_file(path)
        if self._validate is not None:
            self._validate(net)
        return net

    def sync(self) -> ConfigState:
        """Re-read every conf dir and return (and keep) the new view."""
        with self._lock:
            networks: dict[str, NetworkConfigList] = {}
            files: dict[str, str] = {}
            errors: dict[str, str] = {}
            good: dict[str, NetworkConfigList] = {}
            for directory in self.conf_dirs:
                try:
                    paths = conf_files(directory)
                except CNIError as exc:
                    errors[directory] = str(exc)
                    continue
                for path in paths:
                    try:
                        net = self._load(path)
                        good[path] = net
                    except (CNIError, OSError) as exc:
                        errors[path] = str(exc)
                        previous = self._good.get(path)
                        if previous is None:
                            continue
                        good[path] = net = previous  # a broken edit never replaces it
                    if net.name in networks:
                        errors[path] = f"network {net.name!r} is already defined by " \
                                       f"{next(p for p, n in files.items() if n == net.name)}"
                        continue
                    if self._max_networks and len(networks) >= self._max_networks:
                        continue
                    networks[net.name] = net
                    files[path] = net.name
            self._good = good
            if self._default_network is not None:
                default = self._default_network if self._default_network in networks else None
            else:
                default = next(iter(networks), None)
            self._state = ConfigState(networks, files, errors, default)
            return self._state


def _dir_signature(directories: Sequence[str]) -> tuple[Any, ...]:
    """What polling compares: each file's name, size, mtime and inode, in the conf dirs
    and in their ``<confdir>/<network>/`` plugin folders (one level down)."""
    out: list[Any] = []
    for directory in directories:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            out.append((directory, None))
            continue
        for entry in entries:
            try:
                st = entry.stat()
            except OSError:
                continue
            out.append((entry.path, st.st_size, st.st_mtime_ns, st.st_ino))
            if entry.is_dir(follow_symlinks=False):
                out.extend(_dir_signature([entry.path]))
    return tuple(out)


def _plugin_folders(directory: str) -> list[str]:
    """The ``<confdir>/<network>/`` folders of a conf dir (spec: plugin configs there)."""
    try:
        return [e.path for e in os.scandir(directory) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


class ConfigWatcher:
    """Calls ``on_change`` (after ``store.sync()``) whenever the conf dirs change.

    A daemon thread; ``stop()`` ends it. ``debounce`` seconds of quiet after
    the last event, at most ``max_delay`` after the first, before a sync: an
    editor's write-rename-chmod is one reload, and a file written in pieces is
    read once it is complete.
    """

    def __init__(self, store: ConfigStore, on_change: Callable[[ConfigState], None]
                 | None = None, *, debounce: float = 0.1, max_delay: float = 0.5,
                 poll_interval: float = 1.0, use_inotify: bool = True) -> None:
        self.store = store
        self.on_change = on_change
        self.debounce = debounce
        self.max_delay = max_delay
        self.poll_interval = poll_interval
        self.use_inotify = use_inotify
        self.mode = ""
        self._stop = threading.Event()
        self._watching = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start watching; returns once the watches are in place, after one sync that
        catches whatever changed before they were."""
        self.mode = "inotify" if self.use_inotify and _inotify_available() else "poll"
        target = self._run_inotify if self.mode == "inotify" else self._run_poll
        self._thread = threading.Thread(target=target, name="corecni-confwatch", daemon=True)
        self._thread.start()
        self._watching.wait(timeout=5)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _changed(self) -> None:
        state = self.store.sync()
        if self.on_change is not None:
            self.on_change(state)

    # ---- polling ------------------------------------------------------------
    def _run_poll(self) -> None:
        seen = _dir_signature(self.store.conf_dirs)
        self._changed()
        self._watching.set()
        while not self._stop.wait(self.poll_interval):
            now = _dir_signature(self.store.conf_dirs)
            if now != seen:
                seen = now
                self._changed()

    # ---- inotify ------------------------------------------------------------
    def _run_inotify(self) -> None:
        import inotify_simple as ino

        flags = ino.flags
        dir_mask = (flags.CREATE | flags.DELETE | flags.MODIFY | flags.CLOSE_WRITE
                    | flags.MOVED_TO | flags.MOVED_FROM | flags.ATTRIB | flags.DELETE_SELF
                    | flags.MOVE_SELF)
        parent_mask = flags.CREATE | flags.MOVED_TO | flags.DELETE | flags.MOVED_FROM
        with ino.INotify() as notify:
            watched: dict[int, str] = {}

            def rewatch() -> None:
                for wd in list(watched):
                    with contextlib.suppress(OSError):  # already gone with its directory
                        notify.rm_watch(wd)
                watched.clear()
                for directory in self.store.conf_dirs:
                    for path, mask in ((directory, dir_mask),
                                       (os.path.dirname(os.path.abspath(directory)),
                                        parent_mask),
                                       *((f, dir_mask) for f in _plugin_folders(directory))):
                        try:
                            watched[notify.add_watch(path, mask)] = path
                        except OSError:
                            continue  # missing: its parent's watch sees it come back

            rewatch()
            self._changed()
            self._watching.set()
            pending_since: float | None = None
            last_event = 0.0
            while not self._stop.is_set():
                timeout = 200 if pending_since is None else int(self.debounce * 1000)
                events = notify.read(timeout=timeout)
                now = time.monotonic()
                if events:
                    last_event = now
                    pending_since = pending_since or now
                    if any(e.mask & (flags.DELETE_SELF | flags.MOVE_SELF | flags.IGNORED
                                     | flags.CREATE) for e in events):
                        rewatch()  # a conf dir vanished or (re)appeared
                if pending_since is not None and (
                        now - last_event >= self.debounce
                        or now - pending_since >= self.max_delay):
                    pending_since = None
                    self._changed()


def _inotify_available() -> bool:
    try:
        import inotify_simple

        inotify_simple.INotify().close()
    except (ImportError, OSError):
        return False
    return True
