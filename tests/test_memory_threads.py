"""A thread's whole life in a store: deleting it, exporting and importing it, bounded storage,
and what the memory logs. Every test runs on a new SQLite file and a new PostgreSQL database."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from optical_memory import DecaySchedule, Mode, OpticalMemory
from optical_memory.modes import FADING_ORDER
from optical_memory.renderers.pil import PillowRenderer

SECRET = "PLANTED-SECRET-91c2"
SCHEDULE = DecaySchedule(
    tiers=[(Mode.GUNDAM, 1), (Mode.LARGE, 1), (Mode.BASE, 1), (Mode.SMALL, 1), (Mode.TINY, 1)],
    batch=1,
)


@pytest.fixture(scope="module")
def renderer() -> PillowRenderer:
    return PillowRenderer(font_size=40)


def fill(memory: OpticalMemory, turns: int, tag: str = "") -> None:
    for i in range(turns):
        role = "user" if i % 2 == 0 else "assistant"
        memory.add(role, f"{tag} turn {i} " + " ".join(f"w{i}x{k}" for k in range(25)))


def test_delete_thread_removes_its_text_pages_and_private_renders(
    store_location: str, renderer: PillowRenderer
) -> None:
    with (
        OpticalMemory(store_location, thread_id="gone", renderer=renderer) as gone,
        OpticalMemory(store_location, thread_id="kept", renderer=renderer) as kept,
    ):
        fill(gone, 30, SECRET)
        fill(kept, 30, "kept")
        assert gone.context().pages and kept.context().pages
        kept_images = {(p.content_hash, p.mode) for p in kept.context().pages}
        assert gone.delete_thread() == 30
        assert gone.threads() == ["kept"]
        assert gone.search(SECRET) == [] and gone.context().recent == []
        assert gone.store.count_images() == len(kept_images)  # only kept's renders remain
        assert [p.png() for p in kept.context().pages]  # kept's renders still load
        fill(gone, 30, "again")  # the thread starts over, pages and all
        assert gone.context().pages[0].seq == 0


def test_export_and_import_rebuild_the_same_pages_and_context(
    store_location: str, renderer: PillowRenderer
) -> None:
    stamp = datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
    with OpticalMemory(store_location, thread_id="a", renderer=renderer) as memory:
        fill(memory, 40)
        memory.add("user", "nul\x00 and 👩‍👩‍👧", timestamp=stamp)
        memory.add("user", "the ferry to Skye leaves from pier 9")
        first_page = memory.store.pages("a")[0]
        memory.store.record_recall("a", [first_page.id], 3)  # what rehearsal would note
        exported = json.loads(json.dumps(memory.export()))  # plain JSON, round trip
        original = memory.context(budget_tokens=2000)
        texts = [memory.recall(p.page_id) for p in memory.context().memory]
    assert exported["turns"][-2]["timestamp"] == stamp.isoformat()
    assert [t["number"] for t in exported["turns"]] == list(range(1, 43))
    assert exported["recalls"] == [{"seq": 0, "page_count": 3}]
    for target in (store_location, None):  # the same store under another id, and a new one
        with OpticalMemory(target, thread_id="b", renderer=renderer) as copy:
            turns = copy.import_thread(exported)
            assert [t.content for t in turns] == [t["content"] for t in exported["turns"]]
            assert turns[-2].timestamp == stamp
            assert [t.number for t in turns] == list(range(1, 43))
            (hit, *_) = copy.search("when does the ferry to Skye leave?")
            assert (hit.number, hit.turn.id) == (42, turns[-1].id)  # indexed under its new id
            assert copy.store.recalls("b") == {copy.store.pages("b")[0].id: 3}
            restored = copy.context(budget_tokens=2000)
            assert [copy.recall(p.page_id) for p in copy.context().memory] == texts
            assert [(p.seq, p.mode) for p in restored.memory] == [
                (p.seq, p.mode) for p in original.memory
            ]
            assert [(t.role, t.content) for t in restored.recent] == [
                (t.role, t.content) for t in original.recent
            ]
            assert copy.export()["pages"] == exported["pages"] or target == store_location


def test_bad_imports_say_what_is_wrong_and_store_nothing(
    store_location: str, renderer: PillowRenderer
) -> None:
    with OpticalMemory(store_location, thread_id="src", renderer=renderer) as memory:
        fill(memory, 20)
        good = memory.export()
        bad_span = json.loads(json.dumps(good))
        bad_span["pages"][0]["spans"][0][2] = 10**6
        bad_stamp = json.loads(json.dumps(good))
        bad_stamp["turns"][0]["timestamp"] = "yesterday"
        bad_number = json.loads(json.dumps(good))
        bad_number["turns"][1]["number"] = 7
        bad_recall = {**good, "recalls": [{"seq": 99, "page_count": 1}]}
        cases = [
            ("not a dict", "not an exported thread"),
            ({**good, "version": 99}, "version 99"),
            ({**good, "turns": "x"}, "'turns' and 'pages' lists"),
            (bad_span, "outside the exported turns"),
            (bad_stamp, "bad timestamp"),
            (bad_number, "'number' 2, not 7"),
            (bad_recall, "'seq' of an exported page"),
        ]
        with OpticalMemory(store_location, thread_id="dst", renderer=renderer) as target:
            for data, message in cases:
                with pytest.raises(ValueError, match=message):
                    target.import_thread(data)
            assert target.store.count_turns("dst") == 0
        with pytest.raises(ValueError, match="already holds turns"):
            memory.import_thread(good)
        assert memory.store.count_turns("src") == 20


def test_renders_a_page_can_never_show_again_are_pruned(
    store_location: str, renderer: PillowRenderer
) -> None:
    with OpticalMemory(store_location, renderer=renderer, schedule=SCHEDULE) as memory:
        for _ in range(8):
            fill(memory, 8)
            memory.context()
            memory.context(budget_tokens=1500)  # demoted renders, fainter than by age
        records = memory.store.pages(memory.thread_id)
        assert len(records) > 6
        key = memory.renderer.settings_key
        for record in records:
            age = len(records) - 1 - record.seq
            earned = SCHEDULE.mode_for_age(age)
            assert earned is not None
            for mode in FADING_ORDER:
                cached = memory.store.image_size(record.content_hash, mode.value, key)
                if FADING_ORDER.index(mode) < FADING_ORDER.index(earned):
                    assert cached is None, (age, mode)
        # A pruned mode is drawn again on request, never a missing image.
        oldest = memory.page_image(records[0].id, Mode.GUNDAM)
        assert oldest.image.size == (1280, 1280)


def test_forgotten_pages_keep_no_renders(store_location: str, renderer: PillowRenderer) -> None:
    schedule = DecaySchedule(tiers=[(Mode.BASE, 2), (Mode.TINY, 2)], forget_after=3, batch=1)
    with OpticalMemory(store_location, renderer=renderer, schedule=schedule) as memory:
        for _ in range(5):
            fill(memory, 10)
            memory.context()
        records = memory.store.pages(memory.thread_id)
        assert len(records) > 4
        shown = {page.content_hash for page in memory.context().pages}
        for record in records[: len(records) - 3]:
            assert record.content_hash not in shown
            for mode in FADING_ORDER:
                assert memory.store.get_image(record.content_hash, mode.value, "") is None
                key = memory.renderer.settings_key
                assert memory.store.image_size(record.content_hash, mode.value, key) is None
        assert memory.store.count_images() == len(shown)


def test_storage_stays_within_four_times_text_plus_showable_renders(
    store_location: str, renderer: PillowRenderer
) -> None:
    with OpticalMemory(store_location, renderer=renderer, schedule=SCHEDULE) as memory:
        for _ in range(6):
            fill(memory, 20)
            context = memory.context()
        text = sum(len(t.content.encode()) for t in memory.store.iter_turns(memory.thread_id))
        showable = sum(len(page.png()) for page in context.pages)
        size = memory.store.size_bytes()
        assert size <= 4 * (text + showable), (size, text, showable)
        assert memory.store.count_images() == len(context.pages)  # only what shows now


def test_the_memory_logs_freezing_rendering_and_fitting(
    store_location: str, renderer: PillowRenderer, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.DEBUG, logger="optical_memory"),
        OpticalMemory(store_location, renderer=renderer, schedule=SCHEDULE) as memory,
    ):
        fill(memory, 30)
        memory.context(budget_tokens=2000)
    messages = [record.getMessage() for record in caplog.records]
    assert any("froze pages" in m for m in messages)
    assert any("rendered page" in m for m in messages)
    assert any("fitted" in m and "into 2000 tokens" in m for m in messages)
    assert any("now large" in m for m in messages)


def test_the_library_prints_nothing_unless_logging_is_configured() -> None:
    code = (
        "import logging\n"
        "from optical_memory import OpticalMemory\n"
        "m = OpticalMemory(keep_recent_turns=1)\n"
        "logging.getLogger('optical_memory').warning('a warning nobody asked to see')\n"
        "m.add('user', 'x ' * 4000); m.add('user', 'y'); m.context()\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout == "" and run.stderr == ""
