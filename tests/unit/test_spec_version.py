"""Spec versions and VERSION answers (SPEC.md 1.1.0 section 5 "Version")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from corecni.spec.errors import CNIError
from corecni.spec.version import (
    CURRENT,
    SUPPORTED,
    VersionInfo,
    at_least,
    highest_supported,
    parse,
    require_supported,
)

EXAMPLES = Path(__file__).parent / "spec_examples"


def example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / name).read_text())
    return data


def test_current_and_supported() -> None:
    assert CURRENT == "1.1.0"
    # every released spec version (git tags spec-v0.1.0 ... spec-v1.1.0), oldest first
    assert SUPPORTED == ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
    assert sorted(SUPPORTED, key=parse) == list(SUPPORTED)
    assert SUPPORTED[-1] == CURRENT


def test_supported_matches_the_spec_version_example() -> None:
    assert tuple(example("version_result_1.1.0.json")["supportedVersions"]) == SUPPORTED


@pytest.mark.parametrize(("text", "parts"), [
    ("0.1.0", (0, 1, 0)), ("1.1.0", (1, 1, 0)), ("10.20.30", (10, 20, 30)),
    ("0.0.0", (0, 0, 0)), ("01.2.3", (1, 2, 3)),
    # as Go's version.ParseVersion: short forms, and "" is 0.1.0 (no version declared)
    ("1.2", (1, 2, 0)), ("1", (1, 0, 0)), ("", (0, 1, 0)), ("+1.2", (1, 2, 0)),
])
def test_parse(text: str, parts: tuple[int, int, int]) -> None:
    assert parse(text) == parts


def test_short_versions_compare_as_upstream() -> None:
    assert at_least("1.2", "1.1.0") and at_least("1.2", "1.2.0") and not at_least("1.2", "1.2.1")
    assert at_least("1", "0.4.0") and not at_least("", "0.2.0")


@pytest.mark.parametrize("text", ["1.0.0.0", "v1.0.0", "1.0.0-rc1", "1.a.0", "asdf.",
                                  " 1.0.0", "1.0.0 ", "1..0", "0.", "..", None, 1, 1.0])
def test_parse_rejects_malformed(text: Any) -> None:
    with pytest.raises(CNIError) as exc_info:
        parse(text)
    assert exc_info.value.code == 1
    assert exc_info.value.msg == "invalid CNI version"


@pytest.mark.parametrize("text", ["1.0.0\n", "\u0661.0.0", "1.\uff10.0"])
def test_parse_rejects_newline_and_non_ascii_digits(text: str) -> None:
    with pytest.raises(CNIError):
        parse(text)


def test_ordering_is_numeric_not_textual() -> None:
    assert at_least("0.10.0", "0.4.0")
    assert not at_least("0.4.0", "0.10.0")
    assert at_least("1.0.0", "0.4.0")
    assert at_least("1.1.0", "1.1.0")
    assert not at_least("0.3.1", "0.4.0")
    assert max(["0.4.0", "0.10.0", "0.9.0"], key=parse) == "0.10.0"


@pytest.mark.parametrize("version", SUPPORTED)
def test_require_supported_accepts_every_supported_version(version: str) -> None:
    assert require_supported(version) == version


@pytest.mark.parametrize("version", ["0.5.0", "1.2.0", "2.0.0", "0.0.1"])
def test_require_supported_refuses_unknown(version: str) -> None:
    with pytest.raises(CNIError) as exc_info:
        require_supported(version)
    assert exc_info.value.code == 1
    assert exc_info.value.msg == "incompatible CNI version"


def test_require_supported_with_custom_list() -> None:
    assert require_supported("0.4.0", ("0.3.1", "0.4.0")) == "0.4.0"
    with pytest.raises(CNIError) as exc_info:
        require_supported("1.0.0", ("0.3.1", "0.4.0"))
    assert exc_info.value.code == 1


@pytest.mark.parametrize(("candidates", "expected"), [
    (["0.3.1", "0.4.0", "1.0.0", "1.1.0"], "1.1.0"),   # SPEC.md section 1 example
    (["1.1.0", "0.1.0"], "1.1.0"),
    (["2.0.0", "1.0.0", "0.9.0"], "1.0.0"),
    (["0.2.0", "not-a-version", 4], "0.2.0"),
])
def test_highest_supported(candidates: list[Any], expected: str) -> None:
    assert highest_supported(candidates) == expected


def test_highest_supported_with_custom_list() -> None:
    assert highest_supported(["0.4.0", "1.0.0", "1.1.0"], ("0.3.1", "0.4.0")) == "0.4.0"


@pytest.mark.parametrize("candidates", [[], ["2.0.0"], ["1.0"], [None]])
def test_highest_supported_none_usable_is_code_1(candidates: list[Any]) -> None:
    with pytest.raises(CNIError) as exc_info:
        highest_supported(candidates)
    assert exc_info.value.code == 1


def test_highest_supported_error_names_the_candidates_of_a_generator() -> None:
    with pytest.raises(CNIError) as exc_info:
        highest_supported(v for v in ["2.0.0", "3.0.0"])
    assert "2.0.0" in exc_info.value.details


# ---------------------------------------------------------------------------
# VERSION answers


@pytest.mark.parametrize("name", ["version_result_1.0.0.json", "version_result_1.1.0.json"])
def test_spec_version_examples_roundtrip(name: str) -> None:
    data = example(name)
    info = VersionInfo.from_dict(data)
    assert info.cni_version == data["cniVersion"]
    assert info.supported_versions == tuple(data["supportedVersions"])
    assert info.to_dict() == data


def test_spec_version_example_values() -> None:
    info = VersionInfo.from_dict(example("version_result_1.0.0.json"))
    assert info == VersionInfo("1.0.0", ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"))
    assert "1.1.0" not in info.supported_versions


def test_version_answer_of_a_020_plugin() -> None:
    # libcni PluginDecoder: cniVersion 0.2.0 without supportedVersions means 0.1.0 and 0.2.0
    info = VersionInfo.from_dict({"cniVersion": "0.2.0"})
    assert info.supported_versions == ("0.1.0", "0.2.0")


@pytest.mark.parametrize(("data", "message"), [
    ({"cniVersion": "0.1.0"}, "missing field supportedVersions"),
    ({"cniVersion": "1.0.0", "supportedVersions": []}, "missing field supportedVersions"),
    ({"supportedVersions": ["1.0.0"]}, "missing field cniVersion"),
    ({"cniVersion": "", "supportedVersions": ["1.0.0"]}, "missing field cniVersion"),
])
def test_version_answer_missing_fields_as_libcni(data: dict[str, Any], message: str) -> None:
    """libcni's PluginDecoder: only a 0.2.0 answer may omit supportedVersions."""
    with pytest.raises(CNIError) as exc_info:
        VersionInfo.from_dict(data)
    assert exc_info.value.code == 6 and message in str(exc_info.value)


def test_version_answer_with_short_versions_is_read_verbatim() -> None:
    info = VersionInfo.from_dict({"cniVersion": "1.2", "supportedVersions": ["1.0", "1.2"]})
    assert info == VersionInfo("1.2", ("1.0", "1.2"))


@pytest.mark.parametrize("data", [[], "1.0.0", None, 1])
def test_version_answer_not_an_object_is_code_6(data: Any) -> None:
    with pytest.raises(CNIError) as exc_info:
        VersionInfo.from_dict(data)
    assert exc_info.value.code == 6


@pytest.mark.parametrize("supported", ["1.0.0", [1, 2], ["1.0.0", None], {"1.0.0": True}])
def test_version_answer_with_bad_supported_versions_is_code_6(supported: Any) -> None:
    with pytest.raises(CNIError) as exc_info:
        VersionInfo.from_dict({"cniVersion": "1.0.0", "supportedVersions": supported})
    assert exc_info.value.code == 6
