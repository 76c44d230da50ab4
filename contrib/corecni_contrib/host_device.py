"""host-device: move an existing node device into the container, and back on DEL.

Config keys follow containernetworking/plugins' ``host-device`` (Debian ships
1.1.1). The device is named by exactly the first of:

* ``device`` - its name in the node namespace;
* ``hwaddr`` - its MAC address;
* ``kernelpath`` - its sysfs device path (``/sys/devices/...``);
* ``pciBusID`` - its PCI address (``0000:00:1f.6``); the ``deviceID``
  capability (``runtimeConfig.deviceID``) overrides it, as in Go. A PCI
  device bound to a userspace (DPDK) driver has no netdev: nothing is moved
  and IPAM, if any, is only reported, not configured.

``ipam`` is optional; ``dns`` goes into the result when IPAM runs (Go's
no-IPAM result carries only the interface).

The device's node name is kept in its link alias while it is in the container
- that is how Go's DEL knows what to rename it back to, so both
implementations can undo each other's ADD. It is renamed to a temporary name
before each namespace move, so neither side needs its final name to be free
in the other namespace.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator

import attrs

from corecni import kit
from corecni.kit import Request, hookimpl
from corecni.net import Link, NetBackend, NetError
from corecni.spec.errors import CNIError, ErrorCode
from corecni.spec.result import DNS, Interface, Result
from corecni.spec.version import CURRENT

SYS_BUS_PCI = "/sys/bus/pci/devices"
#: drivers that take a NIC away from the kernel (Go's list)
USERSPACE_DRIVERS = ("vfio-pci", "uio_pci_generic", "igb_uio")


def _normal_mac(value: str) -> str:
    return kit.parse_mac(value, "hwaddr") if value else ""


def _check_kernelpath(_: object, __: attrs.Attribute[str], value: str) -> None:
    if value and not (os.path.isabs(value) and value.startswith("/sys/devices/")):
        raise kit.config_error(f"kernel device path {value!r} must be absolute and begin "
                               "with /sys/devices/")


@attrs.frozen
class HostDeviceConfig:
    """The plugin's view of its config; invalid values fail with code 7 on creation."""

    device: str = ""
    hwaddr: str = attrs.field(default="", converter=_normal_mac)
    kernelpath: str = attrs.field(default="", validator=_check_kernelpath)
    pci_bus_id: str = ""
    ipam_type: str = ""
    dns: DNS = attrs.Factory(DNS)

    def __attrs_post_init__(self) -> None:
        if not (self.device or self.hwaddr or self.kernelpath or self.pci_bus_id):
            raise kit.config_error('specify either "device", "hwaddr", "kernelpath" or '
                                   '"pciBusID"')

    @classmethod
    def from_request(cls, request: Request) -> HostDeviceConfig:
        raw = request.config.raw
        pci = kit.str_key(request.config.runtime_config, "deviceID") or \
            kit.str_key(raw, "pciBusID")
        return cls(device=kit.str_key(raw, "device"), hwaddr=kit.str_key(raw, "hwaddr"),
                   kernelpath=kit.str_key(raw, "kernelpath"), pci_bus_id=pci,
                   ipam_type=kit.ipam_type(raw), dns=kit.dns_key(raw))

    def dpdk_mode(self, sys_bus_pci: str = SYS_BUS_PCI) -> bool:
        return bool(self.pci_bus_id) and has_dpdk_driver(self.pci_bus_id, sys_bus_pci)


def has_dpdk_driver(pci: str, sys_bus_pci: str = SYS_BUS_PCI) -> bool:
    """Whether the PCI device is bound to a userspace driver; code 7 if it has no driver."""
    link = os.path.join(sys_bus_pci, pci, "driver")
    if not os.path.exists(link):
        raise kit.config_error(f"error with host device: PCI device {pci} has no driver",
                               f"{link} does not exist")
    return os.path.basename(os.path.realpath(link)) in USERSPACE_DRIVERS


def _not_found(what: str, details: str) -> CNIError:
    return kit.config_error(f"failed to find host device {what}", details)


def device_names(conf: HostDeviceConfig, sys_bus_pci: str = SYS_BUS_PCI) -> list[str]:
    """Candidate device names from sysfs for ``kernelpath`` / ``pciBusID``, in order."""
    if conf.kernelpath:
        net_dir = os.path.join(conf.kernelpath, "net")
    else:
        net_dir = os.path.join(sys_bus_pci, conf.pci_bus_id, "net")
        if not os.path.lexists(net_dir):  # virtio NICs sit one level down
            import glob

            found = sorted(glob.glob(os.path.join(glob.escape(sys_bus_pci),
                                                  glob.escape(conf.pci_bus_id), "virtio*", "net")))
            if not found:
                raise _not_found(f"for PCI device {conf.pci_bus_id}",
                                 f"no net directory under {os.path.dirname(net_dir)}")
            net_dir = found[0]
    try:
        return sorted(os.listdir(net_dir))
    except OSError as exc:
        raise _not_found(f"at {net_dir}", exc.strerror or str(exc)) from None


def find_host_device(backend: NetBackend, conf: HostDeviceConfig,
                     sys_bus_pci: str = SYS_BUS_PCI) -> Link:
    """The device in the node namespace, by the first key set (Go's order)."""
    with kit.kernel_step("list node links"):
        links = backend.links(None)
    if conf.device:
        wanted, what = [conf.device], f'"{conf.device}"'
    elif conf.hwaddr:
        wanted = [link.name for link in links if link.mac == conf.hwaddr]
        what = f"with hwaddr {conf.hwaddr}"
    else:
        wanted = device_names(conf, sys_bus_pci)
        what = f"at {conf.kernelpath}" if conf.kernelpath else f"for PCI device {conf.pci_bus_id}"
    by_name = {link.name: link for link in links}
    for name in wanted:
        if name in by_name:
            return by_name[name]
    raise _not_found(what, "no such link in the node namespace")


@contextlib.contextmanager
def node_netns_path() -> Iterator[str]:
    """A path naming the namespace this plugin runs in (the node's) while held.

    ``/proc/thread-self/ns/net`` itself would name whichever namespace the opening
    thread is in at that moment; an fd opened now keeps naming this one.
    """
    fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def _restore_on_node(backend: NetBackend, name: str, dev: Link) -> None:
    """Best effort after a failed ADD: the device back under its name, alias and state."""
    with contextlib.suppress(Exception):
        if backend.link(name) is not None:
            backend.batch(None).set_link(name, rename=dev.name if name != dev.name else None,
                                         alias=dev.alias, up=True if dev.up else None).commit()


def move_in(backend: NetBackend, dev: Link, netns: str, ifname: str, node: str) -> None:
    """Node device -> container as ``ifname``, up, its node name kept in the alias."""
    tmp = kit.temp_link_name()
    try:
        backend.batch(None).set_link(dev.name, rename=tmp, alias=dev.name, netns=netns).commit()
    except NetError as exc:
        _restore_on_node(backend, tmp, dev)
        raise kit.net_failure(f"failed to move {dev.name} into {netns}", exc) from None
    try:
        backend.batch(netns).set_link(tmp, rename=ifname, up=True).commit()
    except NetError as exc:
        with contextlib.suppress(Exception):
            backend.batch(netns).set_link(tmp, netns=node).commit()
        _restore_on_node(backend, tmp, dev)
        if exc.errno == errno.EEXIST:
            raise CNIError(ErrorCode.INVALID_ENVIRONMENT,
                           f"interface {ifname} already exists in the container",
                           str(exc)) from None
        raise kit.net_failure(f"failed to rename {dev.name} to {ifname}", exc) from None


def move_out(backend: NetBackend, netns: str, ifname: str, original: str, node: str) -> None:
    """Container ``ifname`` -> node device ``original``, alias cleared, left down (its
    state before the ADD is unknown, as Go says)."""
    tmp = kit.temp_link_name()
    with kit.kernel_step(f"failed to move {ifname} out of {netns}"):
        backend.batch(netns).set_link(ifname, rename=tmp, netns=node).commit()
    with kit.kernel_step(f"failed to restore {tmp} (alias {original}) to its name"):
        backend.batch(None).set_link(tmp, rename=original, alias="").commit()


@contextlib.contextmanager
def _moved_back_on_failure(backend: NetBackend, netns: str, ifname: str, dev: Link,
                           node: str) -> Iterator[None]:
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            move_out(backend, netns, ifname, dev.name, node)
        _restore_on_node(backend, dev.name, dev)
        raise


def _add_dpdk(request: Request, conf: HostDeviceConfig) -> Result:
    """A userspace-driver device: nothing to move or configure, only report."""
    iface = Interface(name=request.ifname, sandbox=request.netns)
    if not conf.ipam_type:
        return Result(cni_version=CURRENT, interfaces=(iface,))
    addressing = request.ipam_add()
    with kit.ipam_released_on_failure(request):
        kit.require_ips(addressing)
        return kit.attached_result(iface, addressing, conf.dns)


@hookimpl
def cni_add(request: Request) -> Result:
    conf = HostDeviceConfig.from_request(request)
    if conf.dpdk_mode():
        return _add_dpdk(request, conf)
    netns, ifname = request.netns, request.ifname
    backend = request.net
    dev = find_host_device(backend, conf)
    kit.ensure_ifname_free(backend, netns, ifname)
    with node_netns_path() as node:
        move_in(backend, dev, netns, ifname, node)
        with _moved_back_on_failure(backend, netns, ifname, dev, node):
            with kit.kernel_step(f"read back {ifname}"):
                link = backend.link(ifname, netns)
            iface = Interface(name=ifname, mac=link.mac if link else "", sandbox=netns)
            if not conf.ipam_type:
                return Result(cni_version=CURRENT, interfaces=(iface,))
            addressing = request.ipam_add()
            with kit.ipam_released_on_failure(request):
                kit.require_ips(addressing)
                result = kit.attached_result(iface, addressing, conf.dns)
                kit.configure_iface(backend, netns, ifname, result)
                return result


@hookimpl
def cni_del(request: Request) -> None:
    """Release IPAM, then move the device back if it is still in the container.

    Unlike Go, nothing here is an error when there is nothing to undo (no netns, the
    netns gone - a virtual device dies with it, a physical one returns to the initial
    namespace by itself - no such link, or a link without the alias, i.e. not ours),
    so DEL is idempotent.
    """
    kit.release_ipam(request)
    netns, ifname = request.netns, request.ifname
    if not netns or kit.netns_gone(netns):
        return
    backend = request.net
    try:
        link = backend.link(ifname, netns)
        if link is None or not link.alias:
            return
        taken = backend.link(link.alias) is not None
    except NetError as exc:
        if exc.errno == errno.ENOENT:
            return
        raise kit.net_failure(f"look up {ifname} in {netns}", exc) from None
    if taken:
        raise CNIError(ErrorCode.INTERNAL, f"cannot move {ifname} back: {link.alias!r} "
                       "already exists in the node namespace")
    with node_netns_path() as node:
        move_out(backend, netns, ifname, link.alias, node)


@hookimpl
def cni_check(request: Request) -> None:
    conf = HostDeviceConfig.from_request(request)
    if conf.ipam_type:
        request.ipam_check()
    if conf.dpdk_mode():
        if request.prev_result is None:
            raise kit.config_error("required prevResult missing")
        return
    prev, iface = kit.prev_container_interface(request)
    backend = request.net
    kit.check_container_link(backend, request, iface, None)
    kit.check_iface(backend, request.netns, request.ifname, prev)


@hookimpl
def plugin_status(request: Request) -> None:
    kit.ipam_status(request)
