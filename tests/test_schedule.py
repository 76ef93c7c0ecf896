"""DecaySchedule: modes by age, and fitting pages and text into a token budget."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optical_memory.modes import FADING_ORDER, Mode
from optical_memory.schedule import DEFAULT_TIERS, DecaySchedule

# DeepSeek-OCR sequence tokens at the Pillow renderer's page sizes (GUNDAM 1280² → 2x2 tiles).
COST = {Mode.GUNDAM: 693, Mode.LARGE: 421, Mode.BASE: 273, Mode.SMALL: 111, Mode.TINY: 73}


def cost(_index: int, mode: Mode) -> int:
    return COST[mode]


def sharpness(mode: Mode | None) -> int:
    """Higher is sharper; forgotten is the faintest of all."""
    return -1 if mode is None else len(FADING_ORDER) - FADING_ORDER.index(mode)


def test_default_tiers_fade_gundam_to_tiny_with_doubling_widths() -> None:
    assert [m for m, _ in DEFAULT_TIERS] == list(FADING_ORDER)
    schedule = DecaySchedule()
    by_age = [schedule.mode_for_age(age) for age in range(32)]
    assert by_age[:2] == [Mode.GUNDAM] * 2
    assert by_age[2:6] == [Mode.LARGE] * 4
    assert by_age[6:14] == [Mode.BASE] * 8
    assert by_age[14:30] == [Mode.SMALL] * 16
    assert by_age[30:] == [Mode.TINY] * 2


def test_pages_older_than_every_tier_stay_at_the_faintest_mode_unless_forget_after() -> None:
    assert DecaySchedule().mode_for_age(10_000) is Mode.TINY
    schedule = DecaySchedule(forget_after=40)
    assert schedule.mode_for_age(39) is Mode.TINY
    assert schedule.mode_for_age(40) is None


def test_modes_lists_oldest_first_with_newest_page_at_age_zero() -> None:
    schedule = DecaySchedule(tiers=[(Mode.GUNDAM, 1), (Mode.BASE, 2), (Mode.TINY, 1)])
    assert schedule.modes(5) == [Mode.TINY, Mode.TINY, Mode.BASE, Mode.BASE, Mode.GUNDAM]


def test_tiers_accept_mode_names() -> None:
    schedule = DecaySchedule(tiers=[("Large", 1), ("tiny", 1)])
    assert schedule.modes(2) == [Mode.TINY, Mode.LARGE]


@pytest.mark.parametrize(
    ("tiers", "forget_after", "message"),
    [
        ([], None, "at least one tier"),
        ([(Mode.TINY, 1), (Mode.BASE, 1)], None, "must fade"),
        ([(Mode.BASE, 1), (Mode.BASE, 1)], None, "must fade"),
        ([(Mode.BASE, 0)], None, "width"),
        ([(Mode.BASE, 1.5)], None, "width"),
        ([(Mode.BASE,)], None, "mode, width"),
        ([("huge", 1)], None, "unknown mode"),
        ([(Mode.BASE, 1)], -1, "forget_after"),
    ],
)
def test_bad_schedules_are_refused_with_a_reason(
    tiers: list, forget_after: int | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        DecaySchedule(tiers=tiers, forget_after=forget_after)


def test_no_budget_keeps_the_tiers_and_all_text() -> None:
    fit = DecaySchedule().fit(3, cost, [10, 20], None)
    assert fit.modes == [Mode.LARGE, Mode.GUNDAM, Mode.GUNDAM]
    assert fit.text_kept == 2
    assert fit.total == 421 + 693 + 693 + 30


def test_budget_demotes_the_oldest_page_first_one_tier_at_a_time() -> None:
    schedule = DecaySchedule()
    # Three pages: LARGE, GUNDAM, GUNDAM = 1807 + 100 text. Demoting the oldest LARGE → BASE
    # saves 148, enough for a budget of 1760.
    fit = schedule.fit(3, cost, [100], 1760)
    assert fit.modes == [Mode.BASE, Mode.GUNDAM, Mode.GUNDAM]
    assert fit.total == 273 + 693 + 693 + 100


def test_budget_takes_the_oldest_page_down_to_tiny_before_touching_newer_ones() -> None:
    fit = DecaySchedule().fit(3, cost, [], 73 + 693 + 693)
    assert fit.modes == [Mode.TINY, Mode.GUNDAM, Mode.GUNDAM]


def test_budget_forgets_the_oldest_pages_after_all_are_tiny() -> None:
    fit = DecaySchedule().fit(4, cost, [50], 73 * 2 + 50)
    assert fit.modes == [None, None, Mode.TINY, Mode.TINY]
    assert fit.text_kept == 1
    assert fit.total == 196


def test_budget_below_the_text_shrinks_the_text_but_keeps_the_newest_item() -> None:
    fit = DecaySchedule().fit(2, cost, [400, 300, 200], 550)
    assert fit.modes == [None, None]
    assert fit.text_kept == 2  # 300 + 200 fit; the oldest 400 goes
    assert fit.total == 500
    tight = DecaySchedule().fit(2, cost, [400, 300, 200], 10)
    assert tight.text_kept == 1  # the newest item is always kept, even over budget
    assert tight.total == 200


def test_demotion_follows_this_schedules_tiers_not_every_mode() -> None:
    schedule = DecaySchedule(tiers=[(Mode.GUNDAM, 1), (Mode.TINY, 1)])
    assert schedule.fainter(Mode.GUNDAM) is Mode.TINY
    assert schedule.fainter(Mode.TINY) is None
    fit = schedule.fit(2, cost, [], 693 + 73)
    assert fit.modes == [Mode.TINY, Mode.GUNDAM]


def test_fit_is_deterministic() -> None:
    schedule = DecaySchedule()
    first = schedule.fit(40, cost, [30] * 8, 4000)
    assert all(schedule.fit(40, cost, [30] * 8, 4000) == first for _ in range(3))


@settings(max_examples=200, deadline=None)
@given(
    pages=st.integers(0, 60),
    text=st.lists(st.integers(0, 2000), max_size=12),
    budget=st.one_of(st.none(), st.integers(0, 40_000)),
    forget_after=st.one_of(st.none(), st.integers(0, 70)),
    page_text=st.lists(st.integers(1, 2000), min_size=60, max_size=60),
)
def test_fit_invariants(
    pages: int,
    text: list[int],
    budget: int | None,
    forget_after: int | None,
    page_text: list[int],
) -> None:
    """Within budget unless only the newest text is left; never an older page sharper than a
    newer one; a page is never sharper than its age earns; costs add up."""
    schedule = DecaySchedule(forget_after=forget_after)

    def gated(index: int, mode: Mode) -> int:  # the profitability gate's shape of cost
        return min(COST[mode], page_text[index])

    fit = schedule.fit(pages, gated, text, budget)
    assert len(fit.modes) == pages
    assert 0 <= fit.text_kept <= len(text)
    if text:
        assert fit.text_kept >= 1
    expected_total = sum(gated(i, m) for i, m in enumerate(fit.modes) if m is not None) + sum(
        text[len(text) - fit.text_kept :]
    )
    assert fit.total == expected_total
    if budget is not None and fit.total > budget:
        assert fit.text_kept == 1 and all(m is None for m in fit.modes)
        assert text[-1] > budget
    ranks = [sharpness(m) for m in fit.modes]
    assert ranks == sorted(ranks), "an older page is sharper than a newer one"
    for mode, by_age in zip(fit.modes, schedule.modes(pages), strict=True):
        assert sharpness(mode) <= sharpness(by_age)
