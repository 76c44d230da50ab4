"""``corecni new-plugin``: a pip distribution for a new CNI plugin, tests included.

The generated project is what a third party publishes: a ``pyproject.toml``
whose ``corecni.plugins`` entry point is named after the CNI ``type``, a
package with a working plugin of the chosen family written against
``corecni.kit`` alone, a README, and tests written with ``corecni.testing``: a
unit test that hands in ``corecni.testing.fake_net.FakeBackend`` as
``Request(..., net=...)`` and an integration test that runs the plugin
in-process through ``corecni.runtime.CNIRuntime`` in throwaway namespaces.
The tests pass as generated (corecni's suite checks that for every family),
so an author starts from green and changes one thing at a time.

The templates are ``string.Template`` texts (``$type``, ``$package``...): the
code they produce has no ``$`` of its own, so nothing needs escaping. They
are also the worked examples of the docs site ("Writing a plugin").
"""

from __future__ import annotations

import keyword
import os
import re
from pathlib import Path
from string import Template

import attrs

from corecni.spec.config import validate_plugin_type
from corecni.spec.errors import CNIError, ErrorCode

FAMILIES = ("interface", "ipam", "meta")

_PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "$dist"
version = "0.1.0"
description = "$title CNI plugin '$type', built on corecni.kit"
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["corecni>=0.1"]

[project.optional-dependencies]
test = ["pytest>=7.4"]

# The entry point's name is the CNI "type" that network configs use.
[project.entry-points."corecni.plugins"]
$type = "$package.plugin"

[tool.setuptools]
packages = ["$package"]

[tool.pytest.ini_options]
testpaths = ["tests"]
markers = ["root: needs root and network namespaces"]
"""

_README = """\
# $dist

A CNI $family plugin of type `$type`, written with
[corecni](https://pypi.org/project/corecni/)'s plugin kit (`corecni.kit`).
See `$package/plugin.py` for what it does and the config keys it reads.

## Install and use

```sh
pip install .
corecni plugins | grep $type          # corecni's runtime now calls it in-process
corecni install --dir /opt/cni/bin     # a launcher, for runtimes that exec plugins
```

## Test

```sh
pip install -e '.[test]'
pytest -q                              # unit tests anywhere; integration tests as root
```

`tests/test_unit.py` runs the hooks against `corecni.testing.fake_net.FakeBackend`
(no kernel, no privileges). `tests/test_integration.py` runs the plugin through
`corecni.runtime.CNIRuntime` twice, in-process and exec'd through its launcher,
inside throwaway network namespaces (the `node_netns`/`container_netns` fixtures
of corecni's pytest plugin) and checks kernel state.$partner_note
"""

_INIT = '''\
"""The $type CNI plugin ($family family); the hooks are in ``$package.plugin``."""
'''

_NO_PARTNER = ""
_PARTNER_NOTE = """ Its chain partners (`$partner`) are corecni-contrib's, in-process,
or Debian's Go plugins, exec'd (corecni's `chain_partners` fixture); with neither, the test
skips and says why."""

# ---------------------------------------------------------------------------
# interface family: a veth pair, addresses from the config's IPAM plugin
# ---------------------------------------------------------------------------

_INTERFACE_PLUGIN = '''\
"""$type: an interface plugin built on ``corecni.kit``.

ADD creates a veth pair: CNI_IFNAME inside the container's namespace and a
host end ("veth" + 8 hex digits) in the plugin's own (node) namespace. It asks
the config's IPAM plugin for addresses and puts them, the link state and the
routes on the container end in one batch. Whatever fails after the IPAM call
releases the addresses and removes the pair again: nothing half-configured.

DEL releases the addresses and removes the pair when it is still ours; it
succeeds when everything is already gone. CHECK verifies the container end,
its MAC, addresses and routes against the previous result.

Config keys, beside ``cniVersion``, ``name`` and ``type``:

* ``mtu`` (integer, optional): the MTU of both ends (default: the kernel's);
* ``ipam`` (object, required): the IPAM plugin (``type``) and its settings;
* ``dns`` (object, optional): put into the result as it is.
"""

from __future__ import annotations

from corecni.kit import (
    CNIError,
    ErrorCode,
    Interface,
    Request,
    Result,
    attached_result,
    check_container_link,
    check_iface,
    config_error,
    configure_iface,
    create_veth,
    delete_link_here,
    delete_own_veth,
    dns_key,
    hookimpl,
    int_key,
    ipam_gc,
    ipam_released_on_failure,
    ipam_status,
    ipam_type,
    kernel_step,
    prev_container_interface,
    release_ipam,
    require_ips,
    undo_on_failure,
)


def _mtu(request: Request) -> int:
    """The ``mtu`` key: 0 (the kernel's default) when absent, code 7 when out of range."""
    mtu = int_key(request.config.raw, "mtu")
    if not 0 <= mtu <= 65535:
        raise config_error(f"invalid mtu {mtu}", "the MTU must be between 0 and 65535")
    return mtu


@hookimpl
def cni_add(request: Request) -> Result:
    mtu = _mtu(request)
    if not ipam_type(request.config.raw):
        raise config_error("missing ipam.type", "this plugin needs an IPAM plugin")
    net = request.net
    addressing = request.ipam_add()
    with ipam_released_on_failure(request), undo_on_failure() as undo:
        require_ips(addressing)
        host = create_veth(net, request.netns, request.ifname, mtu=mtu)
        undo.push(lambda: delete_link_here(net, host))
        with kernel_step(f"look up {request.ifname} in {request.netns}"):
            link = net.link(request.ifname, request.netns)
        if link is None:
            raise CNIError(ErrorCode.INTERNAL, f"{request.ifname} vanished during ADD")
        iface = Interface(name=request.ifname, mac=link.mac, sandbox=request.netns)
        result = attached_result(iface, addressing, dns_key(request.config.raw))
        configure_iface(net, request.netns, request.ifname, result)
        return result


@hookimpl
def cni_del(request: Request) -> None:
    """Go's order: IPAM first (it must be released even when the netns is gone),
    then the pair; the host end goes with the container end."""
    release_ipam(request)
    delete_own_veth(request.net, request)


@hookimpl
def cni_check(request: Request) -> None:
    request.ipam_check()
    prev, iface = prev_container_interface(request)
    check_container_link(request.net, request, iface, "veth")
    check_iface(request.net, request.netns, request.ifname, prev)


@hookimpl
def plugin_status(request: Request) -> None:
    """Ready when the IPAM plugin is."""
    ipam_status(request)


@hookimpl
def plugin_gc(request: Request) -> None:
    """Nothing of our own outlives a container (its veth goes with its netns): let
    IPAM release what no valid attachment holds."""
    ipam_gc(request)
'''

_INTERFACE_UNIT = '''\
"""Unit tests of $type: the hooks against a recording fake link layer (no root)."""

from __future__ import annotations

from typing import Any

import pytest
from corecni.kit import CNIError, IPConfig, Request, Result
from corecni.spec import PluginConfig
from corecni.testing.fake_net import CTR, NODE, FakeBackend, FakeDelegate

from $package import plugin

ADDRESS = IPConfig(address="10.22.0.5/24", gateway="10.22.0.1")


def request(command: str, fake: FakeBackend, delegate: FakeDelegate,
            prev: Result | None = None, **keys: Any) -> Request:
    config = PluginConfig.from_dict({"cniVersion": "1.1.0", "name": "net", "type": "$type",
                                     "ipam": {"type": "fixed"}, **keys})
    return Request(command, config, container_id="c1", netns=CTR, ifname="eth0",
                   prev_result=prev, delegate=delegate, net=fake)


def test_add_creates_the_pair_and_configures_the_container_end() -> None:
    fake, ipam = FakeBackend(), FakeDelegate(Result(ips=(ADDRESS,)))
    result = plugin.cni_add(request("ADD", fake, ipam, mtu=1400))
    assert ipam.calls == [("fixed", "ADD")]
    [(_, _, (host, peer), veth)] = fake.ops("add_veth")
    assert peer == "eth0" and veth["peer_netns"] == CTR and veth["mtu"] == 1400
    assert fake.link(host, NODE) is not None
    assert [i.name for i in result.interfaces] == ["eth0"]
    assert result.interfaces[0].sandbox == CTR
    assert [ip.address for ip in result.ips] == ["10.22.0.5/24"]
    assert [a.address for a in fake.addresses(CTR, "eth0")] == ["10.22.0.5/24"]
    assert fake.link("eth0", CTR) is not None and fake.link("eth0", CTR).up


def test_a_kernel_refusal_releases_ipam_and_removes_the_pair() -> None:
    fake, ipam = FakeBackend(), FakeDelegate(Result(ips=(ADDRESS,)))
    fake.refuse[("add_address", "eth0")] = 22  # EINVAL
    with pytest.raises(CNIError) as err:
        plugin.cni_add(request("ADD", fake, ipam))
    assert err.value.code == 999 and "EINVAL" in err.value.details
    assert ipam.calls == [("fixed", "ADD"), ("fixed", "DEL")]
    assert not [link for link in fake.links(NODE) if link.kind == "veth" and
                link.name.startswith("veth")]
    assert fake.link("eth0", CTR) is None


def test_del_is_idempotent_and_releases_ipam_every_time() -> None:
    fake, ipam = FakeBackend(), FakeDelegate(Result(ips=(ADDRESS,)))
    plugin.cni_add(request("ADD", fake, ipam))
    plugin.cni_del(request("DEL", fake, ipam))
    plugin.cni_del(request("DEL", fake, ipam))
    assert fake.link("eth0", CTR) is None
    assert ipam.calls == [("fixed", "ADD"), ("fixed", "DEL"), ("fixed", "DEL")]


def test_check_finds_a_missing_address() -> None:
    fake, ipam = FakeBackend(), FakeDelegate(Result(ips=(ADDRESS,)))
    result = plugin.cni_add(request("ADD", fake, ipam))
    plugin.cni_check(request("CHECK", fake, ipam, prev=result))
    fake.addrs.clear()
    with pytest.raises(CNIError, match=r"10\\.22\\.0\\.5/24 is missing"):
        plugin.cni_check(request("CHECK", fake, ipam, prev=result))


def test_bad_mtu_is_a_config_error_before_anything_happens() -> None:
    fake, ipam = FakeBackend(), FakeDelegate(Result(ips=(ADDRESS,)))
    with pytest.raises(CNIError) as err:
        plugin.cni_add(request("ADD", fake, ipam, mtu=70000))
    assert err.value.code == 7
    assert ipam.calls == [] and fake.log == []


def test_the_entry_point_names_the_type() -> None:
    from importlib.metadata import entry_points

    found = {ep.name: ep.value for ep in entry_points(group="corecni.plugins")}
    assert found.get("$type") == "$package.plugin", "pip install the project first"
'''

_INTERFACE_INTEGRATION = '''\
"""$type in real namespaces, through corecni's runtime, in-process and exec'd (needs root).

The chain is $type with the ``static`` IPAM plugin (corecni-contrib's in-process,
or Debian's Go plugin exec'd from ``chain_partners``): the container gets a veth with its
address and route, the node keeps the host end, and DEL removes it all.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from corecni.runtime import CNIRuntime
from corecni.spec import NetworkConfigList, RuntimeConf
from corecni.testing import MODES, chain_runtime, ip_json

PARTNERS = ("static",)


@pytest.fixture(params=MODES)
def runtime(request: pytest.FixtureRequest, tmp_path: Path, chain_partners: str) -> CNIRuntime:
    """corecni's runtime running $type in-process, then exec'd through its launcher
    (the same test, both roads), in a chain with the PARTNERS."""
    return chain_runtime(request.param, tmp_path, {"$type": "$package.plugin"},
                         chain_partners, needs=PARTNERS)


def network() -> NetworkConfigList:
    return NetworkConfigList.from_dict({
        # 1.0.0: the newest version Debian's Go plugins (1.1.1) speak, should they serve
        "cniVersion": "1.0.0", "name": "$package-test",
        "plugins": [{"type": "$type", "mtu": 1400, "ipam": {
            "type": "static",
            "addresses": [{"address": "10.77.0.5/24", "gateway": "10.77.0.1"}],
            "routes": [{"dst": "0.0.0.0/0"}]}}],
    })


def test_add_check_del(runtime: CNIRuntime, in_node: str, container_netns: str) -> None:
    rt = RuntimeConf(container_id="ctr1", ifname="eth0", netns=container_netns)
    result = runtime.add_network_list(network(), rt)
    assert [ip.address for ip in result.ips] == ["10.77.0.5/24"]

    [eth0] = ip_json(container_netns, "addr", "show", "dev", "eth0")
    assert eth0["mtu"] == 1400 and "UP" in eth0["flags"]
    assert [a["local"] for a in eth0["addr_info"] if a["family"] == "inet"] == ["10.77.0.5"]
    routes = ip_json(container_netns, "route", "show", "default")
    assert [r["gateway"] for r in routes] == ["10.77.0.1"]
    hosts = [link["ifname"] for link in ip_json(in_node, "link", "show", "type", "veth")]
    assert len(hosts) == 1 and hosts[0].startswith("veth")

    runtime.check_network_list(network(), rt)

    runtime.del_network_list(network(), rt)
    assert ip_json(container_netns, "link", "show", "dev", "lo")  # the netns stays
    assert not [link for link in ip_json(container_netns, "link", "show")
                if link["ifname"] == "eth0"]
    assert ip_json(in_node, "link", "show", "type", "veth") == []
    runtime.del_network_list(network(), rt)  # DEL again: nothing left, still fine
'''

# ---------------------------------------------------------------------------
# IPAM family: one address per attachment, kept in files
# ---------------------------------------------------------------------------

_IPAM_PLUGIN = '''\
"""$type: an IPAM plugin built on ``corecni.kit``.

Hands out addresses of one subnet, one per attachment (container ID +
ifname), never the same address to two attachments and always the same one
to the same attachment (ADD is idempotent). Each address in use is a file
``<dataDir>/<network>/<address>`` holding ``<container ID> <ifname>``,
created with ``O_EXCL`` under a lock, so concurrent ADDs on a node never
share one. IPAM plugins touch no interface: there is no ``request.net`` here.

Config keys, under ``ipam``:

* ``subnet`` (CIDR, required): where addresses come from;
* ``gateway`` (IP, optional, default: the subnet's first address): put into
  the result, never handed out;
* ``routes`` (list of ``{"dst", "gw"}``, optional): put into the result;
* ``dataDir`` (optional, default ``/var/lib/cni/$type``): where the files are.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
from collections.abc import Iterator
from pathlib import Path

import attrs
from corecni.kit import (
    CNIError,
    ErrorCode,
    IPConfig,
    Request,
    Result,
    Route,
    config_error,
    dict_key,
    hookimpl,
    parse_cidr,
    parse_ip,
    parse_routes,
    str_key,
)

DEFAULT_DATA_DIR = "/var/lib/cni/$type"


@attrs.frozen
class Settings:
    """The ``ipam`` section, checked once: bad keys are code 7 naming the key."""

    subnet: ipaddress.IPv4Network | ipaddress.IPv6Network
    gateway: ipaddress.IPv4Address | ipaddress.IPv6Address
    routes: tuple[Route, ...]
    store: Path

    @classmethod
    def of(cls, request: Request) -> Settings:
        ipam = dict_key(request.config.raw, "ipam")
        text = str_key(ipam, "subnet", "'ipam.subnet'")
        if not text:
            raise config_error("missing ipam.subnet", "$type needs a subnet to allocate from")
        subnet = parse_cidr(text, "ipam.subnet").network
        if subnet.num_addresses < 4:
            raise config_error(f"ipam.subnet {subnet} is too small", "use a /30 or larger")
        gw_text = str_key(ipam, "gateway", "'ipam.gateway'")
        gateway = parse_ip(gw_text, "ipam.gateway") if gw_text else subnet.network_address + 1
        if gateway not in subnet:
            raise config_error(f"ipam.gateway {gateway} is not in {subnet}")
        data_dir = str_key(ipam, "dataDir", "'ipam.dataDir'") or DEFAULT_DATA_DIR
        return cls(subnet, gateway, parse_routes(ipam),
                   Path(data_dir) / request.config.name)

    def candidates(self) -> Iterator[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        for address in self.subnet.hosts():
            if address != self.gateway:
                yield address


def _owner(request: Request) -> str:
    return f"{request.container_id} {request.ifname}"


@contextlib.contextmanager
def _locked(store: Path) -> Iterator[None]:
    """One allocator at a time per network: a ``flock`` on ``<store>/lock``."""
    try:
        store.mkdir(parents=True, exist_ok=True)
        fd = os.open(store / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise CNIError(ErrorCode.IO_FAILURE, f"cannot open the store {store}", str(exc)) \\
            from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _held_by(store: Path, owner: str) -> list[Path]:
    """The address files of ``owner`` (normally zero or one)."""
    if not store.is_dir():
        return []
    return [entry for entry in store.iterdir()
            if entry.name != "lock" and entry.read_text().strip() == owner]


def _result(settings: Settings, address: str) -> Result:
    prefix = settings.subnet.prefixlen
    return Result(ips=(IPConfig(address=f"{address}/{prefix}", gateway=str(settings.gateway)),),
                  routes=settings.routes)


@hookimpl
def ipam_add(request: Request) -> Result:
    settings = Settings.of(request)
    owner = _owner(request)
    with _locked(settings.store):
        held = _held_by(settings.store, owner)
        if held:  # the same attachment asks again: the same address
            return _result(settings, held[0].name)
        for address in settings.candidates():
            try:
                fd = os.open(settings.store / str(address),
                             os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue
            with os.fdopen(fd, "w") as record:
                record.write(owner)
            return _result(settings, str(address))
    raise CNIError(ErrorCode.INTERNAL, f"no free address left in {settings.subnet}",
                   f"every address is held (see {settings.store})")


@hookimpl
def ipam_del(request: Request) -> None:
    """Release the attachment's address; releasing nothing is not an error."""
    settings = Settings.of(request)
    with _locked(settings.store):
        for entry in _held_by(settings.store, _owner(request)):
            entry.unlink(missing_ok=True)


@hookimpl
def ipam_check(request: Request) -> None:
    settings = Settings.of(request)
    if not _held_by(settings.store, _owner(request)):
        raise CNIError(ErrorCode.INTERNAL,
                       f"{request.container_id}/{request.ifname} holds no address of "
                       f"{settings.subnet}")


@hookimpl
def plugin_gc(request: Request) -> None:
    """Release every address that no valid attachment holds."""
    settings = Settings.of(request)
    valid = {f"{a.container_id} {a.ifname}" for a in request.valid_attachments}
    with _locked(settings.store):
        for entry in settings.store.iterdir():
            if entry.name != "lock" and entry.read_text().strip() not in valid:
                entry.unlink(missing_ok=True)
'''

_IPAM_UNIT = '''\
"""Unit tests of $type: the hooks on a temporary store (no root, no kernel)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from corecni.kit import Attachment, CNIError, Request
from corecni.spec import PluginConfig
from corecni.testing.fake_net import FakeBackend

from $package import plugin


def request(command: str, store: Path, container_id: str = "c1", fake: FakeBackend | None = None,
            valid: tuple[Attachment, ...] = (), **ipam: Any) -> Request:
    config = PluginConfig.from_dict({
        "cniVersion": "1.1.0", "name": "net", "type": "bridge",
        "ipam": {"type": "$type", "subnet": "10.33.0.0/29", "dataDir": str(store), **ipam}})
    return Request(command, config, container_id=container_id, ifname="eth0",
                   valid_attachments=valid, net=fake or FakeBackend())


def test_add_allocates_and_is_idempotent(tmp_path: Path) -> None:
    fake = FakeBackend()
    first = plugin.ipam_add(request("ADD", tmp_path, fake=fake))
    again = plugin.ipam_add(request("ADD", tmp_path, fake=fake))
    assert [ip.address for ip in first.ips] == ["10.33.0.2/29"]  # .1 is the gateway
    assert first.ips[0].gateway == "10.33.0.1"
    assert again == first
    assert fake.log == []  # an IPAM plugin touches no link
    assert (tmp_path / "net" / "10.33.0.2").read_text() == "c1 eth0"


def test_two_attachments_never_share_and_the_subnet_runs_out(tmp_path: Path) -> None:
    got = {plugin.ipam_add(request("ADD", tmp_path, f"c{i}")).ips[0].address
           for i in range(5)}  # a /29 has 6 hosts, one of them the gateway
    assert len(got) == 5
    with pytest.raises(CNIError, match="no free address"):
        plugin.ipam_add(request("ADD", tmp_path, "c9"))


def test_del_releases_and_is_idempotent(tmp_path: Path) -> None:
    plugin.ipam_add(request("ADD", tmp_path))
    plugin.ipam_check(request("CHECK", tmp_path))
    plugin.ipam_del(request("DEL", tmp_path))
    plugin.ipam_del(request("DEL", tmp_path))
    with pytest.raises(CNIError, match="holds no address"):
        plugin.ipam_check(request("CHECK", tmp_path))
    assert plugin.ipam_add(request("ADD", tmp_path, "c2")).ips[0].address == "10.33.0.2/29"


def test_gc_keeps_only_valid_attachments(tmp_path: Path) -> None:
    plugin.ipam_add(request("ADD", tmp_path, "keep"))
    plugin.ipam_add(request("ADD", tmp_path, "stale"))
    plugin.plugin_gc(request("GC", tmp_path, valid=(Attachment("keep", "eth0"),)))
    assert sorted(p.read_text() for p in (tmp_path / "net").iterdir() if p.name != "lock") \\
        == ["keep eth0"]


@pytest.mark.parametrize(("keys", "named"), [
    ({"subnet": "10.0.0.0"}, "CIDR"),
    ({"subnet": 7}, "ipam.subnet"),
    ({"gateway": "192.168.0.1"}, "ipam.gateway"),
])
def test_bad_config_is_code_7_naming_the_key(tmp_path: Path, keys: dict[str, Any],
                                             named: str) -> None:
    with pytest.raises(CNIError) as err:
        plugin.ipam_add(request("ADD", tmp_path, **keys))
    assert err.value.code == 7 and named in str(err.value)


def test_the_entry_point_names_the_type() -> None:
    from importlib.metadata import entry_points

    found = {ep.name: ep.value for ep in entry_points(group="corecni.plugins")}
    assert found.get("$type") == "$package.plugin", "pip install the project first"
'''

_IPAM_INTEGRATION = '''\
"""$type in real namespaces, through corecni's runtime, in-process and exec'd (needs root).

An IPAM plugin is called by an interface plugin: here ``ptp`` (corecni-contrib's
in-process, which calls $type in-process too; or Debian's Go plugin exec'd,
which execs $type's launcher from ``chain_partners``). The container gets the
address $type allocated, and DEL releases it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from corecni.runtime import CNIRuntime
from corecni.spec import NetworkConfigList, RuntimeConf
from corecni.testing import MODES, chain_runtime, ip_json

PARTNERS = ("ptp",)


@pytest.fixture(params=MODES)
def runtime(request: pytest.FixtureRequest, tmp_path: Path, chain_partners: str) -> CNIRuntime:
    """corecni's runtime running $type in-process, then exec'd through its launcher
    (the same test, both roads), in a chain with the PARTNERS."""
    return chain_runtime(request.param, tmp_path, {"$type": "$package.plugin"},
                         chain_partners, needs=PARTNERS)


def network(store: Path) -> NetworkConfigList:
    return NetworkConfigList.from_dict({
        # 1.0.0: the newest version Debian's Go plugins (1.1.1) speak, should they serve
        "cniVersion": "1.0.0", "name": "$package-test",
        "plugins": [{"type": "ptp", "ipam": {"type": "$type", "subnet": "10.78.0.0/24",
                                             "dataDir": str(store)}}],
    })


def test_add_check_del(runtime: CNIRuntime, in_node: str, container_netns: str,
                       tmp_path: Path) -> None:
    net = network(tmp_path / "store")
    rt = RuntimeConf(container_id="ctr1", ifname="eth0", netns=container_netns)
    result = runtime.add_network_list(net, rt)
    assert [ip.address for ip in result.ips] == ["10.78.0.2/24"]
    [eth0] = ip_json(container_netns, "addr", "show", "dev", "eth0")
    assert [a["local"] for a in eth0["addr_info"] if a["family"] == "inet"] == ["10.78.0.2"]
    assert (tmp_path / "store" / "$package-test" / "10.78.0.2").read_text() == "ctr1 eth0"

    runtime.check_network_list(net, rt)

    runtime.del_network_list(net, rt)
    assert not (tmp_path / "store" / "$package-test" / "10.78.0.2").exists()
    runtime.del_network_list(net, rt)  # DEL again: nothing left, still fine
'''

# ---------------------------------------------------------------------------
# meta family: amend what the chain set up, here inside the container's netns
# ---------------------------------------------------------------------------

_META_PLUGIN = '''\
"""$type: a meta (chained) plugin built on ``corecni.kit``.

It comes after an interface plugin in a chain and labels the container's
interface: ADD sets the link's alias (``ip link show`` prints it) inside the
container's namespace through ``request.net``, the link layer corecni hands
in; the result passes on unchanged. DEL clears the alias when it is still
ours, and succeeds when the interface or the namespace is already gone.
CHECK raises when the alias has drifted.

Config keys, beside ``cniVersion``, ``name`` and ``type``:

* ``alias`` (string, optional, default ``"$type <container ID>"``): the label.
"""

from __future__ import annotations

from corecni.kit import (
    CNIError,
    ErrorCode,
    Request,
    Result,
    config_error,
    hookimpl,
    kernel_step,
    netns_gone,
    str_key,
)

#: the kernel's limit for an alias (IFALIASZ, less the terminating NUL)
MAX_ALIAS = 255


def _alias(request: Request) -> str:
    alias = str_key(request.config.raw, "alias") or f"$type {request.container_id}"
    if len(alias.encode()) > MAX_ALIAS:
        raise config_error("alias is too long", f"at most {MAX_ALIAS} bytes")
    return alias


@hookimpl
def meta_add(request: Request, prev_result: Result) -> Result:
    alias = _alias(request)
    net, netns, ifname = request.net, request.netns, request.ifname
    with kernel_step(f"look up {ifname} in {netns}"):
        link = net.link(ifname, netns)
    if link is None:
        raise CNIError(ErrorCode.INVALID_NETWORK_CONFIG, f"no interface {ifname} in {netns}",
                       "$type must come after the plugin that creates the interface")
    with kernel_step(f"set the alias of {ifname}"):
        net.batch(netns).set_link(ifname, alias=alias).commit()
    return prev_result


@hookimpl
def meta_del(request: Request, prev_result: Result | None) -> None:
    """Clear the alias if it is still ours; anything already gone is fine."""
    netns, ifname = request.netns, request.ifname
    if not netns or netns_gone(netns):
        return
    alias = _alias(request)
    with kernel_step(f"look up {ifname} in {netns}"):
        link = request.net.link(ifname, netns)
    if link is not None and link.alias == alias:
        with kernel_step(f"clear the alias of {ifname}"):
            request.net.batch(netns).set_link(ifname, alias="").commit()


@hookimpl
def meta_check(request: Request, prev_result: Result) -> None:
    alias = _alias(request)
    with kernel_step(f"look up {request.ifname} in {request.netns}"):
        link = request.net.link(request.ifname, request.netns)
    if link is None:
        raise CNIError(ErrorCode.INTERNAL, f"interface {request.ifname} is gone")
    if link.alias != alias:
        raise CNIError(ErrorCode.INTERNAL, f"alias of {request.ifname} drifted",
                       f"expected {alias!r}, found {link.alias!r}")
'''

_META_UNIT = '''\
"""Unit tests of $type: the hooks against a recording fake link layer (no root)."""

from __future__ import annotations

from typing import Any

import pytest
from corecni.kit import CNIError, Interface, Request, Result
from corecni.spec import PluginConfig
from corecni.testing.fake_net import CTR, FakeBackend, make_link

from $package import plugin

PREV = Result(interfaces=(Interface(name="eth0", sandbox=CTR),))


def request(command: str, fake: FakeBackend, **keys: Any) -> Request:
    config = PluginConfig.from_dict({"cniVersion": "1.1.0", "name": "net", "type": "$type",
                                     **keys})
    return Request(command, config, container_id="c1", netns=CTR, ifname="eth0",
                   prev_result=PREV, net=fake)


def with_eth0() -> FakeBackend:
    fake = FakeBackend()
    fake.ns(CTR)["eth0"] = make_link("eth0", index=5)
    return fake


def test_add_sets_the_alias_in_the_container_and_passes_the_result_on() -> None:
    fake = with_eth0()
    assert plugin.meta_add(request("ADD", fake), PREV) is PREV
    assert fake.ops("set_link") == [(CTR, "set_link", ("eth0",), {"alias": "$type c1"})]
    assert fake.link("eth0", CTR).alias == "$type c1"
    plugin.meta_check(request("CHECK", fake), PREV)


def test_check_finds_a_drifted_alias() -> None:
    fake = with_eth0()
    plugin.meta_add(request("ADD", fake, alias="web"), PREV)
    with pytest.raises(CNIError, match="drifted"):
        plugin.meta_check(request("CHECK", fake, alias="db"), PREV)


def test_del_clears_only_our_alias_and_is_idempotent() -> None:
    fake = with_eth0()
    plugin.meta_add(request("ADD", fake), PREV)
    plugin.meta_del(request("DEL", fake), None)
    plugin.meta_del(request("DEL", fake), None)
    assert fake.link("eth0", CTR).alias == ""
    fake.ns(CTR).pop("eth0")
    plugin.meta_del(request("DEL", fake), PREV)  # interface gone: fine


def test_a_missing_interface_is_a_config_error() -> None:
    with pytest.raises(CNIError) as err:
        plugin.meta_add(request("ADD", FakeBackend()), PREV)
    assert err.value.code == 7


def test_a_kernel_refusal_is_a_cni_error_naming_the_step() -> None:
    fake = with_eth0()
    fake.refuse[("set_link", "eth0")] = 1  # EPERM
    with pytest.raises(CNIError) as err:
        plugin.meta_add(request("ADD", fake), PREV)
    assert err.value.code == 999 and "set the alias of eth0" in err.value.msg


def test_the_entry_point_names_the_type() -> None:
    from importlib.metadata import entry_points

    found = {ep.name: ep.value for ep in entry_points(group="corecni.plugins")}
    assert found.get("$type") == "$package.plugin", "pip install the project first"
'''

_META_INTEGRATION = '''\
"""$type in real namespaces, through corecni's runtime, in-process and exec'd (needs root).

The chain is ``ptp`` (with ``static`` IPAM) then $type: corecni-contrib's
plugins in-process, or Debian's Go plugins exec'd from ``chain_partners``. $type runs
in-process and labels the container's eth0 inside its namespace.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from corecni.kit import CNIError
from corecni.runtime import CNIRuntime
from corecni.spec import NetworkConfigList, RuntimeConf
from corecni.testing import MODES, chain_runtime, ip_json, ns_name

PARTNERS = ("ptp", "static")


@pytest.fixture(params=MODES)
def runtime(request: pytest.FixtureRequest, tmp_path: Path, chain_partners: str) -> CNIRuntime:
    """corecni's runtime running $type in-process, then exec'd through its launcher
    (the same test, both roads), in a chain with the PARTNERS."""
    return chain_runtime(request.param, tmp_path, {"$type": "$package.plugin"},
                         chain_partners, needs=PARTNERS)


def network() -> NetworkConfigList:
    return NetworkConfigList.from_dict({
        # 1.0.0: the newest version Debian's Go plugins (1.1.1) speak, should they serve
        "cniVersion": "1.0.0", "name": "$package-test",
        "plugins": [
            {"type": "ptp", "ipam": {"type": "static", "addresses": [
                {"address": "10.79.0.5/24", "gateway": "10.79.0.1"}]}},
            {"type": "$type", "alias": "web frontend"},
        ],
    })


def alias(netns: str) -> str:
    [link] = ip_json(netns, "link", "show", "dev", "eth0")
    return str(link.get("ifalias", ""))


def test_add_check_del(runtime: CNIRuntime, in_node: str, container_netns: str) -> None:
    rt = RuntimeConf(container_id="ctr1", ifname="eth0", netns=container_netns)
    result = runtime.add_network_list(network(), rt)
    assert [ip.address for ip in result.ips] == ["10.79.0.5/24"]  # passed on unchanged
    assert alias(container_netns) == "web frontend"

    runtime.check_network_list(network(), rt)
    subprocess.run(["ip", "-n", ns_name(container_netns), "link", "set", "eth0",
                    "alias", "changed"], check=True)
    with pytest.raises(CNIError, match="drifted"):
        runtime.check_network_list(network(), rt)

    runtime.del_network_list(network(), rt)
    assert not [link for link in ip_json(container_netns, "link", "show")
                if link["ifname"] == "eth0"]
    runtime.del_network_list(network(), rt)  # DEL again: nothing left, still fine
'''

_TEMPLATES: dict[str, dict[str, str]] = {
    "interface": {"plugin.py": _INTERFACE_PLUGIN, "test_unit.py": _INTERFACE_UNIT,
                  "test_integration.py": _INTERFACE_INTEGRATION, "partner": "static"},
    "ipam": {"plugin.py": _IPAM_PLUGIN, "test_unit.py": _IPAM_UNIT,
             "test_integration.py": _IPAM_INTEGRATION, "partner": "ptp"},
    "meta": {"plugin.py": _META_PLUGIN, "test_unit.py": _META_UNIT,
             "test_integration.py": _META_INTEGRATION, "partner": "ptp, static"},
}

_TITLES = {"interface": "An interface", "ipam": "An IPAM", "meta": "A meta (chained)"}


@attrs.frozen
class Project:
    """The names of one generated project, all derived from the CNI type."""

    type: str
    family: str

    @property
    def package(self) -> str:
        """The import package: the type with ``-`` and ``.`` as ``_``."""
        return re.sub(r"[-.]", "_", self.type).lower()

    @property
    def dist(self) -> str:
        return self.type

    def substitutions(self) -> dict[str, str]:
        partner = _TEMPLATES[self.family]["partner"]
        return {"type": self.type, "family": self.family, "package": self.package,
                "dist": self.dist, "title": _TITLES[self.family],
                "partner_note": Template(_PARTNER_NOTE).substitute(partner=partner)}

    def files(self) -> dict[str, str]:
        """Relative path -> content of every file of the project."""
        templates = _TEMPLATES[self.family]
        layout = {
            "pyproject.toml": _PYPROJECT,
            "README.md": _README,
            f"{self.package}/__init__.py": _INIT,
            f"{self.package}/plugin.py": templates["plugin.py"],
            "tests/test_unit.py": templates["test_unit.py"],
            "tests/test_integration.py": templates["test_integration.py"],
        }
        subs = self.substitutions()
        return {path: Template(text).substitute(subs) for path, text in layout.items()}


def project(name: str, family: str) -> Project:
    """Validate ``name`` (a CNI type that is also a Python package once ``-`` becomes ``_``)."""
    if family not in FAMILIES:
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT, f"unknown plugin family {family!r}",
                       f"choose one of {', '.join(FAMILIES)}")
    validate_plugin_type(name)
    proj = Project(type=name, family=family)
    if not proj.package.isidentifier() or keyword.iskeyword(proj.package) \
            or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT, f"cannot make a package of {name!r}",
                       "use letters, digits, '-' and '_', starting with a letter")
    return proj


def generate(name: str, family: str, directory: str | os.PathLike[str] = ".") -> Path:
    """Write the project for plugin ``name`` into ``<directory>/<name>``; return that path.

    Refuses (code 4) when the target exists and is not empty: nothing of the
    author's is ever overwritten.
    """
    proj = project(name, family)
    root = Path(directory) / name
    if root.exists() and any(root.iterdir()):
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT, f"{root} exists and is not empty",
                       "choose another --dir or name")
    for rel, content in proj.files().items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root
