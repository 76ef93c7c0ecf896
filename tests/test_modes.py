"""DeepSeek-OCR's resolution modes: sizes, token counts and Gundam tiling, as released."""

from __future__ import annotations

import pytest

from optical_memory.modes import (
    FADING_ORDER,
    Mode,
    gundam_grid,
    gundam_paper_tokens,
    gundam_tiles,
)


@pytest.mark.parametrize(
    ("mode", "size", "paper", "sequence"),
    [
        (Mode.TINY, 512, 64, 73),
        (Mode.SMALL, 640, 100, 111),
        (Mode.BASE, 1024, 256, 273),
        (Mode.LARGE, 1280, 400, 421),
    ],
)
def test_each_mode_has_the_released_size_and_token_counts(
    mode: Mode, size: int, paper: int, sequence: int
) -> None:
    assert mode.size == size
    assert mode.paper_tokens == paper
    assert mode.sequence_tokens(size, size) == sequence


def test_gundam_global_view_is_base_sized_and_a_1280_page_adds_two_by_two_tiles() -> None:
    assert Mode.GUNDAM.size == 1024
    assert Mode.GUNDAM.paper_tokens == 256
    assert gundam_grid(1280, 1280) == (2, 2)
    assert Mode.GUNDAM.sequence_tokens(1280, 1280) == 273 + (10 * 2 + 1) * (10 * 2) == 693
    assert gundam_paper_tokens(1280, 1280) == 4 * 100 + 256


def test_sequence_tokens_are_grid_rows_plus_newlines_plus_separator() -> None:
    # TINY: an 8x8 grid, one newline per row, one view separator.
    assert Mode.TINY.sequence_tokens() == 8 * (8 + 1) + 1


def test_tiny_and_small_squash_while_base_and_larger_pad() -> None:
    assert [m for m in Mode if m.resizes_plainly] == [Mode.TINY, Mode.SMALL]


def test_modes_parse_from_any_case_and_reject_unknown_names_with_the_valid_ones() -> None:
    assert Mode.parse(" Tiny ") is Mode.TINY
    assert Mode.parse(Mode.LARGE) is Mode.LARGE
    with pytest.raises(ValueError, match="tiny, small, base, large, gundam"):
        Mode.parse("huge")


def test_memory_fades_from_gundam_to_tiny() -> None:
    assert FADING_ORDER == (Mode.GUNDAM, Mode.LARGE, Mode.BASE, Mode.SMALL, Mode.TINY)


def test_portrait_a4_page_gets_two_by_three_tiles_and_903_tokens() -> None:
    assert gundam_grid(2100, 2970) == (2, 3)
    assert Mode.GUNDAM.sequence_tokens(2100, 2970) == 273 + (10 * 2 + 1) * (10 * 3) == 903
    assert gundam_paper_tokens(2100, 2970) == 6 * 100 + 256


def test_landscape_a4_page_gets_three_by_two_tiles() -> None:
    assert gundam_grid(2970, 2100) == (3, 2)
    assert Mode.GUNDAM.sequence_tokens(2970, 2100) == 273 + (10 * 3 + 1) * (10 * 2)


def test_very_wide_page_gets_one_row_of_the_most_tiles_allowed() -> None:
    assert gundam_grid(10_000, 500) == (9, 1)
    assert gundam_grid(10_000, 500, max_tiles=6) == (6, 1)


def test_very_tall_page_gets_one_column() -> None:
    assert gundam_grid(500, 10_000) == (1, 9)
    assert Mode.GUNDAM.sequence_tokens(500, 10_000) == 273 + (10 * 1 + 1) * (10 * 9)


def test_square_page_tie_goes_to_the_larger_grid_only_when_the_page_is_big_enough() -> None:
    # 1:1 ties between 1x1 (excluded by min_tiles=2), 2x2 and 3x3.
    assert gundam_grid(1280, 1280) == (2, 2)
    assert gundam_grid(1920, 1920) == (3, 3)  # area > half of 3x3 tiles' area


def test_gundam_page_that_fits_one_tile_costs_what_base_costs() -> None:
    assert gundam_tiles(640, 640) is None
    assert Mode.GUNDAM.sequence_tokens(600, 400) == Mode.BASE.sequence_tokens()
    assert gundam_paper_tokens(640, 640) == 256


def test_gundam_tokens_need_the_page_size() -> None:
    with pytest.raises(ValueError, match="width and height"):
        Mode.GUNDAM.sequence_tokens()


@pytest.mark.parametrize(("width", "height"), [(0, 10), (10, -1)])
def test_gundam_grid_rejects_empty_images(width: int, height: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        gundam_grid(width, height)
