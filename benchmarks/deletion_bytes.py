"""Where a deleted thread's bytes stay in PostgreSQL, step by step.

    .venv/bin/python benchmarks/deletion_bytes.py [--turns 300]

Starts a throwaway local PostgreSQL (Debian's ``postgresql``, as the test suite does), stores
``--turns`` turns holding a planted string in one thread (and as many in another, kept), then
counts the copies of the string in the store's table files (heaps, TOAST, indexes, read from
disk after a ``CHECKPOINT``) and in the write-ahead log's segment files after each step:
``delete_thread()``, a plain ``VACUUM``, ``vacuum_full()`` (the step the deployment guide
names), then rounds of other writes, ``pg_switch_wal()`` and ``CHECKPOINT`` until the log's
segments holding it are recycled. The server runs with ``full_page_writes=off`` (as the test
suite's does); with it on, the log holds more copies for as long.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

SECRET = b"PLANTED-SECRET-7f3a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=300)
    args = parser.parse_args()
    import psycopg
    from pg_server import PostgresServer, postgres_bin

    from optical_memory.store.postgres import PostgresStore

    bin_dir = postgres_bin()
    if bin_dir is None:
        sys.exit("PostgreSQL not found in /usr/lib/postgresql: install Debian's postgresql")
    server = PostgresServer(bin_dir)
    server.start()
    try:
        dsn = server.new_database()
        print(f"{'after':<42}{'table files':>12}{'WAL files':>10}{'WAL segments':>14}")

        def row(step: str) -> None:
            tables = server.table_files(dsn).lower().count(SECRET.lower())
            segments = sorted((server.data / "pg_wal").glob("0*"))
            wal = sum(segment.read_bytes().count(SECRET) for segment in segments)
            print(f"{step:<42}{tables:>12}{wal:>10}{len(segments):>14}")

        with PostgresStore(dsn) as store, psycopg.connect(dsn, autocommit=True) as db:
            for i in range(args.turns):
                text = f"{SECRET.decode()} number {i} " + "pad " * 50
                store.add_turn("gone", "user", text, None, 60)
                store.add_turn("kept", "user", f"kept number {i}", None, 3)
            row("storing the thread")
            store.delete_thread("gone")
            row("delete_thread()")
            db.execute("VACUUM optical_memory.turns")
            row("VACUUM")
            store.vacuum_full()
            row("vacuum_full()")
            db.execute("CREATE TABLE filler (x text)")
            for round_ in range(1, 4):
                db.execute(
                    "INSERT INTO filler SELECT repeat('z', 1000) FROM generate_series(1, 20000)"
                )
                db.execute("SELECT pg_switch_wal()")
                db.execute("CHECKPOINT")
                row(f"20 MB more WAL, switch, checkpoint x{round_}")
    finally:
        server.remove()


if __name__ == "__main__":
    main()
