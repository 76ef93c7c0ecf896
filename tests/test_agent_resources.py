"""Resources stay bounded however many conversations go through the middleware or ``wrap``.

Counted in what a server operator watches: OS threads of the process and conversations held
in memory. 300 conversations leave at most 4 more threads; ``close()`` returns to the start.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

pytest.importorskip("langchain")

from langchain.agents import create_agent
from langchain_core.messages import HumanMessage
from recording_model import RecordingChatModel

from optical_memory import OpticalMemory
from optical_memory.agents import OpticalMemoryMiddleware, wrap
from optical_memory.agents.usage import MAX_USAGE
from optical_memory.memory.render_ahead import release_idle_workers

CONVERSATIONS = 300


def _threads_now() -> int:
    return threading.active_count()


def _note(n: int) -> str:
    return f"Note {n}: the harbour ledger lists crate {n * 7} for pier {n % 5}. " * 6


def test_300_conversations_through_the_middleware_leave_at_most_4_more_threads() -> None:
    release_idle_workers()
    start = _threads_now()
    memory = OpticalMemory(None)
    answers = iter([f"noted {n}" for n in range(CONVERSATIONS * 3)])
    middleware = OpticalMemoryMiddleware(memory, keep_recent_turns=1)
    agent = create_agent(RecordingChatModel(messages=answers), [], middleware=[middleware])
    most = start
    for n in range(CONVERSATIONS):
        config: Any = {"configurable": {"thread_id": f"c{n}"}}
        for k in range(3):  # enough for pages, so each conversation draws ahead
            agent.invoke({"messages": [HumanMessage(_note(n * 3 + k))]}, config)
        most = max(most, _threads_now())
    assert most - start <= 4
    assert middleware.builder.open_threads <= middleware.options.tuning.max_threads
    assert memory.store.count_turns("c299") == 6  # every conversation kept whole in the store
    middleware.close()
    assert _threads_now() == start
    assert middleware.builder.open_threads == 0


def test_with_closes_wrap_and_usage_history_is_bounded() -> None:
    release_idle_workers()
    start = _threads_now()
    calls = MAX_USAGE + 20
    model = RecordingChatModel(messages=iter(["ok"] * calls))
    with wrap(OpticalMemory(None), model, keep_recent_turns=1) as chat:
        for n in range(calls):
            chat.invoke([HumanMessage(f"question {n}")], {"configurable": {"thread_id": "t"}})
        assert len(chat.usage) == MAX_USAGE
        assert chat.last_usage is not None and chat.last_usage.messages >= 1
    deadline = time.monotonic() + 30  # threads end soon after; a loaded machine may be slow
    while _threads_now() != start and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _threads_now() == start


@pytest.mark.filterwarnings("ignore:no thread_id")
def test_the_callers_memory_serves_its_own_thread() -> None:
    memory = OpticalMemory(None, thread_id="alice")
    middleware = OpticalMemoryMiddleware(memory)  # calibration on, by default
    assert middleware.memory("alice") is memory
    assert middleware.memory() is memory
    assert middleware.memory("bob") is not memory
