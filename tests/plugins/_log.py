from __future__ import annotations

import json
from typing import Any

from corecni.plugin import Request


def record(request: Request, who: str, **extra: Any) -> None:
    path = request.config.raw.get("log")
    if not path:
        return
    line = {
        "who": who,
        "command": request.command,
        "container_id": request.container_id,
        "ifname": request.ifname,
        "netns": request.netns,
        "args": [list(a) for a in request.args],
        "prev": request.prev_result.to_dict() if request.prev_result else None,
        "runtimeConfig": dict(request.config.runtime_config),
        "valid": [a.to_dict() for a in request.valid_attachments],
        **extra,
    }
    with open(path, "a") as fh:
        fh.write(json.dumps(line) + "\n")


def maybe_fail(request: Request, who: str, section: dict[str, Any] | None = None) -> None:
    """``"fail": {"ADD": [code, "msg"]}`` in the config (or ``section``) fails the call."""
    from corecni.spec.errors import CNIError

    source = section if section is not None else dict(request.config.raw)
    spec = source.get("fail", {}).get(request.command)
    if spec == "crash":
        raise RuntimeError(f"{who} crashed on purpose")
    if spec:
        raise CNIError(spec[0], spec[1])
