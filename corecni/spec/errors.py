"""CNI errors: one exception type carrying the spec's error code.

Every failure inside corecni that a runtime or plugin caller may see is a
``CNIError``. It is turned into the spec's error JSON at exactly one place on
each side: ``skel`` (plugin side, stdout + exit 1) and the CLI (runtime side,
one line on stderr). Code ranges follow SPEC.md 1.1.0: 1-99 are the spec's
own, 100+ belong to plugins; 999 is libcni's "internal" catch-all, kept so Go
runtimes see the code they expect for an unexpected failure.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ErrorCode(IntEnum):
    INCOMPATIBLE_VERSION = 1
    UNSUPPORTED_FIELD = 2
    UNKNOWN_CONTAINER = 3
    INVALID_ENVIRONMENT = 4
    IO_FAILURE = 5
    DECODING_FAILURE = 6
    INVALID_NETWORK_CONFIG = 7
    TRY_AGAIN_LATER = 11
    PLUGIN_NOT_AVAILABLE = 50
    LIMITED_CONNECTIVITY = 51
    INTERNAL = 999


class CNIError(Exception):
    """A spec error: ``code``, ``msg`` and optional ``details``.

    ``plugin`` (when set) names the plugin a runtime-side error came from, so a
    failing chain says which link broke.
    """

    def __init__(self, code: int, msg: str, details: str = "", *, plugin: str = "") -> None:
        super().__init__(msg)
        self.code = int(code)
        self.msg = msg
        self.details = details
        self.plugin = plugin

    def __str__(self) -> str:
        text = self.msg
        if self.details:
            text += f": {self.details}"
        if self.plugin:
            text = f"plugin {self.plugin}: {text}"
        return text

    def __repr__(self) -> str:
        return f"CNIError(code={self.code}, msg={self.msg!r}, details={self.details!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CNIError):
            return NotImplemented
        return (self.code, self.msg, self.details) == (other.code, other.msg, other.details)

    def __hash__(self) -> int:
        return hash((self.code, self.msg, self.details))

    def with_plugin(self, plugin: str) -> CNIError:
        return CNIError(self.code, self.msg, self.details, plugin=plugin)

    def to_dict(self, cni_version: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if cni_version:
            out["cniVersion"] = cni_version
        out["code"] = self.code
        out["msg"] = self.msg
        if self.details:
            out["details"] = self.details
        return out

    @classmethod
    def from_dict(cls, data: Any) -> CNIError:
        """Parse a plugin's error JSON; refuse anything that is not one."""
        if not isinstance(data, dict):
            raise ValueError("error JSON is not an object")
        code = data.get("code")
        msg = data.get("msg")
        if not isinstance(code, int) or isinstance(code, bool):
            raise ValueError("error JSON has no integer 'code'")
        if not isinstance(msg, str):
            raise ValueError("error JSON has no string 'msg'")
        details = data.get("details", "")
        return cls(code, msg, details if isinstance(details, str) else str(details))


def invalid_config(msg: str, details: str = "") -> CNIError:
    return CNIError(ErrorCode.INVALID_NETWORK_CONFIG, msg, details)


def decoding_failure(msg: str, details: str = "") -> CNIError:
    return CNIError(ErrorCode.DECODING_FAILURE, msg, details)
