"""Expected legibility: the Fox prior as a monotone fit, unknown modes, exact-value priors.

Expected figures are the paper's and pxpipe's published numbers, written here as literals.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from optical_memory.legibility import (
    CLAUDE_CELL_ACCURACY,
    FOX_TABLE,
    FOX_VISION_TOKENS,
    ModeLegibility,
    exact_value_prior,
    expected_precision,
    fox_precision,
    glyph_height,
    page_legibility,
    reads_exactly,
)
from optical_memory.modes import FADING_ORDER, Mode

# DeepSeek-OCR Table 2 (Fox, English): (mean text tokens = compression x vision tokens,
# precision), rows that already read worse as text grows.
TINY_ROWS = [(10.5 * 64, 0.965), (11.8 * 64, 0.938), (16.5 * 64, 0.793), (19.7 * 64, 0.591)]
SMALL_ROWS = [(6.7 * 100, 0.985), (8.5 * 100, 0.968), (10.6 * 100, 0.915), (12.6 * 100, 0.871)]


# DeepSeek-OCR Table 2, typed from the paper: text tokens from, to; pages in the bin; precision
# and compression at 64 vision tokens; precision and compression at 100.
PAPER_TABLE_2 = (
    (600, 700, 7, (0.965, 10.5), (0.985, 6.7)),
    (700, 800, 28, (0.938, 11.8), (0.973, 7.5)),
    (800, 900, 28, (0.838, 13.2), (0.968, 8.5)),
    (900, 1000, 14, (0.859, 15.1), (0.968, 9.7)),
    (1000, 1100, 11, (0.793, 16.5), (0.915, 10.6)),
    (1100, 1200, 8, (0.764, 17.7), (0.898, 11.3)),
    (1200, 1300, 4, (0.591, 19.7), (0.871, 12.6)),
)


def test_the_fox_prior_is_the_papers_table_2() -> None:
    assert FOX_TABLE == PAPER_TABLE_2
    # Table 1: Tiny (512 x 512) is 64 vision tokens, Small (640 x 640) is 100.
    assert FOX_VISION_TOKENS == {Mode.TINY: 64, Mode.SMALL: 100}


def test_each_rows_compression_puts_its_mean_text_tokens_inside_its_bin() -> None:
    """A typo in a compression would move a row out of its own bin."""
    for low, high, _, (_, tiny), (_, small) in FOX_TABLE:
        assert low <= tiny * 64 <= high
        assert low <= small * 100 <= high


@pytest.mark.parametrize(("mode", "rows"), [(Mode.TINY, TINY_ROWS), (Mode.SMALL, SMALL_ROWS)])
def test_monotone_rows_of_the_paper_come_back_at_their_mean_text_tokens(
    mode: Mode, rows: list[tuple[float, float]]
) -> None:
    for tokens, precision in rows:
        assert fox_precision(tokens, mode) == pytest.approx(precision)


def test_the_rows_where_more_text_read_better_are_pooled_by_their_pages() -> None:
    # 800-900 tokens: 83.8% over 28 pages; 900-1000: 85.9% over 14. Pooled: 84.5%.
    pooled = (0.838 * 28 + 0.859 * 14) / 42
    assert fox_precision(13.2 * 64, Mode.TINY) == pytest.approx(pooled)
    assert fox_precision(15.1 * 64, Mode.TINY) == pytest.approx(pooled)


@pytest.mark.parametrize("mode", [Mode.TINY, Mode.SMALL])
def test_more_text_never_reads_better_and_the_curve_goes_on_down_past_the_table(
    mode: Mode,
) -> None:
    curve = [fox_precision(t, mode) for t in np.linspace(0, 3000, 301)]
    assert all(a is not None and b is not None and a >= b for a, b in itertools.pairwise(curve))
    assert fox_precision(100, mode) == fox_precision(600, mode)  # held below the table
    assert 0.0 <= fox_precision(1600, Mode.TINY) < 0.591  # type: ignore[operator]
    assert fox_precision(10**6, mode) == 0.0


@pytest.mark.parametrize("mode", [Mode.BASE, Mode.LARGE, Mode.GUNDAM])
def test_modes_the_paper_never_measured_are_unknown_and_planned_no_better_than_small(
    mode: Mode,
) -> None:
    assert fox_precision(900, mode) is None
    # Not SMALL's column at a lower compression (which would read 98.5% at 1,260 tokens):
    # SMALL on the same page, 87.1%.
    assert expected_precision(12.6 * 100, mode) == pytest.approx(0.871)


@pytest.mark.parametrize("tokens", [300, 650, 900, 1100, 1300, 2500])
def test_a_sharper_mode_never_reads_worse(tokens: int) -> None:
    precision = [expected_precision(tokens, mode) for mode in FADING_ORDER]
    assert precision == sorted(precision, reverse=True)


def test_a_page_sent_as_text_is_read_whole() -> None:
    assert page_legibility(50, Mode.TINY, vision_tokens=73) == 1.0
    assert page_legibility(1261, Mode.TINY, vision_tokens=73) == pytest.approx(0.591, abs=0.002)


def test_claude_reads_exact_values_by_glyph_cell_as_published() -> None:
    # pxpipe: Claude reads 5x8-px cells 10% exactly, 10x16 95%, 20x32 100%.
    assert glyph_height(Mode.TINY) == pytest.approx(8.5)  # the 17-px font on a 512-px page
    assert glyph_height(Mode.BASE) == pytest.approx(17.0)
    tiny, base = exact_value_prior("anthropic", Mode.TINY), exact_value_prior("anthropic", "base")
    assert tiny is not None and 0.10 <= tiny < 0.25
    assert base is not None and 0.95 <= base < 0.99
    assert exact_value_prior("anthropic", Mode.TINY) == pytest.approx(
        0.10 + 0.85 * np.log2(8.5 / 8)
    )
    assert exact_value_prior("openai", Mode.LARGE) is None  # nothing published: unknown
    assert not any(reads_exactly("anthropic", mode) for mode in Mode)
    assert not any(reads_exactly("deepseek-ocr", mode) for mode in Mode)


def test_the_exact_value_prior_is_pxpipes_published_measurements() -> None:
    # pxpipe, Claude reading 20 ids: 5x8-px cells 10% exact, 10x16 95%, 20x32 100%.
    assert CLAUDE_CELL_ACCURACY == ((8.0, 0.10), (16.0, 0.95), (32.0, 1.0))


def test_a_calibrated_table_decides_where_exact_values_are_read() -> None:
    table = {Mode.LARGE: 0.995, Mode.TINY: 0.2}
    assert reads_exactly("openai", Mode.LARGE, table)
    assert not reads_exactly("openai", Mode.TINY, table)
    assert not reads_exactly("openai", Mode.BASE, table)  # not measured: the prior, unknown
    row = ModeLegibility(0.9, 0.5, 4)
    assert ModeLegibility.from_json(row.to_json()) == row


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="text_tokens"):
        expected_precision(-1, Mode.TINY)
    with pytest.raises(ValueError, match="unknown mode"):
        expected_precision(900, "huge")
