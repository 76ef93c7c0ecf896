"""Reliability with real processes and real files: kills, concurrent writers, hostile text.

The kill and concurrency tests run on an SQLite file and on a real PostgreSQL database."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optical_memory import DecaySchedule, Mode, OpticalMemory, count_text_tokens
from optical_memory.memory import MemoryContext
from optical_memory.renderers.pil import PillowRenderer
from optical_memory.turns import turn_text

# A writer process: adds turns "<tag>-<n>" to a thread and prints "<id> <n>" once add returned.
WRITER = textwrap.dedent(
    """
    import sys
    from optical_memory import OpticalMemory
    from optical_memory.renderers.pil import PillowRenderer

    path, thread, tag, start, count = sys.argv[1:6]
    memory = OpticalMemory(
        path, thread_id=thread, renderer=PillowRenderer(font_size=40), keep_recent_turns=2
    )
    for n in range(int(start), int(start) + int(count)):
        words = " ".join(f"{tag}w{n}x{k}" for k in range(n % 7 * 4 + 3))
        turn = memory.add("user" if n % 2 else "assistant", f"{tag}-{n} {words}")
        # One write: print() writes its pieces one by one, and a kill between them would
        # leave half a line.
        sys.stdout.write(f"{turn.id} {n}\\n")
        if n % 5 == 4:
            memory.context()  # readers render and cache while others write
    memory.close()
    """
)


def content_of(tag: str, n: int) -> str:
    words = " ".join(f"{tag}w{n}x{k}" for k in range(n % 7 * 4 + 3))
    return f"{tag}-{n} {words}"


@pytest.fixture
def writer(tmp_path: Path) -> Path:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    return script


def start_writer(script: Path, db: str, thread: str, tag: str, start: int, count: int):
    return subprocess.Popen(
        [sys.executable, str(script), str(db), thread, tag, str(start), str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def check_pages_tile_the_thread(memory: OpticalMemory) -> None:
    """Pages are numbered 0.., and their spans run through the thread's turns in order, each
    character at most once, with no gap."""
    records = memory.store.pages(memory.thread_id)
    assert [r.seq for r in records] == list(range(len(records)))
    turns = {t.id or 0: t for t in memory.store.iter_turns(memory.thread_id)}
    order = sorted(turns)
    position: tuple[int, int] | None = None  # (index into order, character offset)
    for record in records:
        for span in record.spans:
            index = order.index(span.turn_id)
            if position is None:
                assert (index, span.start) == (0, 0)
            elif span.start == 0:
                previous, end = position
                assert end == len(turns[order[previous]].content)
                assert index == previous + 1
            else:
                assert position == (index, span.start)
            position = (index, span.end)


@pytest.mark.slow
def test_sigkilled_writers_lose_no_acknowledged_turn(writer: Path, store_location: str) -> None:
    db = store_location
    rng = random.Random(20)
    acknowledged: dict[int, int] = {}  # turn id -> n
    next_n = 0
    kills = 0
    while kills < 20:
        process = start_writer(writer, db, "main", "k", next_n, 1000)
        assert process.stdout is not None
        wanted = rng.randint(1, 12)
        for line in process.stdout:
            turn_id, n = map(int, line.split())
            acknowledged[turn_id] = n
            next_n = max(next_n, n + 1)
            wanted -= 1
            if wanted == 0:
                break
        time.sleep(rng.uniform(0, 0.03))  # land the kill inside a later add, pack or render
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert process.returncode == -signal.SIGKILL
        kills += 1
        for line in process.stdout:  # ids printed between our last read and the kill
            turn_id, n = map(int, line.split())
            acknowledged[turn_id] = n
            next_n = max(next_n, n + 1)
        next_n += 1000  # a turn added but not yet printed keeps its number unique

    assert len(acknowledged) >= 20
    if not db.startswith("postgresql://"):
        with sqlite3.connect(db) as raw:
            assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with OpticalMemory(db, thread_id="main", renderer=PillowRenderer(font_size=40)) as memory:
        stored = {t.id: t.content for t in memory.store.iter_turns("main")}
        for turn_id, n in acknowledged.items():
            assert stored[turn_id] == content_of("k", n)
        assert len(set(stored.values())) == len(stored)
        check_pages_tile_the_thread(memory)
        memory.add("user", "after the kills")
        assert memory.context().recent[-1].content == "after the kills"


@pytest.mark.slow
def test_four_concurrent_writers_lose_and_duplicate_nothing(
    writer: Path, store_location: str
) -> None:
    db = store_location
    OpticalMemory(db).close()  # create the file first, as an application would
    per_writer = 40
    jobs = [("alpha", "a0"), ("alpha", "a1"), ("beta", "b0"), ("beta", "b1")]
    processes = [start_writer(writer, db, thread, tag, 0, per_writer) for thread, tag in jobs]
    results = [process.communicate(timeout=240) for process in processes]
    for process, (out, err) in zip(processes, results, strict=True):
        assert process.returncode == 0, err
        assert "locked" not in err and "Traceback" not in err
        assert len(out.splitlines()) == per_writer

    renderer = PillowRenderer(font_size=40)
    for thread in ("alpha", "beta"):
        tags = [tag for t, tag in jobs if t == thread]
        expected = {content_of(tag, n) for tag in tags for n in range(per_writer)}
        with OpticalMemory(db, thread_id=thread, renderer=renderer, keep_recent_turns=2) as memory:
            contents = [t.content for t in memory.store.iter_turns(thread)]
            assert len(contents) == len(expected) == 2 * per_writer
            assert set(contents) == expected  # nothing lost, nothing duplicated, no leak
            check_pages_tile_the_thread(memory)
            context = memory.context()
            text = " ".join(memory.recall(page.page_id) for page in context.memory)
            text += " ".join(t.content for t in context.recent)
            other = "b0-" if thread == "alpha" else "a0-"
            assert other not in text
    for (thread, tag), (out, _) in zip(jobs, results, strict=True):
        ids = [int(line.split()[0]) for line in out.splitlines()]
        with OpticalMemory(db, thread_id=thread) as memory:
            stored = {t.id: t.content for t in memory.store.get_turns(thread, ids)}
        assert [stored[i] for i in ids] == [content_of(tag, n) for n in range(per_writer)]


# --- hostile text ------------------------------------------------------------------------------

HOSTILE = st.text(
    alphabet=st.one_of(
        st.characters(exclude_categories=["Cs"]),  # any code point but lone surrogates
        st.sampled_from(
            ["\x00", "\x07", "\x1b", "\r", "\n", "\t", "\u200f", "\u202e", "\u2028", "\ufeff"]
        ),
    ),
    max_size=400,
)
# Whole words and clusters that a one-character alphabet cannot build often enough.
PHRASES = st.lists(
    st.sampled_from(["שלום", "مرحبا", "👩‍👩‍👧", "🇳🇴", "漢字", "e\u0301", "  ", "-" * 90, "\r\n"]),
    max_size=30,
).map(" ".join)
CONTENT = st.one_of(HOSTILE, PHRASES, st.tuples(HOSTILE, PHRASES).map("".join))
ROLES = st.sampled_from(["user", "assistant", "tool", "שרה", "Zoë 🐍", "x\x00y"])


def expected_recall(added: dict[int, tuple[str, str]], memory: OpticalMemory, page_id: int) -> str:
    record = memory.store.page(memory.thread_id, page_id)
    assert record is not None
    number = {t.id: t.number for t in memory.store.get_turns(memory.thread_id, record.turn_ids)}
    return "\n".join(
        f"#{number[s.turn_id]} {added[s.turn_id][0]}: {added[s.turn_id][1][s.start : s.end]}"
        for s in record.spans
    )


def check_round_trip(
    memory: OpticalMemory, added: dict[int, tuple[str, str]], context: MemoryContext
) -> None:
    pieces: dict[int, str] = {}
    for page in context.memory:
        assert memory.recall(page.page_id) == expected_recall(added, memory, page.page_id)
        record = memory.store.page(memory.thread_id, page.page_id)
        assert record is not None
        for span in record.spans:
            pieces[span.turn_id] = (
                pieces.get(span.turn_id, "") + added[span.turn_id][1][span.start : span.end]
            )
    for turn in context.recent:
        assert turn.id is not None
        pieces[turn.id] = pieces.get(turn.id, "") + turn.content
    assert pieces == {turn_id: content for turn_id, (_, content) in added.items()}
    stored = {t.id: (t.role, t.content) for t in memory.store.iter_turns(memory.thread_id)}
    assert stored == added


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(turns=st.lists(st.tuples(ROLES, CONTENT), min_size=1, max_size=25))
def test_hostile_unicode_round_trips_exactly(turns: list[tuple[str, str]]) -> None:
    renderer = _fuzz_renderer()
    with OpticalMemory(renderer=renderer, keep_recent_turns=2) as memory:
        added: dict[int, tuple[str, str]] = {}
        for role, content in turns:
            if not role.strip():
                continue
            turn = memory.add(role, content)
            assert turn.id is not None
            added[turn.id] = (role, content)
        context = memory.context()
        check_round_trip(memory, added, context)
        for page in context.pages:
            assert page.image.size[0] > 0  # every page drew
        fitted = memory.context(budget_tokens=500)
        assert fitted.over_budget == (fitted.total_tokens > 500)
        if fitted.over_budget:  # only when the newest turn alone exceeds the budget
            newest = max(added)
            assert not fitted.pages and not fitted.text_pages
            assert [t.id for t in fitted.recent] == [newest]
            assert fitted.total_tokens == count_text_tokens(turn_text(*added[newest]))
            assert fitted.total_tokens > 500


@pytest.mark.slow
def test_megabyte_messages_round_trip_and_only_visible_pages_render() -> None:
    rng = random.Random(7)
    alphabet = ["lorem ", "ipsum\n", "\x00", "שלום ", "مرحبا ", "🙂", "漢字", "\t", "\u202e"]
    big = "".join(rng.choice(alphabet) for _ in range(200_000))[:1_000_000]
    big = (big * (1_000_000 // len(big) + 1))[:1_000_000]
    schedule = DecaySchedule(tiers=[(Mode.SMALL, 1), (Mode.TINY, 1)], forget_after=3, batch=1)
    with OpticalMemory(renderer=PillowRenderer(), schedule=schedule, keep_recent_turns=1) as memory:
        added: dict[int, tuple[str, str]] = {}
        for role, content in (("user", big), ("assistant", "short reply"), ("user", "the end")):
            turn = memory.add(role, content)
            assert turn.id is not None
            added[turn.id] = (role, content)
        context = memory.context()
        assert len(memory.store.pages(memory.thread_id)) > 100
        assert memory.renders <= 3  # pages render only when the context shows them
        # Recall of every page (forgotten ones too) gives exactly the added characters.
        pieces: dict[int, str] = {}
        for record in memory.store.pages(memory.thread_id):
            assert memory.recall(record.id) == expected_recall(added, memory, record.id)
            for span in record.spans:
                pieces[span.turn_id] = (
                    pieces.get(span.turn_id, "") + added[span.turn_id][1][span.start : span.end]
                )
        for turn in context.recent:
            assert turn.id is not None
            pieces[turn.id] = pieces.get(turn.id, "") + turn.content
        assert pieces == {tid: content for tid, (_, content) in added.items()}


_RENDERER: list[PillowRenderer] = []


def _fuzz_renderer() -> PillowRenderer:
    if not _RENDERER:
        _RENDERER.append(PillowRenderer(font_size=40))
    return _RENDERER[0]
