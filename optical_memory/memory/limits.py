"""Request limits: keep a context's page images within what one API request may carry.

Applied to the pages a context planned, after the plan (the plan's modes are not changed):
while the images (plus ``reserved`` ones the caller sends itself) exceed the target's
:class:`~optical_memory.targets.RequestLimits`, the oldest four pages of one small size are
tiled 2x2 onto one image (a :class:`Mosaic`: four 512-px TINY pages on one 1024-px image cost
DeepSeek-OCR one BASE image, 273 tokens, instead of 4 x 73, and count as one image), and when no
four such pages are left the oldest image is forgotten (its text stays in the store). The
request therefore never fails on an image count or a payload size.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from io import BytesIO

from optical_memory.memory.context import MemoryPage
from optical_memory.modes import Mode
from optical_memory.renderers.page import png_bytes
from optical_memory.store import BlobOwner, Store
from optical_memory.targets import RequestLimits

#: Store blob namespace of drawn mosaics (content_hash: a hash of the pages and their modes).
MOSAIC_NAMESPACE = "mosaics"
#: Largest side a mosaic may have: DeepSeek-OCR's largest single view.
MAX_MOSAIC_SIDE = 1280


@dataclass
class Mosaic:
    """Four pages (oldest first: left to right, top to bottom) tiled on one image."""

    pages: list[MemoryPage]
    width: int
    height: int
    mode: Mode
    vision_tokens: int
    key: str
    """A hash of the pages' image keys: what fixes the mosaic's bytes."""
    _png: Callable[[], bytes] = field(repr=False)

    @functools.cached_property
    def image_key(self) -> str:
        return f"mosaic/2x2/{self.key}"

    @property
    def page_ids(self) -> list[int]:
        return [page.page_id for page in self.pages]

    @property
    def turn_ids(self) -> list[int]:
        return [turn_id for page in self.pages for turn_id in page.turn_ids]

    @property
    def text_tokens(self) -> int:
        return sum(page.text_tokens for page in self.pages)

    @property
    def seq(self) -> int:
        return self.pages[0].seq

    def png(self) -> bytes:
        return self._png()


@dataclass
class Bounded:
    """The images to send (oldest first) and the pages forgotten to stay within the limits."""

    images: list[MemoryPage | Mosaic]
    forgotten: list[MemoryPage]


def _mode_of_side(side: int) -> Mode:
    for mode in (Mode.TINY, Mode.SMALL, Mode.BASE, Mode.LARGE):
        if mode.size == side:
            return mode
    return Mode.GUNDAM


def bound_pages(
    pages: Sequence[MemoryPage],
    limits: RequestLimits,
    cost: Callable[[int, int, Mode], int],
    store: Store,
    *,
    reserved_images: int = 0,
    reserved_bytes: int = 0,
    size: Callable[[MemoryPage | Mosaic], int] | None = None,
) -> Bounded:
    """``pages`` (oldest first) made to fit ``limits`` with ``reserved_*`` already used.

    ``cost(width, height, mode)`` prices a mosaic for the target; mosaics are cached in
    ``store``. ``size(image)`` gives an image's PNG bytes (default: ``len(image.png())``, a
    read from the store). Pages stay as they are when they fit.
    """
    images: list[MemoryPage | Mosaic] = list(pages)
    forgotten: list[MemoryPage] = []
    max_side = MAX_MOSAIC_SIDE
    if limits.max_side_when_many is not None:
        max_side = min(max_side, limits.max_side_when_many)

    size = size or _png_size
    total_bytes = reserved_bytes + sum(size(item) for item in images)
    searched = 0  # no tileable run starts before this index
    while images and (
        len(images) + reserved_images > limits.max_images or total_bytes > limits.max_bytes
    ):
        run = _oldest_tileable_run(images, max_side, searched)
        if run is not None and len(images) + reserved_images > limits.max_images:
            start = searched = run
            group = [images[i] for i in range(start, start + 4)]
            mosaic = _mosaic(group, cost, store)  # type: ignore[arg-type]
            total_bytes += size(mosaic) - sum(size(item) for item in group)
            images[start : start + 4] = [mosaic]
            continue
        searched = max(0, searched - 1)
        oldest = images.pop(0)
        total_bytes -= size(oldest)
        forgotten.extend(oldest.pages if isinstance(oldest, Mosaic) else [oldest])
    return Bounded(images, forgotten)


def _png_size(image: MemoryPage | Mosaic) -> int:
    return len(image.png())


def _oldest_tileable_run(
    items: Sequence[MemoryPage | Mosaic], max_side: int, begin: int = 0
) -> int | None:
    """Index (``begin`` or later) of the oldest four consecutive plain pages of one size that
    tile within ``max_side``."""
    for start in range(begin, len(items) - 3):
        group = items[start : start + 4]
        first = group[0]
        if not isinstance(first, MemoryPage) or 2 * max(first.width, first.height) > max_side:
            continue
        if all(
            isinstance(p, MemoryPage) and (p.width, p.height) == (first.width, first.height)
            for p in group
        ):
            return start
    return None


def _mosaic(pages: list[MemoryPage], cost: Callable[[int, int, Mode], int], store: Store) -> Mosaic:
    width, height = 2 * pages[0].width, 2 * pages[0].height
    mode = _mode_of_side(max(width, height))
    key = hashlib.sha256(
        "|".join(f"{p.content_hash}:{p.mode.value}:{p.renderer_key}" for p in pages).encode()
    ).hexdigest()
    cached: list[bytes] = []

    def png() -> bytes:
        if cached:
            return cached[0]
        data = store.get_blob(MOSAIC_NAMESPACE, key, mode.value, "2x2")
        if data is None:
            from PIL import Image

            canvas = Image.new("RGB", (width, height), "white")
            for index, page in enumerate(pages):
                with Image.open(BytesIO(page.png())) as image:
                    x, y = (index % 2) * pages[0].width, (index // 2) * pages[0].height
                    canvas.paste(image.convert("RGB"), (x, y))
            data = png_bytes(canvas)
            # Owned by its newest page: retention drops it with that page's sharper modes,
            # and it goes with the thread that holds the page.
            owner = BlobOwner.page(pages[-1].content_hash)
            store.put_blob(MOSAIC_NAMESPACE, key, mode.value, "2x2", data, owner=owner)
        cached.append(data)
        return data

    return Mosaic(pages, width, height, mode, cost(width, height, mode), key, png)
