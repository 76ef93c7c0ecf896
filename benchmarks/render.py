"""Rendering speed: dense BASE pages per second, one process, printed as a table.

Seconds are the process's CPU time (``time.process_time``): on a shared, loaded machine wall
time measures the neighbours; on an idle one the two agree. ``--wall`` uses wall time. Each cell
is the best of ``--repeat`` runs (default 5), as ``timeit`` reports: noise only ever adds time.

    .venv/bin/python benchmarks/render.py [--pages 60] [--mode base] [--repeat 5] [--locomo FILE]

Rows are workloads (dense Latin prose; mixed Latin/CJK; LoCoMo's conv-26 when ``--locomo``
names a LoCoMo file), columns are renderers. Each cell renders the workload's conversation once
with a fresh renderer (its caches start empty, as in a new process), so the figure includes
measuring and drawing every new word; "+ png" also encodes every page as PNG bytes, as a store
does before saving it; "KiB/page" is the mean size of those PNG files.

To add a renderer, write a function like :func:`pil_renderer` that returns a fresh renderer and
add it to ``RENDERERS``.

The ``html`` column (HtmlRenderer, needs the ``html`` extra and Chromium) is timed warm and in
wall time: its browser is started and its contexts created before the clock starts, and its
work happens in Chromium's processes, which this process's CPU time does not see. Its layout
is measured in the browser within the timed call. ``--no-html`` leaves it out.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from pathlib import Path

from optical_memory.modes import Mode
from optical_memory.renderers import PillowRenderer, Renderer
from optical_memory.turns import Turn

_LATIN_TEXT = (
    "the of and to a in is it you that he was for on are with as I his they be at one have "
    "this from or had by word but what some we can out other were all there when up use your "
    "how said an each she which do their time if will way about many then them write would "
    "like so these her long make thing see him two has look more day could go come did number "
    "sound no most people my over know water than call first who may down side been now find "
    "Caroline Melanie painting support group weekend camping adoption counselling pottery "
    "conference yesterday remember honestly wonderful beautiful really 2023 May 7pm 42"
)
_LATIN_WORDS = tuple(_LATIN_TEXT.split())
#: Share of words made of random letters: real prose keeps meeting words not seen before.
_RARE_WORDS = 0.15
_CJK_TEXT = (
    "我们昨天去了公园散步天气很好大家都很开心记忆是一种会慢慢褪色的东西"
    "今日は良い天気ですね会議は午後三時に始まります"
)


def dense_latin(pages: int, seed: int = 0) -> list[Turn]:
    """About ``pages`` BASE pages of English-like prose in turns of 40-120 words."""
    rng = random.Random(seed)
    turns: list[Turn] = []
    words = 0
    while words < pages * 560:  # ~560 words fill a page at the default settings
        count = rng.randint(40, 120)
        text = " ".join(_word(rng) for _ in range(count))
        turns.append(Turn(role=("user", "assistant")[len(turns) % 2], content=text + "."))
        words += count
    return turns


def _word(rng: random.Random) -> str:
    if rng.random() < _RARE_WORDS:
        return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 11)))
    return rng.choice(_LATIN_WORDS)


def locomo_conv26(path: Path) -> list[Turn]:
    """LoCoMo's conv-26 (real chat turns, 419 of them) from the LoCoMo file at ``path``."""
    from optical_memory.experiments.locomo import read_locomo_sample

    return list(read_locomo_sample(path, "conv-26").turns)


def mixed_latin_cjk(pages: int, seed: int = 0) -> list[Turn]:
    """Turns alternating English-like prose and Chinese/Japanese sentences."""
    rng = random.Random(seed)
    turns = dense_latin(pages * 2 // 3 + 1, seed)
    mixed = []
    for index, turn in enumerate(turns):
        if index % 2:
            start = rng.randrange(len(_CJK_TEXT))
            cjk = "".join(_CJK_TEXT[(start + i) % len(_CJK_TEXT)] for i in range(160))
            turn = Turn(role=turn.role, content=cjk + " " + turn.content[:200])
        mixed.append(turn)
    return mixed


WORKLOADS: dict[str, Callable[[int], list[Turn]]] = {
    "dense Latin": dense_latin,
    "mixed Latin/CJK": mixed_latin_cjk,
}


def pil_renderer() -> Renderer:
    return PillowRenderer()


def html_renderer() -> Renderer:
    """A warm HtmlRenderer: browser started, one context per canvas size already open."""
    from optical_memory.renderers import HtmlRenderer

    renderer = HtmlRenderer()
    for mode in (Mode.TINY, Mode.SMALL, Mode.BASE, Mode.LARGE):
        renderer.render([Turn(role="user", content="warm-up")], mode)
    return renderer


RENDERERS: dict[str, Callable[[], Renderer]] = {"pil": pil_renderer, "html": html_renderer}
#: Renderers whose work runs in other processes: always timed in wall time.
WALL_CLOCK_ONLY = {"html"}


def pages_per_second(
    make_renderer: Callable[[], Renderer],
    turns: list[Turn],
    mode: Mode,
    png: bool,
    clock: Callable[[], float] = time.process_time,
) -> tuple[float, int, int]:
    """(pages per second, pages, PNG bytes of them all: 0 without ``png``) for one render of
    ``turns`` by a fresh renderer."""
    renderer = make_renderer()
    start = clock()
    pages = renderer.render(turns, mode)
    size = sum(len(page.png()) for page in pages) if png else 0
    elapsed = clock() - start
    close = getattr(renderer, "close", None)
    if close is not None:
        close()
    return len(pages) / elapsed, len(pages), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=60, help="pages per workload (about)")
    parser.add_argument("--mode", default="base", help="resolution mode (default base)")
    parser.add_argument("--wall", action="store_true", help="wall time instead of CPU time")
    parser.add_argument("--repeat", type=int, default=5, help="runs per cell, best kept (5)")
    parser.add_argument("--no-html", action="store_true", help="leave out HtmlRenderer")
    parser.add_argument(
        "--locomo", type=Path, help="a LoCoMo JSON file: adds its conversation conv-26 as a row"
    )
    args = parser.parse_args()
    workloads = dict(WORKLOADS)
    if args.locomo is not None:
        if not args.locomo.is_file():
            parser.error(f"--locomo {args.locomo}: no such file (pass a LoCoMo JSON file)")
        workloads["LoCoMo conv-26"] = lambda _pages: locomo_conv26(args.locomo)
    clock = time.perf_counter if args.wall else time.process_time
    mode = Mode.parse(args.mode)
    renderers = {n: r for n, r in RENDERERS.items() if not (args.no_html and n == "html")}

    columns = [
        f"{name}{' (warm, wall)' if name in WALL_CLOCK_ONLY else ''}{suffix}"
        for name in renderers
        for suffix in ("", " + png", " KiB/page")
    ]
    seconds = "wall" if args.wall else "CPU"
    canvas = "x".join(map(str, _size(mode)))
    print(
        f"pages per {seconds} second at {mode.value} ({canvas}), one process, "
        f"best of {max(1, args.repeat)}\n"
    )
    print(f"| workload | pages | {' | '.join(columns)} |")
    print(f"|---|---|{'---|' * len(columns)}")
    for workload, make_turns in workloads.items():
        turns = make_turns(args.pages)
        cells, counts = [], {}
        for name, make_renderer in renderers.items():
            timer = time.perf_counter if name in WALL_CLOCK_ONLY else clock
            for png in (False, True):
                rate, counts[name], png_size = max(
                    pages_per_second(make_renderer, turns, mode, png, timer)
                    for _ in range(max(1, args.repeat))
                )
                cells.append(f"{rate:.1f}" if rate < 10 else f"{rate:.0f}")
            cells.append(f"{png_size / counts[name] / 1024:.1f}")
        # Renderers lay out differently: one page count each ("pil 60 / html 52").
        pages = " / ".join(f"{n} {c}" for n, c in counts.items())
        print(f"| {workload} | {pages} | {' | '.join(cells)} |")


def _size(mode: Mode) -> tuple[int, int]:
    from optical_memory.renderers.page import page_size

    return page_size(mode)


if __name__ == "__main__":
    main()
