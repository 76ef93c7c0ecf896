"""Applications on top of the library: the ``optical-memory`` command line, the terminal chat
(and its model back-ends), the web viewer and the demo."""

from __future__ import annotations

from optical_memory.modes import Mode


class CommandError(Exception):
    """A user-facing failure of a subcommand; its message is the one line printed."""


def page_file_name(page_id: int, mode: Mode) -> str:
    """The one file name every command writes a page under: ``page-0012-small.png``."""
    return f"page-{page_id:04d}-{mode.value}.png"
