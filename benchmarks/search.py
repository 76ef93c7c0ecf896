"""Search latency: ``memory.search(question, limit=10)`` at 1,000, 10,000 and 100,000 turns.

    .venv/bin/python benchmarks/search.py [--turns 100000] [--queries 200] [--data FILE]

Fills one SQLite file (a temporary one) with the turns of the LoCoMo development conversations,
repeated until each checkpoint (each copy's turns tagged with its round, so they are not
identical), through the store's ``add_turn`` (the index is kept as ``add`` keeps it; no pages
are drawn, which search does not need), and at each checkpoint asks the LoCoMo questions in
turn, printing wall-clock p50/p95 and the CPU-time p50 (steadier on a busy machine). Without
the LoCoMo file it uses the synthetic dialogue and its facts. Goal: p95 <= 20 ms at 10,000
turns.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from timing import percentile

from optical_memory.memory import OpticalMemory

CHECKPOINTS = (1_000, 10_000, 100_000)
#: Real data lives beside the checkout, never inside it (as the tests find it).
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_DATA = SHARED_DATA / "locomo" / "locomo_dev.json"


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=CHECKPOINTS[-1])
    parser.add_argument("--queries", type=int, default=200, help="timed searches per checkpoint")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a LoCoMo JSON file")
    args = parser.parse_args(argv)
    turns, questions = corpus(args.data)
    checkpoints = [n for n in CHECKPOINTS if n <= args.turns] or [args.turns]
    print(f"{len(turns)} distinct turns, {len(questions)} questions; search(question, limit=10)")
    print(f"{'turns':>8} {'p50 ms':>8} {'p95 ms':>8} {'cpu p50 ms':>11} {'fill s':>7}")
    with tempfile.TemporaryDirectory() as folder:
        memory = OpticalMemory(Path(folder) / "search.db", thread_id="bench")
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
            memory.search(questions[0])  # untimed: warms SQLite's page cache
            wall, cpu = [], []
            for n in range(args.queries):
                question = questions[n % len(questions)]
                w, c = time.perf_counter(), time.process_time()
                memory.search(question, limit=10)
                wall.append((time.perf_counter() - w) * 1000)
                cpu.append((time.process_time() - c) * 1000)
            print(
                f"{checkpoint:>8} {statistics.median(wall):>8.2f} {percentile(wall, 0.95):>8.2f} "
                f"{statistics.median(cpu):>11.2f} {filled:>7.1f}",
                flush=True,
            )
        memory.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
