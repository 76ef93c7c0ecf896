"""Needles: exact values planted in conversations, and the share the memory's context gives back.

    .venv/bin/python benchmarks/needles.py --data locomo10.json [--per-conversation 12]
        [--targets deepseek-ocr,openai,anthropic,gemini-3] [--reader tesseract]
        [--results docs/results/needles.md]

Plants look-alike codes, amounts, phone numbers and hex ids in each conversation (without
``--data``: the project's own synthetic dialogue), builds each target's default context and
prints, per target, how many values can be read back exactly: from the reader's reading of the
pages at the size they are sent (tesseract, enlarged as the probe enlarges; ``--reader
tesseract-own-pixels`` reads them at their own pixels) plus the text the memory sends; *read
alone* is the same without the pages' verbatim text, as the memory was before. Tokens are the
context's, without and with that text. See :mod:`optical_memory.experiments.needles`.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

from optical_memory.experiments.needles import (
    KINDS,
    PageReadings,
    Run,
    by_kind,
    plant,
    run_conversation,
    summarize,
    table_lines,
)
from optical_memory.experiments.readers import TesseractReader
from optical_memory.experiments.results_file import publish
from optical_memory.targets import target_names
from optical_memory.turns import Turn

DEFAULT_TARGETS = ("deepseek-ocr", "openai", "anthropic", "gemini-3")
KEEP_RECENT = 6  # OpticalMemory's default recent window


def conversations(data: str | None, count: int) -> list[tuple[str, list[Turn]]]:
    if data is None:
        from optical_memory.experiments.synthetic import generate_dialogue

        return [
            (
                f"synthetic-{seed}",
                [Turn(role=r, content=c) for r, c in generate_dialogue(300, seed=seed).turns],
            )
            for seed in range(count)
        ]
    from optical_memory.experiments.locomo import read_locomo

    return [(c.sample_id, list(c.turns)) for c in read_locomo(data)[:count]]


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="a LoCoMo file; default: the synthetic dialogue")
    parser.add_argument("--conversations", type=int, default=5)
    parser.add_argument("--per-conversation", type=int, default=12)
    parser.add_argument("--targets", default=",".join(DEFAULT_TARGETS))
    parser.add_argument(
        "--reader", default="tesseract", choices=("tesseract", "tesseract-own-pixels")
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=24)
    parser.add_argument("--results", type=Path, help="also write the tables to this file")
    args = parser.parse_args(argv)
    try:
        targets = target_names(args.targets)
    except ValueError as error:
        parser.error(str(error))
    started = time.perf_counter()
    reader = TesseractReader(enlarge=args.reader == "tesseract")
    readings = PageReadings(reader, args.workers)
    rng = random.Random(args.seed)
    runs: list[Run] = []
    for name, turns in conversations(args.data, args.conversations):
        planted, needles = plant(turns, args.per_conversation, rng, KEEP_RECENT)
        for target in targets:
            runs.append(run_conversation(name, planted, needles, target, readings))
        print(f"{name}: {len(turns)} turns, {len(needles)} needles", file=sys.stderr)
    summaries = summarize(runs)
    lines = [
        f"Reader: {reader.name}.",
        "",
        *table_lines(summaries),
        "",
        f"By kind, {targets[0]} (needles, read alone, recovered):",
        "",
        "| kind | needles | read alone | recovered |",
        "|---|---:|---:|---:|",
    ]
    kinds = by_kind(runs, targets[0])
    for kind in KINDS:
        n, read, recovered = kinds.get(kind, (0, 0, 0))
        lines.append(f"| {kind} | {n} | {read} | {recovered} |")
    lines += ["", f"{time.perf_counter() - started:.0f} s, {len(readings.readings)} pages read"]
    publish(lines, args.results, "benchmarks/needles.py", argv)
    return lines


if __name__ == "__main__":
    main()
