"""Per-mode preprocessing: sizes, padding colour, normalization and tile order."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from optical_memory.model.preprocess import preprocess
from optical_memory.modes import Mode
from optical_memory.views import PAD_COLOR

#: (127 / 255 - 0.5) / 0.5: the grey padding after normalization.
GREY = (127 / 255 - 0.5) / 0.5
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def normalized(color: tuple[int, int, int]) -> torch.Tensor:
    return (torch.tensor(color, dtype=torch.float32) / 255 - 0.5) / 0.5


def halves(size: tuple[int, int], left: tuple[int, int, int], right: tuple[int, int, int]):
    image = Image.new("RGB", size, left)
    image.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return image


def test_pixels_are_normalized_with_mean_and_std_one_half() -> None:
    black = preprocess(Image.new("RGB", (64, 64), (0, 0, 0)), Mode.TINY).global_view
    white = preprocess(Image.new("RGB", (64, 64), (255, 255, 255)), Mode.TINY).global_view
    grey = preprocess(Image.new("RGB", (64, 64), PAD_COLOR), Mode.TINY).global_view
    assert black.dtype == torch.float32
    assert torch.all(black == -1.0) and torch.all(white == 1.0)
    assert torch.allclose(grey, torch.full_like(grey, GREY))


@pytest.mark.parametrize(("mode", "side"), [(Mode.TINY, 512), (Mode.SMALL, 640)])
def test_tiny_and_small_squash_the_page_to_the_square(mode: Mode, side: int) -> None:
    page = preprocess(halves((300, 100), RED, BLUE), mode)
    view = page.global_view
    assert view.shape == (3, side, side)
    assert page.tiles is None and page.grid is None
    # No padding: the corners are the page's own colours, stretched to the full height.
    assert torch.equal(view[:, 0, 0], normalized(RED))
    assert torch.equal(view[:, side - 1, 0], normalized(RED))
    assert torch.equal(view[:, 0, side - 1], normalized(BLUE))
    assert torch.equal(view[:, side // 2, side - 1], normalized(BLUE))


def test_base_pads_a_wide_page_with_grey_above_and_below() -> None:
    page = preprocess(Image.new("RGB", (400, 200), GREEN), Mode.BASE)
    view = page.global_view
    assert view.shape == (3, 1024, 1024)
    # 400x200 fits as 1024x512, centred: rows 0..255 and 768..1023 are padding.
    grey = torch.full((3,), GREY)
    assert torch.allclose(view[:, 0, :], grey[:, None].expand(3, 1024))
    assert torch.allclose(view[:, 255, 512], grey)
    assert torch.allclose(view[:, 1023, 17], grey)
    assert torch.allclose(view[:, 768, 900], grey)
    assert torch.equal(view[:, 256, 0], normalized(GREEN))
    assert torch.equal(view[:, 512, 512], normalized(GREEN))
    assert torch.equal(view[:, 767, 1023], normalized(GREEN))


def test_large_pads_a_tall_page_with_grey_left_and_right() -> None:
    page = preprocess(Image.new("RGB", (100, 200), BLUE), Mode.LARGE)
    view = page.global_view
    assert view.shape == (3, 1280, 1280)
    # 100x200 fits as 640x1280, centred: columns 0..319 and 960..1279 are padding.
    grey = torch.full((3,), GREY)
    assert torch.allclose(view[:, 600, 0], grey)
    assert torch.allclose(view[:, 0, 319], grey)
    assert torch.allclose(view[:, 1279, 960], grey)
    assert torch.equal(view[:, 640, 320], normalized(BLUE))
    assert torch.equal(view[:, 0, 959], normalized(BLUE))


def test_gundam_cuts_tiles_row_major() -> None:
    # A 2x3 grid of 640-px blocks, each its own colour; 1280x1920 needs no resizing.
    colors = [(40 * i, 255 - 40 * i, (90 * i) % 256) for i in range(6)]
    image = Image.new("RGB", (1280, 1920))
    for index, color in enumerate(colors):
        x, y = index % 2, index // 2
        image.paste(color, (x * 640, y * 640, (x + 1) * 640, (y + 1) * 640))
    page = preprocess(image, Mode.GUNDAM)
    assert page.grid == (2, 3)
    assert page.tiles is not None and page.tiles.shape == (6, 3, 640, 640)
    for index, color in enumerate(colors):
        expected = normalized(color)[:, None, None].expand(3, 640, 640)
        assert torch.equal(page.tiles[index], expected), f"tile {index} is not block {index}"
    # The global view is the padded 1024-px page: 683 px wide, grey at the sides.
    assert page.global_view.shape == (3, 1024, 1024)
    assert torch.allclose(page.global_view[:, 500, 0], torch.full((3,), GREY))
    assert torch.allclose(page.global_view[:, 0, 1023], torch.full((3,), GREY))
    assert torch.equal(page.global_view[:, 10, 300], normalized(colors[0]))
    assert page.sequence_tokens == Mode.GUNDAM.sequence_tokens(1280, 1920) == 273 + 21 * 30


def test_gundam_resizes_the_page_to_the_grid_before_cutting() -> None:
    # A portrait A4 page at 150 dpi: grid 2x3, so it is resized to 1280x1920 first.
    image = halves((1240, 1754), RED, BLUE)
    page = preprocess(image, Mode.GUNDAM)
    assert page.grid == (2, 3)
    assert page.tiles is not None and page.tiles.shape == (6, 3, 640, 640)
    for row in range(3):
        assert torch.equal(page.tiles[2 * row][:, 320, 10], normalized(RED))
        assert torch.equal(page.tiles[2 * row + 1][:, 320, 630], normalized(BLUE))
    assert page.sequence_tokens == 903


def test_gundam_page_that_fits_one_tile_has_no_tiles() -> None:
    page = preprocess(Image.new("RGB", (600, 400), RED), Mode.GUNDAM)
    assert page.tiles is None and page.grid is None
    assert page.global_view.shape == (3, 1024, 1024)
    assert page.sequence_tokens == Mode.BASE.sequence_tokens() == 273


def test_modes_by_name_and_non_rgb_images() -> None:
    page = preprocess(Image.new("L", (50, 50), 255), "Small")
    assert page.mode is Mode.SMALL
    assert page.global_view.shape == (3, 640, 640)
    assert torch.all(page.global_view == 1.0)
    rgba = preprocess(Image.new("RGBA", (50, 50), (0, 255, 0, 0)), Mode.TINY).global_view
    assert torch.equal(rgba[:, 5, 5], normalized(GREEN))
    assert page.page_size == (50, 50)
