"""Config keys read the way Go's ``json.Unmarshal`` reads them, for every plugin here.

An absent or null key is the zero value of its field; a key of another JSON
type is a config error (code 7) naming the key and showing the value. The
interface plugins (through ``_iface``) and the IPAM plugins (through
``_ipam_common``) label keys differently (``'mtu'`` there, ``ipam.subnet``
here), but the rule and the error codes are these, once.

Kept import-light on purpose: an exec'd plugin pays for every module here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from corecni.spec.errors import CNIError, ErrorCode
from corecni.spec.result import DNS

T = TypeVar("T")

#: how an error names the JSON type a key must have
_JSON_TYPES: dict[type, str] = {str: "a string", int: "an integer", bool: "a boolean",
                                list: "a list", dict: "a JSON object"}


def config_error(msg: str, details: str = "") -> CNIError:
    """Code 7: the network configuration (or what the runtime asked for) cannot be served."""
    return CNIError(ErrorCode.INVALID_NETWORK_CONFIG, msg, details)


def optional(obj: Mapping[str, Any], key: str, kind: type[T], zero: T, label: str) -> T:
    """``obj[key]`` as a Go field of type ``kind``: ``zero`` when absent or null, code 7
    ("<label> must be a string", ...) when of another type. A JSON boolean is not an
    integer (Go refuses it), though Python's ``bool`` is an ``int``."""
    value = obj.get(key)
    if value is None:
        return zero
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise config_error(f"{label} must be {_JSON_TYPES[kind]}", repr(value)[:200])
    return value


def parse_dns(value: Any, label: str) -> DNS:
    """A ``dns`` object; a malformed one is code 7 saying which (``label``)."""
    try:
        return DNS.from_dict(value)
    except CNIError as exc:
        raise config_error(f"invalid {label}: {exc.msg}", exc.details) from None
