"""Leases on disk: one JSON file per lease under the service's state directory.

A restarted service reads them back and goes on renewing, so a restart neither
loses a lease nor asks the server for a second one. Files are written whole
(temporary file, fsync, rename), 0600 in a 0700 directory; the file name is a
hash of the client identifier (container IDs may hold any character).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator

from corecni_contrib.dhcp.lease import Lease

DEFAULT_STATE_DIR = "/var/lib/cni/dhcp"


class LeaseStore:
    def __init__(self, directory: str = DEFAULT_STATE_DIR) -> None:
        self.directory = directory

    def _path(self, client_id: str) -> str:
        digest = hashlib.sha256(client_id.encode()).hexdigest()[:40]
        return os.path.join(self.directory, f"lease-{digest}.json")

    def save(self, lease: Lease) -> None:
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        path = self._path(lease.holder.client_id)
        tmp = f"{path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(lease.to_json(), fh, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.rename(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def remove(self, client_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(client_id))

    def load(self) -> Iterator[tuple[str, Lease | Exception]]:
        """Every stored lease (path, lease), or (path, the reason it cannot be read)."""
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return
        for name in names:
            if not (name.startswith("lease-") and name.endswith(".json")):
                continue
            path = os.path.join(self.directory, name)
            try:
                with open(path) as fh:
                    yield path, Lease.from_json(json.load(fh))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                yield path, exc
