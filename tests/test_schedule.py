"""DecaySchedule: modes by age, batches of tier moves, and the best modes within a budget."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optical_memory.legibility import REFERENCE_TEXT_TOKENS, expected_precision
from optical_memory.modes import FADING_ORDER, Mode
from optical_memory.schedule import DEFAULT_BATCH, DEFAULT_TIERS, DecaySchedule

# DeepSeek-OCR sequence tokens at the Pillow renderer's page sizes (GUNDAM 1280² → 2x2 tiles).
COST = {Mode.GUNDAM: 693, Mode.LARGE: 421, Mode.BASE: 273, Mode.SMALL: 111, Mode.TINY: 73}
EVERY_MODE = [(Mode.GUNDAM, 2), (Mode.LARGE, 4), (Mode.BASE, 8), (Mode.SMALL, 16), (Mode.TINY, 1)]


def cost(_index: int, mode: Mode) -> int:
    return COST[mode]


def sharpness(mode: Mode | None) -> int:
    """Higher is sharper; forgotten is the faintest of all."""
    return -1 if mode is None else len(FADING_ORDER) - FADING_ORDER.index(mode)


def reference_value(_index: int, mode: Mode) -> float:
    return expected_precision(REFERENCE_TEXT_TOKENS, mode)


def test_default_tiers_read_small_then_tiny() -> None:
    assert [m for m, _ in DEFAULT_TIERS] == [Mode.SMALL, Mode.TINY]
    schedule = DecaySchedule()
    by_age = [schedule.mode_for_age(age) for age in range(40)]
    assert by_age[:16] == [Mode.SMALL] * 16
    assert by_age[16:] == [Mode.TINY] * 24


def test_pages_older_than_every_tier_stay_at_the_faintest_mode_unless_forget_after() -> None:
    assert DecaySchedule().mode_for_age(10_000) is Mode.TINY
    schedule = DecaySchedule(forget_after=40)
    assert schedule.mode_for_age(39) is Mode.TINY
    assert schedule.mode_for_age(40) is None


def test_modes_lists_oldest_first_with_newest_page_at_age_zero() -> None:
    schedule = DecaySchedule(tiers=[(Mode.GUNDAM, 1), (Mode.BASE, 2), (Mode.TINY, 1)], batch=1)
    assert schedule.modes(5) == [Mode.TINY, Mode.TINY, Mode.BASE, Mode.BASE, Mode.GUNDAM]


def test_tiers_accept_mode_names() -> None:
    schedule = DecaySchedule(tiers=[("Large", 1), ("tiny", 1)], batch=1)
    assert schedule.modes(2) == [Mode.TINY, Mode.LARGE]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tiers": []}, "at least one tier"),
        ({"tiers": [(Mode.TINY, 1), (Mode.BASE, 1)]}, "must fade"),
        ({"tiers": [(Mode.BASE, 1), (Mode.BASE, 1)]}, "must fade"),
        ({"tiers": [(Mode.BASE, 0)]}, "width"),
        ({"tiers": [(Mode.BASE, 1.5)]}, "width"),
        ({"tiers": [(Mode.BASE,)]}, "mode, width"),
        ({"tiers": [("huge", 1)]}, "unknown mode"),
        ({"forget_after": -1}, "forget_after"),
        ({"batch": 0}, "batch"),
        ({"batch": True}, "batch"),
        ({"half_life": 0}, "half_life"),
        ({"half_life": float("nan")}, "half_life"),
    ],
)
def test_bad_schedules_are_refused_with_a_reason(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DecaySchedule(**options)


# --- batches -----------------------------------------------------------------------------------


def test_tier_boundaries_move_a_whole_batch_at_once() -> None:
    schedule = DecaySchedule(tiers=[(Mode.SMALL, 2), (Mode.TINY, 1)], batch=4)
    assert schedule.modes(4) == [Mode.TINY, Mode.TINY, Mode.SMALL, Mode.SMALL]
    # Pages 5 to 7 join the sharpest tier; nothing already sent changes.
    assert schedule.modes(7) == [Mode.TINY] * 2 + [Mode.SMALL] * 5
    # Page 8 moves the boundary four pages at once.
    assert schedule.modes(8) == [Mode.TINY] * 6 + [Mode.SMALL] * 2


@pytest.mark.parametrize("batch", [1, 3, DEFAULT_BATCH])
def test_over_a_long_run_pages_already_sent_change_mode_only_every_batch(batch: int) -> None:
    schedule = DecaySchedule(tiers=EVERY_MODE, forget_after=200, batch=batch)
    changed_at = []
    before = schedule.modes(0)
    for count in range(1, 400):
        modes = schedule.modes(count)
        assert modes[: len(before)] == before or count % batch == 0
        if modes[: len(before)] != before:
            changed_at.append(count)
            # All the changes of the batch happen on this call.
        for index, mode in enumerate(modes):
            earned = schedule.mode_for_age(count - 1 - index)
            assert sharpness(mode) >= sharpness(earned), "fainter than its age earns"
            stale = schedule.mode_for_age(max(0, count - batch - index))
            assert sharpness(mode) <= sharpness(stale), "sharper for a batch or more"
        before = modes
    assert changed_at and all(count % batch == 0 for count in changed_at)
    assert len(changed_at) <= 400 // batch


# --- budgets -----------------------------------------------------------------------------------


def test_no_budget_keeps_the_tiers_and_all_text() -> None:
    fit = DecaySchedule(tiers=EVERY_MODE, batch=1).fit(3, cost, [10, 20], None)
    assert fit.modes == [Mode.LARGE, Mode.GUNDAM, Mode.GUNDAM]
    assert fit.text_kept == 2
    assert fit.total == 421 + 693 + 693 + 30


def test_a_budget_buys_no_sharper_mode_than_reads_better() -> None:
    # Fox measured nothing sharper than SMALL: BASE, LARGE and GUNDAM are planned no better,
    # so under any budget SMALL is all they get.
    fit = DecaySchedule(tiers=EVERY_MODE, batch=1).fit(3, cost, [100], 1760)
    assert fit.modes == [Mode.SMALL] * 3
    assert fit.total == 3 * 111 + 100


def test_a_budget_is_spent_where_it_buys_the_most_legibility_not_oldest_first() -> None:
    schedule = DecaySchedule(tiers=[(Mode.BASE, 8), (Mode.TINY, 1)], batch=1)
    # Four SMALL pages read better than a BASE and three TINY (which would not fit either);
    # demoting the oldest first would have left three TINY and one SMALL.
    tiers = [(Mode.BASE, 8), (Mode.SMALL, 8), (Mode.TINY, 1)]
    fit = DecaySchedule(tiers=tiers, batch=1).fit(4, cost, [], 4 * 111)
    assert fit.modes == [Mode.SMALL] * 4
    # Only the tiers' modes are used: without SMALL, two pages go TINY, two stay BASE.
    fit = schedule.fit(4, cost, [], 2 * 73 + 2 * 273)
    assert fit.modes == [Mode.TINY, Mode.TINY, Mode.BASE, Mode.BASE]


def test_when_not_every_page_fits_the_oldest_are_forgotten() -> None:
    schedule = DecaySchedule(tiers=EVERY_MODE, batch=1)
    fit = schedule.fit(4, cost, [50], 73 * 2 + 50)
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


def test_newer_pages_weigh_more_when_only_some_can_be_sharp() -> None:
    schedule = DecaySchedule(tiers=[(Mode.SMALL, 8), (Mode.TINY, 1)], batch=1)
    fit = schedule.fit(4, cost, [], 2 * 111 + 2 * 73)
    assert fit.modes == [Mode.TINY, Mode.TINY, Mode.SMALL, Mode.SMALL]


def test_fit_is_deterministic() -> None:
    schedule = DecaySchedule()
    first = schedule.fit(60, cost, [30] * 8, 4000)
    assert all(schedule.fit(60, cost, [30] * 8, 4000) == first for _ in range(3))


def best_value(
    schedule: DecaySchedule, pages: int, page_cost: dict, value: dict, budget: int
) -> float:
    """Every admissible plan tried: the most weighted value within ``budget``."""
    ceiling = schedule.modes(pages)
    options = [None, *reversed(schedule.tier_modes)]
    best = 0.0
    for ranks in itertools.combinations_with_replacement(range(len(options)), pages):
        modes = [options[r] for r in ranks]  # non-decreasing: no older page sharper
        if any(sharpness(m) > sharpness(c) for m, c in zip(modes, ceiling, strict=True)):
            continue
        shown = [(i, m) for i, m in enumerate(modes) if m is not None]
        if sum(page_cost[i, m] for i, m in shown) <= budget:
            worth = sum(schedule.weight(pages - 1 - i) * value[i, m] for i, m in shown)
            best = max(best, worth)
    return best


@settings(max_examples=60, deadline=None)
@given(
    pages=st.integers(1, 6),
    budget=st.integers(0, 3000),
    texts=st.lists(st.integers(20, 1400), min_size=6, max_size=6),
    batch=st.integers(1, 3),
)
def test_the_plan_is_the_best_within_the_budget(
    pages: int, budget: int, texts: list[int], batch: int
) -> None:
    tiers = [(Mode.BASE, 1), (Mode.SMALL, 2), (Mode.TINY, 1)]
    schedule = DecaySchedule(tiers=tiers, batch=batch, half_life=3.0)
    page_cost = {(i, m): min(COST[m], texts[i]) for i in range(pages) for m in COST}
    value = {
        (i, m): texts[i] * (1.0 if COST[m] > texts[i] else expected_precision(texts[i], m))
        for i in range(pages)
        for m in COST
    }
    fit = schedule.fit(pages, lambda i, m: page_cost[i, m], [], budget, lambda i, m: value[i, m])
    assert fit.total <= budget or all(m is None for m in fit.modes)
    got = sum(
        schedule.weight(pages - 1 - i) * value[i, m]
        for i, m in enumerate(fit.modes)
        if m is not None
    )
    assert got == pytest.approx(best_value(schedule, pages, page_cost, value, budget))


@settings(max_examples=200, deadline=None)
@given(
    pages=st.integers(0, 200),
    text=st.lists(st.integers(0, 2000), max_size=12),
    budget=st.one_of(st.none(), st.integers(0, 150_000)),
    forget_after=st.one_of(st.none(), st.integers(0, 70)),
    batch=st.integers(1, 10),
    page_text=st.lists(st.integers(1, 2000), min_size=200, max_size=200),
)
def test_fit_invariants(
    pages: int,
    text: list[int],
    budget: int | None,
    forget_after: int | None,
    batch: int,
    page_text: list[int],
) -> None:
    """Within budget unless only the newest text is left; never an older page sharper than a
    newer one; a page is never sharper than its age earns; costs add up."""
    schedule = DecaySchedule(tiers=EVERY_MODE, forget_after=forget_after, batch=batch)

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
    if budget is not None and fit.text_kept == len(text) and pages:
        # What is left would not buy the cheapest step up of any page that could take one.
        left = budget - fit.total
        ceiling = schedule.modes(pages)
        tier_modes = [None, *reversed(schedule.tier_modes)]
        for index, mode in enumerate(fit.modes):
            rank = tier_modes.index(mode)
            newer = fit.modes[index + 1] if index + 1 < pages else ceiling[index]
            if rank + 1 >= len(tier_modes) or sharpness(tier_modes[rank + 1]) > min(
                sharpness(newer), sharpness(ceiling[index])
            ):
                continue
            up = tier_modes[rank + 1]
            assert up is not None
            step = gated(index, up) - (0 if mode is None else gated(index, mode))
            if reference_value(index, up) > (0 if mode is None else reference_value(index, mode)):
                assert step > left, f"page {index} could go {up.value} within the budget"


# --- budgets a batch at a time -----------------------------------------------------------------


def test_a_budget_planned_by_batches_fades_and_forgets_whole_batches() -> None:
    schedule = DecaySchedule(tiers=[(Mode.SMALL, 8), (Mode.TINY, 8)], batch=4)
    # 14 pages: 12 settled in three batches of 4, the 2 newest the caller's to place.
    # Room for one batch at SMALL (444) and one at TINY (292): the oldest batch goes.
    modes = schedule.fit_batches(14, cost, 4 * 111 + 4 * 73)
    assert len(modes) == 12
    assert modes == [None] * 4 + [Mode.TINY] * 4 + [Mode.SMALL] * 4
    # No room at all: every settled page is forgotten; plenty: the tiers, unchanged.
    assert schedule.fit_batches(14, cost, 0) == [None] * 12
    assert schedule.fit_batches(14, cost, 10**6) == schedule.modes(14)[:12]


@settings(max_examples=60, deadline=None)
@given(
    pages=st.integers(min_value=0, max_value=40),
    batch=st.integers(min_value=1, max_value=9),
    budget=st.integers(min_value=0, max_value=5000),
)
def test_batch_plans_stay_within_the_budget_and_never_sharpen_a_page(
    pages: int, batch: int, budget: int
) -> None:
    schedule = DecaySchedule(tiers=[(Mode.BASE, 3), (Mode.SMALL, 6), (Mode.TINY, 1)], batch=batch)
    modes = schedule.fit_batches(pages, cost, budget)
    settled = pages - pages % batch
    assert len(modes) == settled
    assert sum(COST[m] for m in modes if m is not None) <= budget
    ceiling = schedule.modes(pages)
    for start in range(0, settled, batch):
        shown = [m for m in modes[start : start + batch]]
        assert all(m is None for m in shown) or all(m is not None for m in shown)
        for mode, most in zip(shown, ceiling[start : start + batch], strict=True):
            assert sharpness(mode) <= sharpness(most)
