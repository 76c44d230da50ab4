"""Go's skel dispatcher (``vectors/skel.json``) against corecni's skel: which CNI_* variables
each command requires, the error codes and messages, VERSION, and how plugin errors come out."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from corecni import skel
from tests.conformance import vectors

SKEL = vectors.load("skel")
LIVE_NETNS = "/proc/self/ns/net"


def run(case: dict[str, Any]) -> tuple[int, Any]:
    environ = {k: (LIVE_NETNS if v == "<live netns>" else v) for k, v in case["env"].items()
               if k not in case.get("unset", ())}
    if environ.get("CNI_NETNS") == LIVE_NETNS:  # the test's own namespace, which skel
        environ["CNI_NETNS_OVERRIDE"] = "1"     # refuses otherwise (as Go's >= 1.2)
    if "stdin" in case and case["stdin"] is None:
        stdin = b""
    else:
        config = {**SKEL["base_config"], **case.get("config", {})}
        stdin = json.dumps({k: v for k, v in config.items() if v is not None}).encode()
    out, err = io.StringIO(), io.StringIO()
    code = skel.run("fixed-ipam", "tests.plugins.fixed_ipam", environ=environ,
                    stdin=io.BytesIO(stdin), stdout=out, stderr=err)
    text = out.getvalue()
    return code, (json.loads(text) if text.strip() else None)


@pytest.mark.parametrize("case", SKEL["cases"], ids=vectors.ids)
def test_dispatch(case: dict[str, Any]) -> None:
    code, out = run(case)
    if "error" in case:
        assert code == 1 and out is not None
        want = case["error"]
        assert out["code"] == want["code"], out
        if "msg" in want:
            assert out["msg"] == want["msg"], out
        if "text" in want:
            assert want["text"] in f"{out['msg']} {out.get('details', '')}", out
        return
    assert code == 0, out
    if "expect_stdout" in case:
        assert out == case["expect_stdout"]
