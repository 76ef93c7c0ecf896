"""Many workers on one store: processes x threads writing and reading at once, a worker killed
in the middle of freezing a page, and (PostgreSQL) the server restarted under a live memory.

Every test runs on an SQLite file and on a real PostgreSQL database. The concurrency run lasts
``SECONDS`` per store (the suite runs on small machines); the counts it checks do not depend on it.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
from test_reliability import check_pages_tile_the_thread

from optical_memory import OpticalMemory
from optical_memory.renderers.pil import PillowRenderer

PROCESSES, THREADS, SECONDS = 8, 2, 5.0

# A worker process with THREADS threads sharing one store: thread 0 adds to the thread every
# process shares, thread 1 to the process's own; each reads context() every few turns and
# prints "<thread> <id> <content>" once add returned, "ERROR ..." for anything raised.
WORKER = textwrap.dedent(
    """
    import sys, threading, time, traceback
    from optical_memory import OpticalMemory
    from optical_memory.renderers.pil import PillowRenderer
    from optical_memory.store import open_store

    location, name, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    store = open_store(location)
    renderer = PillowRenderer(font_size=40)
    lock = threading.Lock()
    print("ready", flush=True)
    sys.stdin.readline()  # every worker starts at once, after all have started up
    deadline = time.monotonic() + seconds

    def run(index):
        thread = "shared" if index == 0 else f"own-{name}"
        memory = OpticalMemory(store, thread_id=thread, renderer=renderer, keep_recent_turns=2)
        n = 0
        try:
            while time.monotonic() < deadline:
                content = f"{name}.{index}.{n} " + " ".join(f"w{k}" for k in range(n % 9 * 3))
                turn = memory.add("user", content)
                with lock:
                    print(thread, turn.id, content, flush=True)
                if n % 4 == 3:
                    memory.context(budget_tokens=3000 if n % 8 == 7 else None)
                n += 1
        except BaseException:
            with lock:
                print("ERROR", traceback.format_exc().replace("\\n", " | "), flush=True)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    store.close()
    """
)


def test_processes_and_threads_lose_and_duplicate_nothing(
    store_location: str, tmp_path: Path
) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    OpticalMemory(store_location).close()  # the schema exists before the workers start
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), store_location, f"p{i}", str(SECONDS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(PROCESSES)
    ]
    for process in processes:
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n", process.stderr
    acknowledged: dict[str, dict[int, str]] = {}
    for process in processes:
        out, err = process.communicate("go\n", timeout=SECONDS + 120)
        assert process.returncode == 0, err
        assert "ERROR" not in out and "Traceback" not in err, out + err
        for line in out.splitlines():
            thread, turn_id, content = line.split(" ", 2)
            acknowledged.setdefault(thread, {})[int(turn_id)] = content
    assert len(acknowledged) == PROCESSES + 1
    writers = {
        content.split(" ")[0].rsplit(".", 1)[0]
        for t in acknowledged.values()
        for content in t.values()
    }
    assert len(writers) == PROCESSES * THREADS  # every worker thread got turns in
    total = sum(len(turns) for turns in acknowledged.values())
    renderer = PillowRenderer(font_size=40)
    for thread, turns in acknowledged.items():
        with OpticalMemory(
            store_location, thread_id=thread, renderer=renderer, keep_recent_turns=2
        ) as memory:
            stored = {t.id: t.content for t in memory.store.iter_turns(thread)}
            assert stored == turns  # 0 lost, 0 duplicated, nothing from another thread
            counts = Counter(stored.values())
            assert max(counts.values()) == 1
            check_pages_tile_the_thread(memory)
    kind = "postgres" if store_location.startswith("postgresql://") else "sqlite"
    print(f"{kind}: {total} turns by {PROCESSES}x{THREADS} workers in {SECONDS:.0f} s, 0 lost")


# A packer that stops inside append_pages: before its transaction ("before") or after it
# committed ("after"), printing "packing" so the test can kill it right there.
PACKER = textwrap.dedent(
    """
    import sys, time
    from optical_memory import OpticalMemory
    from optical_memory.renderers.pil import PillowRenderer

    location, when = sys.argv[1], sys.argv[2]
    memory = OpticalMemory(location, renderer=PillowRenderer(font_size=40), keep_recent_turns=2)
    real = memory.store.append_pages

    def stalled(thread_id, after_seq, pages):
        if when == "before":
            print("packing", flush=True)
            time.sleep(60)
        done = real(thread_id, after_seq, pages)
        print("packing", flush=True)
        time.sleep(60)
        return done

    memory.store.append_pages = stalled
    memory.add("user", "the turn that fills pages " + "word " * 400)
    memory.add("assistant", "a short reply")
    memory.add("user", "a short question")  # the long turn leaves the window: pack
    print("not packed", flush=True)
    """
)


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_worker_killed_while_packing_leaves_each_page_once(
    store_location: str, tmp_path: Path, when: str
) -> None:
    renderer = PillowRenderer(font_size=40)
    with OpticalMemory(store_location, renderer=renderer, keep_recent_turns=2) as memory:
        for i in range(4):
            memory.add("user", f"early turn {i}")
    script = tmp_path / "packer.py"
    script.write_text(PACKER)
    process = subprocess.Popen(
        [sys.executable, str(script), store_location, when],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "packing\n"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    with OpticalMemory(store_location, renderer=renderer, keep_recent_turns=2) as memory:
        memory.add("user", "another worker carries on")
        memory.add("user", "and on")
        memory.context()
        records = memory.store.pages(memory.thread_id)
        assert len(records) >= 2
        check_pages_tile_the_thread(memory)  # every character on at most one page, in order
        hashes = [r.content_hash for r in records]
        assert len(hashes) == len(set(hashes))


def test_the_memory_reconnects_after_the_server_restarts(
    postgres_server, caplog: pytest.LogCaptureFixture
) -> None:
    location = postgres_server.new_database()
    renderer = PillowRenderer(font_size=40)
    with OpticalMemory(location, renderer=renderer, keep_recent_turns=2) as memory:
        for i in range(20):
            memory.add("user", f"before the restart {i} " + "word " * 20)
        memory.context()
        postgres_server.restart()  # every pooled connection is now dead
        with caplog.at_level(logging.INFO, logger="optical_memory"):
            memory.add("user", "after the restart")  # the next call reconnects
            context = memory.context()
        assert context.recent[-1].content == "after the restart"
        assert memory.store.count_turns(memory.thread_id) == 21
        assert "reconnecting" in caplog.text
