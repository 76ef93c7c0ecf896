"""Applications on top of the library: the ``optical-memory`` command line, the terminal chat
(and its model back-ends), the web viewer and the demo."""

from __future__ import annotations


class CommandError(Exception):
    """A user-facing failure of a subcommand; its message is the one line printed."""
