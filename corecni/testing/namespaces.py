"""Throwaway named network namespaces for tests, and the prefix their names carry.

Every namespace a test makes is named ``<prefix><role>-<6 hex>``. The prefix
keeps the test run's pid by default (``ccni-{pid}-``), so two runs on one
machine never remove each other's namespaces, and a prefix makes leftovers
easy to find (``ip netns list``). It is configurable because a plugin project
may want its own (``myplugin-{pid}-``):

* the ``CORECNI_NETNS_PREFIX`` environment variable, else
* the ``corecni_netns_prefix`` ini option (pytest.ini / pyproject.toml), else
* ``ccni-{pid}-``.

``{pid}`` in the value is replaced by the test process' pid.

Namespaces are created with iproute2 (``ip netns add``) so they are ordinary
``/run/netns/<name>`` entries that Go plugins and podman understand too.
"""

from __future__ import annotations

import os
import subprocess
import uuid

#: the default prefix template: ``{pid}`` becomes the test process' pid
DEFAULT_PREFIX = "ccni-{pid}-"
#: the environment variable that overrides the ini option
PREFIX_ENV = "CORECNI_NETNS_PREFIX"
#: the ini option (set by the pytest plugin from the test project's configuration)
PREFIX_INI = "corecni_netns_prefix"

_template = DEFAULT_PREFIX


def set_prefix_template(template: str) -> None:
    """Use ``template`` (``{pid}`` expands) for every namespace made from now on."""
    global _template
    expanded = template.replace("{pid}", str(os.getpid()))
    if not expanded or "/" in expanded or expanded.startswith("."):
        raise ValueError(f"bad network namespace prefix {template!r}: it must be a non-empty "
                         "file name (no '/', not starting with '.')")
    _template = template


def netns_prefix() -> str:
    """The prefix of this run's namespace names (the environment variable wins)."""
    return (os.environ.get(PREFIX_ENV) or _template).replace("{pid}", str(os.getpid()))


def ns_name(path: str) -> str:
    """``/run/netns/x`` -> ``x`` (what ``ip -n`` and ``ip netns exec`` take)."""
    return os.path.basename(path)


class NetnsFactory:
    """Creates named namespaces and remembers them for removal.

    ``factory("node")`` returns ``/run/netns/<prefix>node-<hex>`` with ``lo``
    up (``lo_up=False`` leaves it down, as a fresh container's is).
    """

    def __init__(self) -> None:
        self.created: list[str] = []

    def __call__(self, role: str = "ns", lo_up: bool = True) -> str:
        name = f"{netns_prefix()}{role}-{uuid.uuid4().hex[:6]}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        self.created.append(name)
        if lo_up:
            subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        return f"/run/netns/{name}"

    def cleanup(self) -> None:
        """Remove every namespace made here (which destroys the links in them, and
        their veth peers elsewhere)."""
        for name in reversed(self.created):
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
        self.created.clear()


def remove_leftovers() -> list[str]:
    """Delete every namespace whose name carries this run's prefix; their names.

    The pytest plugin calls this at the end of the session: the last line of
    defence for a namespace a test made and lost track of.
    """
    if os.geteuid() != 0 or not os.path.isdir("/run/netns"):
        return []
    prefix = netns_prefix()
    left = sorted(name for name in os.listdir("/run/netns") if name.startswith(prefix))
    for name in left:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
    return left
