"""A results file: a measured table, with when, where and by which command it was measured.

Benchmarks and experiments that feed the docs write one with :func:`write_results` (their
``--results PATH`` option); ``python benchmarks/results.py`` inserts each file into the README
and the pages under ``docs/`` that name it, so no figure there is typed by hand.
"""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path


def machine() -> str:
    """The machine in words: processor, cores, Python."""
    processor = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                processor = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{processor}, {os.cpu_count()} cores, Python {platform.python_version()}"


def command_line(argv: Sequence[str] | None = None) -> str:
    """How this process was started, as a reader would type it (``python script.py ...`` or
    ``optical-memory ...``), data files by their names."""
    args = list(sys.argv if argv is None else argv)
    program = Path(args[0]).name if args else "python"
    # A data file is named by its name alone (the folder it was read from is the measurer's),
    # a database by a placeholder (its address may hold a password).
    rest = [
        "ADDRESS"
        if a.startswith(("postgresql://", "postgres://"))
        else Path(a).name
        if os.sep in a and Path(a).is_file() and not _inside(Path(a), Path.cwd())
        else a
        for a in args[1:]
    ]
    if program == "optical-memory":
        return shlex.join(["optical-memory", *rest])
    return shlex.join(["python", args[0] if args else "", *rest])


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def write_results(path: Path | str, body: str, argv: Sequence[str] | None = None) -> Path:
    """Write ``body`` (markdown) to ``path`` under one line saying when, on what machine and by
    which command it was measured. Returns the path."""
    path = Path(path)
    when = datetime.date.today().isoformat()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"_Measured {when} on {machine()} by `{command_line(argv)}`._\n\n{body.strip()}\n",
        encoding="utf-8",
    )
    return path


def benchmark_command(script: str, argv: Sequence[str] | None) -> list[str]:
    """The command line that ran ``script`` with ``argv`` (None: this process's arguments, as a
    benchmark's ``main(argv=None)`` reads them)."""
    return [script, *(sys.argv[1:] if argv is None else argv)]


def publish(
    lines: Sequence[str], path: Path | str | None, script: str, argv: Sequence[str] | None
) -> None:
    """Print a benchmark's report and, when ``path`` is given, write it there as a results
    file (:func:`write_results`) naming the command that ran ``script``."""
    print("\n".join(lines))
    if path is not None:
        write_results(path, "\n".join(lines), benchmark_command(script, argv))
