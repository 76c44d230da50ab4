"""Unit-test settings.

The unit tests need no privileges, so the "container" namespace they hand a plugin is
the test runner's own (``/proc/self/ns/net``). An exec'd plugin refuses to serve its
own namespace, as Go's skel does, unless CNI_NETNS_OVERRIDE says so; exec'd plugins
inherit the runner's environment, so it is set here for every unit test.
``tests/unit/test_skel_faults.py`` proves the refusal with an explicit environment.
"""

from __future__ import annotations

import pytest

from corecni.request import NETNS_OVERRIDE


@pytest.fixture(autouse=True)
def own_netns_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NETNS_OVERRIDE, "1")
