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

_SEMVER = re.compile(r"([0-9]+)\.([0-9]+)\.([0-9]+)")  # ASCII digits, fullmatch


def parse(version: str) -> tuple[int, int, int]:
    match = _SEMVER.fullmatch(version) if isinstance(version, str) else None
    if match is None:
        raise CNIError(ErrorCode.INCOMPATIBLE_VERSION, "invalid CNI version", repr(version))
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch)


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
        """Read a VERSION answer; a bare 0.1.0-era answer implies only 0.1.0/0.2.0."""
        if not isinstance(data, dict):
            raise CNIError(ErrorCode.DECODING_FAILURE, "VERSION answer is not a JSON object")
        cni_version = data.get("cniVersion", "")
        supported = data.get("supportedVersions")
        if supported is None:
            # Plugins of spec 0.1.0 answer without supportedVersions (libcni: PluginSupports).
            supported = ["0.1.0"] if cni_version in ("", "0.1.0") else [cni_version]
            if cni_version == "0.2.0":
                supported = ["0.1.0", "0.2.0"]
        if not isinstance(supported, list) or not all(isinstance(v, str) for v in supported):
            raise CNIError(ErrorCode.DECODING_FAILURE, "VERSION answer has a bad supportedVersions")
        return cls(cni_version=str(cni_version), supported_versions=tuple(supported))
