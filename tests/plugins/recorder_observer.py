"""An observer that wraps every add hook and records what it saw."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from corecni.hookspecs import hookimpl


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    @hookimpl(wrapper=True)
    def ipam_add(self, request: Any) -> Generator[None, Any, Any]:
        self.seen.append(("before", request.command))
        result = yield
        self.seen.append(("after", type(result).__name__))
        return result

    @hookimpl(wrapper=True)
    def cni_add(self, request: Any) -> Generator[None, Any, Any]:
        self.seen.append(("before", request.command))
        result = yield
        self.seen.append(("after", type(result).__name__))
        return result
