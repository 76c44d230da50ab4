"""IPAM delegation around an interface plugin's ADD, DEL, CHECK, STATUS and GC.

``Request.ipam_add()`` & co. call the IPAM plugin (in-process when it is a
Python plugin, exec'd from CNI_PATH otherwise). What every interface plugin
then needs around that call is here once: release on failure, release on
DEL only when IPAM is configured, STATUS and GC forwarded and tolerant of an
IPAM plugin older than SPEC 1.1.0.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from corecni.kit.config import ipam_type
from corecni.request import Request
from corecni.spec.errors import CNIError, ErrorCode
from corecni.spec.result import Result


@contextlib.contextmanager
def ipam_released_on_failure(request: Request) -> Iterator[None]:
    """Release the IPAM allocation if anything after it fails: no IP stays reserved."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            request.ipam_del()
        raise


def require_ips(result: Result) -> None:
    if not result.ips:
        raise CNIError(ErrorCode.INTERNAL, "IPAM plugin returned missing IP config")


def release_ipam(request: Request) -> None:
    """DEL's IPAM half: release when the config names an IPAM plugin."""
    if ipam_type(request.config.raw):
        request.ipam_del()



def ipam_status(request: Request) -> None:
    """STATUS: an interface plugin is as ready as its IPAM plugin (Go >= 1.5 asks it)."""
    if ipam_type(request.config.raw) and request.delegate is not None:
        try:
            request.ipam_status()
        except CNIError as exc:
            if not _predates_command(exc):
                raise


def _predates_command(exc: CNIError) -> bool:
    """An IPAM plugin older than SPEC 1.1.0 answers STATUS/GC with "unknown command"
    (Go's 1.1.1 skel asks for a container ID first): nothing to check or collect."""
    return (exc.code == ErrorCode.INVALID_ENVIRONMENT and "unknown CNI_COMMAND" in exc.msg) \
        or (exc.code == ErrorCode.UNKNOWN_CONTAINER and "missing containerID" in exc.msg)



def ipam_gc(request: Request) -> None:
    """GC: forward to the IPAM plugin (only the interface plugin can reach it)."""
    if not ipam_type(request.config.raw) or request.delegate is None:
        return
    try:
        request.ipam_gc()
    except CNIError as exc:
        if not _predates_command(exc):
            raise
