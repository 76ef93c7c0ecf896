"""How memory fades: a page's mode by its age, and fitting the context into a token budget.

Age is counted in pages: the newest page has age 0. The default tiers follow the paper's
forgetting figure (just now → crystal clear … a year → almost gone) on a doubling scale, as
that figure's time axis is roughly logarithmic:

======  =======  ==========
mode    width    ages
======  =======  ==========
GUNDAM  2        0 – 1
LARGE   4        2 – 5
BASE    8        6 – 13
SMALL   16       14 – 29
TINY    (rest)   30 and older
======  =======  ==========

The last tier also holds every page older than the tiers (its width only documents where it
starts); pages are forgotten by age only when ``forget_after`` is set. Under a token budget,
:meth:`DecaySchedule.fit` demotes and forgets further. Everything here is a pure function of
its arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from optical_memory.modes import FADING_ORDER, Mode

DEFAULT_TIERS: tuple[tuple[Mode, int], ...] = (
    (Mode.GUNDAM, 2),
    (Mode.LARGE, 4),
    (Mode.BASE, 8),
    (Mode.SMALL, 16),
    (Mode.TINY, 32),
)


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
class DecaySchedule:
    """Tiers of ``(mode, width in pages)``, sharpest first, and an optional age to forget at.

    >>> DecaySchedule().modes(3)  # oldest first
    [<Mode.LARGE: 'large'>, <Mode.GUNDAM: 'gundam'>, <Mode.GUNDAM: 'gundam'>]
    """

    tiers: Sequence[tuple[Mode | str, int]] = DEFAULT_TIERS
    forget_after: int | None = None
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
            if isinstance(width, bool) or not isinstance(width, int) or width < 1:
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
        if self.forget_after is not None and (
            isinstance(self.forget_after, bool)
            or not isinstance(self.forget_after, int)
            or self.forget_after < 0
        ):
            raise ValueError(f"forget_after must be None or pages >= 0, not {self.forget_after!r}")
        object.__setattr__(
            self, "tiers", tuple((m, w) for m, (_, w) in zip(modes, tiers, strict=True))
        )
        object.__setattr__(self, "_modes", tuple(modes))
        object.__setattr__(self, "_ends", tuple(ends))

    def mode_for_age(self, age: int) -> Mode | None:
        """The mode of a page ``age`` pages old (0 = newest); None once forgotten."""
        if age < 0:
            raise ValueError(f"age must be >= 0, not {age}")
        if self.forget_after is not None and age >= self.forget_after:
            return None
        for mode, end in zip(self._modes, self._ends, strict=True):
            if age < end:
                return mode
        return self._modes[-1]

    def modes(self, page_count: int) -> list[Mode | None]:
        """Modes of ``page_count`` pages, oldest first."""
        return [self.mode_for_age(page_count - 1 - index) for index in range(page_count)]

    def fainter(self, mode: Mode) -> Mode | None:
        """The next mode down this schedule's tiers, or None when ``mode`` is the faintest."""
        faintest = self._modes[-1]
        if mode not in self._modes:
            # A mode between tiers (say LARGE when the tiers skip it): go to the next tier below.
            rank = FADING_ORDER.index(mode)
            below = [m for m in self._modes if FADING_ORDER.index(m) > rank]
            return below[0] if below else None
        return None if mode is faintest else self._modes[self._modes.index(mode) + 1]

    def fit(
        self,
        page_count: int,
        page_cost: Callable[[int, Mode], int],
        text_costs: Sequence[int],
        budget_tokens: int | None,
    ) -> Fit:
        """Fit ``page_count`` pages and some text items (oldest first) into ``budget_tokens``.

        ``page_cost(i, mode)`` is what page ``i`` costs at ``mode``. Starting from the tiers by
        age, while over budget: demote the oldest page that is not yet at the faintest mode by
        one tier; then forget the oldest pages; then drop the oldest text items, always keeping
        the newest. An older page is never left sharper than a newer one.
        """
        modes = self.modes(page_count)
        costs = [0 if m is None else page_cost(i, m) for i, m in enumerate(modes)]
        total = sum(costs) + sum(text_costs)
        text_kept = len(text_costs)
        if budget_tokens is None or total <= budget_tokens:
            return Fit(modes, text_kept, total)
        if budget_tokens < 0:
            raise ValueError(f"budget_tokens must be >= 0, not {budget_tokens}")

        oldest = 0  # every page before it is at the faintest mode or forgotten
        while total > budget_tokens and oldest < page_count:
            mode = modes[oldest]
            fainter = None if mode is None else self.fainter(mode)
            if fainter is None:
                oldest += 1
                continue
            cost = page_cost(oldest, fainter)
            total += cost - costs[oldest]
            modes[oldest], costs[oldest] = fainter, cost
        for index in range(page_count):
            if total <= budget_tokens:
                break
            if modes[index] is not None:
                total -= costs[index]
                modes[index], costs[index] = None, 0
        for cost in text_costs[:-1]:
            if total <= budget_tokens:
                break
            total -= cost
            text_kept -= 1
        return Fit(modes, text_kept, total)
