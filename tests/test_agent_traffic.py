"""Ordinary agent traffic through the middleware and ``wrap``: images, models without tools,
streaming, runs without a thread, a paste larger than the budget, request limits."""

from __future__ import annotations

import asyncio
import base64
import io
import logging
from typing import Any

import pytest

pytest.importorskip("langchain")

from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from PIL import Image
from recording_model import RecordingChatModel

from optical_memory import DecaySchedule, Mode, OpticalMemory
from optical_memory.agents import MemoryOptions, OpticalMemoryMiddleware, recall_memory_tool, wrap
from optical_memory.memory.limits import Mosaic, bound_pages
from optical_memory.targets import RequestLimits, vision_tokens
from optical_memory.tokens import count_text_tokens

CONFIG: Any = {"configurable": {"thread_id": "t"}}


def _png_b64(size: int, colour: tuple[int, int, int]) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _photos(count: int, size: int = 2048) -> HumanMessage:
    blocks: list[Any] = [{"type": "text", "text": "Here are the photos of the shed."}]
    for n in range(count):
        colour = (40 * n, 120, 200)
        blocks.append({"type": "image", "base64": _png_b64(size, colour), "mime_type": "image/png"})
    return HumanMessage(content_blocks=blocks)


def _chatter(n: int) -> str:
    return f"Message {n}: the lighthouse keeper logged the weather and the passing ships. " * 4


# --- images are turns ----------------------------------------------------------------------------


def test_images_in_a_message_are_counted_for_the_target() -> None:
    model = RecordingChatModel(messages=iter(["nice shed"]))
    chat = wrap(OpticalMemory(None), model, target="openai")
    chat.invoke([_photos(3)], CONFIG)
    usage = chat.last_usage
    assert usage is not None and usage.images == 3
    # OpenAI's guide: 2048 x 2048 is scaled to 768 x 768, 4 tiles: 85 + 4 x 170 = 765 each.
    assert usage.vision_tokens == 3 * 765
    sent = model.requests[-1][-1]
    assert [b["type"] for b in sent.content_blocks].count("image") == 3


def test_a_budget_holds_with_images_in_the_newest_message() -> None:
    model = RecordingChatModel(messages=iter(["ok"]))
    chat = wrap(OpticalMemory(None), model, target="openai", budget_tokens=500)
    chat.invoke([_photos(3)], CONFIG)
    usage = chat.last_usage
    assert usage is not None and usage.total_tokens <= 500 and usage.images == 0
    note, text = model.requests[-1]
    assert "its 3 images are left out here" in note.text, note.text
    assert text.text == "Here are the photos of the shed."


def test_an_image_is_kept_with_its_turn_shown_as_a_placeholder_and_recalled() -> None:
    memory = OpticalMemory(None)
    model = RecordingChatModel(messages=iter(["ok"] * 40))
    chat = wrap(memory, model)
    history: list[BaseMessage] = [_photos(1, size=300)]
    history.append(chat.invoke(history, CONFIG))
    for n in range(30):
        history.append(HumanMessage(_chatter(n)))
        history.append(chat.invoke(history, CONFIG))
    thread = chat.memory("t")
    first = next(iter(thread.store.iter_turns("t")))
    assert first.content.startswith("Here are the photos of the shed.\n[image 1: 300x300 image/png")
    (page_id,) = [p.page_id for p in thread.context().memory if first.id in p.turn_ids]
    assert "[image 1: 300x300 image/png" in thread.recall(page_id)
    (image,) = thread.page_images(page_id)
    assert (image.width, image.height) == (300, 300) and image.data is not None
    assert Image.open(io.BytesIO(image.data)).size == (300, 300)
    # The recall tool gives the picture back with the page's text.
    result = recall_memory_tool(thread).invoke({"page": page_id})
    assert [block["type"] for block in result] == ["text", "image"]
    assert base64.b64decode(result[1]["base64"]) == image.data


def test_an_image_url_is_kept_as_its_url_and_never_fetched() -> None:
    memory = OpticalMemory(None)
    url = "http://127.0.0.1:9/never-fetched.png"  # the discard port: a fetch would fail
    memory.add_messages([HumanMessage(content_blocks=[{"type": "image", "url": url}])])
    (turn,) = memory.store.iter_turns("default")
    assert turn.content == f"[image 1: {url}]"
    (image,) = memory.turn_images(turn.id or 0)
    assert image.url == url and image.data is None


# --- models without tools ----------------------------------------------------------------------


def test_a_model_that_cannot_call_tools_runs_without_the_recall_tool(
    caplog: pytest.LogCaptureFixture,
) -> None:
    memory = OpticalMemory(None)
    middleware = OpticalMemoryMiddleware(memory)
    model = GenericFakeChatModel(messages=iter(["first", "second"]))
    agent = create_agent(model, [], middleware=[middleware], checkpointer=InMemorySaver())
    with caplog.at_level(logging.WARNING, logger="optical_memory"):
        for question in ("Hello?", "Still there?"):
            state = agent.invoke({"messages": [HumanMessage(question)]}, CONFIG)
    assert [m.text for m in state["messages"] if isinstance(m, AIMessage)] == ["first", "second"]
    told = [r for r in caplog.records if "cannot call tools" in r.getMessage()]
    assert len(told) == 1
    assert middleware.memory("t").stats().turns == 4


def test_register_recall_tool_false_offers_no_tool() -> None:
    middleware = OpticalMemoryMiddleware(OpticalMemory(None), MemoryOptions(keep_recent_turns=3))
    assert [t.name for t in middleware.tools] == ["recall_memory"]
    assert OpticalMemoryMiddleware(OpticalMemory(None), register_recall_tool=False).tools == []
    with pytest.raises(TypeError, match="unknown option"):
        OpticalMemoryMiddleware(OpticalMemory(None), keep_recent=3)


# --- streaming, threads -------------------------------------------------------------------------


def test_wrap_streams_chunks_as_they_come_and_stores_the_whole_answer() -> None:
    memory = OpticalMemory(None)
    chat = wrap(memory, GenericFakeChatModel(messages=iter(["the tide turns at noon today"])))
    chunks = list(chat.stream([HumanMessage("When is the tide?")], CONFIG))
    assert len(chunks) > 3
    stored = [t.content for t in chat.memory("t").store.iter_turns("t")]
    assert stored == ["When is the tide?", "the tide turns at noon today"]


def test_wrap_streams_asynchronously_too() -> None:
    memory = OpticalMemory(None)
    chat = wrap(memory, GenericFakeChatModel(messages=iter(["boats leave at six"])))

    async def run() -> list[Any]:
        return [c async for c in chat.astream([HumanMessage("Boats?")], CONFIG)]

    assert len(asyncio.run(run())) > 2
    assert [t.content for t in memory.store.iter_turns("t")][-1] == "boats leave at six"


def test_a_run_without_thread_id_warns_once() -> None:
    chat = wrap(OpticalMemory(None), RecordingChatModel(messages=iter(["a", "b"])))
    with pytest.warns(UserWarning, match="no thread_id"):
        chat.invoke("first")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chat.invoke("second")


def test_a_memory_opened_with_its_own_thread_id_runs_without_a_warning() -> None:
    memory = OpticalMemory(None, thread_id="alice")
    chat = wrap(memory, RecordingChatModel(messages=iter(["a"])))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chat.invoke("first")
    assert [t.content for t in memory.store.iter_turns("alice")] == ["first", "a"]


def test_middleware_memory_shows_what_an_agent_run_stored() -> None:
    middleware = OpticalMemoryMiddleware(OpticalMemory(None))
    model = RecordingChatModel(messages=iter(["ok"] * 30))
    agent = create_agent(model, [], middleware=[middleware], checkpointer=InMemorySaver())
    for n in range(20):
        agent.invoke({"messages": [HumanMessage(_chatter(n))]}, CONFIG)
    stats = middleware.memory("t").stats()
    assert stats.turns == 40 and stats.pages > 0 and stats.tokens_saved != 0


# --- a paste larger than the budget ---------------------------------------------------------------


def test_a_paste_larger_than_the_budget_is_stored_whole_and_its_tail_sent() -> None:
    paste = "".join(f"line {n}: error in module {n % 17}\n" for n in range(4000))  # ~110k chars
    model = RecordingChatModel(messages=iter(["I see the errors."]))
    memory = OpticalMemory(None)
    chat = wrap(memory, model, budget_tokens=4000)
    chat.invoke([HumanMessage(paste)], CONFIG)
    usage = chat.last_usage
    assert usage is not None and usage.total_tokens <= 4000 and usage.truncated_chars > 0
    note, tail = model.requests[-1]
    assert "too long for this request's budget" in note.text
    assert paste.endswith(tail.text) and len(tail.text) == len(paste) - usage.truncated_chars
    assert count_text_tokens(note.text) + count_text_tokens(tail.text) == usage.total_tokens
    assert next(iter(memory.store.iter_turns("t"))).content == paste


# --- request limits -------------------------------------------------------------------------------


def test_pages_beyond_a_targets_image_limit_become_mosaics_then_are_forgotten() -> None:
    schedule = DecaySchedule(tiers=[(Mode.TINY, 1)])
    memory = OpticalMemory(None, schedule=schedule, keep_recent_turns=2)
    for n in range(200):
        memory.add("user", _chatter(n))
    pages = memory.context().pages
    assert len(pages) >= 10 and all(p.mode is Mode.TINY for p in pages)

    def cost(width: int, height: int, mode: Mode) -> int:
        return vision_tokens(width, height, "deepseek-ocr", mode)

    bounded = bound_pages(pages, RequestLimits(max_images=6, max_bytes=10**9), cost, memory.store)
    assert len(bounded.images) <= 6 and not bounded.forgotten
    mosaics = [i for i in bounded.images if isinstance(i, Mosaic)]
    assert mosaics and mosaics[0].page_ids == [p.page_id for p in pages[:4]]
    mosaic = mosaics[0]
    assert Image.open(io.BytesIO(mosaic.png())).size == (1024, 1024)
    assert (mosaic.mode, mosaic.vision_tokens) == (Mode.BASE, 273)  # not 4 x 73
    shown = [pid for item in bounded.images for pid in getattr(item, "page_ids", [])]
    shown += [item.page_id for item in bounded.images if not isinstance(item, Mosaic)]
    assert sorted(shown) == [p.page_id for p in pages]  # every page still shown, once
    # A byte limit cannot be met by tiling: the oldest images are forgotten.
    small = sum(len(p.png()) for p in pages[-3:])
    bytes_bound = bound_pages(pages, RequestLimits(100, small), cost, memory.store)
    assert [p.page_id for p in bytes_bound.images] == [p.page_id for p in pages[-3:]]  # type: ignore[union-attr]
    assert len(bytes_bound.forgotten) == len(pages) - 3


def test_a_wrapped_model_never_gets_more_images_than_the_server_takes() -> None:
    schedule = DecaySchedule(tiers=[(Mode.TINY, 1)])
    memory = OpticalMemory(None, schedule=schedule, keep_recent_turns=2, thread_id="t")
    for n in range(200):
        memory.add("user", _chatter(n))
    assert len(memory.context().pages) > 8
    model = RecordingChatModel(messages=iter(["ok"]))
    # A vLLM server started with --limit-mm-per-prompt '{"image": 8}'.
    limits = RequestLimits(max_images=8, max_bytes=64 * 2**20)
    chat = wrap(memory, model, target="deepseek-ocr-vllm", request_limits=limits)
    chat.invoke([HumanMessage("What was logged first?")], CONFIG)
    usage = chat.last_usage
    assert usage is not None and usage.images <= 8 and usage.mosaics > 0
    memory_message = model.requests[-1][0]
    images = [b for b in memory_message.content_blocks if b["type"] == "image"]
    assert len(images) == usage.images


def test_a_tool_result_whose_call_is_on_a_page_is_sent_after_the_call_alone() -> None:
    memory = OpticalMemory(None)
    model = RecordingChatModel(messages=iter(["done"]))
    chat = wrap(memory, model, keep_recent_turns=1)
    call = AIMessage("", tool_calls=[{"name": "log", "args": {"n": 1}, "id": "c1"}])
    history: list[BaseMessage] = [HumanMessage(_chatter(n)) for n in range(40)]
    history += [call, ToolMessage("x" * 6000, tool_call_id="c1")]
    chat.invoke(history, CONFIG)
    request = model.requests[-1]
    envelope, result = request[-2], request[-1]
    assert isinstance(result, ToolMessage) and isinstance(envelope, AIMessage)
    assert envelope.tool_calls[0]["id"] == "c1" and envelope.text == ""
