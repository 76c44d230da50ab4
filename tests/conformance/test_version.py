"""Upstream's version vectors (``vectors/version.json``): parsing and ordering as Go's
``version.ParseVersion``/``GreaterThan``, VERSION answers as libcni's ``PluginDecoder``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from corecni.spec import version as versions
from corecni.spec.errors import CNIError
from corecni.spec.version import VersionInfo
from tests.conformance import vectors

VERSION = vectors.load("version")


@pytest.mark.parametrize("case", VERSION["supported_from"], ids=vectors.ids)
def test_supported_versions_from(case: dict[str, Any]) -> None:
    supported = list(versions.SUPPORTED)
    assert supported[supported.index(case["from"]):] == case["expect"]


@pytest.mark.parametrize("case", VERSION["parse"], ids=vectors.ids)
def test_parse(case: dict[str, Any]) -> None:
    if "error" in case:
        with pytest.raises(CNIError) as info:
            versions.parse(case["input"])
        vectors.assert_error(info.value, case["error"])
    else:
        assert list(versions.parse(case["input"])) == case["expect"]


@pytest.mark.parametrize("case", VERSION["greater_or_equal"], ids=vectors.ids)
def test_greater_or_equal(case: dict[str, Any]) -> None:
    if "error" in case:
        with pytest.raises(CNIError) as info:
            versions.at_least(case["a"], case["b"])
        vectors.assert_error(info.value, case["error"])
    else:
        assert versions.at_least(case["a"], case["b"]) is case["expect"]


@pytest.mark.parametrize("case", VERSION["greater"], ids=vectors.ids)
def test_greater(case: dict[str, Any]) -> None:
    assert versions.greater_than(case["a"], case["b"]) is case["expect"]


@pytest.mark.parametrize("case", VERSION["plugin_decoder"], ids=vectors.ids)
def test_version_answer(case: dict[str, Any]) -> None:
    def decode() -> VersionInfo:
        try:
            data = json.loads(case["stdout"])
        except ValueError as exc:  # invoke.exec_version's handling of unparseable answers
            raise CNIError(6, "unparseable VERSION", str(exc)) from None
        return VersionInfo.from_dict(data)

    if "error" in case:
        with pytest.raises(CNIError) as info:
            decode()
        vectors.assert_error(info.value, case["error"])
    else:
        assert list(decode().supported_versions) == case["expect"]
