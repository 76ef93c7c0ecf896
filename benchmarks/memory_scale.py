"""Memory at scale: context() and add() latency, renders and bytes per turn, up to 10,000 turns.

    .venv/bin/python benchmarks/memory_scale.py [--turns 10000] [--store sqlite|postgres|both]
        [--path FILE] [--dsn postgresql://...]

Adds turns of the synthetic dialogue (repeated, each turn numbered) to one store and calls
``context()`` every ``--every`` adds, as an agent does before its model calls (pages render
lazily there, once per page and mode). At 100, 1,000, 6,000 and 10,000 turns it times
``context()`` with a warm cache (after one untimed call) and prints wall-clock p50/p95, the CPU
time p50 (steadier on a busy machine), the renders so far per added turn, ``add()`` mean and
p95, the store's bytes per turn (``Store.size_bytes``: the SQLite file; PostgreSQL's store
tables with their TOAST and indexes, not the server's catalogs or write-ahead log) and its size
over (text + the renders the context can still show); for PostgreSQL, the bytes of each table.
``--store postgres`` without ``--dsn`` starts a throwaway local server (Debian's ``postgresql``,
as the test suite does; autovacuum wakes every second there). Goals: p50 <= 20 ms at 10,000
turns, PostgreSQL within 3x of SQLite, <= 1.2 renders per added turn, size <= 4x text +
showable renders.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from timing import percentile

from optical_memory.experiments.synthetic import generate_dialogue
from optical_memory.memory import OpticalMemory
from optical_memory.store import open_store

CHECKPOINTS = (100, 1_000, 6_000, 10_000)


def run(location: str, turns: int, every: int, samples_wanted: int) -> list[tuple]:
    """Rows of measurements for one store at each checkpoint."""
    dialogue = generate_dialogue(600)
    rows = []
    with OpticalMemory(open_store(location), thread_id="bench") as memory:
        add_ms: list[float] = []
        text_bytes = 0
        for index in range(turns):
            role, content = dialogue.turns[index % len(dialogue.turns)]
            text = f"[{index}] {content}"
            text_bytes += len(text.encode())
            started = time.perf_counter()
            memory.add(role, text)
            add_ms.append((time.perf_counter() - started) * 1000)
            added = index + 1
            if added % every == 0:
                memory.context()
            if added in CHECKPOINTS or added == turns:
                memory.context()  # warm: whatever this needs is rendered and cached now
                renders = memory.renders
                samples, cpu = [], []
                for _ in range(samples_wanted):
                    started, started_cpu = time.perf_counter(), time.process_time()
                    context = memory.context()
                    samples.append((time.perf_counter() - started) * 1000)
                    cpu.append((time.process_time() - started_cpu) * 1000)
                assert memory.renders == renders, "a warm context() rendered again"
                showable = sum(len(page.png()) for page in context.pages)
                size = memory.store.size_bytes()
                rows.append(
                    (
                        added,
                        len(context.pages) + len(context.text_pages),
                        statistics.median(samples),
                        percentile(samples, 0.95),
                        statistics.median(cpu),
                        renders / added,
                        statistics.mean(add_ms),
                        percentile(add_ms, 0.95),
                        size / added,
                        size / (text_bytes + showable),
                    )
                )
                print(f"... {location.split(':')[0]}: {added} turns", file=sys.stderr, flush=True)
    return rows


def where_bytes_go(dsn: str) -> list[str]:
    """Markdown rows: each table of the store (schema ``optical_memory``) with its heap, TOAST
    and index bytes and its live and dead rows (dead: deleted, space reused after VACUUM)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as db:
        rows = db.execute(
            "SELECT c.relname, pg_table_size(c.oid) - COALESCE(pg_total_relation_size("
            "NULLIF(c.reltoastrelid, 0)), 0), COALESCE(pg_total_relation_size("
            "NULLIF(c.reltoastrelid, 0)), 0), pg_indexes_size(c.oid), s.n_live_tup, "
            "s.n_dead_tup FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid "
            "WHERE n.nspname = 'optical_memory' AND c.relkind = 'r' ORDER BY 1"
        ).fetchall()
    return [
        f"| {name} | {heap:,} | {toast:,} | {indexes:,} | {live} | {dead} |"
        for name, heap, toast, indexes, live, dead in rows
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=5, help="context() after every N adds")
    parser.add_argument("--samples", type=int, default=50, help="timed context() calls")
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--path", type=Path, help="SQLite file (default: a temporary one)")
    parser.add_argument("--dsn", help="PostgreSQL database (default: a throwaway local server)")
    args = parser.parse_args(argv)

    folder = tempfile.TemporaryDirectory()
    server = None
    breakdown: list[str] = []
    results: dict[str, list[tuple]] = {}
    try:
        if args.store in ("sqlite", "both"):
            path = args.path or Path(folder.name) / "memory.db"
            results["sqlite"] = run(str(path), args.turns, args.every, args.samples)
        if args.store in ("postgres", "both"):
            dsn = args.dsn
            if dsn is None:
                sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
                from pg_server import PostgresServer, postgres_bin

                bin_dir = postgres_bin()
                if bin_dir is None:
                    parser.error("no PostgreSQL in /usr/lib/postgresql: pass --dsn")
                # Autovacuum wakes every second, not every minute: this run writes in a minute
                # what a thread writes in days, and pruned renders' space is reused only after
                # a VACUUM.
                server = PostgresServer(bin_dir, {"autovacuum_naptime": "1s"})
                server.start()
                dsn = server.new_database()
            results["postgres"] = run(dsn, args.turns, args.every, args.samples)
            breakdown = where_bytes_go(dsn)
    finally:
        if server is not None:
            server.remove()
        folder.cleanup()

    print(
        "| store | turns | pages | context() p50 ms | p95 ms | CPU p50 ms | renders / turn "
        "| add() mean ms | add() p95 ms | bytes / turn | size / (text + showable) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for store, rows in results.items():
        for turns, pages, p50, p95, cpu_p50, renders, add_mean, add_p95, per_turn, ratio in rows:
            print(
                f"| {store} | {turns:,} | {pages} | {p50:.2f} | {p95:.2f} | {cpu_p50:.2f} "
                f"| {renders:.3f} | {add_mean:.2f} | {add_p95:.2f} | {per_turn:,.0f} "
                f"| {ratio:.2f} |"
            )
    if breakdown:
        print(f"\nPostgreSQL at {args.turns:,} turns, bytes by table:\n")
        print("| table | heap | TOAST | indexes | live rows | dead rows |")
        print("|---|---:|---:|---:|---:|---:|")
        print("\n".join(breakdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
