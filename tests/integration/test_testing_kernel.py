"""corecni.testing's kernel readers against a real kernel: ``dad_settled``."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

from corecni.testing import dad_settled, eventually, ip, ns_name

pytestmark = pytest.mark.root

NsFactory = Callable[..., str]


def _dad_transmits(ns: str, link: str, count: int) -> None:
    subprocess.run(["ip", "netns", "exec", ns_name(ns), "sysctl", "-qw",
                    f"net.ipv6.conf.{link}.dad_transmits={count}"], check=True)


def _dad_failed(ns: str, link: str) -> bool:
    try:
        dad_settled(ns, link)
    except AssertionError as exc:
        assert "fd97::2" in str(exc) and link in str(exc), exc
        return True
    return False


def test_dad_settled_tentative_nodad_and_failed(netns_factory: NsFactory) -> None:
    a, b = netns_factory("dada"), netns_factory("dadb")
    ip(a, "link", "add", "e0", "type", "veth", "peer", "name", "e1", "netns", ns_name(b))
    ip(a, "link", "set", "e0", "addrgenmode", "none")  # no link-local: only ours below
    ip(a, "link", "set", "e0", "up")
    ip(b, "link", "set", "e1", "up")
    # 60 probes of 1 s: the address stays tentative for the whole test
    _dad_transmits(a, "e0", 60)
    ip(a, "addr", "add", "fd97::1/64", "dev", "e0")
    assert not dad_settled(a, "e0")
    ip(a, "addr", "del", "fd97::1/64", "dev", "e0")
    ip(a, "addr", "add", "fd97::1/64", "dev", "e0", "nodad")
    assert dad_settled(a, "e0")
    # a duplicate: b holds fd97::2 already, so e0's DAD for it fails
    ip(b, "addr", "add", "fd97::2/64", "dev", "e1", "nodad")
    _dad_transmits(a, "e0", 1)
    ip(a, "addr", "add", "fd97::2/64", "dev", "e0")
    assert eventually(lambda: _dad_failed(a, "e0"))
