"""kit.kernel_step: a kernel refusal as a CNI error naming the step; gone_ok for DEL."""

from __future__ import annotations

import errno

import pytest

from corecni.kit import CNIError, kernel_step
from corecni.net import NetError


def test_a_refusal_names_the_step_and_the_errno() -> None:
    with pytest.raises(CNIError) as info, kernel_step("set eth0 up in ctr"):
        raise NetError(errno.EPERM, "set_link", "eth0")
    assert info.value.code == 999 and "set eth0 up in ctr" in info.value.msg
    assert info.value.details == "EPERM"


@pytest.mark.parametrize("err", [errno.ENODEV, errno.ENOENT])
def test_gone_ok_ends_the_step_quietly_when_the_thing_is_gone(err: int) -> None:
    reached = []
    with kernel_step("delete rules", gone_ok=True):
        reached.append(1)
        raise NetError(err, "del_rule", "x")
    assert reached == [1]


def test_gone_ok_still_reports_other_refusals() -> None:
    with pytest.raises(CNIError, match="delete rules"), kernel_step("delete rules", gone_ok=True):
        raise NetError(errno.EPERM, "del_rule", "x")
