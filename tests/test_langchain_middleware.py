"""OpticalMemoryMiddleware in a real create_agent graph with a checkpointer, over 200 turns.

One conversation is run once per module (two threads interleaved, a scripted model that records
every request, a real tool); each test then checks one promise against what the model was sent.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langchain")

from agent_conversation import (
    LOOKUPS,
    SYSTEM_PROMPT,
    Exchange,
    lookup_order,
    read_request,
    recount_tokens,
    script,
    shop_plan,
)
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from recording_model import RecordingChatModel

from optical_memory import DecaySchedule, OpticalMemory
from optical_memory.agents import BudgetTooSmallError, OpticalMemoryMiddleware
from optical_memory.modes import Mode
from optical_memory.renderers.page import page_size

REPO = Path(__file__).resolve().parent.parent
BUDGET = 3000
KEEP = 6
ALICE, BOB = "alice", "bob"


@dataclass
class Run:
    path: Path
    memory: OpticalMemory
    middleware: OpticalMemoryMiddleware
    model: RecordingChatModel
    agent: Any
    saver: InMemorySaver
    threads: list[str]  # thread of each recorded request, in order
    final_state: dict[str, list[BaseMessage]]

    def requests(self, thread_id: str) -> list[list[BaseMessage]]:
        return [r for r, t in zip(self.model.requests, self.threads, strict=True) if t == thread_id]


def _config(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id}}


def _interleave(alice: list[Exchange], bob: list[Exchange]) -> list[Exchange]:
    plan: list[Exchange] = []
    bob_iter = iter(bob)
    for n, exchange in enumerate(alice):
        plan.append(exchange)
        if n % 5 == 4:
            plan.extend(b for b in [next(bob_iter, None)] if b is not None)
    plan.extend(bob_iter)
    return plan


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    patch = pytest.MonkeyPatch()  # module scope: conftest's per-test cache dir is not set yet
    patch.setenv("OPTICAL_MEMORY_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    path = tmp_path_factory.mktemp("middleware") / "memory.sqlite"
    # 80 exchanges, a tool call every 4th: 80 + 80 + 20 + 20 = 200 turns for alice.
    plan = _interleave(shop_plan(ALICE, 80, tag="ALICE"), shop_plan(BOB, 15, tag="BOB"))
    model = RecordingChatModel(messages=script(plan))
    # Sharp tiers, so that the budget binds (the default tiers fit 3,000 tokens unaided).
    sharp = [(Mode.GUNDAM, 2), (Mode.LARGE, 4), (Mode.BASE, 8), (Mode.SMALL, 16), (Mode.TINY, 1)]
    memory = OpticalMemory(path, schedule=DecaySchedule(tiers=sharp, batch=1))
    middleware = OpticalMemoryMiddleware(memory, keep_recent_turns=KEEP, budget_tokens=BUDGET)
    saver = InMemorySaver()
    agent = create_agent(
        model,
        [lookup_order],
        system_prompt=SYSTEM_PROMPT,
        middleware=[middleware],
        checkpointer=saver,
    )
    LOOKUPS.clear()
    threads: list[str] = []
    for exchange in plan:
        config: RunnableConfig = {"configurable": {"thread_id": exchange.thread_id}}
        agent.invoke({"messages": [HumanMessage(exchange.question)]}, config)
        threads.extend([exchange.thread_id] * len(exchange.answers))
    states = {
        thread: agent.get_state(_config(thread)).values["messages"] for thread in (ALICE, BOB)
    }
    yield Run(path, memory, middleware, model, agent, saver, threads, states)
    patch.undo()


def test_the_run_has_200_turns_and_one_usage_per_model_call(run: Run) -> None:
    assert len(run.final_state[ALICE]) == 200
    assert len(run.model.requests) == len(run.middleware.usage) == len(run.threads)
    assert run.middleware.last_usage is run.middleware.usage[-1]
    assert [u.thread_id for u in run.middleware.usage] == run.threads


def test_old_turns_reach_the_model_as_png_pages_of_their_modes_size(run: Run) -> None:
    sent = read_request(run.requests(ALICE)[-1])
    assert len(sent.images) >= 5
    for page in sent.images:
        assert page.png is not None and page.png.startswith(b"\x89PNG\r\n\x1a\n")
        assert page.image is not None and page.image.format == "PNG"
        page.image.load()  # the whole image decodes
        assert page.image.size == page_size(Mode.parse(page.mode))
    # The schedule fades with age: sharpest (largest) newest.
    sides = [page.image.size[0] for page in sent.images if page.image is not None]
    assert sides == sorted(sides)


def test_pages_come_oldest_first_with_their_turn_numbers(run: Run) -> None:
    sent = read_request(run.requests(ALICE)[-1])
    firsts = [page.first_turn for page in sent.pages]
    assert firsts == sorted(firsts) and firsts[0] == 1
    assert all(p.first_turn <= p.last_turn for p in sent.pages)
    # Captions say nothing relative to the call ("N turns ago"): a prompt cache keeps them.
    assert not any("ago" in text for text in sent.memory_texts)
    # The caption's turn numbers are the thread's, and the page prints them too: page 1
    # starts with alice's first question, labelled #1.
    alice_memory = run.middleware.builder.memory_for(ALICE)
    exact = alice_memory.recall(sent.pages[0].page_id)
    assert exact.startswith("#1 user: " + run.final_state[ALICE][0].text)
    last = sent.pages[-1]
    assert f"#{last.last_turn} " in alice_memory.recall(last.page_id)


def test_old_messages_are_replaced_and_recent_ones_sent_verbatim(run: Run) -> None:
    request = run.requests(ALICE)[-1]
    sent = read_request(request)
    state = run.final_state[ALICE][:-1]  # the last model call came before its own answer
    n = len(sent.verbatim)
    assert KEEP <= n < len(state)
    assert [(m.id, m.content) for m in sent.verbatim] == [(m.id, m.content) for m in state[-n:]]
    # The first question is on a page, not in the text anywhere.
    first_question = state[0].text
    assert all(first_question not in text for text in sent.memory_texts)
    assert all(first_question != m.text for m in sent.verbatim)


def test_every_request_fits_the_budget_as_counted_from_what_was_sent(run: Run) -> None:
    tools = run.model.bound_tools
    assert {t["function"]["name"] for t in tools} == {"lookup_order", "recall_memory"}
    for request, usage in zip(run.model.requests, run.middleware.usage, strict=True):
        total = recount_tokens(request, tools, "deepseek-ocr")
        assert total == usage.total_tokens
        assert total <= BUDGET
    last = run.middleware.usage[-1]
    assert last.vision_tokens > 0 and last.replaced_text_tokens > last.vision_tokens
    # The budget binds: without it the same memory would have cost more.
    unbudgeted = run.middleware.builder.memory_for(ALICE).context()
    assert unbudgeted.total_tokens > BUDGET


def test_agent_state_and_checkpoint_keep_text(run: Run) -> None:
    config: RunnableConfig = {"configurable": {"thread_id": ALICE}}
    checkpoint = run.saver.get(config)
    assert checkpoint is not None
    stored = checkpoint["channel_values"]["messages"]
    for messages in (run.final_state[ALICE], stored):
        assert len(messages) == 200
        assert not any(m.additional_kwargs.get("lc_source") == "optical_memory" for m in messages)
        for message in messages:
            blocks = message.content if isinstance(message.content, list) else []
            assert not any(isinstance(b, dict) and b.get("type") == "image" for b in blocks)
    assert run.final_state[ALICE][0].text.startswith("ALICE Question 1:")


def test_tool_calls_still_work(run: Run) -> None:
    expected = [n for n in range(1, 81) if n % 4 == 0] + [n for n in range(1, 16) if n % 4 == 0]
    assert sorted(LOOKUPS) == sorted(expected)
    results = [m for m in run.final_state[ALICE] if isinstance(m, ToolMessage)]
    assert [m.text for m in results][:2] == [
        "Order 4: packed, ships on day 5.",
        "Order 8: packed, ships on day 2.",
    ]
    # The call right after each tool run was sent that result as its last message.
    after_tool = [r for r in run.requests(ALICE) if isinstance(r[-1], ToolMessage)]
    assert len(after_tool) == 20
    assert after_tool[-1][-1].text == "Order 80: packed, ships on day 4."


def test_tool_calls_and_results_are_never_split(run: Run) -> None:
    for request in run.model.requests:
        verbatim = read_request(request).verbatim
        called: set[str] = set()
        for message in verbatim:
            if isinstance(message, AIMessage):
                called.update(str(c["id"]) for c in message.tool_calls)
            if isinstance(message, ToolMessage):
                assert message.tool_call_id in called
        answered = {m.tool_call_id for m in verbatim if isinstance(m, ToolMessage)}
        assert called <= answered  # every call sent as text has its result as text


def test_memory_holds_every_message_once(run: Run) -> None:
    for thread, turns in ((ALICE, 200), (BOB, 15 * 2 + 3 * 2)):
        stored = list(run.memory.store.iter_turns(thread))
        assert len(stored) == turns == len(run.final_state[thread])
        roles = [t.role for t in stored]
        expected = [
            {"human": "user", "ai": "assistant", "tool": "tool"}[m.type]
            for m in run.final_state[thread]
        ]
        assert roles == expected
        assert stored[0].content == run.final_state[thread][0].text


def test_two_threads_never_see_each_others_pages(run: Run) -> None:
    pages = {t: {p.id for p in run.memory.store.pages(t)} for t in (ALICE, BOB)}
    assert pages[ALICE] and pages[BOB] and not pages[ALICE] & pages[BOB]
    for thread, other in ((ALICE, "BOB"), (BOB, "ALICE")):
        for request in run.requests(thread):
            sent = read_request(request)
            assert {p.page_id for p in sent.pages} <= pages[thread]
            texts = sent.memory_texts + [m.text for m in sent.verbatim]
            assert not any(other in text for text in texts)
    assert any(read_request(r).images for r in run.requests(BOB))


def test_a_new_process_with_the_same_file_continues_the_same_memory(run: Run) -> None:
    before = {p.id for p in run.memory.store.pages(ALICE)}
    last_answer = run.final_state[ALICE][-1].text
    program = textwrap.dedent(
        f"""
        import json, sys
        sys.path.insert(0, {str(REPO / "tests")!r})
        from agent_conversation import lookup_order, read_request
        from langchain.agents import create_agent
        from langchain_core.messages import HumanMessage
        from langgraph.checkpoint.memory import InMemorySaver
        from optical_memory import OpticalMemory
        from optical_memory.agents import OpticalMemoryMiddleware
        from recording_model import RecordingChatModel

        model = RecordingChatModel(messages=iter(["Welcome back."]))
        memory = OpticalMemory({str(run.path)!r})
        middleware = OpticalMemoryMiddleware(memory, keep_recent_turns={KEEP})
        agent = create_agent(model, [lookup_order], middleware=[middleware],
                             checkpointer=InMemorySaver())
        agent.invoke({{"messages": [HumanMessage("Where were we?")]}},
                     {{"configurable": {{"thread_id": "alice"}}}})
        sent = read_request(model.requests[0])
        print(json.dumps({{
            "pages": [p.page_id for p in sent.images],
            "texts": sent.memory_texts,
            "verbatim": [m.text for m in sent.verbatim],
            "turns": memory.store.count_turns("alice"),
        }}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["pages"] and set(seen["pages"]) <= before | {max(before) + 1, max(before) + 2}
    assert seen["pages"][0] == min(before)
    assert any(last_answer in text for text in seen["texts"])  # the previous run's last turn
    assert seen["verbatim"] == ["Where were we?"]
    assert seen["turns"] == 202  # the new question and its answer, nothing stored twice


def test_async_runs_page_the_same_way(run: Run) -> None:
    model = RecordingChatModel(messages=iter(["Async answer."]))
    middleware = OpticalMemoryMiddleware(run.memory, keep_recent_turns=KEEP)
    agent = create_agent(model, [], middleware=[middleware], checkpointer=InMemorySaver())
    config: RunnableConfig = {"configurable": {"thread_id": "async-thread"}}
    for n in range(40):
        middleware.builder.memory_for("async-thread").add("user", f"note {n}: " + "words " * 60)
    asyncio.run(agent.ainvoke({"messages": [HumanMessage("Summarise my notes.")]}, config))
    sent = read_request(model.requests[0])
    assert sent.images and sent.verbatim[-1].text == "Summarise my notes."
    assert middleware.last_usage is not None and middleware.last_usage.vision_tokens > 0
    assert run.memory.store.count_turns("async-thread") == 42


def test_a_budget_below_the_newest_turn_is_an_error(run: Run) -> None:
    model = RecordingChatModel(messages=iter(["never sent"]))
    middleware = OpticalMemoryMiddleware(run.memory, budget_tokens=20)
    agent = create_agent(model, [], middleware=[middleware])
    with pytest.raises(BudgetTooSmallError, match="budget_tokens=20"):
        agent.invoke(
            {"messages": [HumanMessage("word " * 100)]}, {"configurable": {"thread_id": "tiny"}}
        )
    assert model.requests == []


def test_messages_older_than_the_window_leave_the_request_but_not_the_state() -> None:
    # A small, direct case: 30 short turns, keep 4, pages as soon as they fill.
    memory = OpticalMemory(None)
    model = RecordingChatModel(messages=iter(["ok"] * 30))
    middleware = OpticalMemoryMiddleware(memory, keep_recent_turns=4)
    agent = create_agent(model, [], middleware=[middleware], checkpointer=InMemorySaver())
    config: RunnableConfig = {"configurable": {"thread_id": "t"}}
    for n in range(30):
        agent.invoke({"messages": [HumanMessage(f"message {n} " + "lorem ipsum " * 80)]}, config)
    sent = read_request(model.requests[-1])
    state = agent.get_state(config).values["messages"]
    assert len(state) == 60
    assert sent.images
    assert len(sent.verbatim) < len(state) - 1
    assert sent.verbatim[-1].text.startswith("message 29 ")


def test_the_example_agent_runs_offline_and_prints_each_calls_accounting(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_BASE_URL"}
    result = subprocess.run(
        [
            sys.executable,
            "examples/langchain_agent.py",
            "--turns",
            "20",
            "--budget",
            "2000",
            "--memory",
            str(tmp_path / "agent.sqlite"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("model: the offline scripted model")
    calls = [line.split() for line in lines if re.match(r"^\s+\d+\s", line)]
    # 20 questions, every 5th answered through a weather tool call: 24 model calls.
    assert [int(c[0]) for c in calls] == list(range(1, 25))
    totals = [int(c[7]) for c in calls]
    assert all(int(c[1]) + int(c[2]) == total for c, total in zip(calls, totals, strict=True))
    assert max(totals) <= 2000
    assert any(int(c[2]) > 0 for c in calls)  # page images were sent
    assert lines[-1].startswith("24 model calls, 48 turns stored")


def test_a_fresh_process_replaying_a_checkpoint_stores_nothing_twice(run: Run) -> None:
    # A new memory object and middleware (as in a new process) over the same file and the same
    # checkpointed state: the 200 messages it is handed again are recognised by their ids.
    # (Runs last: it adds one exchange to alice's thread.)
    before = run.memory.store.count_turns(ALICE)
    model = RecordingChatModel(messages=iter(["Still here."]))
    middleware = OpticalMemoryMiddleware(OpticalMemory(run.path), keep_recent_turns=KEEP)
    agent = create_agent(model, [lookup_order], middleware=[middleware], checkpointer=run.saver)
    agent.invoke({"messages": [HumanMessage("Anything else?")]}, _config(ALICE))
    assert run.memory.store.count_turns(ALICE) == before + 2
    sent = read_request(model.requests[0])
    assert sent.images and sent.verbatim[-1].text == "Anything else?"
