"""The paper's Fox precision, read at a page's text-token count."""

from __future__ import annotations

import pytest

from optical_memory.fox import FOX_TABLE, expected_precision
from optical_memory.modes import Mode


def test_a_bin_centre_gives_the_papers_precision_for_that_bin() -> None:
    # Table 2, 700-800 text tokens: 93.8% from 64 vision tokens, 97.3% from 100.
    assert expected_precision(750, Mode.TINY) == pytest.approx(0.938)
    assert expected_precision(750, Mode.SMALL) == pytest.approx(0.973)


def test_between_centres_the_precision_is_interpolated_linearly() -> None:
    # A quarter of the way from 1,150 (76.4%) to 1,250 (59.1%) tokens.
    assert expected_precision(1175, "tiny") == pytest.approx(0.764 + 0.25 * (0.591 - 0.764))


def test_beyond_the_table_the_nearest_bin_holds() -> None:
    assert expected_precision(0, Mode.TINY) == pytest.approx(0.965)
    assert expected_precision(400, Mode.SMALL) == pytest.approx(0.985)
    assert expected_precision(5000, Mode.SMALL) == pytest.approx(0.871)


def test_denser_pages_read_worse_across_the_table() -> None:
    for mode in (Mode.TINY, Mode.SMALL):
        light, dense = expected_precision(650, mode), expected_precision(1250, mode)
        assert light is not None and dense is not None and light > dense
    # SMALL's 100 tokens read every bin at least as well as TINY's 64.
    for low, high, *_ in FOX_TABLE:
        tiny = expected_precision((low + high) / 2, Mode.TINY)
        small = expected_precision((low + high) / 2, Mode.SMALL)
        assert tiny is not None and small is not None and small >= tiny


def test_modes_the_table_did_not_measure_have_no_expected_precision() -> None:
    for mode in (Mode.BASE, Mode.LARGE, Mode.GUNDAM):
        assert expected_precision(900, mode) is None


def test_bad_token_counts_are_refused_with_what_was_wrong() -> None:
    with pytest.raises(ValueError, match="text_tokens must be a count"):
        expected_precision(-1, Mode.TINY)
    with pytest.raises(ValueError, match="text_tokens must be a count"):
        expected_precision(float("nan"), Mode.TINY)
    with pytest.raises(TypeError, match="text_tokens must be a number"):
        expected_precision("900", Mode.TINY)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown mode"):
        expected_precision(900, "huge")
