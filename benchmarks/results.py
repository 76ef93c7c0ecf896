"""Measured figures in the docs come from results files, never from typing.

A benchmark that feeds the docs writes its table with
:func:`optical_memory.experiments.results_file.write_results` (its ``--results`` option) into
``docs/results/NAME.md``: a first line saying when, on what machine and by which command it was
measured, then the table. The README and the pages under ``docs/`` hold each figure between two
markers::

    <!-- results:NAME -->
    ...the file's text, inserted...
    <!-- /results:NAME -->

and this script is the one command that refreshes them all::

    python benchmarks/results.py            # insert every results file where it is named
    python benchmarks/results.py --check    # exit 1 and name each block that is out of date

``tests/test_results_docs.py`` fails when a block no longer matches its file.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "results"  # where --results files go, by convention
#: The pages that may embed results.
PAGES = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
BLOCK = re.compile(
    r"(<!-- results:(?P<name>[a-z0-9_-]+) -->\n)(?P<body>.*?)(<!-- /results:(?P=name) -->)",
    re.DOTALL,
)


def refreshed(text: str) -> tuple[str, list[str]]:
    """``text`` with every results block replaced by its file; and the names that changed."""
    changed: list[str] = []

    def insert(match: re.Match[str]) -> str:
        name = match["name"]
        path = RESULTS / f"{name}.md"
        if not path.exists():
            raise SystemExit(f"no results file {path.relative_to(ROOT)} for the block {name!r}")
        body = path.read_text(encoding="utf-8")
        if body != match["body"]:
            changed.append(name)
        return match.group(1) + body + match.group(4)

    return BLOCK.sub(insert, text), changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say what is out of date")
    args = parser.parse_args(argv)
    stale = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        new, changed = refreshed(text)
        stale += [f"{page.relative_to(ROOT)}: {name}" for name in changed]
        if changed and not args.check:
            page.write_text(new, encoding="utf-8")
    for line in stale:
        print(("out of date: " if args.check else "refreshed: ") + line)
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
