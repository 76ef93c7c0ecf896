"""recall_memory: the LangChain tool that reads a page's exact text or searches stored turns."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("langchain")

from agent_conversation import read_request
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from recording_model import RecordingChatModel

from optical_memory import DecaySchedule, OpticalMemory
from optical_memory.agents import OpticalMemoryMiddleware, recall_memory_tool


def _memory_with_pages(thread_id: str = "default", count: int = 40) -> OpticalMemory:
    memory = OpticalMemory(None, thread_id=thread_id)
    for n in range(count):
        memory.add(
            "user", f"Note {n}: the ferry to island {n} leaves at {n % 12 + 1} o'clock. " * 4
        )
    return memory


def _config(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id}}


def test_a_page_id_returns_the_pages_exact_text() -> None:
    memory = _memory_with_pages()
    page = memory.context().memory[0]
    text = recall_memory_tool(memory).invoke({"page": page.page_id})
    assert text == memory.recall(page.page_id)
    assert text.startswith("#1 user: Note 0: the ferry to island 0")


def test_a_query_returns_ranked_hits_with_numbers_pages_and_snippets() -> None:
    memory = _memory_with_pages()
    text = recall_memory_tool(memory).invoke({"query": "When does the ferry to island 17 leave?"})
    first = text.splitlines()[0]
    page = memory.search("island 17")[0].page_id
    assert first.startswith(f"#18 user · page {page}, ")
    assert "**island** **17**" in first


def test_a_turn_number_returns_that_turns_exact_text() -> None:
    memory = _memory_with_pages()
    tool = recall_memory_tool(memory)
    assert tool.invoke({"turn": 3}) == "#3 user: " + memory.turns(3)[0].content
    both = tool.invoke({"turn": 3, "last_turn": 4})
    assert both.split("\n\n") == [f"#{t.number} user: {t.content}" for t in memory.turns(3, 4)]
    assert tool.invoke({"turn": 99}) == "No turn 99 in this conversation's memory."
    assert "last_turn >= turn" in tool.invoke({"turn": 4, "last_turn": 3})


def test_unknown_pages_and_queries_say_so_instead_of_failing() -> None:
    tool = recall_memory_tool(_memory_with_pages(count=2))
    assert tool.invoke({"page": 999}) == "No page 999 in this conversation's memory."
    assert tool.invoke({"query": "zeppelin"}) == "No stored turn matches 'zeppelin'."
    assert "Pass `turn`" in tool.invoke({})


def test_the_tool_has_the_documented_name_and_arguments() -> None:
    tool = recall_memory_tool(OpticalMemory(None))
    assert tool.name == "recall_memory"
    assert set(tool.args) == {"turn", "last_turn", "page", "query"}


def test_the_middleware_registers_it_only_when_asked() -> None:
    memory = OpticalMemory(None)
    assert [t.name for t in OpticalMemoryMiddleware(memory).tools] == ["recall_memory"]
    assert OpticalMemoryMiddleware(memory, register_recall_tool=False).tools == []


def test_in_an_agent_it_reads_the_runs_own_thread() -> None:
    memory = OpticalMemory(None)
    middleware = OpticalMemoryMiddleware(memory)
    for thread in ("alice", "bob"):
        thread_memory = middleware.builder.memory_for(thread)
        for n in range(40):
            thread_memory.add("user", f"{thread} note {n}: " + "the harbour master's ledger " * 8)
    alice_page = middleware.builder.memory_for("alice").context().memory[0].page_id

    def recall(call_id: str) -> AIMessage:
        args = {"page": alice_page}
        return AIMessage("", tool_calls=[{"name": "recall_memory", "args": args, "id": call_id}])

    model = RecordingChatModel(messages=iter([recall("a1"), "ok", recall("b1"), "ok"]))
    agent = create_agent(model, [], middleware=[middleware], checkpointer=InMemorySaver())
    results = {}
    for thread in ("alice", "bob"):
        state = agent.invoke({"messages": [HumanMessage("What was on page one?")]}, _config(thread))
        (result,) = [m for m in state["messages"] if isinstance(m, ToolMessage)]
        results[thread] = result.text
    assert results["alice"] == middleware.builder.memory_for("alice").recall(alice_page)
    assert results["alice"].startswith("#1 user: alice note 0:")
    assert results["bob"] == f"No page {alice_page} in this conversation's memory."
    # The model was sent the recalled text right after its call.
    assert model.requests[1][-1].text == results["alice"]


@pytest.mark.parametrize("register", [True, False])
def test_the_memory_message_mentions_the_tool_only_when_the_model_has_it(register: bool) -> None:
    memory = _memory_with_pages()
    middleware = OpticalMemoryMiddleware(memory, register_recall_tool=register)
    model = RecordingChatModel(messages=iter(["ok"]))
    agent = create_agent(model, [], middleware=[middleware])
    agent.invoke({"messages": [HumanMessage("What time is the ferry to island 3?")]})
    header = read_request(model.requests[0]).memory_texts[0]
    assert header.startswith("Earlier in this conversation (optical memory")
    assert ("recall_memory" in header) is register
    assert ("recall_memory" in [t["function"]["name"] for t in model.bound_tools]) is register


def test_in_an_agent_a_turn_number_read_off_a_tiny_page_recalls_that_turns_exact_text() -> None:
    memory = OpticalMemory(None, schedule=DecaySchedule(tiers=[("small", 2), ("tiny", 1)], batch=1))
    for n in range(120):
        memory.add(
            "user", f"Note {n}: the ferry to island {n} leaves at {n % 12 + 1} o'clock. " * 4
        )
    asked: list[int] = []

    def answers() -> Iterator[AIMessage | str]:
        # The model reads a turn number off the oldest page it was sent, a TINY one, and asks
        # for that turn's exact text.
        request = read_request(model.requests[-1])
        page = request.pages[0]
        assert page.mode == "tiny" and page.image is not None
        assert page.image.size == (512, 512)
        asked.append(page.first_turn + 1)
        call = {"name": "recall_memory", "args": {"turn": asked[0]}, "id": "c1"}
        yield AIMessage("", tool_calls=[call])
        yield "The ferry leaves at two."

    model = RecordingChatModel(messages=answers())
    agent = create_agent(model, [], middleware=[OpticalMemoryMiddleware(memory)])
    state = agent.invoke({"messages": [HumanMessage("When did the ferry to island 1 leave?")]})
    (result,) = [m for m in state["messages"] if isinstance(m, ToolMessage)]
    (turn,) = memory.turns(asked[0])
    page_id = read_request(model.requests[0]).pages[0].page_id
    assert f"#{asked[0]} user:" in memory.recall(page_id)  # the number is printed on that page
    assert result.text == f"#{asked[0]} user: {turn.content}"
    assert model.requests[1][-1].text == result.text  # and the model was sent it


def test_a_runaway_query_is_cut_and_the_answer_says_so() -> None:
    memory = _memory_with_pages()
    text = recall_memory_tool(memory).invoke({"query": "island 17 " + "x" * 1_000_000})
    lines = text.splitlines()
    assert lines[0].startswith("#18 user · page ")
    assert lines[-1].startswith("[the query was 1,000,010 characters: searched for its first 1,000")
