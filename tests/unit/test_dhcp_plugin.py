"""dhcp IPAM plugin side: its keys (Go's, code 7 naming the key), what it asks the
lease service over the socket, and how the node daemon hosts services (no privileges)."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from corecni_contrib.dhcp import protocol
from corecni_contrib.dhcp.config import DhcpConfig

from corecni import daemon
from corecni.plugin import LoadedPlugin, Request, load_plugin
from corecni.spec.config import PluginConfig
from corecni.spec.errors import CNIError
from corecni.spec.result import Result


@pytest.fixture
def plugin() -> LoadedPlugin:
    loaded = load_plugin("dhcp", "corecni_contrib.dhcp")
    assert loaded.family == "ipam"
    return loaded


class FakeService:
    """A lease service stand-in on a socket in tmp: records requests, answers canned."""

    def __init__(self, path: str, answer: dict[str, Any]) -> None:
        self.path, self.answer = path, answer
        self.requests: list[tuple[dict[str, Any], list[tuple[int, int]]]] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                request, fds = protocol.receive_request(conn)
                idents = [(os.fstat(fd).st_dev, os.fstat(fd).st_ino) for fd in fds]
                for fd in fds:
                    os.close(fd)
                self.requests.append((request, idents))
                conn.sendall(json.dumps(self.answer).encode())

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[FakeService]:
    fake = FakeService(str(tmp_path / "dhcp.sock"), {
        "ip": "10.1.2.3/24", "gateway": "10.1.2.1",
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.2.1"}, {"dst": "10.9.0.0/16", "scope": 253}]})
    yield fake
    fake.close()


def conf(ipam: dict[str, Any], version: str = "1.0.0") -> dict[str, Any]:
    return {"cniVersion": version, "name": "dnet", "type": "macvlan",
            "ipam": {"type": "dhcp", **ipam}}


def run(plugin: LoadedPlugin, command: str, config: dict[str, Any],
        args: tuple[tuple[str, str], ...] = ()) -> Result | None:
    return plugin.run(Request.for_config(command, PluginConfig.from_dict(config),
                                         container_id="c1", ifname="eth0", args=args,
                                         netns="/proc/self/ns/net"))


def test_add_asks_the_service_with_the_namespace(plugin: LoadedPlugin,
                                                 service: FakeService) -> None:
    provide = [{"option": "host-name", "value": "literal", "fromArg": "K8S_POD_NAME"},
               {"option": "60", "value": "corecni"}]
    result = run(plugin, "ADD", conf({"daemonSocketPath": service.path, "priority": 7,
                                      "provide": provide, "request": [{"option": "42"}],
                                      "broadcast": True, "timeout": "2s"}),
                 args=(("K8S_POD_NAME", "pod-a"),))
    assert isinstance(result, Result)
    assert result.to_dict() == {
        "cniVersion": "1.0.0", "ips": [{"address": "10.1.2.3/24", "gateway": "10.1.2.1"}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.2.1", "priority": 7},
                   {"dst": "10.9.0.0/16", "priority": 7, "scope": 253}], "dns": {}}
    [(request, idents)] = service.requests
    own = os.stat("/proc/self/ns/net")
    assert idents == [(own.st_dev, own.st_ino)]  # the namespace itself, as a descriptor
    assert request == {"op": "allocate", "containerID": "c1", "network": "dnet",
                       "ifname": "eth0", "netns": "/proc/self/ns/net",
                       "request": [42, 3, 1],
                       "provide": {"12": b"pod-a".hex(), "60": b"corecni".hex()},
                       "broadcast": True, "timeout": 2.0}


def test_result_in_the_config_version(plugin: LoadedPlugin, service: FakeService) -> None:
    result = run(plugin, "ADD", conf({"daemonSocketPath": service.path}, version="0.3.1"))
    assert isinstance(result, Result)
    assert result.to_dict()["cniVersion"] == "0.3.1"
    assert result.to_dict()["ips"][0]["version"] == "4"


def test_del_check_status_gc_requests(plugin: LoadedPlugin, service: FakeService) -> None:
    config = conf({"daemonSocketPath": service.path})
    run(plugin, "DEL", config)
    run(plugin, "CHECK", config)
    run(plugin, "STATUS", {**config, "cniVersion": "1.1.0"})
    gc = {**config, "cniVersion": "1.1.0",
          "cni.dev/valid-attachments": [{"containerID": "c9", "ifname": "net1"}]}
    run(plugin, "GC", gc)
    ops = [r for r, _ in service.requests]
    assert ops == [{"op": "release", "containerID": "c1", "network": "dnet", "ifname": "eth0"},
                   {"op": "check", "containerID": "c1", "network": "dnet", "ifname": "eth0",
                    "netns": "/proc/self/ns/net"},
                   {"op": "status"},
                   {"op": "gc", "network": "dnet", "valid": [["c9", "net1"]]}]


def test_check_compares_with_prev_result(plugin: LoadedPlugin, service: FakeService) -> None:
    config = conf({"daemonSocketPath": service.path})
    good = {**config, "prevResult": {"cniVersion": "1.0.0",
                                     "ips": [{"address": "10.1.2.3/24"}]}}
    run(plugin, "CHECK", good)
    bad = {**config, "prevResult": {"cniVersion": "1.0.0", "ips": [{"address": "10.1.2.4/24"}]}}
    with pytest.raises(CNIError, match="not an address of prevResult"):
        run(plugin, "CHECK", bad)


def test_service_error_is_the_plugins(plugin: LoadedPlugin, tmp_path: Path) -> None:
    fake = FakeService(str(tmp_path / "e.sock"),
                       {"error": {"code": 11, "msg": "no DHCP lease for eth0 within 1s",
                                  "details": "x"}})
    try:
        with pytest.raises(CNIError) as info:
            run(plugin, "ADD", conf({"daemonSocketPath": fake.path}))
    finally:
        fake.close()
    assert (info.value.code, info.value.msg) == (11, "no DHCP lease for eth0 within 1s")


def test_no_service(plugin: LoadedPlugin, tmp_path: Path) -> None:
    """ADD: code 11 naming the socket; STATUS: 50; DEL and GC succeed (nothing to do)."""
    config = conf({"daemonSocketPath": str(tmp_path / "none.sock")})
    with pytest.raises(CNIError) as info:
        run(plugin, "ADD", config)
    assert info.value.code == 11 and str(tmp_path / "none.sock") in info.value.msg
    with pytest.raises(CNIError) as status:
        run(plugin, "STATUS", {**config, "cniVersion": "1.1.0"})
    assert status.value.code == 50
    run(plugin, "DEL", config)
    run(plugin, "GC", {**config, "cniVersion": "1.1.0", "cni.dev/valid-attachments": []})


def test_default_socket_is_gos() -> None:
    request = Request.for_config("ADD", PluginConfig.from_dict(conf({})))
    parsed = DhcpConfig.from_request(request)
    assert parsed.socket_path == "/run/cni/dhcp.sock" == protocol.DEFAULT_SOCKET
    assert (parsed.request, parsed.timeout, parsed.broadcast, parsed.priority) == \
        ((3, 1), 10.0, False, 0)


@pytest.mark.parametrize(("ipam", "key"), [
    ({"daemonSocketPath": 5}, "ipam.daemonSocketPath"),
    ({"daemonSocketPath": "rel/dhcp.sock"}, "ipam.daemonSocketPath"),
    ({"request": {"option": "routers"}}, "ipam.request"),
    ({"request": ["routers"]}, "ipam.request[0]"),
    ({"request": [{"option": "bogus"}]}, "ipam.request[0].option"),
    ({"request": [{"option": "0"}]}, "ipam.request[0].option"),
    ({"request": [{"option": "256"}]}, "ipam.request[0].option"),
    ({"request": [{"skipDefault": "yes"}]}, "ipam.request[0].skipDefault"),
    ({"provide": [{"value": "x"}]}, "ipam.provide[0].option"),
    ({"provide": [{"option": "host-name", "value": "x" * 256}]}, "ipam.provide[0].value"),
    ({"provide": [{"option": "host-name", "fromArg": 3}]}, "ipam.provide[0].fromArg"),
    ({"priority": "1"}, "ipam.priority"),
    ({"timeout": 0}, "ipam.timeout"),
    ({"timeout": "10 seconds"}, "ipam.timeout"),
    ({"timeout": 101}, "ipam.timeout"),
    ({"broadcast": 1}, "ipam.broadcast"),
])
def test_bad_keys_are_code_7_naming_the_key(plugin: LoadedPlugin, ipam: dict[str, Any],
                                             key: str) -> None:
    with pytest.raises(CNIError) as info:
        run(plugin, "ADD", conf(ipam))
    assert info.value.code == 7 and key in info.value.msg, info.value


def test_options_as_go_reads_them() -> None:
    request = Request.for_config("ADD", PluginConfig.from_dict(conf({
        "request": [{"option": "routers"}, {"option": "121"}, {"skipDefault": True}],
        "provide": [{"option": "dhcp-client-identifier", "fromArg": "ID"},
                    {"option": "user-class", "value": "u"}],
        "timeout": "1.5m"})), args=(("OTHER", "x"),))
    parsed = DhcpConfig.from_request(request)
    assert parsed.request == (3, 121)  # skipDefault: subnet mask not added
    assert parsed.provide == {77: b"u"}  # fromArg absent from CNI_ARGS: not sent
    assert parsed.timeout == 90.0


def test_daemon_runs_entry_point_services(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    """Every ``corecni.daemon_services`` entry point is started, except those left out and
    those that refuse (logged); stop_services stops what started."""
    events: list[str] = []

    class Service:
        def __init__(self, name: str, fail: bool) -> None:
            self.name, self.fail = name, fail

        def start(self) -> None:
            if self.fail:
                raise RuntimeError("socket busy")
            events.append(f"start {self.name}")

        def stop(self) -> None:
            events.append(f"stop {self.name}")

    class EP:
        def __init__(self, name: str, fail: bool = False) -> None:
            self.name, self.fail = name, fail

        def load(self) -> Any:
            return lambda log: Service(self.name, self.fail)

    import importlib.metadata as md

    monkeypatch.setattr(md, "entry_points", lambda group: [EP("a"), EP("b", fail=True), EP("c")]
                        if group == daemon.SERVICE_GROUP else [])
    log = (tmp_path / "log").open("w+")
    d = daemon.Daemon(daemon.DaemonConfig(socket_path=str(tmp_path / "d.sock"), preload=False,
                                          without=("c",)), log=log)
    d.start_services()
    assert d.health()["services"] == ["a"]
    d.stop_services()
    assert events == ["start a", "stop a"]
    log.seek(0)
    failed = [json.loads(line) for line in log if '"service-failed"' in line]
    assert failed and failed[0]["service"] == "b" and "socket busy" in failed[0]["error"]
