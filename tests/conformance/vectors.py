"""Loading the vector tables and comparing errors with them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from corecni.spec.errors import CNIError

DIR = Path(__file__).parent / "vectors"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DIR / f"{name}.json").read_text())
    return data


def ids(case: dict[str, Any]) -> str:
    return str(case["id"])


def assert_error(exc: CNIError, expect: dict[str, Any]) -> None:
    """``{"code": N, "msg": "fragment", "text": "fragment of str(exc)"}``, each optional."""
    if "code" in expect:
        assert exc.code == expect["code"], str(exc)
    if "msg" in expect:
        assert expect["msg"] in exc.msg, str(exc)
    if "text" in expect:
        assert expect["text"] in str(exc), str(exc)


def read_log(path: Path) -> list[dict[str, Any]]:
    """The calls the ``noop`` plugin logged (conftest.py), stdin parsed."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        entry["stdin"] = json.loads(entry["stdin"])
        out.append(entry)
    return out
