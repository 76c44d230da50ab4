"""The ``ipam`` section of a ``dhcp`` network, read as Go's plugin reads it.

Go's keys (plugins ``plugins/ipam/dhcp/main.go``): ``daemonSocketPath``
(default ``/run/cni/dhcp.sock``), ``request`` (``[{"option", "skipDefault"}]``:
the parameter request list; routers and subnet mask are always asked for
unless an entry says ``skipDefault``), ``provide`` (``[{"option", "value",
"fromArg"}]``: options the client sends, a literal value or a CNI_ARGS key's
value), ``priority`` (metric of the returned routes). An option is a name
from Go's table or a decimal code.

corecni adds two keys Go has only as flags of its daemon (so they apply to
every network there): ``timeout`` (how long ADD waits for a lease: seconds, or
a Go duration such as ``"10s"``; default 10) and ``broadcast`` (set the BOOTP
broadcast flag, for servers or relays that cannot unicast to an unconfigured
client).

Every bad value is CNI error 7 naming its key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs

from corecni.kit import Request, bool_key, config_error, dict_key, int_key, list_key, str_key
from corecni_contrib.dhcp import codec
from corecni_contrib.dhcp.client import DEFAULT_REQUEST
from corecni_contrib.dhcp.protocol import DEFAULT_SOCKET

#: Go's ``optionNameToID``
OPTION_NAMES = {
    "dhcp-client-identifier": codec.OPT_CLIENT_ID,
    "subnet-mask": codec.OPT_SUBNET_MASK,
    "routers": codec.OPT_ROUTER,
    "host-name": codec.OPT_HOST_NAME,
    "user-class": codec.OPT_USER_CLASS,
    "vendor-class-identifier": codec.OPT_VENDOR_CLASS,
}
DEFAULT_TIMEOUT = 10.0
#: under ``corecni daemon`` a call has 120 s (``--timeout``): stay well inside it
MAX_TIMEOUT = 100.0
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_option(value: Any, label: str) -> int:
    """A DHCP option named as Go names it (its table, or a code 1-254)."""
    if not isinstance(value, str) or not value:
        raise config_error(f"{label} must be an option name or code", repr(value))
    if value in OPTION_NAMES:
        return OPTION_NAMES[value]
    if not value.isdigit() or not 1 <= int(value) <= 254:
        raise config_error(f"Can not parse option {value!r} in {label}",
                           f"an option is one of {sorted(OPTION_NAMES)} or a code 1-254")
    return int(value)


def parse_timeout(value: Any, label: str = "ipam.timeout") -> float:
    if value is None:
        return DEFAULT_TIMEOUT
    seconds: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds is None or not 0 < seconds <= MAX_TIMEOUT:
        raise config_error(f"{label} must be a number of seconds or a duration such as "
                           f'"10s", in (0, {MAX_TIMEOUT:g}s]', repr(value))
    return seconds


@attrs.frozen
class DhcpConfig:
    socket_path: str = DEFAULT_SOCKET
    request: tuple[int, ...] = DEFAULT_REQUEST
    provide: Mapping[int, bytes] = attrs.field(factory=dict)
    priority: int = 0
    timeout: float = DEFAULT_TIMEOUT
    broadcast: bool = False

    @classmethod
    def from_request(cls, request: Request) -> DhcpConfig:
        raw = request.config.raw
        if raw.get("ipam") is None:
            raise config_error("IPAM config missing 'ipam' key")
        ipam = dict_key(raw, "ipam", "'ipam'")
        socket_path = str_key(ipam, "daemonSocketPath", "ipam.daemonSocketPath") \
            or DEFAULT_SOCKET
        if not socket_path.startswith("/"):
            raise config_error("ipam.daemonSocketPath must be an absolute path", socket_path)
        return cls(socket_path=socket_path,
                   request=_request_list(list_key(ipam, "request", "ipam.request")),
                   provide=_provide(list_key(ipam, "provide", "ipam.provide"), request),
                   priority=int_key(ipam, "priority", "ipam.priority"),
                   timeout=parse_timeout(ipam.get("timeout")),
                   broadcast=bool_key(ipam, "broadcast", "ipam.broadcast"))

    def wire_options(self) -> dict[str, Any]:
        """The client options as the lease service reads them."""
        return {"request": list(self.request),
                "provide": {str(k): v.hex() for k, v in self.provide.items()},
                "broadcast": self.broadcast, "timeout": self.timeout}


def _entry(item: Any, label: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise config_error(f"{label} must be an object", repr(item))
    return item


def _request_list(items: list[Any]) -> tuple[int, ...]:
    codes: list[int] = []
    skip_default = False
    for i, item in enumerate(items):
        entry = _entry(item, f"ipam.request[{i}]")
        if bool_key(entry, "skipDefault", f"ipam.request[{i}].skipDefault"):
            skip_default = True
        name = str_key(entry, "option", f"ipam.request[{i}].option")
        if name:
            code = parse_option(name, f"ipam.request[{i}].option")
            if code not in codes:
                codes.append(code)
    if not skip_default:
        codes.extend(c for c in DEFAULT_REQUEST if c not in codes)
    return tuple(codes)


def _provide(items: list[Any], request: Request) -> dict[int, bytes]:
    """Go's ``prepareOptions``: a literal ``value``, then ``fromArg`` (a CNI_ARGS key)
    overriding it when the runtime sent that key; at most 255 bytes each."""
    out: dict[int, bytes] = {}
    for i, item in enumerate(items):
        entry = _entry(item, f"ipam.provide[{i}]")
        label = f"ipam.provide[{i}]"
        code = parse_option(entry.get("option"), f"{label}.option")
        value = str_key(entry, "value", f"{label}.value")
        from_arg = str_key(entry, "fromArg", f"{label}.fromArg")
        if value:
            if len(value.encode()) > 255:
                raise config_error(f"value too long for option {entry['option']!r} "
                                   f"({label}.value)", value)
            out[code] = value.encode()
        if from_arg and from_arg in request.args_dict:
            arg = request.arg(from_arg)
            if len(arg.encode()) > 255:
                raise config_error(f"value too long for option {entry['option']!r} from "
                                   f"CNI_ARGS {from_arg!r} ({label}.fromArg)", arg)
            out[code] = arg.encode()
    return out
