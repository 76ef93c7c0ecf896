"""PNG bytes of page images: lossless, deterministic, at the fewest bits a palette needs."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from optical_memory.renderers.png import png_bytes


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def palette_image(colours: int, size: tuple[int, int] = (37, 11)) -> Image.Image:
    """A P image using indices 0..colours-1 (odd width: rows do not fill whole bytes)."""
    indices = (np.arange(size[0] * size[1]).reshape(size[1], size[0]) % colours).astype(np.uint8)
    image = Image.fromarray(indices).convert("P")
    image.putpalette([(7 * i + c) % 256 for i in range(colours) for c in range(3)])
    return image


@pytest.mark.parametrize(("colours", "bits"), [(2, 1), (4, 2), (16, 4), (17, 8), (256, 8)])
def test_a_palette_image_is_stored_exactly_at_the_fewest_bits_its_indices_need(
    colours: int, bits: int
) -> None:
    image = palette_image(colours)
    data = png_bytes(image)
    assert data[24] == bits and data[25] == 3  # IHDR: bit depth, colour type 3 (palette)
    back = decoded(data)
    assert back.mode == "P"
    assert np.array_equal(np.asarray(back.convert("RGB")), np.asarray(image.convert("RGB")))


def test_a_greyscale_image_is_stored_exactly_as_greyscale() -> None:
    image = Image.fromarray(np.arange(256 * 3, dtype=np.uint16).reshape(3, 256).astype(np.uint8))
    back = decoded(png_bytes(image))
    assert back.mode == "L" and back.tobytes() == image.tobytes()


def test_a_colour_image_with_few_colours_survives_the_reduction_to_a_palette() -> None:
    image = Image.new("RGB", (64, 32), (255, 255, 255))
    image.paste((0, 82, 204), (4, 4, 30, 20))
    image.paste((0, 0, 0), (34, 4, 60, 20))
    back = decoded(png_bytes(image))
    assert back.mode == "P"
    assert np.array_equal(np.asarray(back.convert("RGB")), np.asarray(image))


@pytest.mark.parametrize("mode", ["RGBA", "1", "LA", "I;16"])
def test_other_image_modes_are_written_as_readable_pngs_of_the_same_size(mode: str) -> None:
    image = Image.new(mode, (20, 10))
    back = decoded(png_bytes(image))
    assert back.size == (20, 10)


def test_equal_images_give_equal_bytes_and_different_images_different_bytes() -> None:
    first, second = palette_image(16), palette_image(16)
    assert png_bytes(first) == png_bytes(second)
    second.putpixel((0, 0), 5)
    assert png_bytes(first) != png_bytes(second)
