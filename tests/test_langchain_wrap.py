"""wrap(memory, model): optical memory in front of any chat model or Runnable of messages."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

pytest.importorskip("langchain_core")

from agent_conversation import read_request, recount_tokens
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from recording_model import RecordingChatModel

from optical_memory import DecaySchedule, Mode, OpticalMemory
from optical_memory.agents import wrap
from optical_memory.agents.runnable import OpticalMemoryRunnable
from optical_memory.renderers.page import page_size


def _question(n: int) -> str:
    return f"Question {n}: what do the archives say about lighthouse keeper number {n}? " * 3


def _answers(count: int) -> list[str]:
    return [
        f"Answer {n}: keeper {n} served for {n % 30 + 1} years at the point. " * 3
        for n in range(count)
    ]


def _thread(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id}}


def _converse(chat: OpticalMemoryRunnable, count: int, config: RunnableConfig) -> list[BaseMessage]:
    """Send the whole history each call, as a plain chat loop does."""
    history: list[BaseMessage] = [SystemMessage("You are an archivist.")]
    for n in range(count):
        history.append(HumanMessage(_question(n)))
        history.append(chat.invoke(history, config))
    return history


def test_wrapped_model_gets_pages_for_old_turns_and_the_newest_verbatim() -> None:
    model = RecordingChatModel(messages=iter(_answers(60)))
    chat = wrap(OpticalMemory(None), model)
    history = _converse(chat, 60, _thread("t"))
    sent = read_request(model.requests[-1])
    assert [m.text for m in sent.system] == ["You are an archivist."]
    assert len(sent.images) >= 3
    for page in sent.images:
        assert page.image is not None
        assert page.image.size == page_size(Mode.parse(page.mode))
    n = len(sent.verbatim)
    assert 6 <= n < len(history) - 2
    assert [m.text for m in sent.verbatim] == [m.text for m in history[-1 - n : -1]]


def test_resending_the_same_history_stores_each_message_once() -> None:
    memory = OpticalMemory(None)
    chat = wrap(memory, RecordingChatModel(messages=iter(_answers(20))))
    _converse(chat, 20, _thread("t"))
    stored = list(memory.store.iter_turns("t"))
    assert [t.role for t in stored] == ["user", "assistant"] * 20
    assert stored[0].content == _question(0)


def test_sending_only_new_messages_still_shows_the_model_its_past(tmp_path: Path) -> None:
    path = tmp_path / "memory.sqlite"
    answers = _answers(41)
    for part in (range(40), range(40, 41)):  # two processes' worth: a new memory, same file
        model = RecordingChatModel(messages=iter(answers[part.start : part.stop]))
        chat = wrap(OpticalMemory(path), model)
        for n in part:
            chat.invoke([HumanMessage(_question(n))], _thread("t"))
    sent = read_request(model.requests[-1])
    assert sent.images
    assert [m.text for m in sent.verbatim] == [_question(40)]
    # The turns not yet on a page arrive as text, the previous answer last.
    assert sent.memory_texts[-1].endswith(f"assistant: {answers[39]}")


def test_threads_come_from_the_run_config() -> None:
    memory = OpticalMemory(None)
    chat = wrap(memory, RecordingChatModel(messages=iter(_answers(30))))
    _converse(chat, 20, _thread("a"))
    chat.invoke([HumanMessage("hello from b")], _thread("b"))
    assert memory.store.count_turns("a") == 40
    assert memory.store.count_turns("b") == 2
    assert chat.last_usage is not None and chat.last_usage.thread_id == "b"
    assert read_request(chat.runnable.requests[-1]).pages == []  # type: ignore[attr-defined]


def test_pages_dearer_as_images_than_as_text_are_sent_as_text() -> None:
    # Anthropic bills a 1280-px page about 1,600 tokens, more than a page of text (~800); a
    # 512-px TINY page about 350, less. The gate sends each page the cheaper way.
    schedule = DecaySchedule(tiers=[(Mode.GUNDAM, 2), (Mode.TINY, 1)], batch=1)
    memory = OpticalMemory(None, schedule=schedule, target="anthropic")
    model = RecordingChatModel(messages=iter(_answers(50)))
    chat = wrap(memory, model)
    _converse(chat, 50, _thread("t"))
    sent = read_request(model.requests[-1])
    as_text = [p for p in sent.pages if p.mode == "as text"]
    as_image = sent.images
    assert len(as_text) == 2 and as_image and all(p.mode == "tiny" for p in as_image)
    thread_memory = chat.builder.memory_for("t")
    for page in as_text:
        caption_and_text = next(
            t for t in sent.memory_texts if t.startswith(f"page {page.page_id} · ")
        )
        assert caption_and_text.split("\n", 1)[1] == thread_memory.recall(page.page_id)
    usage = chat.last_usage
    assert usage is not None and usage.text_pages == 2 and usage.pages == len(as_image)
    assert recount_tokens(model.requests[-1], [], "anthropic") == usage.total_tokens


def test_budget_holds_for_a_wrapped_model() -> None:
    model = RecordingChatModel(messages=iter(_answers(60)))
    chat = wrap(OpticalMemory(None), model, budget_tokens=2500, keep_recent_turns=4)
    _converse(chat, 60, _thread("t"))
    totals = [recount_tokens(r, [], "deepseek-ocr") for r in model.requests]
    assert totals == [u.total_tokens for u in chat.usage]
    assert max(totals) <= 2500
    assert read_request(model.requests[-1]).images


def test_async_invoke_pages_too() -> None:
    # BASE pages (273 tokens) are cheaper than their text (about 680): sent as images.
    memory = OpticalMemory(None, schedule=DecaySchedule(tiers=[(Mode.BASE, 1)]))
    for n in range(40):
        memory.add("user", _question(n))
    model = RecordingChatModel(messages=iter(["Async answer."]))
    chat = wrap(memory, model)
    answer = asyncio.run(chat.ainvoke("What did I ask first?"))
    assert isinstance(answer, AIMessage) and answer.text == "Async answer."
    sent = read_request(model.requests[0])
    assert sent.images and [m.text for m in sent.verbatim] == ["What did I ask first?"]
    assert memory.store.count_turns("default") == 42


def test_wrap_takes_the_options_as_keywords() -> None:
    memory = OpticalMemory(None)
    model = RecordingChatModel(messages=iter(["hi"]))
    chat = wrap(memory, model, keep_recent_turns=3, budget_tokens=5000)
    assert isinstance(chat, OpticalMemoryRunnable)
    assert (chat.builder.memory, chat.runnable) == (memory, model)
    assert (chat.options.keep_recent_turns, chat.options.budget_tokens) == (3, 5000)
    chat.invoke("hello", {"configurable": {"thread_id": "default"}})
    assert [t.content for t in memory.store.iter_turns("default")] == ["hello", "hi"]


def test_a_tight_budget_keeps_a_tool_result_with_its_call() -> None:
    memory = OpticalMemory(None)
    for n in range(40):
        memory.add("user", f"note {n} " + "the lighthouse ledger lists ships " * 10)
    model = RecordingChatModel(messages=iter(["done"]))
    # Room for the newest turn (the tool result) and little else: the memory alone would keep
    # only the result, which no chat API accepts without the call before it.
    chat = wrap(memory, model, budget_tokens=60)
    call = AIMessage("", tool_calls=[{"name": "lookup", "args": {"order": 7}, "id": "c7"}])
    result = ToolMessage("Order 7: packed, ships on day 1.", tool_call_id="c7")
    chat.invoke([HumanMessage("Look up order 7, please. " * 8), call, result])
    sent = read_request(model.requests[0])
    # Sent as copies whose ids name their turns; the caller's messages keep no id.
    assert [m.model_copy(update={"id": None}) for m in sent.verbatim] == [call, result]
    assert call.id is None and result.id is None
    assert chat.last_usage is not None and chat.last_usage.total_tokens <= 60
