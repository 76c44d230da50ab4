"""``example-tune``: a meta plugin that tunes the container interface of the chain.

Chained after an interface plugin, it sets ``mtu`` and ``alias`` (both
optional config keys) on CNI_IFNAME inside CNI_NETNS and passes the previous
result on unchanged; CHECK verifies both. DEL has nothing to undo: the
interface goes with its plugin. Only ``corecni.kit`` is imported.
"""

from __future__ import annotations

from corecni.kit import (
    CNIError,
    ErrorCode,
    Request,
    Result,
    hookimpl,
    int_key,
    kernel_step,
    str_key,
)


def _wanted(request: Request) -> tuple[int, str]:
    raw = request.config.raw
    return int_key(raw, "mtu"), str_key(raw, "alias")


@hookimpl
def meta_add(request: Request, prev_result: Result) -> Result:
    mtu, alias = _wanted(request)
    if mtu or alias:
        batch = request.net.batch(request.netns)
        batch.set_link(request.ifname, mtu=mtu or None, alias=alias or None)
        with kernel_step(f"tune {request.ifname} in {request.netns}"):
            batch.commit()
    return prev_result


@hookimpl
def meta_del(request: Request, prev_result: Result | None) -> None:
    """Nothing to undo (and nothing may fail): the interface leaves with its plugin."""


@hookimpl
def meta_check(request: Request, prev_result: Result) -> None:
    mtu, alias = _wanted(request)
    with kernel_step(f"look up {request.ifname} in {request.netns}"):
        link = request.net.link(request.ifname, request.netns)
    if link is None:
        raise CNIError(ErrorCode.INTERNAL, f"{request.ifname} not found in {request.netns}")
    if mtu and link.mtu != mtu:
        raise CNIError(ErrorCode.INTERNAL, f"{request.ifname} has MTU {link.mtu}, want {mtu}")
    if alias and link.alias != alias:
        raise CNIError(ErrorCode.INTERNAL,
                       f"{request.ifname} has alias {link.alias!r}, want {alias!r}")
