"""A thread deleted while memories are open on it: by `optical-memory threads delete` in another
process, or by ``delete_thread()`` in this one. The memory, a serving agent's middleware and
``wrap`` go on with an empty thread, with no error and without leaving out the caller's
messages. Each test runs on a new SQLite file and a new PostgreSQL database."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("langchain")

from langchain.agents import create_agent
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from recording_model import RecordingChatModel

from optical_memory import OpticalMemory
from optical_memory.agents import OpticalMemoryMiddleware, wrap
from optical_memory.renderers.pil import PillowRenderer

THREAD = "user-42"
_CLI = "import sys; from optical_memory.apps.cli import main; sys.exit(main(sys.argv[1:]))"


def delete_from_another_process(location: str, thread: str = THREAD) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _CLI, "threads", "delete", thread, "--yes", "--db", location],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"deleted thread {thread!r}" in done.stdout


def words(i: int) -> str:
    return f"message {i}: " + " ".join(f"w{i}x{k}" for k in range(30))


def request_text(request: list[BaseMessage]) -> str:
    return "\n".join(
        block.get("text", "") if isinstance(block, dict) else str(block)
        for message in request
        for block in (message.content if isinstance(message.content, list) else [message.content])
    )


def test_an_open_memory_goes_on_after_another_process_deletes_its_thread(
    store_location: str,
) -> None:
    renderer = PillowRenderer(font_size=40)
    with OpticalMemory(store_location, thread_id=THREAD, renderer=renderer) as memory:
        for i in range(40):
            memory.add("user", words(i))
        assert memory.context().pages
        delete_from_another_process(store_location)
        memory.add("user", "the first turn after the delete")
        context = memory.context()
        assert [t.content for t in context.recent] == ["the first turn after the delete"]
        assert context.pages == []
        assert memory.stats().turns == 1
        assert memory.search("first turn after the delete")[0].number == 1
        for i in range(40):
            memory.add("user", words(i))
        assert memory.context().pages[0].seq == 0  # pages start over


def test_a_serving_agent_has_no_errors_after_a_delete_from_another_process(
    store_location: str,
) -> None:
    renderer = PillowRenderer(font_size=40)
    model = RecordingChatModel(messages=iter(["noted"] * 100))
    with OpticalMemory(store_location, thread_id="default", renderer=renderer) as memory:
        middleware = OpticalMemoryMiddleware(memory, keep_recent_turns=4)
        agent = create_agent(model, [], middleware=[middleware], checkpointer=InMemorySaver())
        config: RunnableConfig = {"configurable": {"thread_id": THREAD}}
        errors = []
        for i in range(24):
            if i == 12:
                delete_from_another_process(store_location)
            try:
                state = agent.invoke({"messages": [HumanMessage(words(i))]}, config)
            except Exception as error:
                errors.append(repr(error))
                continue
            assert words(i) in request_text(model.requests[-1])
        assert errors == []
        # The thread starts over from the delete with every message the caller still holds.
        with OpticalMemory(store_location, thread_id=THREAD, renderer=renderer) as reader:
            stored = [t.content for t in reader.store.iter_turns(THREAD)]
        assert stored == [m.content for m in state["messages"]][: len(stored)]
        assert len(stored) >= 2 * 24 - 1


def test_wrap_keeps_the_callers_messages_after_delete_thread_in_this_process() -> None:
    renderer = PillowRenderer(font_size=40)
    model = RecordingChatModel(messages=iter(["noted"] * 100))
    with OpticalMemory(None, thread_id=THREAD, renderer=renderer) as memory:
        chat = wrap(memory, model, keep_recent_turns=4)
        config: RunnableConfig = {"configurable": {"thread_id": THREAD}}
        held: list[BaseMessage] = []
        for i in range(10):
            held.append(HumanMessage(words(i)))
            held.append(chat.invoke(held, config))
        memory.delete_thread()
        held.append(HumanMessage("after the delete"))
        chat.invoke(held, config)
        assert "after the delete" in request_text(model.requests[-1])
        stored = [t.content for t in memory.store.iter_turns(THREAD)]
        # None of the caller's messages left out, then the model's answer.
        assert stored == [m.content for m in held] + ["noted"]
        assert memory.context().pages  # enough of them to fill pages again
