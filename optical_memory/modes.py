"""DeepSeek-OCR's resolution modes and the number of visual tokens each one costs.

Numbers follow the released model (its ``config.json`` and preprocessing): the encoder turns every
16x16 patch into one SAM token, then compresses 16x (4x per side), so a square input of ``s``
pixels gives a grid of ``s / 64`` tokens per side. In the decoder's sequence each grid row is
followed by one learned ``image_newline`` and the whole image by one ``view_seperator``.
"""

from __future__ import annotations

from enum import Enum

#: Side of one Gundam tile, in pixels (the SMALL input size).
TILE_SIZE = 640
#: Pixels per visual token along one side: 16-px patches, then 4x fewer per side.
PIXELS_PER_TOKEN = 64


class Mode(str, Enum):
    """A DeepSeek-OCR resolution mode, sharpest last-but-one (GUNDAM tiles the page)."""

    TINY = "tiny"
    SMALL = "small"
    BASE = "base"
    LARGE = "large"
    GUNDAM = "gundam"

    @classmethod
    def parse(cls, name: str | Mode) -> Mode:
        """``Mode.parse("Tiny") is Mode.TINY``; a clear error names the valid modes."""
        if isinstance(name, Mode):
            return name
        try:
            return cls(str(name).strip().lower())
        except ValueError:
            valid = ", ".join(m.value for m in cls)
            raise ValueError(f"unknown mode {name!r}: choose one of {valid}") from None

    @property
    def size(self) -> int:
        """Side of the square input in pixels (GUNDAM: its 1024-px global view)."""
        return _SIZES[self]

    @property
    def grid(self) -> int:
        """Visual tokens per side of the (global) view: ``size / 64``."""
        return self.size // PIXELS_PER_TOKEN

    @property
    def resizes_plainly(self) -> bool:
        """TINY and SMALL squash the page to the square; the others pad to keep its aspect."""
        return self in (Mode.TINY, Mode.SMALL)

    @property
    def paper_tokens(self) -> int:
        """Tokens the paper quotes (grid squared, no newlines). GUNDAM: of its global view;
        use :func:`gundam_paper_tokens` for a whole tiled page."""
        return self.grid * self.grid

    def sequence_tokens(self, width: int | None = None, height: int | None = None) -> int:
        """Tokens the image occupies in the decoder's sequence, newlines and separator included.

        TINY 73, SMALL 111, BASE 273, LARGE 421. GUNDAM needs the page's ``width`` and
        ``height``: 273 for the global view plus ``(10w + 1) * 10h`` for a ``w x h`` tile grid,
        or 273 alone when both sides are at most 640 px.
        """
        global_view = self.grid * (self.grid + 1) + 1
        if self is not Mode.GUNDAM:
            return global_view
        if width is None or height is None:
            raise ValueError("Mode.GUNDAM.sequence_tokens needs the page's width and height")
        tiles = gundam_tiles(width, height)
        if tiles is None:
            return global_view
        w, h = tiles
        local = TILE_SIZE // PIXELS_PER_TOKEN  # 10 tokens per tile side
        return global_view + (local * w + 1) * (local * h)


_SIZES = {Mode.TINY: 512, Mode.SMALL: 640, Mode.BASE: 1024, Mode.LARGE: 1280, Mode.GUNDAM: 1024}

#: Modes from sharpest to faintest, the order in which memory fades.
FADING_ORDER: tuple[Mode, ...] = (Mode.GUNDAM, Mode.LARGE, Mode.BASE, Mode.SMALL, Mode.TINY)


def gundam_grid(width: int, height: int, min_tiles: int = 2, max_tiles: int = 9) -> tuple[int, int]:
    """The ``(columns, rows)`` tile grid DeepSeek-OCR picks for an image of this size.

    Candidates are all grids with ``min_tiles <= w*h <= max_tiles``, tried in order of tile
    count; the one whose aspect ratio is closest to the image's wins. On a tie the later (larger)
    grid wins if the image's area exceeds half of that grid's area at 640 px per tile, as in the
    official ``find_closest_aspect_ratio``. A portrait A4 page gets ``(2, 3)``.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if not 1 <= min_tiles <= max_tiles:
        raise ValueError(f"need 1 <= min_tiles <= max_tiles, got {min_tiles}, {max_tiles}")
    candidates = sorted(
        {
            (w, h)
            for n in range(min_tiles, max_tiles + 1)
            for w in range(1, n + 1)
            for h in range(1, n + 1)
            if min_tiles <= w * h <= max_tiles
        },
        key=lambda grid: grid[0] * grid[1],
    )
    aspect = width / height
    area = width * height
    best, best_diff = (1, 1), float("inf")
    for w, h in candidates:
        diff = abs(aspect - w / h)
        if diff < best_diff:
            best, best_diff = (w, h), diff
        elif diff == best_diff and area > 0.5 * TILE_SIZE * TILE_SIZE * w * h:
            best = (w, h)
    return best


def gundam_tiles(width: int, height: int) -> tuple[int, int] | None:
    """The tile grid GUNDAM uses for this page, or ``None`` when both sides fit one tile."""
    if width <= TILE_SIZE and height <= TILE_SIZE:
        return None
    return gundam_grid(width, height)


def gundam_paper_tokens(width: int, height: int) -> int:
    """The paper's count for a GUNDAM page: ``n * 100 + 256`` for ``n`` tiles."""
    tiles = gundam_tiles(width, height)
    n = 0 if tiles is None else tiles[0] * tiles[1]
    return n * Mode.SMALL.paper_tokens + Mode.BASE.paper_tokens


#: How a mode reads where a model or a person is told how a page is shown (captions, search
#: hits): words, not mode names.
MODE_WORDS = {
    Mode.GUNDAM: "sharpest",
    Mode.LARGE: "high resolution",
    Mode.BASE: "medium resolution",
    Mode.SMALL: "low resolution",
    Mode.TINY: "very low resolution",
}
