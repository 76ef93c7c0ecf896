"""Memory at scale: context() latency and renders per added turn, up to 10,000 turns.

    .venv/bin/python benchmarks/memory_scale.py [--turns 10000] [--path FILE]

Adds turns of the synthetic dialogue (repeated, each turn numbered) to one SQLite file and
calls ``context()`` every ``--every`` adds, as an agent does before its model calls (pages render
lazily there, once per page and mode). At 100, 1,000 and 10,000 turns it times ``context()``
with a warm cache (after one untimed call) and prints wall-clock p50/p95, the CPU time p50
(steadier on a busy machine), and the renders so far per added turn. Goals: p50 <=
20 ms at 10,000 turns, <= 1.2 renders per added turn.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from optical_memory.experiments.synthetic import generate_dialogue
from optical_memory.memory import OpticalMemory

CHECKPOINTS = (100, 1_000, 10_000)


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=5, help="context() after every N adds")
    parser.add_argument("--samples", type=int, default=50, help="timed context() calls")
    parser.add_argument("--path", type=Path, help="SQLite file (default: a temporary one)")
    args = parser.parse_args(argv)

    dialogue = generate_dialogue(600)
    folder = tempfile.TemporaryDirectory()
    path = args.path or Path(folder.name) / "memory.db"
    rows = []
    with OpticalMemory(path, thread_id="bench") as memory:
        add_seconds = 0.0
        for index in range(args.turns):
            role, content = dialogue.turns[index % len(dialogue.turns)]
            started = time.perf_counter()
            memory.add(role, f"[{index}] {content}")
            add_seconds += time.perf_counter() - started
            added = index + 1
            if added % args.every == 0:
                memory.context()
            if added in CHECKPOINTS or added == args.turns:
                memory.context()  # warm: whatever this needs is rendered and cached now
                renders = memory.renders
                samples, cpu = [], []
                for _ in range(args.samples):
                    started, started_cpu = time.perf_counter(), time.process_time()
                    context = memory.context()
                    samples.append((time.perf_counter() - started) * 1000)
                    cpu.append((time.process_time() - started_cpu) * 1000)
                assert memory.renders == renders, "a warm context() rendered again"
                rows.append(
                    (
                        added,
                        len(context.pages) + len(context.text_pages),
                        statistics.median(samples),
                        percentile(samples, 0.95),
                        statistics.median(cpu),
                        renders / added,
                        context.total_tokens,
                        add_seconds / added * 1000,
                    )
                )
                print(f"... {added} turns", file=sys.stderr, flush=True)

    print(
        "| turns | pages | context() p50 ms | p95 ms | CPU p50 ms | renders / added turn "
        "| tokens in context | add() mean ms |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for turns, pages, p50, p95, cpu_p50, renders, tokens, add_ms in rows:
        print(
            f"| {turns:,} | {pages} | {p50:.2f} | {p95:.2f} | {cpu_p50:.2f} | {renders:.3f} "
            f"| {tokens:,} | {add_ms:.2f} |"
        )
    folder.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
