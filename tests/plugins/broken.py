"""Plugins that must fail at load, each for its own reason."""

from __future__ import annotations

from corecni.hookspecs import hookimpl
from corecni.plugin import Request
from corecni.spec.result import Result


class MissingHooks:
    @hookimpl
    def cni_add(self, request: Request) -> Result:
        return Result()


class MixedFamilies:
    @hookimpl
    def cni_add(self, request: Request) -> Result:
        return Result()

    @hookimpl
    def cni_del(self, request: Request) -> None: ...

    @hookimpl
    def cni_check(self, request: Request) -> None: ...

    @hookimpl
    def ipam_add(self, request: Request) -> Result:
        return Result()


class BadSignature:
    @hookimpl
    def ipam_add(self, req: Request) -> Result:
        return Result()

    @hookimpl
    def ipam_del(self, request: Request) -> None: ...

    @hookimpl
    def ipam_check(self, request: Request) -> None: ...


class UnknownHook:
    @hookimpl
    def ipam_add(self, request: Request) -> Result:
        return Result()

    @hookimpl
    def ipam_del(self, request: Request) -> None: ...

    @hookimpl
    def ipam_check(self, request: Request) -> None: ...

    @hookimpl
    def ipam_frobnicate(self, request: Request) -> None: ...


class NoResult:
    @hookimpl
    def ipam_add(self, request: Request) -> None:
        return None

    @hookimpl
    def ipam_del(self, request: Request) -> None: ...

    @hookimpl
    def ipam_check(self, request: Request) -> None: ...
