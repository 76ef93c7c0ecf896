"""The schedule experiment: memory per token for each planning, and the default's choice."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from optical_memory.experiments.run import load_dialogs
from optical_memory.experiments.schedules import (
    choose_tiers,
    curve,
    default_schedules,
    load,
    replay,
)
from optical_memory.schedule import DEFAULT_BATCH, DEFAULT_TIERS


@pytest.fixture(scope="module")
def synthetic_rows() -> dict[str, list[dict[str, float]]]:
    replayed = replay(load_dialogs("synthetic")[0])
    try:
        return curve([replayed], default_schedules())
    finally:
        replayed.memory.close()


def test_full_text_reads_everything_and_the_window_forgets(synthetic_rows: dict) -> None:
    (full,) = synthetic_rows["full text"]
    assert full["legibility"] == 1.0 and full["compression"] == 1.0
    (window,) = synthetic_rows["last 40 turns"]
    assert window["tokens"] < full["tokens"] and window["legibility"] < 0.5


def test_budgets_hold_and_the_knapsack_reads_at_least_as_much(synthetic_rows: dict) -> None:
    old = synthetic_rows["oldest-first, earlier tiers"]
    new = synthetic_rows["knapsack, earlier tiers"]
    for before, after in zip(old, new, strict=True):
        ratio = after["budget_ratio"]
        if not math.isnan(ratio):
            assert after["compression"] >= ratio * 0.999  # within history / ratio
        assert after["legibility"] >= before["legibility"] - 1e-9


def test_the_default_is_the_most_legible_candidate_at_6x(locomo_path: Path) -> None:
    replays = load(str(locomo_path))
    try:
        tiers, row, meets = choose_tiers(replays, DEFAULT_BATCH)[0]
    finally:
        for r in replays:
            r.memory.close()
    assert tiers == DEFAULT_TIERS
    assert meets and row["compression"] >= 6.0
    assert row["legibility"] >= 0.95
