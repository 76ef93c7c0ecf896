"""Page greys: PNG bytes per page and the probe's accuracy per mode, for each grey ramp.

A ramp (:class:`~optical_memory.renderers.palette.Ramp`) is written ``LEVELS:FRINGE:CORE``:
``14:0:1`` is 14 evenly spaced greys with coverage unchanged; ``6:0.14:0.76`` (the default)
is 6 greys, coverage under 14% dropped and over 76% made solid ink.

    .venv/bin/python benchmarks/palette.py [--ramps 14:0:1,8:0.2:0.7,6:0.14:0.76]
        [--locomo FILE] [--pages 4] [--workers 2]

Columns: KiB per BASE page of ``benchmarks/render.py``'s dense Latin and mixed Latin/CJK
workloads; with ``--locomo`` (a LoCoMo file) and tesseract installed, the probe's mean accuracy
at each mode on ``--pages`` sample pages per conversation, chosen as the density search chooses
them (``optical-memory density``), all ramps reading the same text. Readings are cached like
the experiment's, so a second run only reads new ramps. Tesseract's readings of a few pages
vary by a few tenths of a point between near-identical images: compare ramps on 20 or more
pages per mode.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from render import dense_latin, mixed_latin_cjk

from optical_memory.modes import Mode
from optical_memory.renderers import PillowRenderer
from optical_memory.renderers.palette import Ramp
from optical_memory.turns import Turn

MODES = (Mode.TINY, Mode.SMALL, Mode.BASE, Mode.LARGE)


def parse_ramp(text: str) -> Ramp:
    levels, fringe, core = text.split(":")
    return Ramp(int(levels), float(fringe), float(core))


def kib_per_page(ramp: Ramp, turns: list[Turn]) -> float:
    pages = PillowRenderer(ramp=ramp).render(turns, Mode.BASE)
    return sum(len(page.png()) for page in pages) / len(pages) / 1024


def probe_accuracy(ramps: list[Ramp], locomo: Path, pages: int, workers: int) -> list[list[float]]:
    """Per ramp, the probe's mean accuracy at each of :data:`MODES`."""
    from optical_memory.experiments.density import _sample_pages
    from optical_memory.experiments.locomo import read_locomo
    from optical_memory.experiments.probe import PageJob, Probe, read_pages
    from optical_memory.experiments.similarity import page_accuracy
    from optical_memory.renderers.layout import chosen_density
    from optical_memory.tokens import cache_dir

    samples = []  # (pieces, exact text) per sample page
    for conversation in read_locomo(locomo):
        setting = _sample_pages(list(conversation.turns), chosen_density(), pages)
        samples += list(zip(setting.pieces, setting.texts, strict=True))
    jobs: dict[tuple[int, Mode, int], PageJob] = {}
    for r, ramp in enumerate(ramps):
        renderer = PillowRenderer(ramp=ramp)
        for mode in MODES:
            for s, (pieces, _) in enumerate(samples):
                turns = [Turn(role=role, content=content) for role, content in pieces]
                [page, *_] = renderer.render(turns, mode)
                digest = hashlib.sha256(json.dumps(pieces).encode()).hexdigest()
                key = f"palette|{digest}|{mode.value}|{renderer.settings_key}"
                jobs[(r, mode, s)] = PageJob(key, png=page.png())
    readings = read_pages(list(jobs.values()), Probe(cache=cache_dir() / "probe"), workers=workers)
    return [
        [
            sum(
                page_accuracy(text, readings[jobs[(r, mode, s)].key])
                for s, (_, text) in enumerate(samples)
            )
            / len(samples)
            for mode in MODES
        ]
        for r in range(len(ramps))
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--ramps", default="14:0:1,8:0.2:0.7,6:0.14:0.76", help="LEVELS:FRINGE:CORE,..."
    )
    parser.add_argument("--locomo", type=Path, help="a LoCoMo JSON file: adds the probe columns")
    parser.add_argument("--pages", type=int, default=4, help="sample pages per conversation (4)")
    parser.add_argument("--workers", type=int, default=2, help="OCR processes (2)")
    args = parser.parse_args()
    ramps = [parse_ramp(text) for text in args.ramps.split(",")]
    if args.locomo is not None and not args.locomo.is_file():
        parser.error(f"--locomo {args.locomo}: no such file (pass a LoCoMo JSON file)")
    latin, cjk = dense_latin(60), mixed_latin_cjk(60)
    accuracy = (
        probe_accuracy(ramps, args.locomo, args.pages, args.workers)
        if args.locomo is not None
        else None
    )
    columns = ["ramp", "KiB/page dense Latin", "KiB/page mixed Latin/CJK"]
    if accuracy is not None:
        columns += [f"probe {mode.value}" for mode in MODES]
    print(f"| {' | '.join(columns)} |")
    print(f"|{'---|' * len(columns)}")
    for r, ramp in enumerate(ramps):
        cells = [ramp.key, f"{kib_per_page(ramp, latin):.1f}", f"{kib_per_page(ramp, cjk):.1f}"]
        if accuracy is not None:
            cells += [f"{100 * value:.2f}%" for value in accuracy[r]]
        print(f"| {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
