"""OpticalChatMessageHistory: LangChain's BaseChatMessageHistory over the memory's store."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("langchain_core")

from agent_conversation import read_request
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import AIMessage, ChatMessage, HumanMessage, ToolMessage
from langchain_core.runnables.history import RunnableWithMessageHistory
from recording_model import RecordingChatModel

from optical_memory import OpticalMemory
from optical_memory.agents import OpticalChatMessageHistory, wrap
from optical_memory.agents.history import AppendOnlyMemoryError


def test_it_is_a_langchain_chat_history() -> None:
    assert isinstance(OpticalChatMessageHistory(OpticalMemory(None)), BaseChatMessageHistory)


def test_messages_come_back_in_order_with_their_roles_and_text() -> None:
    history = OpticalChatMessageHistory(OpticalMemory(None))
    history.add_user_message("Book me a table for two.")
    history.add_ai_message("Done: Friday at eight.")
    history.add_messages([ToolMessage("table 12", tool_call_id="c1")])
    messages = history.messages
    assert [type(m) for m in messages] == [HumanMessage, AIMessage, ChatMessage]
    assert [m.text for m in messages] == [
        "Book me a table for two.",
        "Done: Friday at eight.",
        "table 12",
    ]
    assert isinstance(messages[2], ChatMessage) and messages[2].role == "tool"


def test_adding_the_same_messages_again_stores_nothing() -> None:
    memory = OpticalMemory(None)
    history = OpticalChatMessageHistory(memory)
    sent = [HumanMessage("one"), AIMessage("two")]
    history.add_messages(sent)
    history.add_messages(sent)
    history.add_messages(history.messages)  # read back, handed back
    assert memory.store.count_turns("default") == 2


def test_threads_are_separate_and_persist_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "memory.sqlite"
    OpticalChatMessageHistory(OpticalMemory(path), "alice").add_user_message("alice's secret")
    OpticalChatMessageHistory(OpticalMemory(path), "bob").add_user_message("bob's secret")
    reopened = OpticalMemory(path)
    assert [m.text for m in OpticalChatMessageHistory(reopened, "alice").messages] == [
        "alice's secret"
    ]
    assert [m.text for m in OpticalChatMessageHistory(reopened, "bob").messages] == ["bob's secret"]
    assert OpticalChatMessageHistory(reopened).messages == []


def test_clear_is_refused_because_memory_is_append_only() -> None:
    history = OpticalChatMessageHistory(OpticalMemory(None))
    history.add_user_message("keep me")
    with pytest.raises(AppendOnlyMemoryError, match="new thread_id"):
        history.clear()
    assert [m.text for m in history.messages] == ["keep me"]


# LangChain deprecates RunnableWithMessageHistory for LangGraph persistence, yet ships it.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_with_runnable_with_message_history_and_wrap_each_turn_is_stored_once() -> None:
    memory = OpticalMemory(None)
    model = RecordingChatModel(messages=iter([f"answer {n}" for n in range(5)]))
    chain = RunnableWithMessageHistory(
        wrap(memory, model),
        lambda session_id: OpticalChatMessageHistory(memory, session_id),
    )
    config = {"configurable": {"session_id": "s1", "thread_id": "s1"}}
    for n in range(5):
        chain.invoke([HumanMessage(f"question {n}")], config)  # type: ignore[arg-type]
    stored = [t.content for t in memory.store.iter_turns("s1")]
    assert stored == [text for n in range(5) for text in (f"question {n}", f"answer {n}")]
    # The model saw the whole conversation each time (here still short enough to be text).
    assert [m.text for m in model.requests[-1]] == stored[:-1]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_60_exchanges_through_the_history_and_wrap_store_120_turns_and_send_pages() -> None:
    memory = OpticalMemory(None)
    answers = [f"Answer {n}: the lighthouse log for night {n} is clear. " * 4 for n in range(60)]
    model = RecordingChatModel(messages=iter(answers))
    chain = RunnableWithMessageHistory(
        wrap(memory, model),
        lambda session_id: OpticalChatMessageHistory(memory, session_id),
    )
    config = {"configurable": {"session_id": "s1", "thread_id": "s1"}}
    for n in range(60):
        question = f"Question {n}: what did the keeper write on night {n}? " * 4
        chain.invoke([HumanMessage(question)], config)  # type: ignore[arg-type]
    assert memory.store.count_turns("s1") == 120
    assert read_request(model.requests[-1]).images, "old turns go as pages"
