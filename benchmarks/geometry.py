"""Page geometry per target: characters a reader gets back per billed token, before and after.

    .venv/bin/python benchmarks/geometry.py [--data locomo10.json] [--pages 4]
        [--targets openai,anthropic,gemini,gemini-3-low,qwen3-vl] [--modes small,tiny]
        [--results docs/results/geometry.md]

Draws the same pages (the first ``--pages`` of each conversation; without ``--data``, the
project's synthetic dialogue) at each level, once at DeepSeek-OCR's size for the level (what
every target got before) and once at the target's own side
(:func:`optical_memory.geometry.level_sides`), shrinks each image as the target's provider
documents (:func:`optical_memory.geometry.provider_scale`), reads it with tesseract at those
pixels (no enlargement) and prints per target and level: the side, the tokens billed per page,
the characters read back (character accuracy times the page's characters) and characters read
per billed token.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from PIL import Image

from optical_memory.experiments.ocr import character_accuracy, normalize_whitespace, read_text
from optical_memory.experiments.results_file import publish
from optical_memory.geometry import DEEPSEEK_SIDES, level_sides, provider_scale
from optical_memory.modes import Mode
from optical_memory.renderers.pil import PillowRenderer
from optical_memory.targets import target_names, vision_tokens
from optical_memory.turns import Turn

DEFAULT_TARGETS = ("openai", "anthropic", "gemini", "gemini-3-low", "qwen3-vl")


def conversations(data: str | None, count: int) -> list[list[Turn]]:
    if data is None:
        from optical_memory.experiments.synthetic import generate_dialogue

        return [
            [Turn(role=r, content=c) for r, c in generate_dialogue(120, seed=seed).turns]
            for seed in range(count)
        ]
    from optical_memory.experiments.locomo import read_locomo

    return [list(c.turns) for c in read_locomo(data)[:count]]


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="a LoCoMo file; default: the synthetic dialogue")
    parser.add_argument("--conversations", type=int, default=2)
    parser.add_argument("--pages", type=int, default=2, help="pages per conversation")
    parser.add_argument("--targets", default=",".join(DEFAULT_TARGETS))
    parser.add_argument("--modes", default="small,tiny")
    parser.add_argument("--results", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    try:
        targets = target_names(args.targets)
    except ValueError as error:
        parser.error(str(error))
    modes = [Mode.parse(m) for m in args.modes.split(",") if m.strip()]
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    started = time.perf_counter()
    pages = []  # (turns, page index)
    for turns in conversations(args.data, args.conversations):
        turns = turns[: 40 * (args.pages + 1)]  # the first pages need no more turns than this
        count = len(PillowRenderer().paginate(turns))
        pages += [(turns, index) for index in range(min(args.pages, count - 1))]
    readings: dict[tuple[int, int, int], float] = {}  # (page, drawn side, seen side): read
    renderers: dict[int, PillowRenderer] = {}

    def characters_read(number: int, side: int, target: str, mode: Mode) -> tuple[int, float]:
        """The page's characters and how many of them tesseract reads at the provider's
        pixels."""
        turns, index = pages[number]
        renderer = renderers.setdefault(side, PillowRenderer(sides=dict.fromkeys(Mode, side)))
        page = renderer.render(turns, mode)[index]
        expected = normalize_whitespace(page.text(turns))
        seen = max(1, round(side * provider_scale(target, side)))
        key = (number, side, seen)
        if key not in readings:
            image = page.image
            if seen != side:
                image = image.convert("RGB").resize((seen, seen), Image.Resampling.LANCZOS)
            got = normalize_whitespace(read_text(image))
            readings[key] = character_accuracy(expected, got) * len(expected)
        return len(expected), readings[key]

    lines = [
        f"{len(pages)} pages; tesseract at the pixels each provider keeps.",
        "",
        "| target | level | side before → now | tokens/page before → now "
        "| characters read before → now | read per token before → now |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for target in targets:
        sides = level_sides(target)
        for mode in modes:
            before, now = DEEPSEEK_SIDES[mode], sides[mode]
            tokens = [vision_tokens(s, s, target, mode) for s in (before, now)]
            read = [0.0, 0.0]
            total = 0
            for number in range(len(pages)):
                for slot, side in enumerate((before, now)):
                    chars, got = characters_read(number, side, target, mode)
                    read[slot] += got
                total += chars
            per_token = [r / (t * len(pages)) for r, t in zip(read, tokens, strict=True)]
            lines.append(
                f"| {target} | {mode.value} | {before} → {now} | {tokens[0]:,} → {tokens[1]:,} "
                f"| {read[0] / total:.1%} → {read[1] / total:.1%} of {total:,} "
                f"| {per_token[0]:.2f} → {per_token[1]:.2f} |"
            )
        print(f"{target} done", file=sys.stderr)
    lines += ["", f"{time.perf_counter() - started:.0f} s, {len(readings)} images read"]
    publish(lines, args.results, "benchmarks/geometry.py", argv)
    return lines


if __name__ == "__main__":
    main()
