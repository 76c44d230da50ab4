"""CNI spec versions: which exist, how they order, and VERSION answers."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from corecni.spec.errors import CNIError, ErrorCode

CURRENT = "1.1.0"
#: Every version corecni reads and writes, oldest first.
SUPPORTED: tuple[str, ...] = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

_PART = re.compile(r"[+-]?[0-9]+")  # Go's strconv.Atoi: optional sign, ASCII digits


def parse(version: str) -> tuple[int, int, int]:
    """Go's ``version.ParseVersion``: one to three dot-separated integers, the missing
    ones 0 (``"1.2"`` is 1.2.0), and ``""`` is 0.1.0 (no version declared)."""
    if not isinstance(version, str):
        raise CNIError(ErrorCode.INCOMPATIBLE_VERSION, "invalid CNI version", repr(version))
    if version == "":
        return 0, 1, 0
    parts = version.split(".")
    if len(parts) > 3 or not all(_PART.fullmatch(p) for p in parts):
        raise CNIError(ErrorCode.INCOMPATIBLE_VERSION, "invalid CNI version", repr(version))
    major, minor, patch = ([int(p) for p in parts] + [0, 0])[:3]
    return major, minor, patch


def greater_than(version: str, other: str) -> bool:
    return parse(version) > parse(other)


def at_least(version: str, floor: str) -> bool:
    return parse(version) >= parse(floor)


def require_supported(version: str, supported: Sequence[str] = SUPPORTED) -> str:
    if version not in supported:
        parse(version)  # a malformed version gets its own message
        raise CNIError(
            ErrorCode.INCOMPATIBLE_VERSION,
            "incompatible CNI version",
            f"config version {version!r} is not one of {', '.join(supported)}",
        )
    return version


def highest_supported(candidates: Iterable[str], supported: Sequence[str] = SUPPORTED) -> str:
    """The ``cniVersions`` rule of SPEC 1.1.0: pick the newest version we support."""
    candidates = list(candidates)
    usable = [v for v in candidates if isinstance(v, str) and v in supported]
    if not usable:
        raise CNIError(
            ErrorCode.INCOMPATIBLE_VERSION,
            "incompatible CNI version",
            f"none of {list(candidates)} is supported (supported: {', '.join(supported)})",
        )
    return max(usable, key=parse)


@attrs.frozen
class VersionInfo:
    """What a plugin answers to VERSION."""

    cni_version: str
    supported_versions: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"cniVersion": self.cni_version, "supportedVersions": list(self.supported_versions)}

    @classmethod
    def from_dict(cls, data: Any) -> VersionInfo:
        """Read a VERSION answer as libcni's ``PluginDecoder``: ``cniVersion`` is required;
        ``supportedVersions`` too, except that a 0.2.0 answer without it means 0.1.0 and
        0.2.0. Versions are kept verbatim (``"1.2"`` stays ``"1.2"``)."""
        if not isinstance(data, dict):
            raise CNIError(ErrorCode.DECODING_FAILURE, "VERSION answer is not a JSON object")
        cni_version = data.get("cniVersion")
        if not isinstance(cni_version, str):
            if cni_version is not None:
                raise CNIError(ErrorCode.DECODING_FAILURE, "decoding version info",
                               "cniVersion must be a string")
            cni_version = ""
        supported = data.get("supportedVersions")
        if supported is not None and (not isinstance(supported, list)
                                      or not all(isinstance(v, str) for v in supported)):
            raise CNIError(ErrorCode.DECODING_FAILURE, "VERSION answer has a bad supportedVersions")
        if not cni_version:
            raise CNIError(ErrorCode.DECODING_FAILURE, "decoding version info",
                           "missing field cniVersion")
        if not supported:
            if cni_version == "0.2.0":
                return cls(cni_version=CURRENT, supported_versions=("0.1.0", "0.2.0"))
            raise CNIError(ErrorCode.DECODING_FAILURE, "decoding version info",
                           "missing field supportedVersions")
        return cls(cni_version=cni_version, supported_versions=tuple(supported))
