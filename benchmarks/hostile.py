"""Pagination time for hostile turns: long unbroken tokens, adversarial markdown, a huge table.

    .venv/bin/python benchmarks/hostile.py [--no-html] [--skip-10mb]

Each row is one turn; each cell is the wall time of ``renderer.paginate([turn])`` and the number
of pages it made. The Pillow renderer is fresh per row (empty caches, as in a new process); the
HTML renderer (needs the ``html`` extra and Chromium) is warm: its browser is started before the
clock starts, and its work happens in Chromium's processes, so only wall time sees it. The goal
is every 1 MB case under 2 s and time growing linearly with size (compare the 1, 2 and 10 MB
rows). Times are wall time: on a loaded machine they include the neighbours.
"""

from __future__ import annotations

import argparse
import base64
import random
import time
from collections.abc import Callable

from optical_memory.renderers import PillowRenderer, Renderer
from optical_memory.turns import Turn

MB = 1_000_000


def token(size: int) -> str:
    """One unbroken base64 token of ``size`` characters (a pasted file, a data URL)."""
    return base64.b64encode(random.Random(size).randbytes(size)).decode()[:size]


def repeated(unit: str, size: int) -> str:
    return unit * (size // len(unit))


def deep_nesting(depth: int) -> str:
    """A block quote and a bulleted list, each ``depth`` levels deep, then a paragraph."""
    quote = ">" * depth + " the innermost quote\n\n"
    items = "".join(f"{'  ' * level}- item {level}\n" for level in range(depth))
    return quote + items + "\nthe paragraph after them\n"


def table(size: int) -> str:
    """A markdown table of about ``size`` characters: three columns, short cells."""
    rows = ["| key | value | note |", "|---|--:|---|"]
    length, index = 0, 0
    while length < size:
        row = f"| key{index} | {index * index} | row number {index} of the table |"
        rows.append(row)
        length += len(row) + 1
        index += 1
    return "\n".join(rows) + "\n"


_WORDS = ("the", "memory", "of", "a", "conversation", "fades", "like", "a", "photograph")


def prose(size: int) -> str:
    words = _WORDS
    rng = random.Random(0)
    text = []
    length = 0
    while length < size:
        word = rng.choice(words)
        text.append(word)
        length += len(word) + 1
    return " ".join(text)


CASES: list[tuple[str, Callable[[], str]]] = [
    ("unbroken token 1 MB", lambda: token(MB)),
    ("unbroken token 2 MB", lambda: token(2 * MB)),
    ("unbroken token 10 MB", lambda: token(10 * MB)),
    ("`![` x 20,000 (40 KB)", lambda: repeated("![", 40_000)),
    ("`![` 1 MB", lambda: repeated("![", MB)),
    ("`[` x 50,000 (50 KB)", lambda: repeated("[", 50_000)),
    ("`[` 1 MB", lambda: repeated("[", MB)),
    ("quote and list 100 deep", lambda: deep_nesting(100)),
    ("quote and list 1,000 deep", lambda: deep_nesting(1000)),
    ("table 1 MB", lambda: table(MB)),
    ("prose 1 MB (reference)", lambda: prose(MB)),
]


def html_renderer() -> Renderer:
    from optical_memory.renderers import HtmlRenderer

    renderer = HtmlRenderer()
    renderer.paginate([Turn(role="user", content="warm-up")])
    return renderer


def timed(renderer: Renderer, content: str) -> tuple[float, int]:
    """(wall seconds, pages) of one ``paginate`` of a single turn."""
    start = time.perf_counter()
    pages = renderer.paginate([Turn(role="tool", content=content)])
    return time.perf_counter() - start, len(pages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-html", action="store_true", help="leave out HtmlRenderer")
    parser.add_argument("--skip-10mb", action="store_true", help="leave out the 10 MB row")
    args = parser.parse_args()
    html = None if args.no_html else html_renderer()
    try:
        columns = ["pil"] + ([] if html is None else ["html (warm)"])
        print("wall seconds to paginate one turn (pages in brackets)\n")
        print(f"| turn | characters | {' | '.join(columns)} |")
        print(f"|---|---:|{'---:|' * len(columns)}")
        for name, make in CASES:
            if args.skip_10mb and "10 MB" in name:
                continue
            content = make()
            cells = []
            for renderer in [PillowRenderer(), *([] if html is None else [html])]:
                seconds, pages = timed(renderer, content)
                cells.append(f"{seconds:.2f} ({pages})")
            print(f"| {name} | {len(content):,} | {' | '.join(cells)} |", flush=True)
    finally:
        if html is not None:
            html.close()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
