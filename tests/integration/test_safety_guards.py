"""The safety guards reach every integration module, even one that asks for none."""

from __future__ import annotations

import pytest


def test_guard_is_active_without_opting_in(request: pytest.FixtureRequest) -> None:
    """This module neither imports nor requests a guard: only the package's conftest
    can have put them in force."""
    assert "integration_safety_guards" in request.fixturenames
    assert "root_netns_guard" in request.fixturenames


def test_the_guard_checks_thread_and_root_namespace() -> None:
    """The guard is ``unchanged(root_state)``: thread netns and root namespace."""
    import inspect

    from corecni import testing

    source = inspect.getsource(testing.root_netns_guard)
    assert "unchanged(root_state)" in source
    assert "current_inode" in inspect.getsource(testing.unchanged)
