"""Search latency: ``memory.search(question, limit=10)`` at 1,000, 10,000 and 100,000 turns.

    .venv/bin/python benchmarks/search.py [--turns 100000] [--queries 200] [--data FILE]
        [--postgres postgresql://...] [--results docs/results/search.md]

Fills one SQLite file (a temporary one) with the turns of the LoCoMo development conversations,
repeated until each checkpoint (each copy's turns tagged with its round, so they are not
identical), through the store's ``add_turn`` (the index is kept as ``add`` keeps it; no pages
are drawn, which search does not need), and at each checkpoint asks the LoCoMo questions in
turn, printing wall-clock p50/p95 and the CPU-time p50/p95 (steadier on a busy machine; the CPU
time is this process's alone, so PostgreSQL's server work shows in the wall clock only); given
``--postgres``, the same on that database too (its planner statistics refreshed after each
fill, as autovacuum keeps them on a server in use). Without
the LoCoMo file it uses the synthetic dialogue and its facts. Goal: p95 <= 20 ms at 10,000
turns.

With ``--results PATH`` (and a LoCoMo file) it also measures recall: the retrieval benchmark
(``optical_memory.experiments.retrieval``) per category in both settings, on a SQLite file and,
given ``--postgres`` (an empty database's address), on PostgreSQL, and the ranking weights'
leave-one-conversation-out (``optical_memory.experiments.tuning``); and writes every table to
PATH as Markdown under a line saying when, where and by which command it was measured.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from timing import percentile

from optical_memory.experiments.results_file import benchmark_command, write_results
from optical_memory.memory import OpticalMemory

CHECKPOINTS = (1_000, 10_000, 100_000)
#: Real data lives beside the checkout, never inside it (as the tests find it).
#: The LoCoMo file, named by --data or by this variable (the tests' too).
LOCOMO_VARIABLE = "OPTICAL_MEMORY_LOCOMO"


def corpus(path: Path | None) -> tuple[list[tuple[str, str]], list[str]]:
    """(role, content) turns and questions: LoCoMo's when the file exists, else synthetic."""
    if path is not None and path.is_file():
        from optical_memory.experiments.locomo import read_locomo

        conversations = read_locomo(path)
        turns = [(t.role, t.content) for c in conversations for t in c.turns]
        questions = [q.question for c in conversations for q in c.questions if q.category <= 4]
        return turns, questions
    from optical_memory.experiments.synthetic import generate_dialogue

    dialogue = generate_dialogue()
    return list(dialogue.turns), [fact.question for fact in dialogue.facts]


def latency(
    turns: list[tuple[str, str]],
    questions: list[str],
    upto: int,
    queries: int,
    postgres: str | None = None,
) -> list[str]:
    """The latency table's lines, printed as each checkpoint is measured: on a SQLite file, or
    on the PostgreSQL database at ``postgres``."""
    checkpoints = [n for n in CHECKPOINTS if n <= upto] or [upto]
    store = "PostgreSQL" if postgres else "SQLite"
    lines = [
        f"{'store':<10} {'turns':>8} {'p50 ms':>8} {'p95 ms':>8} {'cpu p50 ms':>11} "
        f"{'cpu p95 ms':>11} {'fill s':>7}"
    ]
    print(lines[0], flush=True)
    with tempfile.TemporaryDirectory() as folder:
        memory = OpticalMemory(postgres or Path(folder) / "search.db", thread_id="bench")
        added = 0
        for checkpoint in checkpoints:
            started = time.perf_counter()
            while added < checkpoint:
                role, content = turns[added % len(turns)]
                copy = added // len(turns)
                text = content if copy == 0 else f"{content} (round {copy})"
                memory.store.add_turn(memory.thread_id, role, text, None, 0)
                added += 1
            filled = time.perf_counter() - started
            if postgres:
                _analyze(postgres)
            memory.search(questions[0])  # untimed: warms SQLite's page cache
            wall, cpu = [], []
            for n in range(queries):
                question = questions[n % len(questions)]
                w, c = time.perf_counter(), time.process_time()
                memory.search(question, limit=10)
                wall.append((time.perf_counter() - w) * 1000)
                cpu.append((time.process_time() - c) * 1000)
            lines.append(
                f"{store:<10} {checkpoint:>8} {statistics.median(wall):>8.2f} "
                f"{percentile(wall, 0.95):>8.2f} {statistics.median(cpu):>11.2f} "
                f"{percentile(cpu, 0.95):>11.2f} {filled:>7.1f}"
            )
            print(lines[-1], flush=True)
        memory.close()
    return lines


def _analyze(address: str) -> None:
    """Refresh PostgreSQL's planner statistics after a fill, as autovacuum does within a minute
    of a table growing by a tenth: right after a bulk fill the planner still thinks the thread
    small and intersects the whole thread's index entries with the text index's on every
    query, which a server in use never does."""
    import psycopg

    with psycopg.connect(address, autocommit=True) as db:
        db.execute("ANALYZE")


def recall_report(data: Path, postgres: str | None) -> list[str]:
    """Markdown lines: recall per category in both settings on each store, then the
    leave-one-out of the ranking weights."""
    from optical_memory.experiments.locomo import read_locomo
    from optical_memory.experiments.retrieval import (
        SETTING_NAMES,
        SETTINGS,
        retrieval_table,
        run_retrieval,
    )
    from optical_memory.experiments.tuning import leave_one_out, leave_one_out_lines

    conversations = read_locomo(data)
    lines: list[str] = []
    stores: list[tuple[str, str | None]] = [("SQLite", None)]
    if postgres:
        stores.append(("PostgreSQL", postgres))
    for setting in SETTINGS:
        for name, location in stores:
            with tempfile.TemporaryDirectory() as folder:
                where = location or str(Path(folder) / "recall.db")
                result = run_retrieval(conversations, where, setting=setting).as_dict()
            lines += ["", f"### {name}, stored {SETTING_NAMES[setting]}", ""]
            lines += retrieval_table(result)
            print("\n".join(lines[-9:]), flush=True)
    lines += ["", "### Ranking weights chosen by leave-one-conversation-out", ""]
    lines += leave_one_out_lines(leave_one_out(conversations).as_dict())
    print("\n".join(lines[-12:]), flush=True)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=CHECKPOINTS[-1])
    parser.add_argument("--queries", type=int, default=200, help="timed searches per checkpoint")
    parser.add_argument(
        "--data",
        type=Path,
        default=os.environ.get(LOCOMO_VARIABLE),
        help=f"a LoCoMo JSON file (default: ${LOCOMO_VARIABLE})",
    )
    parser.add_argument("--results", type=Path, help="write recall and latency tables here")
    parser.add_argument(
        "--postgres", help="an empty PostgreSQL database for the latency and recall tables"
    )
    args = parser.parse_args(argv)
    turns, questions = corpus(args.data)
    print(f"{len(turns)} distinct turns, {len(questions)} questions; search(question, limit=10)")
    timings = latency(turns, questions, args.turns, args.queries)
    if args.postgres:
        timings += latency(turns, questions, args.turns, args.queries, args.postgres)[1:]
    if args.results is None:
        return 0
    if args.data is None or not args.data.is_file():
        parser.error(f"--results needs the LoCoMo file (--data or ${LOCOMO_VARIABLE})")
    body = [
        *recall_report(args.data, args.postgres),
        "",
        f"### Latency: search(question, limit=10) over {len(turns)} distinct turns, repeated",
        "",
        "```",
        *timings,
        "```",
    ]
    write_results(args.results, "\n".join(body), benchmark_command("benchmarks/search.py", argv))
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
