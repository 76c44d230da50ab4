"""The shim <-> daemon wire format: round trips, refusals, and agreement with shim.c."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from corecni import daemon, launcher
from corecni import daemon_wire as wire

SHIM_C = (Path(__file__).resolve().parents[2] / "native" / "shim" / "shim.c").read_text()


def test_request_round_trip() -> None:
    req = wire.WireRequest(op=wire.OP_CALL, type="bridge", launcher="/opt/cni/bin/.corecni/bridge",
                           env={"CNI_COMMAND": "ADD", "CNI_ARGS": "A=1;B=x=y"},
                           stdin=b'{"cniVersion":"1.0.0"}', fds=wire.FD_CALLER_NETNS)
    data = wire.encode_request(req)
    op, fds, lengths = wire.body_length(data[:wire.REQUEST_HEAD.size])
    assert wire.decode_body(op, fds, lengths, data[wire.REQUEST_HEAD.size:]) == req


@pytest.mark.parametrize(("head", "why"), [
    (wire.REQUEST_HEAD.pack(b"XXXX", 1, 0, 0, 0, 0, 0), "magic"),
    (wire.REQUEST_HEAD.pack(b"CNS1", 9, 0, 0, 0, 0, 0), "op"),
    (wire.REQUEST_HEAD.pack(b"CNS1", 1, 4, 0, 0, 0, 0), "fd bits"),
])
def test_bad_heads_are_refused(head: bytes, why: str) -> None:
    with pytest.raises(wire.WireError, match=why):
        wire.body_length(head)


@pytest.mark.parametrize("env", [b"CNI_COMMAND=ADD", b"NOEQUALS\0", b"=x\0", b"K=\xff\0"])
def test_bad_env_blocks_are_refused(env: bytes) -> None:
    with pytest.raises(wire.WireError):
        wire.decode_env(env)


def test_reply_round_trip() -> None:
    data = wire.encode_reply(1, '{"code": 7}\n', "oops\n")
    magic, status, out_len, err_len = wire.REPLY_HEAD.unpack(data[:wire.REPLY_HEAD.size])
    assert (magic, status, out_len, err_len) == (wire.REPLY_MAGIC, 1, 12, 5)


def test_shim_c_agrees_with_the_python_side() -> None:
    """One format, two implementations: the constants must not drift apart."""
    def define(name: str) -> str:
        found = re.search(rf"#define {name} (\S+)", SHIM_C)
        assert found, name
        return found.group(1).rstrip("u").strip('"')

    assert define("DEFAULT_SOCKET") == wire.DEFAULT_SOCKET
    assert define("LAUNCHER_DIR") == launcher.LAUNCHER_DIR
    assert int(define("OP_CALL")) == wire.OP_CALL
    assert int(define("FD_CALLER_NETNS")) == wire.FD_CALLER_NETNS
    assert int(define("FD_CONTAINER_NETNS")) == wire.FD_CONTAINER_NETNS
    assert int(define("HEAD_LEN")) == wire.REQUEST_HEAD.size
    assert int(define("REPLY_HEAD_LEN")) == wire.REPLY_HEAD.size
    assert f'"{wire.REQUEST_MAGIC.decode()}"' in SHIM_C
    assert f'"{wire.REPLY_MAGIC.decode()}"' in SHIM_C
    assert f'"{launcher.SHIM_MARKER.decode()}"' in SHIM_C
    assert f'getenv("{wire.SOCKET_ENV}")' in SHIM_C


def test_socket_path_default_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(wire.SOCKET_ENV, raising=False)
    assert wire.socket_path() == "/run/corecni/daemon.sock"
    monkeypatch.setenv(wire.SOCKET_ENV, "/tmp/x.sock")
    assert wire.socket_path() == "/tmp/x.sock"
    assert wire.socket_path("/explicit") == "/explicit"


def test_netns_alias_in_and_out() -> None:
    """The plugin sees /proc/self/fd/N everywhere; the runtime sees its own path back."""
    conf = {"cniVersion": "1.0.0", "prevResult": {"interfaces": [
        {"name": "eth0", "sandbox": "/run/netns/a"}, {"name": "br0"}]}}
    aliased = json.loads(daemon._alias_config(json.dumps(conf).encode(), "/run/netns/a",
                                              "/proc/self/fd/7"))
    assert aliased["prevResult"]["interfaces"][0]["sandbox"] == "/proc/self/fd/7"
    assert daemon._alias_config(b"not json", "/run/netns/a", "/proc/self/fd/7") == b"not json"
    out = '{"sandbox": "/proc/self/fd/7", "other": "/proc/self/fd/71"}'
    assert daemon._unalias(out, "/proc/self/fd/7", '/run/netns/"q"', json_text=True) == \
        '{"sandbox": "/run/netns/\\"q\\"", "other": "/proc/self/fd/71"}'
