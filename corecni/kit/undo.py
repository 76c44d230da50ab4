"""The undo stack: what a multi-step ADD must take back when a later step fails.

Go's plugins use deferred closures guarded by ``if err != nil``; here an ADD
pushes the inverse of each step it completed, and on failure the stack runs
them newest first. Undo steps are best effort (their own errors are dropped):
the caller must see the error that made the ADD fail, not one from cleaning
up after it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator


class UndoStack:
    """Steps to undo, newest last; ``undo()`` runs them newest first, once."""

    def __init__(self) -> None:
        self._steps: list[Callable[[], object]] = []

    def push(self, step: Callable[[], object]) -> None:
        """Remember how to take back a step that just succeeded."""
        self._steps.append(step)

    def append(self, step: Callable[[], object]) -> None:
        """``push`` under the list's name (code written against the 0.1 undo list)."""
        self.push(step)

    def undo(self) -> None:
        """Run every step, newest first, dropping their errors; the stack is then empty."""
        while self._steps:
            step = self._steps.pop()
            with contextlib.suppress(Exception):
                step()

    def __len__(self) -> int:
        return len(self._steps)


@contextlib.contextmanager
def undo_on_failure() -> Iterator[UndoStack]:
    """``with undo_on_failure() as undo: ... undo.push(inverse)``: the pushed steps run
    (newest first) if the body raises, and the exception propagates unchanged."""
    stack = UndoStack()
    try:
        yield stack
    except BaseException:
        stack.undo()
        raise
