"""What :meth:`OpticalMemory.context` and :meth:`OpticalMemory.stats` return."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from io import BytesIO
from typing import TYPE_CHECKING, Any

from optical_memory.modes import Mode
from optical_memory.store import PageSpan
from optical_memory.turns import Turn

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["MemoryContext", "MemoryPage", "MemoryStats", "TextPage"]


@dataclass
class MemoryPage:
    """A page shown as an image.

    ``age`` counts pages back from the newest (0); ``text_tokens`` is what its text would have
    cost; ``spans`` say which characters of which turns it prints. ``verbatim`` is the exact
    values it prints, as text to send right after its image (``""`` when it prints none or
    when its reader reads its size exactly; see :mod:`optical_memory.verbatim`), and
    ``verbatim_tokens`` what that text costs. The image is read from the store the first time
    ``image`` or ``png()`` is used, so use pages before closing the memory.
    """

    page_id: int
    seq: int
    age: int
    mode: Mode
    turn_ids: list[int]
    spans: tuple[PageSpan, ...]
    vision_tokens: int
    text_tokens: int
    width: int
    height: int
    content_hash: str
    renderer_key: str
    _load_png: Callable[[], bytes] = field(repr=False, compare=False)
    _png: bytes | None = field(default=None, repr=False, compare=False)
    _image: Image.Image | None = field(default=None, repr=False, compare=False)
    verbatim: str = ""
    verbatim_tokens: int = 0

    @functools.cached_property
    def image_key(self) -> str:
        """What fixes the image's bytes: content hash, mode and renderer settings (the same
        key, the same PNG)."""
        return f"{self.content_hash}/{self.mode.value}/{self.renderer_key}"

    def png(self) -> bytes:
        """The page image as PNG bytes (as rendered, cached)."""
        if self._png is None:
            self._png = self._load_png()
        return self._png

    @property
    def image(self) -> Image.Image:
        """The page image (PIL, RGB, ``width x height``)."""
        if self._image is None:
            from PIL import Image

            self._image = Image.open(BytesIO(self.png()))
            self._image.load()
        return self._image


@dataclass(frozen=True)
class TextPage:
    """A page given as text because its image would cost the target more than its text."""

    page_id: int
    seq: int
    age: int
    mode: Mode
    turn_ids: list[int]
    text: str
    text_tokens: int
    vision_tokens: int


@dataclass
class MemoryContext:
    """What to put in front of the model, oldest first.

    ``pages`` are images; ``text_pages`` are pages kept as text by the profitability gate;
    ``recent`` are the newest turns as text: the turns not yet packed onto a page followed by the
    recent window (the first may be the tail of a turn whose head is on the newest page; then its
    ``content`` is that tail). ``text_tokens`` counts all text here (``recent``,
    ``text_pages`` and the pages' ``verbatim`` text), ``vision_tokens`` the images, for
    ``target``. ``replaced_text_tokens`` is what the images stand for as text.
    ``forgotten_turn_ids`` lists turns with no character left in this context.
    """

    pages: list[MemoryPage]
    text_pages: list[TextPage]
    recent: list[Turn]
    text_tokens: int
    vision_tokens: int
    replaced_text_tokens: int
    forgotten_turn_ids: list[int]
    target: str
    budget_tokens: int | None

    @property
    def total_tokens(self) -> int:
        return self.text_tokens + self.vision_tokens

    @property
    def over_budget(self) -> bool:
        """True only when the newest turn alone exceeds the budget (it is always kept)."""
        return self.budget_tokens is not None and self.total_tokens > self.budget_tokens

    @property
    def memory(self) -> list[MemoryPage | TextPage]:
        """Image pages and text pages merged, oldest first (they precede ``recent``)."""
        return sorted([*self.pages, *self.text_pages], key=lambda page: page.seq)


@dataclass(frozen=True)
class MemoryStats:
    """Counts for one thread; ``pages_per_mode`` follows the schedule with no budget."""

    thread_id: str
    turns: int
    pages: int
    pages_per_mode: dict[str, int]
    pending_turns: int
    history_text_tokens: int
    paged_text_tokens: int
    vision_tokens: int
    tokens_saved: int
    renders: int
    cache_hits: int
    images_cached: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
