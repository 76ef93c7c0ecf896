"""Page greys: PNG bytes per page and the probe's accuracy per mode, for each grey ramp.

A ramp (:class:`~optical_memory.renderers.palette.Ramp`) is written ``LEVELS:FRINGE:CORE``:
``14:0:1`` is 14 evenly spaced greys with coverage unchanged; ``6:0.14:0.76`` (the default)
is 6 greys, coverage under 14% dropped and over 76% made solid ink.

    .venv/bin/python benchmarks/palette.py [--ramps 14:0:1,8:0.2:0.7,6:0.14:0.76]
        [--locomo FILE] [--pages 4] [--modes tiny,small,base,large] [--workers 2]

Columns: KiB per BASE page of ``benchmarks/render.py``'s dense Latin and mixed Latin/CJK
workloads; with ``--locomo`` (a LoCoMo file) and tesseract installed, the probe's mean accuracy
at each mode on ``--pages`` sample pages per conversation, chosen as the density search chooses
them (``optical-memory density``), or with ``--pages 0`` on every page the memory packs (the
pages ``optical-memory experiment`` reads), all ramps reading the same text. Readings are
cached like the experiment's, so a second run only reads new ramps. Tesseract misreads a page
now and then where a near-identical image reads well, which moves a mean over a few pages by
tenths of a point: compare ramps on 20 or more pages per mode.
"""

from __future__ import annotations

import argparse
import hashlib
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


def sample_pages(locomo: Path, pages: int) -> list[tuple[list[Turn], str]]:
    """``pages`` pages per conversation as the density search samples them: (turns, text)."""
    from optical_memory.experiments.density import _sample_pages
    from optical_memory.experiments.locomo import read_locomo
    from optical_memory.renderers.layout import chosen_density

    samples = []
    for conversation in read_locomo(locomo):
        setting = _sample_pages(list(conversation.turns), chosen_density(), pages)
        for pieces, text in zip(setting.pieces, setting.texts, strict=True):
            samples.append(([Turn(role=role, content=content) for role, content in pieces], text))
    return samples


def drawn_pages(
    ramp: Ramp, modes: list[Mode], locomo: Path, pages: int
) -> list[tuple[str, dict[Mode, bytes]]]:
    """Per page, its exact text and its PNG at each mode drawn with ``ramp``: ``pages`` sample
    pages per conversation, or with ``pages`` 0 every page the memory packs (the pages
    ``optical-memory experiment`` reads, role labels numbered)."""
    from optical_memory.experiments.locomo import read_locomo
    from optical_memory.memory import OpticalMemory

    renderer = PillowRenderer(ramp=ramp)
    if pages > 0:
        return [
            (text, {mode: renderer.render(turns, mode)[0].png() for mode in modes})
            for turns, text in sample_pages(locomo, pages)
        ]
    drawn = []
    for conversation in read_locomo(locomo):
        with OpticalMemory(None, thread_id=conversation.sample_id, renderer=renderer) as memory:
            for turn in conversation.turns:
                memory.add(turn.role, turn.content, timestamp=turn.timestamp)
            for record in memory.store.pages(memory.thread_id):
                pngs = {mode: memory.page_image(record.id, mode).png() for mode in modes}
                drawn.append((memory.recall(record.id), pngs))
    return drawn


def probe_accuracy(
    ramps: list[Ramp], modes: list[Mode], locomo: Path, pages: int, workers: int
) -> list[list[float]]:
    """Per ramp, the probe's mean accuracy at each of ``modes``."""
    from optical_memory.experiments.probe import PageJob, Probe, read_pages
    from optical_memory.experiments.similarity import page_accuracy
    from optical_memory.tokens import cache_dir

    texts: dict[tuple[int, Mode, int], str] = {}
    jobs: dict[tuple[int, Mode, int], PageJob] = {}
    for r, ramp in enumerate(ramps):
        for s, (text, pngs) in enumerate(drawn_pages(ramp, modes, locomo, pages)):
            for mode, png in pngs.items():
                key = f"palette|{hashlib.sha256(png).hexdigest()}"  # the image is the content
                texts[(r, mode, s)], jobs[(r, mode, s)] = text, PageJob(key, png=png)
    readings = read_pages(list(jobs.values()), Probe(cache=cache_dir() / "probe"), workers=workers)
    accuracy: list[list[float]] = []
    for r in range(len(ramps)):
        row = []
        for mode in modes:
            read = [
                page_accuracy(texts[k], readings[job.key])
                for k, job in jobs.items()
                if k[:2] == (r, mode)
            ]
            row.append(sum(read) / len(read))
        accuracy.append(row)
    return accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--ramps", default="14:0:1,8:0.2:0.7,6:0.14:0.76", help="LEVELS:FRINGE:CORE,..."
    )
    parser.add_argument("--locomo", type=Path, help="a LoCoMo JSON file: adds the probe columns")
    parser.add_argument(
        "--pages",
        type=int,
        default=4,
        help="sample pages per conversation (4); 0: every page the memory packs",
    )
    parser.add_argument("--workers", type=int, default=2, help="OCR processes (2)")
    parser.add_argument(
        "--modes", default=",".join(m.value for m in MODES), help="modes the probe reads"
    )
    args = parser.parse_args()
    ramps = [parse_ramp(text) for text in args.ramps.split(",")]
    modes = [Mode.parse(mode) for mode in args.modes.split(",")]
    if args.locomo is not None and not args.locomo.is_file():
        parser.error(f"--locomo {args.locomo}: no such file (pass a LoCoMo JSON file)")
    latin, cjk = dense_latin(60), mixed_latin_cjk(60)
    accuracy = (
        probe_accuracy(ramps, modes, args.locomo, args.pages, args.workers)
        if args.locomo is not None
        else None
    )
    columns = ["ramp", "KiB/page dense Latin", "KiB/page mixed Latin/CJK"]
    if accuracy is not None:
        columns += [f"probe {mode.value}" for mode in modes]
    print(f"| {' | '.join(columns)} |")
    print(f"|{'---|' * len(columns)}")
    for r, ramp in enumerate(ramps):
        cells = [ramp.key, f"{kib_per_page(ramp, latin):.1f}", f"{kib_per_page(ramp, cjk):.1f}"]
        if accuracy is not None:
            cells += [f"{100 * value:.2f}%" for value in accuracy[r]]
        print(f"| {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
