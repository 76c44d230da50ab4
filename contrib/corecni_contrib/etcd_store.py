"""etcd v3 for the cluster plugins: compare-and-swap writes, prefix reads, leases, watches.

Built on ``etcd3gw`` (OpenStack's client for etcd's v3 JSON gateway: maintained,
typed, plain HTTP through ``requests``, so no gRPC/protobuf stack to install or
to import on an exec'd plugin's path; it speaks every v3 call the cluster
plugins need: txn, range, lease, watch). Every write that allocates is one
transaction whose compare says "these keys do not exist yet": two nodes racing
for the same address or subnet cannot both win, with no leader and no lock.

An unreachable etcd is CNI code 11 (try again later), naming the endpoints:
the caller retries; nothing was written.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

from corecni.kit import CNIError, ErrorCode, config_error

T = TypeVar("T")
DEFAULT_TIMEOUT = 5.0


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def parse_endpoint(url: str) -> tuple[str, str, int]:
    """``http://host:port`` (or ``host:port``) as (scheme, host, port); code 7 otherwise."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise config_error(f"invalid etcd endpoint {url!r}", "expected http://host:port")
    try:
        port = parts.port or 2379
    except ValueError:
        raise config_error(f"invalid etcd endpoint {url!r}", "bad port") from None
    return parts.scheme, parts.hostname, port


class EtcdStore:
    """A small CAS-oriented view of etcd over one or more endpoints (tried in order)."""

    def __init__(self, endpoints: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT,
                 ca_cert: str | None = None, cert: str | None = None,
                 key: str | None = None) -> None:
        if not endpoints:
            raise config_error("no etcd endpoints configured")
        self.endpoints = tuple(endpoints)
        self._parsed = [parse_endpoint(e) for e in self.endpoints]
        self._timeout = timeout
        self._tls = (ca_cert, cert, key)
        self._clients: dict[int, Any] = {}

    def _client(self, index: int) -> Any:
        client = self._clients.get(index)
        if client is None:
            from etcd3gw.client import Etcd3Client  # requests: only when etcd is used

            scheme, host, port = self._parsed[index]
            ca, cert, key = self._tls
            client = Etcd3Client(host=host, port=port, protocol=scheme, ca_cert=ca,
                                 cert_cert=cert, cert_key=key, timeout=self._timeout,
                                 api_path="/v3/")
            self._clients[index] = client
        return client

    def _call(self, what: str, fn: Callable[[Any], T]) -> T:
        """Run ``fn(client)`` on the first endpoint that answers; code 11 if none does."""
        import requests

        errors = []
        for index, endpoint in enumerate(self.endpoints):
            try:
                return fn(self._client(index))
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                errors.append(f"{endpoint}: {type(exc).__name__}")
            except Exception as exc:  # etcd3gw's own errors (HTTP 5xx, bad answers)
                errors.append(f"{endpoint}: {type(exc).__name__}: {exc}"[:300])
        raise CNIError(ErrorCode.TRY_AGAIN_LATER, f"etcd unavailable ({what})",
                       "; ".join(errors))

    # ---- reads ------------------------------------------------------------------
    def get(self, key: str) -> str | None:
        values = self._call(f"get {key}", lambda c: c.get(key))
        return values[0].decode() if values else None

    def get_prefix(self, prefix: str) -> dict[str, str]:
        """Every key under ``prefix`` with its value."""
        rows = self._call(f"list {prefix}", lambda c: c.get_prefix(prefix))
        return {meta["key"].decode() if isinstance(meta["key"], bytes) else str(meta["key"]):
                value.decode() for value, meta in rows}

    # ---- compare-and-swap writes ----------------------------------------------
    def create_all(self, puts: Mapping[str, str], lease_id: str | None = None) -> bool:
        """Put every key of ``puts`` if none of them exists yet; all or nothing."""
        txn: dict[str, Any] = {
            "compare": [{"key": _b64(k), "result": "EQUAL", "target": "CREATE",
                         "create_revision": 0} for k in puts],
            "success": [{"request_put": {"key": _b64(k), "value": _b64(v),
                                         **({"lease": lease_id} if lease_id else {})}}
                        for k, v in puts.items()],
            "failure": [],
        }
        result = self._call("create", lambda c: c.transaction(txn))
        return bool(result.get("succeeded", False))

    def delete_if(self, key: str, value: str, also: Sequence[str] = ()) -> bool:
        """Delete ``key`` (and ``also``) only while ``key`` still holds ``value``."""
        txn = {
            "compare": [{"key": _b64(key), "result": "EQUAL", "target": "VALUE",
                         "value": _b64(value)}],
            "success": [{"request_delete_range": {"key": _b64(k)}} for k in (key, *also)],
            "failure": [],
        }
        result = self._call("delete", lambda c: c.transaction(txn))
        return bool(result.get("succeeded", False))

    def delete(self, key: str) -> None:
        self._call(f"delete {key}", lambda c: c.delete(key))

    def put(self, key: str, value: str, lease_id: str | None = None) -> None:
        txn = {"compare": [], "failure": [],
               "success": [{"request_put": {"key": _b64(key), "value": _b64(value),
                                            **({"lease": lease_id} if lease_id else {})}}]}
        self._call(f"put {key}", lambda c: c.transaction(txn))

    # ---- leases and watches (the reachability daemon) ----------------------------
    def grant_lease(self, ttl: int) -> str:
        result = self._call("grant lease", lambda c: c.post(c.get_url("/lease/grant"),
                                                            json={"TTL": ttl, "ID": 0}))
        return str(result["ID"])

    def keepalive(self, lease_id: str) -> int:
        """Refresh the lease; its remaining TTL (0 or less: it expired)."""
        result = self._call("keep lease alive", lambda c: c.post(
            c.get_url("/lease/keepalive"), json={"ID": lease_id}))
        return int(result.get("result", {}).get("TTL", 0))

    def lease_of(self, key: str) -> str | None:
        rows = self._call(f"get {key}", lambda c: c.get(key, metadata=True))
        if not rows:
            return None
        lease = rows[0][1].get("lease")
        return str(lease) if lease and str(lease) != "0" else None

    def watch_prefix(self, prefix: str) -> tuple[Iterator[Any], Callable[[], None]]:
        """(events, cancel): etcd3gw's watch, each event a dict with ``kv`` and ``type``."""
        watch: tuple[Iterator[Any], Callable[[], None]] = self._call(
            f"watch {prefix}", lambda c: c.watch_prefix(prefix))
        return watch


def decode_json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def decode_key(raw: str) -> str:
    return _unb64(raw)
