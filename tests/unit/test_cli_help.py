"""``corecni --help`` and the command line's own checks (issue 13 CLI, issue 12 item 14)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from corecni import cli


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps its subparsers only here
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("corecni has no subcommands")


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_:
        cli.main([*argv, "--help"])
    assert exit_.value.code == 0
    out: str = capsys.readouterr().out
    return out


SUBCOMMANDS = sorted(_subparsers(cli.build_parser()))


def test_cnitool_verbs_are_there() -> None:
    assert {"add", "check", "del", "gc", "status"} <= set(SUBCOMMANDS)


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_has_description_and_examples(
        name: str, capsys: pytest.CaptureFixture[str]) -> None:
    sub = _subparsers(cli.build_parser())[name]
    assert sub.description and len(sub.description.split()) >= 5, \
        f"`corecni {name}` has no description"
    text = _help([name], capsys)
    assert sub.description.splitlines()[0] in text
    assert "examples:" in text, f"`corecni {name} --help` shows no examples"
    examples = text.split("examples:", 1)[1]
    assert f"corecni {name}" in examples, \
        f"`corecni {name} --help` examples never run `corecni {name}`"
    # the global options are documented on every subcommand, since they are accepted there
    assert "--cache-dir" in text and "--timeout" in text and "--prefer" in text


def _env_vars_read_by_the_cli() -> set[str]:
    source = Path(cli.__file__).read_text()
    names = set(re.findall(r'_env\("([A-Z_]+)"', source))
    names |= set(re.findall(r'environ(?:\.get)?\[?\(?"([A-Z_]+)"', source))
    from corecni.daemon_wire import SOCKET_ENV
    from corecni.net import ENV_VAR

    # read for the CLI by the modules behind doctor and daemon
    return names | {ENV_VAR, SOCKET_ENV}


def test_environment_is_listed_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    read = _env_vars_read_by_the_cli()
    assert {"NETCONFPATH", "CNI_PATH", "CNI_IFNAME", "CNI_ARGS", "CAP_ARGS", "CNI_CONTAINERID",
            "CNI_CACHE_DIR", "CORECNI_PREFER", "CORECNI_NET_BACKEND"} <= read
    text = _help([], capsys)
    environment = text.split("environment:", 1)[1]
    missing = sorted(name for name in read if name not in environment)
    assert not missing, f"read by the CLI but not in `corecni --help`: {missing}"
    attach = _help(["add", "net", "ns"], capsys)
    assert all(name in attach for name in ("CNI_IFNAME", "CNI_ARGS", "CAP_ARGS", "CNI_PATH"))


def test_env_outside_the_table_is_a_bug() -> None:
    with pytest.raises(KeyError):
        cli._env("CNI_SOMETHING_UNLISTED")


@pytest.mark.parametrize("argv", [
    ["--cache-dir", "/c/before", "add", "n", "ns"],
    ["add", "--cache-dir", "/c/before", "n", "ns"],
    ["add", "n", "ns", "--cache-dir", "/c/before"],
])
def test_global_options_before_or_after_the_subcommand(argv: list[str]) -> None:
    ns = cli.build_parser().parse_args([*argv, "--timeout", "5", "--prefer", "path"])
    assert (ns.cache_dir, ns.timeout, ns.prefer) == ("/c/before", 5.0, "path")
    ns = cli.build_parser().parse_args(["--exec-only", "gc", "n"])
    assert ns.exec_only is True
    ns = cli.build_parser().parse_args(["gc", "n", "--exec-only"])
    assert ns.exec_only is True


def test_options_after_the_subcommand_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CNI_CACHE_DIR", "/c/env")
    monkeypatch.setenv("CORECNI_PREFER", "path")
    ns = cli.build_parser().parse_args(["--cache-dir", "/c/a", "del", "n", "ns",
                                        "--cache-dir", "/c/b"])
    assert ns.cache_dir == "/c/b"
    ns = cli.build_parser().parse_args(["del", "n", "ns"])  # no flag: the env var
    assert (ns.cache_dir, ns.prefer, ns.timeout, ns.exec_only) == ("/c/env", "path", None, False)
    ns = cli.build_parser().parse_args(["--prefer", "python", "plugins"])
    assert ns.prefer == "python"


@pytest.mark.parametrize("value", ["0", "-1", "nan", "NaN", "inf", "-inf", "soon", "", "0.0"])
@pytest.mark.parametrize("where", ["before", "after"])
def test_bad_timeout_is_refused(value: str, where: str,
                                capsys: pytest.CaptureFixture[str]) -> None:
    flag = ["--timeout", value] if value[:1] != "-" or value == "-1" else [f"--timeout={value}"]
    argv = [*flag, "version", "x"] if where == "before" else ["version", "x", *flag]
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument --timeout:" in err and repr(value) in err
    assert "positive number of seconds" in err or "not a number of seconds" in err


def test_good_timeout_is_kept() -> None:
    assert cli.build_parser().parse_args(["--timeout", "0.5", "plugins"]).timeout == 0.5


def test_bad_prefer_env_is_refused(monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CORECNI_PREFER", "go")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["plugins"])
    assert exit_.value.code == 2
    assert "'go' is neither 'python' nor 'path'" in capsys.readouterr().err


def test_bare_netns_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run, var_run = tmp_path / "run-netns", tmp_path / "var-run-netns"
    run.mkdir()
    var_run.mkdir()
    monkeypatch.setattr(cli, "NETNS_DIRS", (str(run), str(var_run)))
    monkeypatch.chdir(tmp_path)
    (run / "blue").touch()
    (var_run / "green").touch()
    (var_run / "blue").touch()
    assert cli.resolve_netns("blue") == str(run / "blue")  # /run/netns first
    assert cli.resolve_netns("green") == str(var_run / "green")  # else /var/run/netns
    assert cli.resolve_netns("gone") == str(run / "gone")  # DEL of a deleted netns
    (tmp_path / "local").touch()
    assert cli.resolve_netns("local") == str(tmp_path / "local")  # cnitool: relative path
    assert cli.resolve_netns("./blue") == str(tmp_path / "blue")
    assert cli.resolve_netns("/proc/self/ns/net") == "/proc/self/ns/net"
    assert cli.resolve_netns("..") == str(tmp_path.parent)
