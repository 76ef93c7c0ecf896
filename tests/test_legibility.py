"""Expected legibility: DeepSeek-OCR's Fox precision at a page's text tokens and mode."""

from __future__ import annotations

import pytest

from optical_memory.legibility import FOX_TABLE, expected_precision, page_legibility
from optical_memory.modes import FADING_ORDER, Mode


@pytest.mark.parametrize("row", FOX_TABLE)
def test_the_paper_rows_come_back_at_their_mean_text_tokens(row: tuple) -> None:
    _, _, _, (tiny_precision, tiny_ratio), (small_precision, small_ratio) = row
    assert expected_precision(tiny_ratio * 64, Mode.TINY) == pytest.approx(tiny_precision)
    assert expected_precision(small_ratio * 100, Mode.SMALL) == pytest.approx(small_precision)


def test_between_rows_precision_is_interpolated_and_held_outside_the_table() -> None:
    low, high = expected_precision(672, "tiny"), expected_precision(755.2, "tiny")
    assert expected_precision(713.6, "tiny") == pytest.approx((low + high) / 2)
    assert expected_precision(100, "tiny") == pytest.approx(0.965)
    assert expected_precision(5000, "tiny") == pytest.approx(0.591)


@pytest.mark.parametrize("tokens", [300, 650, 900, 1100, 1300, 2500])
def test_a_sharper_mode_never_reads_worse(tokens: int) -> None:
    precision = [expected_precision(tokens, mode) for mode in FADING_ORDER]
    assert precision == sorted(precision, reverse=True)


def test_a_page_sent_as_text_is_read_whole() -> None:
    assert page_legibility(50, Mode.TINY, vision_tokens=73) == 1.0
    assert page_legibility(900, Mode.TINY, vision_tokens=73) == expected_precision(900, "tiny")


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="text_tokens"):
        expected_precision(-1, Mode.TINY)
    with pytest.raises(ValueError, match="unknown mode"):
        expected_precision(900, "huge")
