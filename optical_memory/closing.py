"""``Closing``: what holds a resource (a browser, a store) and closes it at the end of ``with``."""

from __future__ import annotations

from typing import TypeVar

_Self = TypeVar("_Self", bound="Closing")


class Closing:
    """``with thing:`` gives ``thing`` and calls ``thing.close()`` on the way out, errors too."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
