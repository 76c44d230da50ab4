"""MkDocs hooks: pages that quote the code instead of copying it.

Two markers are expanded when a page is built, so the docs cannot drift from
what they describe:

* ``<!-- corecni:cli -->``: ``corecni --help`` and every subcommand's
  ``--help``, taken from ``corecni.cli.build_parser()``;
* ``<!-- corecni:cli-env -->``: the environment variables the CLI reads, as a
  table, from ``corecni.cli.ENVIRONMENT`` (the table ``--help`` prints);
* ``<!-- corecni:scaffold FAMILY NAME PATH -->``: file ``PATH`` of the project
  ``corecni new-plugin NAME --family FAMILY`` generates (corecni.scaffold), as
  a code block. The suite runs those projects' tests, so the examples on
  "Writing a plugin" are tested code.

A marker that cannot be expanded fails the build (``mkdocs build --strict``
turns the logged error into a failure).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from typing import Any

log = logging.getLogger("mkdocs.hooks.corecni")

_SCAFFOLD = re.compile(r"<!-- corecni:scaffold (\S+) (\S+) (\S+) -->")
_CLI = "<!-- corecni:cli -->"
_CLI_ENV = "<!-- corecni:cli-env -->"
_LANG = {".py": "python", ".toml": "toml", ".md": "markdown"}


def _fence(text: str, lang: str, title: str = "") -> str:
    ticks = "````" if "```" in text else "```"
    head = f'{ticks}{lang} title="{title}"' if title else f"{ticks}{lang}"
    return f"{head}\n{text.rstrip()}\n{ticks}"


def _scaffold(match: re.Match[str]) -> str:
    from corecni import scaffold

    family, name, path = match.groups()
    files = scaffold.project(name, family).files()
    if path not in files:
        log.error("corecni:scaffold: %s has no file %s (it has %s)", family, path, sorted(files))
        return match.group(0)
    return _fence(files[path], _LANG.get(os.path.splitext(path)[1], "text"), path)


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    out: list[tuple[str, argparse.ArgumentParser]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen: set[int] = set()
            for name, sub in action.choices.items():
                if id(sub) not in seen:  # aliases share one parser
                    seen.add(id(sub))
                    out.append((name, sub))
    return out


def _cli() -> str:
    from corecni.cli import build_parser

    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal: make it fixed
    parser = build_parser()
    parts = ["## corecni", "", _fence(parser.format_help(), "text")]
    for name, sub in _subcommands(parser):
        parts += ["", f"## corecni {name}", "", _fence(sub.format_help(), "text")]
    return "\n".join(parts)


def _cli_env() -> str:
    from corecni import cli

    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for var in cli.ENVIRONMENT:
        default = f"`{var.default}`" if var.default else "(empty)"
        rows.append(f"| `{var.name}` | {default} | {var.meaning.replace('|', '&#124;')} |")
    return "\n".join(rows)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    if _CLI_ENV in markdown:
        markdown = markdown.replace(_CLI_ENV, _cli_env())
    if _CLI in markdown:
        markdown = markdown.replace(_CLI, _cli())
    return _SCAFFOLD.sub(_scaffold, markdown)
