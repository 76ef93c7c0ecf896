"""Hostile values from the model or the caller are messages, never a crash or a lock-out.

Out-of-range tool arguments, a malformed image block, a ``data:`` URL that is not base64: the
run goes on, the later runs of the conversation too (also with a checkpointer), and nothing
the caller sent is printed whole into a turn or lost.
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("langchain")

from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from recording_model import RecordingChatModel

from optical_memory import OpticalMemory
from optical_memory.agents import OpticalMemoryMiddleware, recall_memory_tool, wrap

CONFIG: Any = {"configurable": {"thread_id": "t"}}


def _memory_with_pages() -> OpticalMemory:
    memory = OpticalMemory(None, thread_id="t")
    for n in range(40):
        memory.add("user", f"Note {n}: the ferry to island {n} leaves at noon. " * 4)
    return memory


@pytest.mark.parametrize(
    "args",
    [{"page": 10**30}, {"turn": 10**30}, {"turn": 1, "last_turn": 10**30}, {"page": -(10**30)}],
)
def test_out_of_range_numbers_are_a_tool_answer(args: dict[str, int]) -> None:
    answer = recall_memory_tool(_memory_with_pages()).invoke(args)
    assert isinstance(answer, str)
    if "last_turn" in args:  # a range reaching far: the turns there are
        assert answer.startswith("#1 user: Note 0")
    else:
        assert "out of range" in answer


def test_an_agent_whose_model_asks_for_page_10_to_the_30_goes_on() -> None:
    memory = _memory_with_pages()
    call = {"name": "recall_memory", "args": {"page": 10**30}, "id": "r1"}
    model = RecordingChatModel(messages=iter([AIMessage("", tool_calls=[call]), "sorry"]))
    agent = create_agent(model, [], middleware=[OpticalMemoryMiddleware(memory)])
    state = agent.invoke({"messages": [HumanMessage("Read page 10^30.")]}, CONFIG)
    (result,) = [m for m in state["messages"] if isinstance(m, ToolMessage)]
    assert "out of range" in result.text
    assert state["messages"][-1].text == "sorry"


BAD_IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}


def test_a_malformed_image_is_stored_as_a_placeholder_with_a_note() -> None:
    memory = OpticalMemory(None)
    model = RecordingChatModel(messages=iter(["I cannot see it", "fine"]))
    chat = wrap(memory, model)
    message = HumanMessage(content=[{"type": "text", "text": "Look:"}, BAD_IMAGE])
    chat.invoke([message], CONFIG)
    chat.invoke([HumanMessage("Anything else?")], CONFIG)  # later calls go on
    turns = [t.content for t in memory.store.iter_turns("t")]
    assert len(turns) == 4
    assert turns[0].startswith("Look:\n[image 1: unreadable")
    assert "invalid base64" in turns[0]
    assert "@@@" not in turns[0]


def test_with_a_checkpointer_a_malformed_image_locks_no_conversation_out() -> None:
    memory = OpticalMemory(None)
    model = RecordingChatModel(messages=iter(["no image", "ok", "ok again"]))
    middleware = OpticalMemoryMiddleware(memory)
    agent = create_agent(model, [], middleware=[middleware], checkpointer=InMemorySaver())
    message = HumanMessage(content=[{"type": "text", "text": "Look:"}, BAD_IMAGE])
    agent.invoke({"messages": [message]}, CONFIG)
    agent.invoke({"messages": [HumanMessage("Still there?")]}, CONFIG)
    state = agent.invoke({"messages": [HumanMessage("And now?")]}, CONFIG)
    assert state["messages"][-1].text == "ok again"
    assert memory.store.count_turns("t") == 6
    # No request carried the malformed block: the model was sent its placeholder.
    for request in model.requests:
        for sent in request:
            assert "@@@" not in str(sent.content)
    assert "unreadable image/png, invalid base64" in str(model.requests[-1])


def test_a_data_url_that_is_not_base64_is_kept_as_bytes_not_printed() -> None:
    svg = "<svg xmlns='http://www.w3.org/2000/svg'>" + "<rect width='1' height='1'/>" * 40_000
    url = "data:image/svg+xml;utf8," + svg
    memory = OpticalMemory(None)
    chat = wrap(memory, RecordingChatModel(messages=iter(["a drawing"])))
    content: Any = [
        {"type": "text", "text": "My drawing"},
        {"type": "image_url", "image_url": {"url": url}},
    ]
    chat.invoke([HumanMessage(content=content)], CONFIG)
    (turn, _) = memory.store.iter_turns("t")
    assert len(turn.content) < 200
    assert "<rect" not in turn.content
    (image,) = chat.memory("t").turn_images(turn.id or 0)
    assert image.mime_type == "image/svg+xml" and image.data == svg.encode()
