"""``resolvConf``: the host's resolv.conf as the result's DNS, read like Go's ``dns.go``.

``nameserver`` lines add a server, ``domain`` sets the domain (the last one
wins), ``search`` and ``options`` lines add all their words; comments (``#``,
``;``), blank lines and lines with fewer than two words are skipped.
"""

from __future__ import annotations

from corecni.spec.errors import CNIError, ErrorCode
from corecni.spec.result import DNS


def parse_resolv_conf_text(text: str) -> DNS:
    nameservers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    domain = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        fields = line.split()
        if len(fields) < 2:
            continue
        key, values = fields[0], fields[1:]
        if key == "nameserver":
            nameservers.append(values[0])
        elif key == "domain":
            domain = values[0]
        elif key == "search":
            search.extend(values)
        elif key == "options":
            options.extend(values)
    return DNS(nameservers=tuple(nameservers), domain=domain, search=tuple(search),
               options=tuple(options))


def parse_resolv_conf(path: str) -> DNS:
    """Read ``path``; an unreadable file fails the ADD (code 5), as in Go."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError as exc:
        raise CNIError(ErrorCode.IO_FAILURE, f"cannot read resolvConf {path}",
                       exc.strerror or str(exc)) from None
    return parse_resolv_conf_text(text)
