"""How memory fades: a page's mode by its age, and fitting the context into a token budget.

Age is counted in pages: the newest page has age 0. The default tiers are the ones that keep
the most evidence legible at 6x whole-context compression on the development conversations
(``python benchmarks/schedules.py`` measures them against others): SMALL is the sharpest mode
whose legibility was measured, and BASE, LARGE and GUNDAM are planned as reading no better
(:mod:`optical_memory.legibility`):

======  =======  ==========
mode    width    ages
======  =======  ==========
SMALL   16       0 – 15
TINY    (rest)   16 and older
======  =======  ==========

The last tier also holds every page older than the tiers (its width only documents where it
starts); pages are forgotten by age only when ``forget_after`` is set. Sharper tiers are the
user's choice, e.g. ``DecaySchedule(tiers=[(Mode.BASE, 2), (Mode.SMALL, 16), (Mode.TINY, 32)])``.

*Batches.* Pages are sent oldest first, so a mode change invalidates a prompt cache from that
page on. With ``batch=K`` ages are counted from the last multiple of ``K`` pages: the up to
``K - 1`` pages frozen since then join the sharpest tier, and every tier boundary moves ``K``
pages at once, on the call that freezes page ``K``, ``2K``, …; in between, no page already sent
changes mode. A page is never fainter than its age earns; it may stay sharper for up to
``K - 1`` pages.

*Budgets.* :meth:`DecaySchedule.fit` chooses each page's mode to maximize the recency-weighted
expected legibility of the whole memory within the budget (a knapsack over per-page mode
costs), no page sharper than the tiers give it and no older page sharper than a newer one.
Everything here is a pure function of its arguments.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from optical_memory.legibility import REFERENCE_TEXT_TOKENS, expected_precision
from optical_memory.modes import FADING_ORDER, Mode
from optical_memory.options import DEFAULT_TUNING, is_count

DEFAULT_TIERS: tuple[tuple[Mode, int], ...] = ((Mode.SMALL, 16), (Mode.TINY, 32))
#: Tier boundaries move this many pages at a time, so pages already sent keep their mode (and a
#: prompt cache holds) between boundary moves, for a few more tokens in context; the
#: cache-breaking calls and the tokens they cost are measured by ``python benchmarks/schedules.py``.
DEFAULT_BATCH = 8
#: A page's legibility counts half as much every this many pages of age.
DEFAULT_HALF_LIFE = 32.0


@dataclass(frozen=True)
class Fit:
    """The outcome of fitting a budget.

    ``modes[i]`` is page ``i``'s mode (oldest first; None: forgotten). ``text_kept`` is how many
    of the newest text items stay (the older ones are left out). ``total`` is the tokens of what
    stays; it exceeds the budget only when the newest text item alone does.
    """

    modes: list[Mode | None]
    text_kept: int
    total: int


@dataclass(frozen=True)
class OverBudget:
    """What a budgeted fit plans from when the unbudgeted one is over (see
    :meth:`DecaySchedule.fit_over_budget`): ``unbudgeted`` (every page at
    :meth:`DecaySchedule.modes`, each costing ``costs``, 0 forgotten), and :meth:`~DecaySchedule.
    fit`'s own arguments."""

    unbudgeted: Fit
    costs: tuple[int, ...]
    page_cost: Callable[[int, Mode], int]
    text_costs: Sequence[int]
    budget_tokens: int
    page_value: Callable[[int, Mode], float] | None = None
    knapsack_cells: int = DEFAULT_TUNING.knapsack_cells


@dataclass(frozen=True)
class DecaySchedule:
    """Tiers of ``(mode, width in pages)``, sharpest first; an optional age to forget at;
    ``batch``: pages between tier moves; ``half_life``: pages of age that halve a page's weight
    under a budget (None: every page weighs the same).

    >>> DecaySchedule(tiers=[("base", 1), ("tiny", 1)], batch=1).modes(3)  # oldest first
    [<Mode.TINY: 'tiny'>, <Mode.TINY: 'tiny'>, <Mode.BASE: 'base'>]
    """

    tiers: Sequence[tuple[Mode | str, int]] = DEFAULT_TIERS
    forget_after: int | None = None
    batch: int = DEFAULT_BATCH
    half_life: float | None = DEFAULT_HALF_LIFE
    #: Pages a recalled page stays one tier sharper (None: off); see optical_memory.rehearsal.
    rehearsal: int | None = None
    _modes: tuple[Mode, ...] = field(init=False, repr=False, compare=False)
    _ends: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        tiers = tuple(self.tiers)
        if not tiers:
            raise ValueError("DecaySchedule needs at least one tier, e.g. [(Mode.GUNDAM, 2)]")
        modes: list[Mode] = []
        ends: list[int] = []
        end = 0
        for tier in tiers:
            if not isinstance(tier, (tuple, list)) or len(tier) != 2:
                raise ValueError(f"each tier is (mode, width in pages), not {tier!r}")
            mode, width = Mode.parse(tier[0]), tier[1]
            if not is_count(width, 1):
                raise ValueError(f"tier width must be a whole number of pages >= 1, not {width!r}")
            if modes and FADING_ORDER.index(mode) <= FADING_ORDER.index(modes[-1]):
                order = " → ".join(m.name for m in FADING_ORDER)
                raise ValueError(
                    f"tiers must fade: {mode.name} after {modes[-1].name} is not fainter "
                    f"(order: {order})"
                )
            modes.append(mode)
            end += width
            ends.append(end)
        if self.forget_after is not None and not is_count(self.forget_after, 0):
            raise ValueError(f"forget_after must be None or pages >= 0, not {self.forget_after!r}")
        if not is_count(self.batch, 1):
            raise ValueError(f"batch must be a whole number of pages >= 1, not {self.batch!r}")
        if self.half_life is not None and (
            isinstance(self.half_life, bool)
            or not isinstance(self.half_life, (int, float))
            or not self.half_life > 0
            or math.isinf(self.half_life)
        ):
            raise ValueError(f"half_life must be None or pages > 0, not {self.half_life!r}")
        if self.rehearsal is not None and not is_count(self.rehearsal, 1):
            raise ValueError(f"rehearsal must be None or pages >= 1, not {self.rehearsal!r}")
        object.__setattr__(
            self, "tiers", tuple((m, w) for m, (_, w) in zip(modes, tiers, strict=True))
        )
        object.__setattr__(self, "_modes", tuple(modes))
        object.__setattr__(self, "_ends", tuple(ends))

    @property
    def tier_modes(self) -> tuple[Mode, ...]:
        """The tiers' modes, sharpest first."""
        return self._modes

    def mode_for_age(self, age: int) -> Mode | None:
        """The mode the tiers give a page ``age`` pages old (0 = newest), before batching;
        None once forgotten."""
        if age < 0:
            raise ValueError(f"age must be >= 0, not {age}")
        if self.forget_after is not None and age >= self.forget_after:
            return None
        for mode, end in zip(self._modes, self._ends, strict=True):
            if age < end:
                return mode
        return self._modes[-1]

    def modes(self, page_count: int) -> list[Mode | None]:
        """Modes of ``page_count`` pages, oldest first, ages counted from the last batch."""
        settled = page_count - page_count % self.batch
        return [self.mode_for_age(max(0, settled - 1 - index)) for index in range(page_count)]

    def weight(self, age: int) -> float:
        """How much a page ``age`` pages old counts under a budget (1 for the newest)."""
        return 1.0 if self.half_life is None else 0.5 ** (age / self.half_life)

    def fit(
        self,
        page_count: int,
        page_cost: Callable[[int, Mode], int],
        text_costs: Sequence[int],
        budget_tokens: int | None,
        page_value: Callable[[int, Mode], float] | None = None,
        knapsack_cells: int = DEFAULT_TUNING.knapsack_cells,
    ) -> Fit:
        """Fit ``page_count`` pages and some text items (oldest first) into ``budget_tokens``.

        ``page_cost(i, mode)`` is what page ``i`` costs at ``mode``; ``page_value(i, mode)``
        what it is worth there, e.g. its text tokens times their expected legibility (default:
        :func:`~optical_memory.legibility.expected_precision` of a page of
        ``REFERENCE_TEXT_TOKENS``). Without a budget, or when they fit, the pages keep
        :meth:`modes`. Otherwise the text stays and the pages' modes, each one of the tiers'
        modes no sharper than :meth:`modes` gives it or forgotten, never an older page sharper
        than a newer one, maximize ``sum(weight(age) * page_value)`` within what the text
        leaves. If the text alone is over budget, every page is forgotten and the oldest text
        items are dropped, always keeping the newest. ``knapsack_cells``: the planning table's
        size (:attr:`~optical_memory.options.Tuning.knapsack_cells`).
        """
        unbudgeted, costs = self.unbudgeted_fit(page_count, page_cost, text_costs)
        if budget_tokens is None or unbudgeted.total <= budget_tokens:
            return unbudgeted
        if budget_tokens < 0:
            raise ValueError(f"budget_tokens must be >= 0, not {budget_tokens}")
        return self.fit_over_budget(
            OverBudget(
                unbudgeted,
                tuple(costs),
                page_cost,
                text_costs,
                budget_tokens,
                page_value,
                knapsack_cells,
            )
        )

    def fit_over_budget(self, plan: OverBudget) -> Fit:
        """The part of :meth:`fit` that chooses when ``plan.unbudgeted`` is over
        ``plan.budget_tokens``: the knapsack over the pages' modes within what the text leaves,
        on a table of at most ``plan.knapsack_cells`` cells (a subclass may plan
        differently)."""
        page_count = len(plan.unbudgeted.modes)
        text_tokens = sum(plan.text_costs)
        pages_budget = plan.budget_tokens - text_tokens
        if pages_budget >= 0:
            value = plan.page_value or _reference_value
            weights = [self.weight(page_count - 1 - i) for i in range(page_count)]
            modes = self._knapsack(
                plan.unbudgeted.modes,
                plan.page_cost,
                value,
                pages_budget,
                weights,
                plan.knapsack_cells,
            )
            total = sum(plan.page_cost(i, m) for i, m in enumerate(modes) if m is not None)
            return Fit(modes, len(plan.text_costs), total + text_tokens)
        text_kept, total = drop_oldest_text(plan.text_costs, text_tokens, plan.budget_tokens)
        return Fit([None] * page_count, text_kept, total)

    def unbudgeted_fit(
        self, page_count: int, page_cost: Callable[[int, Mode], int], text_costs: Sequence[int]
    ) -> tuple[Fit, list[int]]:
        """Every page at :meth:`modes` and every text item kept, and what each page costs there
        (0 forgotten): the fit when there is no budget or all fits, and where a budgeted
        planning starts."""
        modes = self.modes(page_count)
        costs = [0 if m is None else page_cost(i, m) for i, m in enumerate(modes)]
        return Fit(modes, len(text_costs), sum(costs) + sum(text_costs)), costs

    def fit_batches(
        self,
        page_count: int,
        page_cost: Callable[[int, Mode], int],
        budget_tokens: int,
        page_value: Callable[[int, Mode], float] | None = None,
        knapsack_cells: int = DEFAULT_TUNING.knapsack_cells,
    ) -> list[Mode | None]:
        """Modes of the settled pages (those before the last multiple of ``batch``, oldest
        first; None: forgotten) of ``page_count`` pages, within
        ``budget_tokens`` for them alone: each batch fades or is forgotten whole, so a plan
        made on the call that settles a batch can hold, page for page, until the next one (a
        prompt cache keeps every page sent before). The pages frozen since are the caller's
        to place. Within that, the same choice as :meth:`fit` (the most recency-weighted
        value, no older batch sharper than a newer one).
        """
        ceiling = self.modes(page_count)
        settled = page_count - page_count % self.batch
        left = max(0, budget_tokens)
        value = page_value or _reference_value
        order: dict[Mode | None, int] = {None: 0}
        order.update({m: len(self._modes) - r for r, m in enumerate(self._modes)})
        batches = [range(start, start + self.batch) for start in range(0, settled, self.batch)]

        def clamp(i: int, mode: Mode) -> Mode | None:
            # A page of a batch shown at ``mode`` is never sharper than its own ceiling (None:
            # forgotten by age).
            own = ceiling[i]
            return mode if own is not None and order[own] >= order[mode] else own

        def batch_cost(b: int, mode: Mode) -> int:
            return sum(page_cost(i, m) for i in batches[b] if (m := clamp(i, mode)) is not None)

        def batch_value(b: int, mode: Mode) -> float:
            return sum(
                self.weight(page_count - 1 - i) * value(i, m)
                for i in batches[b]
                if (m := clamp(i, mode)) is not None
            )

        sharpest = [
            max((m for i in batch if (m := ceiling[i]) is not None), key=order.__getitem__)
            if any(ceiling[i] is not None for i in batch)
            else None
            for batch in batches
        ]
        weights = [1.0] * len(batches)
        chosen = self._knapsack(sharpest, batch_cost, batch_value, left, weights, knapsack_cells)
        modes: list[Mode | None] = []
        for b, mode in enumerate(chosen):
            modes.extend(None if mode is None else clamp(i, mode) for i in batches[b])
        return modes

    def _knapsack(
        self,
        ceiling: Sequence[Mode | None],
        page_cost: Callable[[int, Mode], int],
        page_value: Callable[[int, Mode], float],
        budget: int,
        weights: Sequence[float],
        cells_at_most: int,
    ) -> list[Mode | None]:
        """The best modes within ``budget`` (see :meth:`fit`): dynamic programming over items
        (pages or batches), oldest first, and rank bounds, on a table of ``budget`` in cost
        units; each item's value counts ``weights[i]`` times."""
        # Rank 0 is forgotten, 1 the faintest tier's mode, ..., R the sharpest.
        by_rank: list[Mode | None] = [None, *reversed(self._modes)]
        rank_of = {mode: rank for rank, mode in enumerate(by_rank)}
        count = len(ceiling)
        bound = [rank_of[m] for m in ceiling]
        cost = np.zeros((count, len(by_rank)), dtype=np.int64)
        value = np.zeros((count, len(by_rank)))
        for i in range(count):
            weight = weights[i]
            for rank in range(1, bound[i] + 1):
                mode = by_rank[rank]
                assert mode is not None
                cost[i, rank] = page_cost(i, mode)
                value[i, rank] = weight * page_value(i, mode)
        # Only a run of newest pages can be shown (older pages are never sharper): pages before
        # the longest run whose cheapest modes fit are forgotten.
        cheapest = [
            min((int(c) for c in cost[i, 1 : bound[i] + 1]), default=0) for i in range(count)
        ]
        first, spent = count, 0
        while first > 0 and bound[first - 1] > 0 and spent + cheapest[first - 1] <= budget:
            first -= 1
            spent += cheapest[first]
        ranks = [0] * count
        unit = max(1, math.ceil((budget + 1) / cells_at_most))
        cells = budget // unit
        units = -(-cost // unit)  # rounded up: the rounded plan never exceeds the budget
        best = np.zeros((len(by_rank), cells + 1))  # best[r, c]: no rank above r, cost <= c
        took = np.zeros((count, len(by_rank), cells + 1), dtype=bool)
        for i in range(first, count):
            step = np.full_like(best, -np.inf)
            step[0] = best[0]
            took[i, 0] = True
            for rank in range(1, len(by_rank)):
                here = np.full(cells + 1, -np.inf)
                need = int(units[i, rank])
                if rank <= bound[i] and need <= cells:
                    here[need:] = best[rank, : cells + 1 - need] + value[i, rank]
                took[i, rank] = here > step[rank - 1]
                step[rank] = np.where(took[i, rank], here, step[rank - 1])
            best = step
        rank, cell = len(by_rank) - 1, cells
        for i in range(count - 1, first - 1, -1):
            while not took[i, rank, cell]:
                rank -= 1
            ranks[i] = rank
            cell -= int(units[i, rank])
        if unit > 1:
            _spend_rest(ranks, bound, cost, value, budget)
        return [by_rank[r] for r in ranks]


def _spend_rest(
    ranks: list[int], bound: Sequence[int], cost: np.ndarray, value: np.ndarray, budget: int
) -> None:
    """Promote pages one rank at a time, the best value per token first, while the exact costs
    fit and no older page gets sharper than a newer one (``ranks`` is changed in place)."""
    left = budget - int(sum(cost[i, r] for i, r in enumerate(ranks)))
    while True:
        choice, choice_gain = -1, 0.0
        for i, rank in enumerate(ranks):
            newer = ranks[i + 1] if i + 1 < len(ranks) else bound[i]
            if rank + 1 > min(bound[i], newer):
                continue
            extra = int(cost[i, rank + 1] - cost[i, rank])
            gain = float(value[i, rank + 1] - value[i, rank])
            if extra > left or gain <= 0:
                continue
            per_token = gain / max(extra, 1)
            if per_token > choice_gain:
                choice, choice_gain = i, per_token
        if choice < 0:
            return
        left -= int(cost[choice, ranks[choice] + 1] - cost[choice, ranks[choice]])
        ranks[choice] += 1


def drop_oldest_text(text_costs: Sequence[int], total: int, budget_tokens: int) -> tuple[int, int]:
    """Leave out the oldest text items (costs oldest first, all counted in ``total``) until
    ``total`` fits ``budget_tokens``, always keeping the newest: how many stay, and the new
    total."""
    text_kept = len(text_costs)
    for cost in text_costs[:-1]:
        if total <= budget_tokens:
            break
        total -= cost
        text_kept -= 1
    return text_kept, total


def _reference_value(_: int, mode: Mode) -> float:
    return expected_precision(REFERENCE_TEXT_TOKENS, mode)
