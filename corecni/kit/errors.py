"""Mapping the link layer's refusals to CNI errors, in one place.

``corecni.net`` knows no CNI codes: it raises ``NetError`` (errno, operation,
object). A plugin wraps each kernel step in ``kernel_step("what it was doing")``
and the user reads a CNI error (code 999, the errno's name in ``details``)
saying what failed and why, instead of a bare errno.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator

from corecni.net.base import NetError
from corecni.spec.errors import CNIError, ErrorCode


def net_failure(what: str, exc: NetError) -> CNIError:
    """A kernel refusal as a CNI error naming what the plugin was doing."""
    return CNIError(ErrorCode.INTERNAL, f"{what}: {exc}", errno.errorcode.get(exc.errno, ""))


#: what a vanished link or namespace answers (DEL's "nothing left to do")
GONE = (errno.ENODEV, errno.ENOENT)


@contextlib.contextmanager
def kernel_step(what: str, *, gone_ok: bool = False) -> Iterator[None]:
    """Run the body; a ``NetError`` leaves it as ``net_failure(what, exc)``.

    With ``gone_ok`` (DEL, GC) a refusal because the link or namespace is gone
    (ENODEV, ENOENT) ends the body quietly instead: there is nothing left to undo.
    """
    try:
        yield
    except NetError as exc:
        if gone_ok and exc.errno in GONE:
            return
        raise net_failure(what, exc) from None
