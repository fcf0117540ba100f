"""rich console markup without importing rich, for output that is not a terminal.

Every line agentctl prints is written as rich markup (``[red]error:[/red] ...``).
On a terminal rich renders it. Off a terminal (a pipe, a file, cron mail, CI
logs) rich only drops the tags, so importing and running it there is start-up
time every command pays for nothing: :class:`PlainConsole` writes the text
rich would have written, and hands anything it does not handle exactly (tabs,
emoji codes, markup rich would reject, objects other than strings) to a real
rich Console, so the output is the same byte for byte (tests/test_markup.py
holds it against rich).
"""

from __future__ import annotations

import os
import re
import sys
from typing import IO, TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from rich.console import Console

# rich.markup's own patterns (rich 13-15): a tag, and what escape() protects.
_TAG = re.compile(r"((\\*)\[([a-z#/@][^[]*?)])")
_ESCAPE = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")
# What rich's Text strips (rich.control.STRIP_CONTROL_CODES): bell, backspace,
# vertical tab, form feed, carriage return.
_STRIP = {code: None for code in (7, 8, 11, 12, 13)}
# An emoji code as rich's Console.print would replace it (":warning:").
_EMOJI = re.compile(r":(\S*?)(?:(?:\-)(emoji|text))?:")


def escape(text: str) -> str:
    """``text`` safe inside markup: what ``rich.markup.escape`` returns."""

    def backslashes(match: re.Match[str]) -> str:
        slashes, tag = match.groups()
        return f"{slashes}{slashes}\\{tag}"

    text = _ESCAPE.sub(backslashes, text)
    if text.endswith("\\") and not text.endswith("\\\\"):
        return text + "\\"
    return text


class _NeedsRich(Exception):
    """Markup this module does not render itself (rich would raise, or a handler tag)."""


def _plain(markup: str) -> str:
    if "[" not in markup:
        return markup.translate(_STRIP)
    pieces: list[str] = []
    open_tags: list[str] = []
    position = 0
    for match in _TAG.finditer(markup):
        full, escapes, tag = match.groups()
        start, end = match.span()
        if start > position:
            pieces.append(markup[position:start].replace("\\[", "["))
        if escapes:
            slashes, escaped = divmod(len(escapes), 2)
            if slashes:
                pieces.append("\\" * slashes)
            if escaped:
                pieces.append(full[len(escapes) :].replace("\\[", "["))
                position = end
                continue
        name = tag.partition("=")[0]
        if name.startswith("@"):
            raise _NeedsRich
        if name.startswith("/"):
            closing = name[1:].strip()
            if closing:
                if closing not in open_tags:
                    raise _NeedsRich  # rich raises MarkupError
                del open_tags[len(open_tags) - 1 - open_tags[::-1].index(closing)]
            elif open_tags:
                open_tags.pop()
            else:
                raise _NeedsRich
        else:
            open_tags.append(name.strip())
        position = end
    if position < len(markup):
        pieces.append(markup[position:].replace("\\[", "["))
    return "".join(pieces).translate(_STRIP)


def plain(markup: str) -> str:
    """The text of a line of markup: ``rich.markup.render(markup, emoji=False).plain``."""
    try:
        return _plain(markup)
    except _NeedsRich:
        from rich.markup import render

        return render(markup, emoji=False).plain


class TextConsole(Protocol):
    """What agentctl's CLI and renderer use of a console (a rich Console has it all)."""

    quiet: bool

    @property
    def is_terminal(self) -> bool: ...

    @property
    def file(self) -> IO[str]: ...

    def print(self, *objects: Any, **options: Any) -> None: ...


def rich_would_call_a_terminal(stream: IO[str]) -> bool:
    """Whether a rich Console on ``stream`` would call it a terminal (or might:
    the environment asks rich to decide, so rich decides)."""
    if "TTY_COMPATIBLE" in os.environ or "FORCE_COLOR" in os.environ:
        return True
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty is not None and isatty())
    except ValueError:  # a closed stream
        return False


class PlainConsole:
    """The console of a command whose output is not a terminal: text as rich
    would print it there (tags dropped, nothing wrapped, no colour)."""

    is_terminal = False

    def __init__(self, *, stderr: bool, quiet: bool = False) -> None:
        self._stderr = stderr
        self.quiet = quiet
        self._rich: Console | None = None

    @property
    def file(self) -> IO[str]:
        # Looked up on every use, like rich's: tests and callers swap sys.stdout.
        return sys.stderr if self._stderr else sys.stdout

    def print(self, *objects: Any, **options: Any) -> None:
        if self.quiet:
            return
        text = self._text(objects, options)
        if text is None:
            self.rich.print(*objects, **options)
            return
        self.file.write(text + options.get("end", "\n"))

    def _text(self, objects: tuple[Any, ...], options: dict[str, Any]) -> str | None:
        """The line to write, or None when only rich can say exactly."""
        if len(objects) > 1 or not set(options) <= {"markup", "highlight", "end", "emoji"}:
            return None
        value = objects[0] if objects else ""
        if not isinstance(value, str) or "\t" in value:
            return None  # rich expands tabs
        if options.get("emoji", True) is not False and _EMOJI.search(value):
            return None  # rich replaces emoji codes (unless told not to)
        if options.get("markup", True) is False:
            return value.translate(_STRIP)
        try:
            return _plain(value)
        except _NeedsRich:
            return None

    @property
    def rich(self) -> Console:
        """A real rich Console on the same stream, made on first need."""
        if self._rich is None:
            from rich.console import Console

            self._rich = Console(stderr=self._stderr, highlight=False, soft_wrap=True)
        self._rich.quiet = self.quiet
        return self._rich
