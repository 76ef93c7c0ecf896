"""Decay schedules compared on conversations: tokens in context against expected legibility.

Each conversation is replayed into an :class:`~optical_memory.memory.OpticalMemory` with the
default renderer (pages are laid out, never drawn). Then, at its end:

- *Legibility of evidence.* Each evidence turn of a LoCoMo question of category 1-4 counts at
  its home page's expected legibility under a plan
  (:func:`~optical_memory.legibility.page_legibility`: DeepSeek-OCR's Fox precision at the
  page's text tokens, 1 for a page sent as text, 0 forgotten); a turn still in the context as
  text counts 1. The home page is the one holding most of the turn's characters.
- *Tokens in context.* Pages at their planned modes (DeepSeek-OCR's sequence tokens, or the
  page's text where that is cheaper) plus the text the plan keeps.
- *The curve.* Per schedule, a point without a budget and one per budget of
  ``history / ratio`` tokens (:data:`RATIOS`), beside full text and the last-``N``-turns window.
  ``oldest-first`` is the planning this package did before: tiers by age, and under a budget
  the oldest page demoted one tier at a time, then forgotten.
- *Cache breaks.* Over every page event of the replay (page ``n`` frozen, no budget), a call
  breaks the prompt cache when a page already sent changes mode; what it re-writes is the
  tokens of the pages from the first changed one on.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optical_memory.experiments.run import WINDOW_TURNS, Dialog, load_dialogs
from optical_memory.legibility import page_legibility
from optical_memory.memory import OpticalMemory
from optical_memory.memory.packing import Packer
from optical_memory.memory.planning import ContextPlanner
from optical_memory.modes import Mode
from optical_memory.schedule import DecaySchedule, Fit, OverBudget, drop_oldest_text
from optical_memory.tokens import count_text_tokens
from optical_memory.turns import turn_text

#: Budgets of the curve, as compression ratios: ``history text tokens / ratio``.
RATIOS = (1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0)
#: LoCoMo categories whose evidence counts (5, adversarial, asks about what was never said).
EVIDENCE_CATEGORIES = (1, 2, 3, 4)
#: The planning of earlier versions: these tiers, one page per boundary move.
OLD_TIERS: tuple[tuple[Mode, int], ...] = (
    (Mode.GUNDAM, 2),
    (Mode.LARGE, 4),
    (Mode.BASE, 8),
    (Mode.SMALL, 16),
    (Mode.TINY, 32),
)


class OldestFirstSchedule(DecaySchedule):
    """The earlier planning, kept to compare against: under a budget, demote the oldest page
    that is not yet at the faintest tier by one tier, then forget the oldest pages, then drop
    the oldest text items."""

    def fit_over_budget(self, plan: OverBudget) -> Fit:
        page_count = len(plan.unbudgeted.modes)
        modes, total = list(plan.unbudgeted.modes), plan.unbudgeted.total
        costs, page_cost, budget_tokens = list(plan.costs), plan.page_cost, plan.budget_tokens
        tier_modes = self.tier_modes
        oldest = 0
        while total > budget_tokens and oldest < page_count:
            mode = modes[oldest]
            if mode is None or mode is tier_modes[-1]:
                oldest += 1
                continue
            fainter = tier_modes[tier_modes.index(mode) + 1]
            cost = page_cost(oldest, fainter)
            total += cost - costs[oldest]
            modes[oldest], costs[oldest] = fainter, cost
        for index in range(page_count):
            if total <= budget_tokens:
                break
            if modes[index] is not None:
                total -= costs[index]
                modes[index], costs[index] = None, 0
        text_kept, total = drop_oldest_text(plan.text_costs, total, budget_tokens)
        return Fit(modes, text_kept, total)


@dataclass(frozen=True)
class Replayed:
    """A conversation in memory at its end, and where its evidence turns are."""

    dialog: Dialog
    memory: OpticalMemory
    history_tokens: int
    #: Home page index of each evidence turn (None: still text in the context).
    evidence_pages: tuple[int | None, ...]
    #: Tokens of the last ``window`` turns, and the share of evidence turns among them.
    window_tokens: int
    window_evidence: float


@dataclass(frozen=True)
class Point:
    """One plan of one conversation: tokens in context, expected legibility of its evidence."""

    sample_id: str
    history_tokens: int
    tokens: int
    legibility: float
    evidence: int


def replay(dialog: Dialog, window: int = WINDOW_TURNS) -> Replayed:
    """``dialog`` added turn by turn to an in-memory :class:`OpticalMemory` (default settings)."""
    memory = OpticalMemory(None, thread_id=dialog.sample_id)
    ids: dict[str, int] = {}
    costs = []
    for turn, name in zip(dialog.turns, dialog.names, strict=True):
        stored = memory.add(turn.role, turn.content, timestamp=turn.timestamp)
        assert stored.id is not None
        ids[name] = stored.id
        costs.append(count_text_tokens(turn_text(turn.role, turn.content)))
    share: dict[int, dict[int, int]] = {}
    for index, record in enumerate(memory.store.pages(memory.thread_id)):
        for span in record.spans:
            pages = share.setdefault(span.turn_id, {})
            pages[index] = pages.get(index, 0) + span.end - span.start
    names = [
        name
        for question in dialog.questions
        if question.category in EVIDENCE_CATEGORIES
        for name in question.evidence
        if name in ids
    ]
    homes = tuple(
        max(sorted(share[ids[n]]), key=share[ids[n]].__getitem__) if ids[n] in share else None
        for n in names
    )
    recent = set(dialog.names[-window:])
    return Replayed(
        dialog=dialog,
        memory=memory,
        history_tokens=sum(costs),
        evidence_pages=homes,
        window_tokens=sum(costs[-window:]),
        window_evidence=statistics.fmean(n in recent for n in names) if names else 1.0,
    )


def plan_point(replayed: Replayed, schedule: DecaySchedule, budget: int | None) -> Point:
    """Tokens in context and expected legibility of evidence under ``schedule`` and ``budget``."""
    memory = replayed.memory
    packer = Packer(
        memory.store,
        memory.thread_id,
        memory.renderer,
        memory.keep_recent_turns,
        memory.verbatim_tokens,
    )
    planner = ContextPlanner(packer, schedule, memory.target, memory.tuning)
    plan = planner.plan(budget)
    tokens = sum(plan.recent_tokens[len(plan.recent) - plan.text_kept :])
    legible: list[float] = []
    for record, mode, as_text in zip(plan.records, plan.modes, plan.as_text, strict=True):
        if mode is None:
            legible.append(0.0)
            continue
        vision = planner.vision_tokens(mode)
        tokens += record.text_tokens if as_text else vision
        legible.append(page_legibility(record.text_tokens, mode, vision))
    evidence = [1.0 if page is None else legible[page] for page in replayed.evidence_pages]
    return Point(
        replayed.dialog.sample_id,
        replayed.history_tokens,
        tokens,
        statistics.fmean(evidence) if evidence else 1.0,
        len(evidence),
    )


def curve(
    replays: Sequence[Replayed], schedules: dict[str, DecaySchedule]
) -> dict[str, list[dict[str, float]]]:
    """Per method, its points over all conversations: ``budget`` (a ratio, or None),
    ``tokens`` (summed), ``compression`` (history / tokens), ``legibility`` (mean over every
    evidence turn)."""
    history = sum(r.history_tokens for r in replays)
    rows: dict[str, list[dict[str, float]]] = {}
    for name, schedule in schedules.items():
        rows[name] = []
        for ratio in (None, *RATIOS):
            points = [
                plan_point(r, schedule, None if ratio is None else int(r.history_tokens / ratio))
                for r in replays
            ]
            rows[name].append(_row(ratio, points, history))
    rows["full text"] = [
        _row(
            None,
            [
                Point(
                    r.dialog.sample_id,
                    r.history_tokens,
                    r.history_tokens,
                    1.0,
                    len(r.evidence_pages),
                )
                for r in replays
            ],
            history,
        )
    ]
    rows[f"last {WINDOW_TURNS} turns"] = [
        _row(
            None,
            [
                Point(
                    r.dialog.sample_id,
                    r.history_tokens,
                    r.window_tokens,
                    r.window_evidence,
                    len(r.evidence_pages),
                )
                for r in replays
            ],
            history,
        )
    ]
    return rows


def _row(ratio: float | None, points: Sequence[Point], history: int) -> dict[str, float]:
    tokens = sum(p.tokens for p in points)
    evidence = sum(p.evidence for p in points)
    legibility = sum(p.legibility * p.evidence for p in points) / evidence if evidence else 1.0
    return {
        "budget_ratio": float("nan") if ratio is None else ratio,
        "tokens": tokens,
        "compression": history / tokens if tokens else float("inf"),
        "legibility": legibility,
        "worst_compression": min(p.history_tokens / max(1, p.tokens) for p in points),
    }


def cache_breaks(
    page_tokens: Sequence[int], schedule: DecaySchedule, vision: Callable[[Mode], int]
) -> dict[str, float]:
    """Over page events ``n = 1 .. len(page_tokens)`` without a budget: calls that change the
    mode of a page already sent (``breaks``), tokens re-written after them (``rewritten``:
    the pages from the first changed one on, at their new modes), and the mean tokens of the
    pages and their expected legible text tokens per call. ``vision(mode)``: a page's image
    tokens (a page costs the cheaper of its image and its text)."""
    breaks = rewritten = 0
    tokens_sum = legible_sum = 0.0
    before: list[Mode | None] = []
    for count in range(1, len(page_tokens) + 1):
        modes = schedule.modes(count)
        costs = [0 if m is None else min(vision(m), page_tokens[i]) for i, m in enumerate(modes)]
        changed = [i for i, m in enumerate(before) if modes[i] is not m]
        if changed:
            breaks += 1
            rewritten += sum(costs[changed[0] :])
        tokens_sum += sum(costs)
        legible_sum += sum(
            page_tokens[i] * page_legibility(page_tokens[i], m, vision(m))
            for i, m in enumerate(modes)
            if m is not None
        )
        before = modes
    events = len(page_tokens)
    return {
        "events": events,
        "breaks": breaks,
        "rewritten_per_event": rewritten / events if events else 0.0,
        "tokens_per_event": tokens_sum / events if events else 0.0,
        "legible_per_token": legible_sum / tokens_sum if tokens_sum else 0.0,
    }


def load(data: str, samples: Sequence[str] | None = None) -> list[Replayed]:
    """Every conversation of ``data`` (a LoCoMo file, or ``"synthetic"``), replayed."""
    return [replay(d) for d in load_dialogs(data, samples)]


# --- choosing the default ----------------------------------------------------------------------


def candidate_tiers() -> list[tuple[tuple[Mode, int], ...]]:
    """Tiers to choose the default among: an optional sharp head (GUNDAM, LARGE or BASE, 1-2
    pages), SMALL for 8-32 pages, then TINY; TINY alone; and the earlier default."""
    heads: list[tuple[tuple[Mode, int], ...]] = [()]
    heads += [((mode, width),) for mode in (Mode.GUNDAM, Mode.LARGE, Mode.BASE) for width in (1, 2)]
    candidates = [
        (*head, (Mode.SMALL, width), (Mode.TINY, 32)) for head in heads for width in (8, 16, 24, 32)
    ]
    return [*candidates, ((Mode.TINY, 32),), OLD_TIERS]


def choose_tiers(
    replays: Sequence[Replayed], batch: int, min_compression: float = 6.0
) -> list[tuple[tuple[tuple[Mode, int], ...], dict[str, float], bool]]:
    """Every candidate's end-of-conversation row (no budget), best first, and whether it meets
    ``min_compression`` over all conversations. Best: the most legible evidence among those that
    meet it; on a tie the narrowest tiers (cheapest once conversations grow longer)."""
    history = sum(r.history_tokens for r in replays)
    rows = []
    for tiers in candidate_tiers():
        schedule = DecaySchedule(tiers=tiers, batch=batch)
        row = _row(None, [plan_point(r, schedule, None) for r in replays], history)
        rows.append((tiers, row, row["compression"] >= min_compression))
    width = {tiers: sum(w for _, w in tiers[:-1]) for tiers, _, _ in rows}
    rows.sort(key=lambda r: (not r[2], -round(r[1]["legibility"], 9), width[r[0]]))
    return rows


def tiers_name(tiers: Sequence[tuple[Mode | str, int]]) -> str:
    """``SMALL 16, TINY`` (the last tier holds every older page)."""
    names = [f"{Mode.parse(m).name} {w}" for m, w in tiers[:-1]]
    return ", ".join([*names, Mode.parse(tiers[-1][0]).name])


# --- tables, plot, report section --------------------------------------------------------------


def default_schedules() -> dict[str, DecaySchedule]:
    """The methods of the curve: the earlier planning, the knapsack over the earlier tiers, and
    the default (knapsack, default tiers and batch)."""
    return {
        "oldest-first, earlier tiers": OldestFirstSchedule(OLD_TIERS, batch=1),
        "knapsack, earlier tiers": DecaySchedule(OLD_TIERS, batch=1),
        "default": DecaySchedule(),
    }


def curve_table(rows: dict[str, list[dict[str, float]]]) -> list[str]:
    """The curve as a markdown table."""
    lines = [
        "| method | budget | tokens in context | compression | worst conversation "
        "| expected legibility of evidence |",
        "|---|---|---|---|---|---|",
    ]
    for name, points in rows.items():
        for p in points:
            ratio = p["budget_ratio"]
            budget = "none" if ratio != ratio else f"history / {ratio:g}"  # NaN: no budget
            lines.append(
                f"| {name} | {budget} | {p['tokens']:,.0f} | {p['compression']:.2f}x "
                f"| {p['worst_compression']:.2f}x | {p['legibility']:.2%} |"
            )
    return lines


def batch_table(
    replays: Sequence[Replayed], batches: Sequence[int] = (1, 2, 4, 8, 16)
) -> list[str]:
    """Cache breaks per batch size, over every page event of the conversations (each replayed
    alone) and of one long run (all their pages back to back, three times over)."""
    from optical_memory.renderers.page import page_size
    from optical_memory.targets import vision_tokens

    def vision(mode: Mode) -> int:
        return vision_tokens(*page_size(mode), "deepseek-ocr", mode)

    pages = [
        [record.text_tokens for record in r.memory.store.pages(r.memory.thread_id)] for r in replays
    ]
    long_run = [t for _ in range(3) for run in pages for t in run]
    lines = [
        "| tiers | batch | run | page events | cache-breaking calls | tokens re-written per "
        "page event | page tokens per call | expected legible text tokens per token |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for tiers in (DecaySchedule().tiers, OLD_TIERS):
        for batch in batches:
            schedule = DecaySchedule(tiers=tiers, batch=batch)
            runs = {"development": pages, f"long ({len(long_run)} pages)": [long_run]}
            for run_name, runs_pages in runs.items():
                results = [cache_breaks(p, schedule, vision) for p in runs_pages]
                events = sum(r["events"] for r in results)
                tokens = sum(r["tokens_per_event"] * r["events"] for r in results)
                legible = sum(
                    r["legible_per_token"] * r["tokens_per_event"] * r["events"] for r in results
                )
                rewritten = sum(r["rewritten_per_event"] * r["events"] for r in results)
                lines.append(
                    f"| {tiers_name(tiers)} | {batch} | {run_name} | {events} "
                    f"| {sum(r['breaks'] for r in results):.0f} | {rewritten / events:,.0f} "
                    f"| {tokens / events:,.0f} | {legible / tokens:.2f} |"
                )
    return lines


def plot_curve(rows: dict[str, list[dict[str, float]]], path: Path) -> None:
    """Tokens in context (x, log) against expected legibility of evidence turns (y)."""
    from optical_memory.experiments.plots import pyplot

    plt = pyplot()
    figure, axes = plt.subplots(figsize=(8, 5.5), dpi=110)
    for name, points in rows.items():
        budgeted = [p for p in points if p["budget_ratio"] == p["budget_ratio"]]
        free = [p for p in points if p["budget_ratio"] != p["budget_ratio"]]
        line = axes.plot(
            [p["tokens"] for p in budgeted],
            [p["legibility"] for p in budgeted],
            marker=".",
            label=f"{name} (budgets)" if budgeted else name,
        )
        axes.scatter(
            [p["tokens"] for p in free],
            [p["legibility"] for p in free],
            s=80,
            marker="*",
            color=line[0].get_color(),
            zorder=3,
            label=f"{name}, no budget" if budgeted else None,
        )
    axes.set_xscale("log")
    axes.set_xlabel("tokens in context at the end (all development conversations)")
    axes.set_ylabel("expected legibility of category 1-4 evidence turns")
    axes.set_title("Memory per token: budgets from history / 1.5 to history / 12")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def write_curve(out: Path, dialogs: Sequence[Dialog]) -> tuple[dict[str, Any], list[str]]:
    """Replay ``dialogs`` and draw ``schedule_curve.png`` into ``out``; return the curve's rows
    (for ``results.json``) and a markdown section for the report."""
    replays = [replay(d) for d in dialogs]
    try:
        rows = curve(replays, default_schedules())
    finally:
        for r in replays:
            r.memory.close()
    plot = out / "schedule_curve.png"
    plot_curve(rows, plot)
    lines = [
        "## Memory per token: schedules and budgets",
        "",
        "Expected legibility is DeepSeek-OCR's Fox precision (its paper, Table 2) at each "
        "category 1-4 evidence turn's page's text tokens and planned mode (text: 1, forgotten: "
        "0), at each conversation's end; `oldest-first` is the earlier planning (see "
        "`optical_memory.experiments.schedules`).",
        "",
        f"![tokens in context vs expected legibility]({plot.name})",
        "",
        *curve_table(rows),
        "",
    ]
    return rows, lines
