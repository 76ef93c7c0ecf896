"""PNG bytes of a page image: palette pages packed to their bit depth, deflated by libdeflate.

Pillow's own PNG writer spends most of a page's encoding time choosing a filter per row, and its
zlib compresses palette text pages less tightly than libdeflate does in less time; here rows go
unfiltered (PNG's advice for palette images) into one ``IDAT`` chunk. The bytes depend only on
the pixels and the palette (no metadata, no timestamps).
"""

from __future__ import annotations

import struct
import zlib

import deflate
import numpy as np
from PIL import Image

#: libdeflate's level (1-12): where a dense page stops shrinking much for the time it costs
#: (``python benchmarks/render.py`` prints pages per second and bytes per page).
DEFLATE_LEVEL = 6
_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_GREY, _PALETTE = 0, 3  # PNG colour types


def png_bytes(image: Image.Image) -> bytes:
    """``image`` as PNG bytes; equal pixels (and palette) give equal bytes.

    Palette (``P``) and greyscale (``L``) images are written as they are, a palette image at the
    fewest bits per pixel its highest index needs (16 colours: 4 bits); any other image is first
    reduced to a palette of at most 256 colours (:func:`palette_image`).
    """
    if image.mode in ("1", "LA", "I", "I;16", "F"):
        image = image.convert("L")
    elif image.mode not in ("L", "P"):
        image = palette_image(image)
    width, height = image.size
    if image.mode == "L":
        bits, colour_type, raw_mode, palette = 8, _GREY, "L", b""
    else:
        # The palette's length bounds the indices (a renderer's page has just the entries it
        # uses); a long palette, as from a quantizer, is cut to the highest index used.
        entries = bytes(image.getpalette("RGB") or ())
        colours = len(entries) // 3
        if colours > 16 or colours == 0:
            colours = int(np.asarray(image).max()) + 1
        bits = next(b for b in (1, 2, 4, 8) if colours <= 1 << b)
        colour_type, raw_mode = _PALETTE, "P" if bits == 8 else f"P;{bits}"
        palette = entries[: 3 * colours].ljust(3 * colours, b"\0")
    raw = np.frombuffer(image.tobytes("raw", raw_mode), np.uint8).reshape(height, -1)
    rows = np.zeros((height, raw.shape[1] + 1), np.uint8)  # filter type 0 (none) before each row
    rows[:, 1:] = raw
    header = struct.pack(">IIBBBBB", width, height, bits, colour_type, 0, 0, 0)
    return b"".join(
        (
            _SIGNATURE,
            _chunk(b"IHDR", header),
            _chunk(b"PLTE", palette) if palette else b"",
            _chunk(b"IDAT", deflate.zlib_compress(rows, DEFLATE_LEVEL)),
            _chunk(b"IEND", b""),
        )
    )


def palette_image(image: Image.Image) -> Image.Image:
    """``image`` with at most 256 colours, chosen by Pillow's fast octree quantizer, undithered
    (text pages hold a few dozen colours: antialiased ink on paper, role labels)."""
    return image.convert("RGB").quantize(
        256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE
    )


def _chunk(kind: bytes, data: bytes | bytearray) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
