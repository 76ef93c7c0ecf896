"""The memory message's captions: absolute turn numbers, dates, modes in words, stable bytes."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

import pytest

pytest.importorskip("langchain")

from agent_conversation import read_request
from langchain_core.messages import HumanMessage

from optical_memory import DecaySchedule, Mode, OpticalMemory
from optical_memory.agents.request import MemoryRequestBuilder


def _memory_text(request: list) -> list[str]:
    return read_request(request).memory_texts


def test_captions_name_turn_numbers_dates_and_the_mode_in_words() -> None:
    schedule = DecaySchedule(tiers=[(Mode.SMALL, 1), (Mode.TINY, 1)], batch=1)
    memory = OpticalMemory(None, schedule=schedule)
    start = datetime(2026, 11, 3, 9)
    for n in range(120):
        stamp = start + timedelta(hours=6 * n)
        note = f"Day note {n}: the harbour was calm and the boats went out. " * 3
        memory.add("user", note, timestamp=stamp)
    request, _ = MemoryRequestBuilder(memory).build(None, [HumanMessage("hello")])
    sent = read_request(request)
    assert len(sent.pages) >= 3
    first = sent.memory_texts[1]
    assert first.startswith(f"page {sent.pages[0].page_id} · turns 1–{sent.pages[0].last_turn} · ")
    assert first.endswith(" Nov 2026 · very low resolution")
    newest = [t for t in sent.memory_texts if t.startswith(f"page {sent.pages[-1].page_id} ")]
    assert newest[0].endswith("· low resolution")
    pages = memory.store.pages(memory.thread_id)
    last_turn = memory.store.get_turns(memory.thread_id, [pages[0].spans[-1].turn_id])[0]
    assert sent.pages[0].last_turn == last_turn.number


def test_one_caption_for_the_pages_of_one_long_message() -> None:
    memory = OpticalMemory(None)
    memory.add("user", "short opener")
    memory.add("user", "A very long paste about harbours and boats. " * 2500)
    for n in range(8):
        memory.add("assistant", f"reply {n}")
    request, _ = MemoryRequestBuilder(memory).build(None, [HumanMessage("and now?")])
    sent = read_request(request)
    captions = [t for t in sent.memory_texts if " · turn 2 · " in t]
    run = [p for p in sent.pages if p.first_turn == p.last_turn == 2]
    assert len(run) >= 3  # the paste fills several pages on its own
    # One caption per stretch of its pages shown at one mode (e.g. "pages 2–6 · turn 2 · low
    # resolution"), not one per page.
    modes = [p.mode for p in run]
    stretches = 1 + sum(a != b for a, b in itertools.pairwise(modes))
    assert len(captions) == stretches < len(run)
    assert captions[0].startswith(f"pages {run[0].page_id}–")


def test_the_memory_message_is_byte_identical_until_a_page_changes() -> None:
    memory = OpticalMemory(None)
    builder = MemoryRequestBuilder(memory)
    previous: tuple[list[tuple[int, Mode]], list[Any]] | None = None
    unchanged = events = 0
    for n in range(120):
        request, _ = builder.build(
            None, [HumanMessage(f"Message {n} about the tides and the ferry timetable, again.")]
        )
        pages = [(p.page_id, p.mode) for p in memory.context().memory]
        # The pages part: header, captions and images (the turns not yet on a page follow).
        blocks = request[0].content if len(request) > 1 else []
        message = [b for b in blocks if "Latest turns, not yet on a page" not in str(b)]
        if not pages:
            continue
        if previous is not None and previous[0] == pages:
            assert message == previous[1]
            unchanged += 1
        elif previous is not None:
            events += 1
        previous = (pages, message)
    assert unchanged > events > 0
