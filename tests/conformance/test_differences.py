"""Every deliberate difference a vector claims is listed and justified in docs/architecture.md."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conformance import vectors

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def _differences() -> set[str]:
    found = set()
    for path in vectors.DIR.glob("*.json"):
        found.update(re.findall(r'"difference": "([^"]+)"', path.read_text()))
    return found


def test_every_difference_is_documented() -> None:
    listed = set(re.findall(r"^\| `([^`]+)` \|", DOC.read_text(), re.MULTILINE))
    used = _differences()
    assert used, "the vectors name no difference at all: the scan is broken"
    assert used <= listed, f"undocumented differences: {sorted(used - listed)}"


def test_every_vector_names_its_upstream_source() -> None:
    for path in vectors.DIR.glob("*.json"):
        text = path.read_text()
        assert text.count('"id":') == text.count('"upstream":'), path.name
