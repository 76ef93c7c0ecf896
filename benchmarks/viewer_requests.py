"""The viewer's time per request on a large SQLite store: what opening and checking it costs.

    .venv/bin/python benchmarks/viewer_requests.py [--mb 40] [--requests 40] [--path FILE]

Fills a store with text turns until its file holds about ``--mb`` MB (or uses ``--path`` if it
exists), creates the viewer on it (``create_app``: the store is opened and checked there, once)
and times ``GET /api/threads`` (which reads little else) through FastAPI's test client:
wall-clock p50 and p95 per request. Goal: a request costs no read of the whole file
(``PRAGMA quick_check`` once when the viewer starts, not per request), so its time does not grow
with the store.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from timing import percentile

from optical_memory.apps.backends import EchoModel
from optical_memory.apps.web.app import create_app
from optical_memory.store import SQLiteStore

THREAD = "big"


def fill(path: Path, megabytes: float) -> None:
    """Text turns in batches of 500 until the file holds ``megabytes``."""
    with SQLiteStore(path) as store:
        batch = 0
        while store.size_bytes() < megabytes * 2**20:
            text = "the keeper logged the weather and the passing ships " * 10
            store.add_turns(
                THREAD, [("user", f"turn {batch}-{i} {text}", None, 120) for i in range(500)]
            )
            batch += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=40.0, help="store size to build, MB")
    parser.add_argument("--requests", type=int, default=40, help="timed requests per route")
    parser.add_argument("--path", type=Path, help="an existing store (else a temporary one)")
    args = parser.parse_args()
    from fastapi.testclient import TestClient

    with tempfile.TemporaryDirectory() as folder:
        path = args.path or Path(folder) / "viewer.db"
        if not path.exists():
            fill(path, args.mb)
        started = time.perf_counter()
        app = create_app(path, model=EchoModel())
        opened_ms = (time.perf_counter() - started) * 1000
        print(f"store {path.stat().st_size / 2**20:.1f} MB; viewer created in {opened_ms:.0f} ms")
        print(f"{'request':<28}{'p50 ms':>8}{'p95 ms':>8}")
        with TestClient(app, base_url="http://127.0.0.1") as client:
            client.get("/api/threads")  # warm
            times = []
            for _ in range(args.requests):
                start = time.perf_counter()
                client.get("/api/threads").raise_for_status()
                times.append((time.perf_counter() - start) * 1000)
            name = "GET /api/threads"
            print(f"{name:<28}{percentile(times, 0.5):>8.1f}{percentile(times, 0.95):>8.1f}")


if __name__ == "__main__":
    main()
