"""Vision tokens per target: the vendors' worked examples and published rules, as literals."""

from __future__ import annotations

import pytest

from optical_memory.modes import Mode
from optical_memory.targets import vision_tokens


@pytest.mark.parametrize(
    ("mode", "expected"),
    [(Mode.TINY, 73), (Mode.SMALL, 111), (Mode.BASE, 273), (Mode.LARGE, 421)],
)
def test_deepseek_ocr_costs_the_modes_sequence_tokens(mode: Mode, expected: int) -> None:
    assert vision_tokens(mode.size, mode.size, "deepseek-ocr", mode) == expected


def test_deepseek_ocr_gundam_a4_page_costs_903() -> None:
    assert vision_tokens(2100, 2970, "deepseek-ocr", "gundam") == 903


def test_deepseek_ocr_defaults_to_base() -> None:
    assert vision_tokens(1024, 1024) == 273


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (1024, 1024, 765),  # 768x768 after scaling: 4 tiles
        (2048, 4096, 1105),  # 1024x2048, then 768x1536: 6 tiles
        (512, 512, 255),  # one tile, no scaling
    ],
)
def test_openai_high_detail_worked_examples(width: int, height: int, expected: int) -> None:
    assert vision_tokens(width, height, "openai") == expected


def test_openai_low_detail_is_a_flat_85() -> None:
    assert vision_tokens(4096, 4096, "openai", detail="low") == 85


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (1000, 1000, 1334),  # 1,000,000 / 750 rounded up
        (200, 200, 54),
        (1092, 1092, 1590),  # the largest square that is not shrunk
    ],
)
def test_anthropic_worked_examples(width: int, height: int, expected: int) -> None:
    assert vision_tokens(width, height, "anthropic") == expected


def test_anthropic_large_images_are_capped_near_1600_tokens() -> None:
    assert 1500 < vision_tokens(4000, 3000, "anthropic") <= 1600


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (28 * 10, 28 * 20, 200),  # one token per 28x28 block
        (1024, 1024, 37 * 37),  # each side rounded to the nearest multiple of 28
        (10, 10, 4),  # raised to the 56x56 minimum
    ],
)
def test_qwen25vl_one_token_per_28_pixel_block(width: int, height: int, expected: int) -> None:
    assert vision_tokens(width, height, "qwen2.5-vl") == expected


def test_qwen25vl_caps_huge_images_at_16384_tokens() -> None:
    assert 16_000 < vision_tokens(20_000, 20_000, "qwen2.5-vl") <= 16_384


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (384, 384, 258),  # small images: one flat 258
        (1024, 1024, 258 * 4),  # 2x2 tiles of 768
        (768, 2000, 258 * 3),
    ],
)
def test_gemini_258_per_768_pixel_tile(width: int, height: int, expected: int) -> None:
    assert vision_tokens(width, height, "gemini") == expected


def test_unknown_target_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="anthropic"):
        vision_tokens(100, 100, "llava")


def test_empty_images_are_rejected() -> None:
    with pytest.raises(ValueError, match="positive"):
        vision_tokens(0, 100, "openai")
