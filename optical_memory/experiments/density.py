"""Density search: the densest page layout that stays legible on conversations it was not chosen on.

The Pillow renderer lays text out once on the 1024-px reference page and draws that layout at
every mode, so a page's text is fixed when it is packed and only its pixels shrink as it fades.
One layout serves all modes, and the faintest mode memory uses sets the limit: the default
schedule ends every long conversation at TINY.

The rule (:func:`meets`): on a set of sample pages, read by the pixel probe of
:mod:`optical_memory.experiments.probe`, the faintest mode searched reads every page at
:data:`WORST_PAGE` or better and all of them at :data:`THRESHOLD` on average, and every sharper
mode reads them at :data:`THRESHOLD` on average. :func:`choose` returns the densest layout of
the grid (most text tokens per page) that meets the rule on a set of conversations.

Leave one conversation out: for each conversation, a layout is chosen on the others and
measured on it, which says how far a choice carries to a conversation it has not seen (the
spread is reported). The committed default is the densest layout that meets the rule on every
conversation's pages, so that whichever conversation is held out, its pages meet it.

Layouts are measured from the densest down and only as far as the choices need, with
:data:`PAGES_PER_CONVERSATION` full pages per conversation, evenly spread. The result is
``optical_memory/renderers/data/density.json``; :func:`optical_memory.renderers.layout.
chosen_density` reads it: the Pillow renderer's defaults.

Run it with ``optical-memory density --data PATH`` (a LoCoMo file: all its conversations).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from optical_memory.renderers.layout import DENSITY_FILE, FALLBACK, Density

if TYPE_CHECKING:
    from typing_extensions import Unpack

#: Mean probe character accuracy a layout's pages must keep at every mode.
THRESHOLD = 0.97
#: Probe accuracy every single page must keep at the faintest mode.
WORST_PAGE = 0.95
FONT_SIZES: tuple[float, ...] = (19, 18, 17, 16, 15)
LINE_SPACINGS: tuple[float, ...] = (1.0, 1.1, 1.25)
#: Full pages of each conversation read per layout and mode.
PAGES_PER_CONVERSATION = 2
ALL_MODES = ("tiny", "small", "base", "large", "gundam")


@dataclass
class _Setting:
    """One layout's sample pages of one conversation and how the probe read them."""

    density: Density
    pieces: list[tuple[tuple[str, str], ...]]  # per sample page: (role, content) pieces
    texts: list[str]  # per sample page: its exact text
    text_tokens: list[int]
    accuracy: dict[str, list[float]] = field(default_factory=dict)  # mode -> per page
    settings_key: str = ""


def _sample_pages(turns: Sequence[Any], density: Density, pages: int) -> _Setting:
    """``pages`` full pages, evenly spread over the conversation, as the memory packs them:
    each page's pieces drawn alone (a piece continuing a turn gets its plain role label)."""
    from optical_memory.renderers.pil import PillowRenderer
    from optical_memory.tokens import count_text_tokens
    from optical_memory.turns import Turn, turn_text

    renderer = PillowRenderer(font_size=density.font_size, line_spacing=density.line_spacing)
    layout = renderer.paginate(turns)
    full = max(1, len(layout) - 1)  # the last page is usually not full
    chosen = sorted({min(full - 1, int((i + 0.5) * full / pages)) for i in range(pages)})
    setting = _Setting(density, [], [], [], settings_key=renderer.settings_key)
    for index in chosen:
        pieces = [
            Turn(role=turns[s.turn].role, content=turns[s.turn].content[s.start : s.end])
            for s in layout[index]
        ]
        alone = renderer.paginate(pieces)[0]  # drawn alone, the pieces must still fit
        pieces = [
            Turn(role=pieces[s.turn].role, content=pieces[s.turn].content[s.start : s.end])
            for s in alone
        ]
        text = "\n".join(turn_text(p.role, p.content) for p in pieces)
        setting.pieces.append(tuple((p.role, p.content) for p in pieces))
        setting.texts.append(text)
        setting.text_tokens.append(count_text_tokens(text))
    return setting


def meets(accuracy: Mapping[str, Sequence[float]], faintest: str) -> bool:
    """The rule, on the per-page accuracies by mode of a set of pages."""
    tiny = accuracy[faintest]
    if min(tiny) < WORST_PAGE:
        return False
    return all(_mean(pages) >= THRESHOLD for pages in accuracy.values())


class _Search:
    """The grid over a set of conversations; pages are read on demand, in pool batches."""

    def __init__(
        self,
        conversations: Mapping[str, Sequence[Any]],
        grid: Sequence[Density],
        modes: Sequence[str],
        pages: int,
        probe: Any,
        workers: int,
        progress: Callable[[int], Any] | None,
    ) -> None:
        from optical_memory.modes import Mode

        self.names = list(conversations)
        self.grid = list(grid)
        self.modes = list(modes)
        self.faintest = min(modes, key=lambda m: Mode.parse(m).size)
        self.probe, self.workers, self.progress = probe, workers, progress
        self.samples = {
            (name, density): _sample_pages(turns, density, pages)
            for name, turns in conversations.items()
            for density in grid
        }

    def tokens_per_page(self, density: Density, names: Sequence[str]) -> float:
        return _mean([t for n in names for t in self.samples[(n, density)].text_tokens])

    def accuracy(self, density: Density, names: Sequence[str]) -> dict[str, list[float]]:
        """Per-page accuracy by mode over ``names``' pages (every mode read first)."""
        self.measure([(mode, name, density) for name in names for mode in self.modes])
        return {
            mode: [a for n in names for a in self.samples[(n, density)].accuracy[mode]]
            for mode in self.modes
        }

    def choose(self, names: Sequence[str]) -> Density | None:
        """The densest layout that meets the rule on ``names``' pages (faintest mode read
        first: sharper modes only where it passes)."""
        for density in sorted(self.grid, key=lambda d: -self.tokens_per_page(d, names)):
            self.measure([(self.faintest, name, density) for name in names])
            faint = [a for n in names for a in self.samples[(n, density)].accuracy[self.faintest]]
            if min(faint) < WORST_PAGE or _mean(faint) < THRESHOLD:
                continue
            if meets(self.accuracy(density, names), self.faintest):
                return density
        return None

    def measure(self, batch: Sequence[tuple[str, str, Density]]) -> None:
        """Probe accuracy of each (mode, conversation, layout) not measured yet, in one run."""
        from optical_memory.experiments.probe import PageJob, RendererSpec, read_pages
        from optical_memory.experiments.similarity import page_accuracy
        from optical_memory.modes import Mode
        from optical_memory.renderers.page import page_size

        todo = list(dict.fromkeys(b for b in batch if b[0] not in self.samples[b[1:]].accuracy))
        jobs: list[PageJob] = []
        for mode, name, density in todo:
            setting = self.samples[(name, density)]
            spec = RendererSpec(
                "pil", (("font_size", density.font_size), ("line_spacing", density.line_spacing))
            )
            width, height = page_size(Mode.parse(mode))
            for pieces in setting.pieces:
                digest = hashlib.sha256(json.dumps(pieces).encode()).hexdigest()
                jobs.append(
                    PageJob(
                        f"density|{digest}|{width}x{height}|{setting.settings_key}",
                        renderer=spec,
                        pieces=pieces,
                        mode=Mode.parse(mode),
                    )
                )
        if not jobs:
            return
        readings = read_pages(jobs, self.probe, workers=self.workers, progress=self.progress)
        cursor = 0
        for mode, name, density in todo:
            setting = self.samples[(name, density)]
            setting.accuracy[mode] = []
            for text in setting.texts:
                setting.accuracy[mode].append(page_accuracy(text, readings[jobs[cursor].key]))
                cursor += 1


class Sweep(TypedDict, total=False):
    """:func:`search`'s keywords that say what it sweeps and how much it reads."""

    modes: Sequence[str]
    font_sizes: Sequence[float]
    line_spacings: Sequence[float]
    pages: int
    workers: int


def search(
    conversations: Mapping[str, Sequence[Any]],
    *,
    modes: Sequence[str] = ALL_MODES,
    font_sizes: Sequence[float] = FONT_SIZES,
    line_spacings: Sequence[float] = LINE_SPACINGS,
    pages: int = PAGES_PER_CONVERSATION,
    probe: Any = None,
    workers: int = 2,
    progress: Callable[[int], Any] | None = None,
) -> dict[str, Any]:
    """Choose the default on every conversation, then hold each out in turn (see the module
    docstring); ``conversations`` maps a name to its turns. Returns the result document."""
    from optical_memory.experiments.probe import Probe

    if not conversations:
        raise ValueError("the density search needs at least one conversation")
    probe = probe or Probe()
    grid = [
        Density(float(size), float(spacing)) for spacing in line_spacings for size in font_sizes
    ]
    state = _Search(conversations, grid, modes, pages, probe, workers, progress)
    names = state.names
    default = state.choose(names)
    folds = []
    for held_out in names if len(names) > 1 else []:
        others = [n for n in names if n != held_out]
        chosen = state.choose(others)
        fold: dict[str, Any] = {"held_out": held_out, "chosen_on": others, "layout": None}
        if chosen is not None:
            accuracy = state.accuracy(chosen, [held_out])
            fold.update(
                layout=_layout(chosen),
                text_tokens_per_page=state.tokens_per_page(chosen, [held_out]),
                accuracy={m: _mean(a) for m, a in accuracy.items()},
                worst_page=min(accuracy[state.faintest]),
                meets=meets(accuracy, state.faintest),
            )
        folds.append(fold)
    return _result(state, default, folds, font_sizes, line_spacings, pages)


def _layout(density: Density) -> dict[str, float]:
    return {"font_size": density.font_size, "line_spacing": density.line_spacing}


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _result(
    state: _Search,
    default: Density | None,
    folds: list[dict[str, Any]],
    font_sizes: Sequence[float],
    line_spacings: Sequence[float],
    pages: int,
) -> dict[str, Any]:
    names, faintest = state.names, state.faintest
    measurements = []
    for density in state.grid:
        per_conversation = {
            name: {
                "text_tokens": state.samples[(name, density)].text_tokens,
                "accuracy": state.samples[(name, density)].accuracy,
            }
            for name in names
            if state.samples[(name, density)].accuracy
        }
        if per_conversation:
            measurements.append(
                {
                    **_layout(density),
                    "text_tokens_per_page": state.tokens_per_page(density, names),
                    "conversations": per_conversation,
                }
            )
    chosen: dict[str, Any]
    if default is None:
        chosen = {
            "font_size": FALLBACK[0],
            "line_spacing": FALLBACK[1],
            "text_tokens_per_page": None,
        }
    else:
        accuracy = state.accuracy(default, names)
        chosen = {
            **_layout(default),
            "text_tokens_per_page": state.tokens_per_page(default, names),
            "accuracy": {m: _mean(a) for m, a in accuracy.items()},
            "worst_page": {m: min(a) for m, a in accuracy.items()},
        }
    chosen["reason"] = (
        "one layout serves every mode (page breaks are fixed when a page is packed) and the "
        f"default schedule ends long conversations at {faintest.upper()}: the densest layout "
        f"at which every page of every conversation reads at >= {WORST_PAGE:.0%} at "
        f"{faintest} and every mode searched ({', '.join(state.modes)}) at >= {THRESHOLD:.0%} "
        "on average"
    )
    held = [f for f in folds if f["layout"] is not None]
    held_accuracy = [f["accuracy"][faintest] for f in held]
    spread = (
        {
            "accuracy": [min(held_accuracy), max(held_accuracy)],
            "worst_page": min(f["worst_page"] for f in held),
            "folds_meeting_the_rule": sum(f["meets"] for f in held),
            "folds": len(folds),
        }
        if held
        else None
    )
    return {
        "rule": {"faintest_mode": faintest, "worst_page": WORST_PAGE, "mean": THRESHOLD},
        "threshold": THRESHOLD,
        "probe": state.probe.identity,
        "conversations": names,
        "pages_per_conversation": pages,
        "grid": {"font_sizes": list(font_sizes), "line_spacings": list(line_spacings)},
        "default": chosen,
        "held_out": folds,
        "held_out_spread": spread,
        "measurements": measurements,
    }


def run_density_search(
    data: str,
    *,
    samples: Sequence[str] | None = None,
    out: Path = DENSITY_FILE,
    probe_engine: str = "tesseract",
    cache_dir: Path | None = None,
    progress: bool = True,
    command: str = "",
    **sweep: Unpack[Sweep],
) -> dict[str, Any]:
    """Search over the conversations of ``data`` (a LoCoMo file: ``samples`` or all; or
    ``"synthetic"``) and write the result document to ``out``; ``sweep``: what :func:`search`
    sweeps and reads, where not its defaults."""
    import time

    from optical_memory.experiments.probe import Probe
    from optical_memory.experiments.run import load_dialogs
    from optical_memory.extras import import_extra
    from optical_memory.tokens import cache_dir as default_cache

    started = time.perf_counter()
    dialogs = load_dialogs(data, samples)
    probe = Probe(probe_engine, cache_dir or default_cache() / "probe")
    tqdm = import_extra("tqdm", "demo").tqdm
    with tqdm(desc="density search", unit="page", disable=not progress) as bar:
        result = search(
            {dialog.sample_id: dialog.turns for dialog in dialogs},
            probe=probe,
            progress=bar.update,
            **sweep,
        )
    result = {
        "data": Path(data).name if data != "synthetic" else "synthetic",
        "command": command,
        "seconds": round(time.perf_counter() - started, 1),
        **result,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return result
