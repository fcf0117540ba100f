"""agentctl.markup writes what rich writes off a terminal, without importing rich.

Every line agentctl prints is rich markup; off a terminal (pipes, files, cron,
CI) PlainConsole prints it instead of a rich Console. These hold it to rich
itself, byte for byte, on generated lines full of what markup can hold.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.markup import escape as rich_escape
from rich.markup import render as rich_render

from agentctl.markup import PlainConsole, escape, plain

ROOT = Path(__file__).resolve().parents[1]

# Pieces that make markup interesting: tags (open, close, bare close, styled,
# links, handlers), escapes, backslashes, emoji codes, tabs, control characters.
PIECES = st.sampled_from(
    [
        "[bold]",
        "[/bold]",
        "[red]",
        "[/red]",
        "[/]",
        "[bold red]",
        "[/red bold]",
        "[RED]",
        "[link=https://x.example]",
        "[/link]",
        "[@click]",
        "[dim]",
        "[/dim]",
        "[#ff0000]",
        "\\[bold]",
        "\\\\[red]",
        "\\",
        "[",
        "]",
        "[1]",
        "[a=b]",
        ":warning:",
        ":smile:",
        "::",
        "\t",
        "\r",
        "\x07",
        "\x1b[31m",
        "é",
        "😀",
        " ",
        "x",
        "word",
        "\n",
        "[/x]",
        "[ x]",
    ]
)
LINES = st.lists(st.one_of(PIECES, st.text(max_size=6)), max_size=12).map("".join)


def _rich_print(text: str, **options: object) -> str:
    stream = io.StringIO()
    Console(file=stream, highlight=False, soft_wrap=True).print(text, **options)
    return stream.getvalue()


def _plain_print(text: str, **options: object) -> str:
    console = PlainConsole(stderr=False)
    stream = io.StringIO()
    real, sys.stdout = sys.stdout, stream
    try:
        console.print(text, **options)
    finally:
        sys.stdout = real
    return stream.getvalue()


@settings(max_examples=400, deadline=None)
@given(LINES)
def test_escape_is_riches(text: str) -> None:
    assert escape(text) == rich_escape(text)


@settings(max_examples=400, deadline=None)
@given(LINES)
def test_plain_text_of_markup_is_riches(markup: str) -> None:
    try:
        expected = rich_render(markup, emoji=False).plain
    except Exception as exc:  # rich rejects it: so does plain(), with rich's error
        with pytest.raises(type(exc)):
            plain(markup)
        return
    assert plain(markup) == expected


@settings(max_examples=400, deadline=None)
@given(
    LINES,
    st.sampled_from(
        [
            {},
            {"markup": False},
            {"end": ""},
            {"highlight": False},
            {"emoji": False},
            {"markup": False, "emoji": False},
        ]
    ),
)
def test_a_printed_line_is_what_a_rich_console_writes_off_a_terminal(
    line: str, options: dict[str, object]
) -> None:
    try:
        expected = _rich_print(line, **options)
    except Exception as exc:
        with pytest.raises(type(exc)):
            _plain_print(line, **options)
        return
    assert _plain_print(line, **options) == expected


def test_escaped_user_text_prints_literally() -> None:
    name = "agent[bold]\\x"
    assert _plain_print(f"[red]error[/red]: {escape(name)}") == f"error: {name}\n"


def test_quiet_prints_nothing() -> None:
    console = PlainConsole(stderr=False, quiet=True)
    stream = io.StringIO()
    real, sys.stdout = sys.stdout, stream
    try:
        console.print("[red]x[/red]")
        console.print("\tneeds rich")
    finally:
        sys.stdout = real
    assert stream.getvalue() == ""


@pytest.mark.parametrize(
    "args",
    [["validate", "contracts/pr-review-agent.yaml"], ["validate", "no-such-dir"], ["list"]],
)
def test_commands_off_a_terminal_do_not_import_rich(args: list[str], tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "agentctl"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"AGENTCTL_CONFIG", "FORCE_COLOR", "TTY_COMPATIBLE"}
    }
    env.update(PYTHONPATH=str(ROOT), AGENTCTL_STATE=str(tmp_path / "state.db"))
    out = subprocess.run(
        [sys.executable, "-X", "importtime", str(script), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    modules = {
        line.rpartition("|")[2].strip()
        for line in out.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "agentctl.cli.app" in modules
    assert sorted(m for m in modules if m == "rich" or m.startswith("rich.")) == []
    printed = [line for line in out.stderr.splitlines() if not line.startswith("import time:")]
    assert "Traceback" not in "\n".join(printed)
