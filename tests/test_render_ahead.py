"""Render-ahead: after each add, the pages the next context shows are already drawn."""

from __future__ import annotations

from optical_memory import OpticalMemory


def _turn(n: int) -> str:
    return f"Entry {n}: the ferry left pier {n % 4} with {n * 3} crates of apples aboard. " * 3


def test_the_next_context_draws_nothing_itself() -> None:
    memory = OpticalMemory(None, keep_recent_turns=3, render_ahead=True)
    assert memory.render_ahead is not None
    on_call = 0
    for n in range(140):
        memory.add("user", _turn(n))
        memory.render_ahead.wait()
        before = memory.renders
        context = memory.context()
        on_call += memory.renders - before
    assert len(context.pages) >= 5 and memory.render_ahead.drawn > 0
    assert on_call == 0


def test_what_is_sent_does_not_change() -> None:
    ahead = OpticalMemory(None, keep_recent_turns=3, render_ahead=True)
    plain = OpticalMemory(None, keep_recent_turns=3)
    for n in range(90):
        for memory in (ahead, plain):
            memory.add("user", _turn(n))
    assert ahead.render_ahead is not None
    ahead.render_ahead.wait()
    mine, theirs = ahead.context(), plain.context()
    assert [(p.page_id, p.mode, p.png()) for p in mine.pages] == [
        (p.page_id, p.mode, p.png()) for p in theirs.pages
    ]
    ahead.close()
