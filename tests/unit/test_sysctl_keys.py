"""Which sysctl keys a backend may read through netlink instead of /proc/sys/net.

Only a per-device setting of a named link whose file shows a plain number: the
kernel reports those with the link. ``all``/``default`` have no link, and any
other key (or a key naming a setting not in the table) is read from its file.
"""

from __future__ import annotations

import socket

import pytest

from corecni.net._common import DEVCONF_INDEX, devconf_of


@pytest.mark.parametrize(("key", "expected"), [
    ("ipv4/conf/cni0/route_localnet", (socket.AF_INET, "cni0", 26)),
    ("ipv4/conf/eth0/arp_notify", (socket.AF_INET, "eth0", 22)),
    ("/ipv4/conf/eth0/forwarding/", (socket.AF_INET, "eth0", 1)),
    ("ipv6/conf/eth0/accept_dad", (socket.AF_INET6, "eth0", 27)),
    ("ipv6/conf/br0/accept_ra", (socket.AF_INET6, "br0", 3)),
    ("ipv6/conf/br0/forwarding", (socket.AF_INET6, "br0", 0)),
])
def test_per_device_settings(key: str, expected: tuple[int, str, int]) -> None:
    assert devconf_of(key) == expected


@pytest.mark.parametrize("key", [
    "ipv4/ip_forward",                     # not per device
    "ipv4/conf/all/forwarding",            # no link to ask
    "ipv4/conf/default/rp_filter",
    "ipv4/conf/eth0/no_such_setting",
    "ipv6/conf/eth0/mtu",                  # netlink's number is not the file's text
    "ipv6/conf/eth0/stable_secret",
    "ipv4/conf/../conf/eth0/arp_notify",   # not a plain path
    "ipv4/conf/eth0/arp_notify/extra",
    "core/somaxconn",
    "",
])
def test_everything_else_is_read_from_its_file(key: str) -> None:
    assert devconf_of(key) is None


def test_indices_follow_the_kernel_numbering() -> None:
    """Spot checks against linux/ip.h and linux/ipv6.h (IPv4 counts from 1, IPv6 from 0)."""
    assert DEVCONF_INDEX["ipv4"]["forwarding"] == 1
    assert DEVCONF_INDEX["ipv4"]["route_localnet"] == 26
    assert DEVCONF_INDEX["ipv6"]["forwarding"] == 0
    assert DEVCONF_INDEX["ipv6"]["disable_ipv6"] == 26
    assert DEVCONF_INDEX["ipv6"]["enhanced_dad"] == 46
    for table in DEVCONF_INDEX.values():
        assert len(set(table.values())) == len(table)  # no two names share a slot
