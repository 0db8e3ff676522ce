"""The commands and files the docs show, and the real parsers that must accept them.

Used by tests/test_documented_commands.py. Extraction reads fenced blocks of Markdown;
parsing goes through the apps themselves (click for the typer CLIs, argparse for ``run`` and
the simulators), so the check follows the code, never a copy of its options.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import re
import runpy
import shlex
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import typer
from typer.core import TyperCommand, TyperGroup

from edge_agent import daemon
from edge_agent.cli import app as agent_app
from sync_server.cli import app as hub_app

__all__ = ["DOCS", "ROOT", "Block", "DocCommand", "blocks", "command_tree", "envvars",
           "inline_commands", "leaf_commands", "parse_error", "shell_commands"]

ROOT = Path(__file__).resolve().parents[2]
#: The pages whose command blocks are checked, in reading order.
DOCS = ("README.md", *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")),
        "device_profiles/README.md")
_FENCE = re.compile(r"^```(\w*)\s*$")
_OPTIONAL = re.compile(r" \[([^\]]+)\]")
_SPAN = re.compile(r"`((?:edge-agent|sync-server|python -m [\w.]+)\b[^`]*)`")


@dataclass(frozen=True)
class Block:
    """A fenced block: its page, first content line, language, section heading and text."""

    path: str
    line: int
    lang: str
    heading: str
    text: str


@dataclass(frozen=True)
class DocCommand:
    """One command as a reader would type it; ``where`` is ``page:line``."""

    where: str
    argv: tuple[str, ...]
    redirect: str | None = None
    #: One of the forms of a synopsis line other than its plain one.
    variant: bool = False

    @property
    def text(self) -> str:
        """The command, quoted as a shell would need it."""
        return shlex.join(self.argv)


def blocks(path: str) -> Iterator[Block]:
    """The fenced blocks of a page, with the heading they stand under."""
    lines = (ROOT / path).read_text(encoding="utf-8").splitlines()
    heading = ""
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        fence = _FENCE.match(line)
        if fence is not None:
            end = lines.index("```", index + 1)
            yield Block(path, index + 2, fence.group(1), heading,
                        "\n".join(lines[index + 1:end]) + "\n")
            index = end
        index += 1


def shell_commands(block: Block) -> Iterator[DocCommand]:
    """Each command of a ``sh`` block: continuations joined, comments dropped, and a
    synopsis's ``[--opt VALUE]`` and ``a|b`` expanded into every form it stands for."""
    pending, start = "", block.line
    for number, raw in enumerate(block.text.splitlines(), block.line):
        start = start if pending else number
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        line, pending = pending + raw, ""
        for variant, form in enumerate(_forms(line)):
            argv = shlex.split(form, comments=True)
            if not argv:
                continue
            redirect = None
            if ">" in argv:
                at = argv.index(">")
                argv, redirect = argv[:at], argv[at + 1]
            yield DocCommand(f"{block.path}:{start}", tuple(argv), redirect, variant > 0)


def inline_commands(path: str) -> Iterator[DocCommand]:
    """Commands quoted in a page's prose and tables (`` `edge-agent status` ``): references
    more than commands to type, often without their required options."""
    inside = False
    for number, line in enumerate((ROOT / path).read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("```"):
            inside = not inside
            continue
        for span in [] if inside else _SPAN.findall(line):
            for variant, form in enumerate(_forms(span)):
                yield DocCommand(f"{path}:{number}", tuple(shlex.split(form)),
                                 variant=variant > 0)


def _forms(line: str) -> list[str]:
    """A synopsis line's forms: without its optional groups, then with each alternative of
    each group (``[--by badge|pedestal|month]`` gives three)."""
    code = line.split(" #", 1)[0]
    groups = _OPTIONAL.findall(code)
    base = _OPTIONAL.sub("", code)
    forms = [base]
    for group in groups:
        choices = [token.split("|") for token in group.split()]
        forms += [f"{base} {' '.join(pick)}" for pick in itertools.product(*choices)]
    return forms


def _click_error(app: typer.Typer, args: list[str], *, names_only: bool) -> str | None:
    """What click (typer's own copy) says of ``args``, parsed group by group down to the
    command they name, which is never invoked (None: accepted). With ``names_only``, a
    group alone and missing or odd values pass: only names must exist where written."""
    command = typer.main.get_command(app)
    name = command.name or ""
    parent = None
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # help, for --help
            while isinstance(command, TyperGroup):
                # (no arguments at all: a group shows its help, as a usage error)
                ctx = command.make_context(name, list(args), parent=parent) if args else None
                rest = [*ctx._protected_args, *ctx.args] if ctx else []  # as invoke reads them
                if ctx is None or not rest:
                    return None if names_only else "a group without a command"
                found, sub, args = command.resolve_command(ctx, rest)
                assert sub is not None, rest  # an unknown name raised a usage error
                name, command, parent = found or "", sub, ctx
            command.make_context(name, list(args), parent=parent)
    except typer.Exit as done:
        return None if done.exit_code == 0 else f"exit {done.exit_code}"
    except typer.BadParameter as refused:  # missing ones too
        return None if names_only else refused.format_message()
    except typer.TyperException as refused:
        return refused.format_message()
    return None


class _Parsed(Exception):
    """Raised right after a successful argparse parse: the command's work never starts."""


def _argparse_error(entry: Callable[[], object], argv: list[str]) -> str | None:
    """What an argparse program says of ``argv``, stopped as soon as it has parsed them."""
    parse_args = argparse.ArgumentParser.parse_args

    def parse_then_stop(parser: argparse.ArgumentParser, *args: object,
                        **kwargs: object) -> argparse.Namespace:
        parse_args(parser, *args, **kwargs)
        raise _Parsed

    said = io.StringIO()
    with (mock.patch.object(argparse.ArgumentParser, "parse_args", parse_then_stop),
          mock.patch.object(sys, "argv", ["prog", *argv]),
          contextlib.redirect_stderr(said), contextlib.redirect_stdout(io.StringIO())):
        try:
            entry()
        except _Parsed:
            return None
        except SystemExit as exited:
            return None if exited.code in (0, None) else said.getvalue().strip()
    return "returned without parsing its arguments"


def _run_module(module: str) -> None:
    """``python -m module``, in this process (where other tests may have imported it)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "'.*' found in sys.modules", RuntimeWarning)
        runpy.run_module(module, run_name="__main__", alter_sys=True)


def parse_error(argv: tuple[str, ...], *, names_only: bool = False) -> str | None:
    """Why the real parser refuses a documented command, or None when it accepts it
    (``names_only``: see _click_error; argparse programs are always parsed whole)."""
    program, *args = argv
    if program == "python" and args[:1] == ["-m"]:
        module, *args = args[1:]
        program = {"edge_agent": "edge-agent", "sync_server": "sync-server"}.get(module, module)
        if program == module:
            return _argparse_error(lambda: _run_module(module), args)
    if program == "edge-agent":
        if args[:1] == ["run"] and not {"-h", "--help"} & set(args):
            # edge_agent/launcher.py sends `run` to the daemon's argparse, the rest to typer
            return _argparse_error(lambda: daemon.main(sys.argv[1:]), args[1:])
        return _click_error(agent_app, args, names_only=names_only)
    if program == "sync-server":
        return _click_error(hub_app, args, names_only=names_only)
    return f"{program}: not a program of this project"


def command_tree(app: typer.Typer) -> Iterator[tuple[list[str], TyperCommand | TyperGroup]]:
    """Every group and command of an app, with the words that name it."""

    def walk(command: object, path: list[str]) -> Iterator[
            tuple[list[str], TyperCommand | TyperGroup]]:
        if isinstance(command, TyperGroup):
            yield path, command
            for name, sub in command.commands.items():
                yield from walk(sub, [*path, name])
        elif isinstance(command, TyperCommand):
            yield path, command

    return walk(typer.main.get_command(app), [])


def leaf_commands(app: typer.Typer) -> list[list[str]]:
    """The words naming each command of an app that does something (``gateway list``)."""
    return [path for path, command in command_tree(app) if isinstance(command, TyperCommand)]


def envvars() -> set[str]:
    """Every environment variable an option of either CLI reads."""
    return {param.envvar for app in (agent_app, hub_app) for _, command in command_tree(app)
            for param in command.params if isinstance(param.envvar, str)}
