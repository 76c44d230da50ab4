"""Backend selection and the checks a batch makes before touching the kernel."""

from __future__ import annotations

import errno
import subprocess
import sys
import types

import pytest

import corecni.net as net
from corecni.net import pyroute2_backend
from corecni.net.pyroute2_backend import Pyroute2Backend


@pytest.fixture
def no_native(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever is built here, make the native backend fail to import."""
    monkeypatch.setitem(sys.modules, "corecni.net.native_backend", None)


@pytest.fixture
def fake_native(monkeypatch: pytest.MonkeyPatch) -> type:
    class NativeBackend:
        name = "native"

    module = types.ModuleType("corecni.net.native_backend")
    module.NativeBackend = NativeBackend  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "corecni.net.native_backend", module)
    monkeypatch.setitem(sys.modules, "corecni._native", types.ModuleType("corecni._native"))
    return NativeBackend


def test_import_and_selection_do_not_load_pyroute2() -> None:
    code = ("import sys, corecni.net as n; b = n.get_backend('pyroute2'); "
            "n.available_backends(); b.batch(None).add_address('x', '10.0.0.1/24'); "
            "print(sorted(m for m in sys.modules if m.partition('.')[0] == 'pyroute2'))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    assert out.strip() == "[]"


def test_explicit_pyroute2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(net.ENV_VAR, "native")
    assert isinstance(net.get_backend("pyroute2"), Pyroute2Backend)  # argument wins


def test_environment_variable_selects(monkeypatch: pytest.MonkeyPatch, fake_native: type) -> None:
    monkeypatch.setenv(net.ENV_VAR, "pyroute2")
    assert net.get_backend().name == "pyroute2"
    monkeypatch.setenv(net.ENV_VAR, " Native ")
    assert isinstance(net.get_backend(), fake_native)


def test_auto_prefers_native(monkeypatch: pytest.MonkeyPatch, fake_native: type) -> None:
    monkeypatch.delenv(net.ENV_VAR, raising=False)
    assert isinstance(net.get_backend(), fake_native)
    assert isinstance(net.get_backend("auto"), fake_native)
    assert net.available_backends() == ["native", "pyroute2"]


def test_auto_falls_back_to_pyroute2(monkeypatch: pytest.MonkeyPatch, no_native: None) -> None:
    monkeypatch.delenv(net.ENV_VAR, raising=False)
    assert net.get_backend().name == "pyroute2"
    assert net.available_backends() == ["pyroute2"]


def test_auto_needs_the_compiled_extension(monkeypatch: pytest.MonkeyPatch,
                                           fake_native: type) -> None:
    monkeypatch.setitem(sys.modules, "corecni._native", None)
    assert net.get_backend("auto").name == "pyroute2"
    with pytest.raises(RuntimeError, match=r"corecni\._native"):
        net.get_backend("native")


def test_explicit_native_unavailable_is_an_error(no_native: None) -> None:
    with pytest.raises(RuntimeError, match=r"'native' is unavailable.*native_backend"):
        net.get_backend("native")


def test_unknown_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="unknown net backend 'netlink'"):
        net.get_backend("netlink")
    monkeypatch.setenv(net.ENV_VAR, "bogus")
    with pytest.raises(ValueError, match=net.ENV_VAR):
        net.get_backend()


@pytest.mark.parametrize(("queue", "op"), [
    (lambda b: b.add_address("eth0", "10.0.0.300/24"), "add_address"),
    (lambda b: b.del_address("eth0", "not-an-ip"), "del_address"),
    (lambda b: b.add_route(net.Route(dst="10.0.0.5/24")), "add_route"),  # host bits set
    (lambda b: b.add_route(net.Route(dst="::/0", gateway="10.0.0.1")), "add_route"),
    (lambda b: b.del_route(net.Route(dst="bogus")), "del_route"),
    (lambda b: b.add_neighbour(net.Neighbour("eth0", "x", "02:00:00:00:00:01")),
     "add_neighbour"),
    (lambda b: b.add_macvlan("m0", "eth0", mode="weird"), "add_macvlan"),
    (lambda b: b.add_ipvlan("i0", "eth0", mode="l4"), "add_ipvlan"),
])
def test_malformed_requests_fail_when_queued(queue: object, op: str) -> None:
    batch = Pyroute2Backend().batch("/run/netns/never-opened")
    with pytest.raises(net.NetError) as info:
        queue(batch)  # type: ignore[operator]
    assert (info.value.errno, info.value.op) == (errno.EINVAL, op)


def test_empty_commit_touches_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[object] = []
    monkeypatch.setattr(pyroute2_backend, "_open_iproute", lambda *a: opened.append(a))
    Pyroute2Backend().batch("/run/netns/never-opened").commit()
    assert opened == []  # no netlink socket, no namespace entered


@pytest.mark.parametrize("key", ["", "../../kernel/hostname", "ipv4/../../kernel/x", "ipv4//x"])
def test_sysctl_keys_stay_below_proc_sys_net(key: str) -> None:
    with pytest.raises(net.NetError) as info:
        Pyroute2Backend().sysctl_get(key)
    assert info.value.errno == errno.EINVAL


def test_net_error_text() -> None:
    exc = net.NetError(errno.EEXIST, "add_address", "eth0 10.0.0.2/24", "extack says hi")
    assert str(exc) == "add_address eth0 10.0.0.2/24: EEXIST (File exists): extack says hi"
