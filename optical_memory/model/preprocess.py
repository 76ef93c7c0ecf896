"""Page image → normalized pixel tensors for DeepEncoder, per resolution mode.

As DeepSeek-OCR prepares its inputs (the modes of :mod:`optical_memory.modes`):

- TINY, SMALL: the page is resized to the square (bicubic), aspect ratio not kept.
- BASE, LARGE: the page is scaled to fit the square, aspect kept, and centred on grey
  (127, 127, 127), the pixel mean 0.5 in 8 bits.
- GUNDAM: a BASE-like 1024-px padded global view, plus, unless both sides fit one 640-px tile,
  the page resized to ``(640 w, 640 h)`` for the grid ``(w, h)`` of :func:`modes.gundam_tiles`
  and cut into tiles row-major (left to right, then top to bottom).

Pixels are scaled to [0, 1] and normalized with mean = std = 0.5 per channel, so that they lie
in [-1, 1]. PIL and torch only (torchvision does not install beside the CPU torch wheel).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image

from optical_memory.modes import TILE_SIZE, Mode, gundam_tiles
from optical_memory.views import RESAMPLE, square_view

#: Per-channel mean and standard deviation of the normalization (CLIP-style 0.5 / 0.5).
PIXEL_MEAN = 0.5
PIXEL_STD = 0.5


@dataclass(frozen=True)
class PreprocessedPage:
    """One page ready for DeepEncoder.

    ``global_view``: ``(3, S, S)`` float32 with ``S = mode.size``. ``tiles``: ``(w*h, 3, 640,
    640)`` float32 in row-major order, or ``None``. ``grid``: the tile grid ``(columns, rows)``
    or ``None`` (always ``None`` outside GUNDAM). ``page_size``: the original ``(width,
    height)`` in pixels.
    """

    mode: Mode
    global_view: torch.Tensor
    tiles: torch.Tensor | None
    grid: tuple[int, int] | None
    page_size: tuple[int, int]

    @property
    def sequence_tokens(self) -> int:
        """Tokens this page occupies in the decoder's sequence (``Mode.sequence_tokens``)."""
        return self.mode.sequence_tokens(*self.page_size)


def preprocess(image: Image.Image, mode: Mode | str) -> PreprocessedPage:
    """Prepare ``image`` for DeepEncoder at ``mode``; see the module docstring for the rules."""
    mode = Mode.parse(mode)
    page = image.convert("RGB")
    width, height = page.size
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    view = square_view(page, mode)
    tiles, grid = None, None
    if mode is Mode.GUNDAM:
        grid = gundam_tiles(width, height)
        if grid is not None:
            tiles = torch.stack([pixels(tile) for tile in cut_tiles(page, grid)])
    return PreprocessedPage(mode, pixels(view), tiles, grid, (width, height))


def cut_tiles(image: Image.Image, grid: tuple[int, int]) -> list[Image.Image]:
    """Resize ``image`` to ``(640 columns, 640 rows)`` and cut it into tiles, row-major."""
    columns, rows = grid
    resized = image.resize((TILE_SIZE * columns, TILE_SIZE * rows), RESAMPLE)
    return [
        resized.crop((x * TILE_SIZE, y * TILE_SIZE, (x + 1) * TILE_SIZE, (y + 1) * TILE_SIZE))
        for y in range(rows)
        for x in range(columns)
    ]


def pixels(image: Image.Image) -> torch.Tensor:
    """An RGB image as normalized ``(3, H, W)`` float32: ``(v / 255 - 0.5) / 0.5``."""
    rgb = image.convert("RGB")
    width, height = rgb.size
    data = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8)
    chw = data.view(height, width, 3).permute(2, 0, 1).float()
    return chw.div_(255.0).sub_(PIXEL_MEAN).div_(PIXEL_STD).contiguous()
