"""Meta test plugin: adds ``option`` to the result's DNS options."""

from __future__ import annotations

import attrs

from corecni.hookspecs import hookimpl
from corecni.plugin import Request
from corecni.spec.result import Result
from tests.plugins._log import maybe_fail, record


@hookimpl
def meta_add(request: Request, prev_result: Result) -> Result:
    record(request, "dns-meta")
    maybe_fail(request, "dns-meta")
    option = str(request.config.raw.get("option", "ndots:2"))
    dns = attrs.evolve(prev_result.dns, options=(*prev_result.dns.options, option))
    return attrs.evolve(prev_result, dns=dns)


@hookimpl
def meta_del(request: Request, prev_result: Result | None) -> None:
    record(request, "dns-meta")
    maybe_fail(request, "dns-meta")


@hookimpl
def meta_check(request: Request, prev_result: Result) -> None:
    record(request, "dns-meta")
    maybe_fail(request, "dns-meta")


@hookimpl
def plugin_supported_versions() -> list[str]:
    return ["0.4.0", "1.0.0", "1.1.0"]
