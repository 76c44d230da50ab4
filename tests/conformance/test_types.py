"""Upstream's result vectors (``vectors/types.json``): reading, writing and converting results
of every version gives the JSON libcni's types give."""

from __future__ import annotations

from typing import Any

import pytest

from corecni.spec.errors import CNIError
from corecni.spec.result import Result
from tests.conformance import vectors

TYPES = vectors.load("types")


@pytest.mark.parametrize("case", TYPES["convert"], ids=vectors.ids)
def test_convert(case: dict[str, Any]) -> None:
    result = Result.from_dict(case["input"])
    if "via" in case:
        result = result.as_version(case["via"])
    if "error" in case:
        with pytest.raises(CNIError) as info:
            result.as_version(case["to"])
        vectors.assert_error(info.value, case["error"])
        return
    assert result.as_version(case["to"]).to_dict() == case["expect"]


@pytest.mark.parametrize("case", TYPES["read"], ids=vectors.ids)
def test_read(case: dict[str, Any]) -> None:
    if "error" in case:
        with pytest.raises(CNIError) as info:
            Result.from_dict(case["input"])
        vectors.assert_error(info.value, case["error"])
        return
    result = Result.from_dict(case["input"])
    if "expect" in case:
        assert result.to_dict() == case["expect"]
    if "expect_version" in case:
        assert result.cni_version == case["expect_version"]
    if "expect_ips" in case:
        assert [ip.address for ip in result.ips] == case["expect_ips"]
