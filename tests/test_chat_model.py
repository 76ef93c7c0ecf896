"""ChatDeepSeekOCR: LangChain messages with text and images in, the local model's answer out."""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest
import torch
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage
from PIL import Image, ImageDraw
from tiny_deepseek import tiny_model

from optical_memory.agents.chat_model import ChatDeepSeekOCR, ImageBlockError, mode_for_image
from optical_memory.model.decoder import DeepSeekOCR
from optical_memory.modes import Mode

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> DeepSeekOCR:
    model: DeepSeekOCR = tiny_model(tmp_path_factory.mktemp("tokenizer"))
    return model


def _png(size: tuple[int, int]) -> str:
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).text((20, 20), "booking 4417", fill="black")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _page_message(size: tuple[int, int] = (512, 512), **block: Any) -> HumanMessage:
    image = {"type": "image", "base64": _png(size), "mime_type": "image/png", **block}
    return HumanMessage(content=[image, {"type": "text", "text": "\nFree OCR."}])


def test_invoke_answers_and_reports_text_and_vision_tokens(model: DeepSeekOCR) -> None:
    chat = ChatDeepSeekOCR(model=model, max_new_tokens=6)
    answer = chat.invoke([_page_message()])
    assert isinstance(answer, AIMessage)
    usage = answer.usage_metadata
    assert usage is not None
    details = usage.get("input_token_details") or {}
    assert details.get("vision") == 73  # a 512-px image is a TINY page
    text_tokens = 1 + len(model.tokenizer.encode("\nFree OCR.", add_special_tokens=False))  # type: ignore[union-attr]
    assert details.get("text") == text_tokens
    assert usage["input_tokens"] == 73 + text_tokens
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert answer.response_metadata["input_vision_tokens"] == 73
    # The same answer as the model gives for the same prompt.
    parts = chat.prompt_parts([_page_message()])
    direct = model.generate(parts, max_new_tokens=6)
    assert answer.content == direct.text
    assert usage["output_tokens"] == len(direct.token_ids)
    assert answer.response_metadata["finish_reason"] == direct.finish_reason


def test_an_image_blocks_mode_comes_from_extras_then_default_then_size(model: DeepSeekOCR) -> None:
    chat = ChatDeepSeekOCR(model=model)
    named = chat.prompt_parts([_page_message(extras={"mode": "small"})])
    assert [p.mode for p in named if not isinstance(p, str)] == [Mode.SMALL]
    fixed = ChatDeepSeekOCR(model=model, default_mode=Mode.BASE)
    assert [p.mode for p in fixed.prompt_parts([_page_message()]) if not isinstance(p, str)] == [
        Mode.BASE
    ]
    assert mode_for_image(512, 300) is Mode.TINY
    assert mode_for_image(640, 640) is Mode.SMALL
    assert mode_for_image(800, 1024) is Mode.BASE
    assert mode_for_image(1280, 900) is Mode.LARGE
    assert mode_for_image(1654, 2339) is Mode.GUNDAM


def test_messages_become_one_prompt_in_order_without_role_tags(model: DeepSeekOCR) -> None:
    chat = ChatDeepSeekOCR(model=model)
    openai_style = {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64," + _png((640, 640))},
    }
    messages = [
        SystemMessage(content="You read memory pages."),
        HumanMessage(content=[openai_style, {"type": "text", "text": "Which booking?"}]),
    ]
    parts = chat.prompt_parts(messages)
    assert parts[0] == "You read memory pages." and parts[1] == "\n"
    assert not isinstance(parts[2], str) and parts[2].mode is Mode.SMALL
    assert parts[3] == "Which booking?"
    assert len(parts) == 4


def test_a_remote_image_url_is_refused_with_what_to_do(model: DeepSeekOCR) -> None:
    chat = ChatDeepSeekOCR(model=model)
    remote = {"type": "image_url", "image_url": {"url": "https://example.com/page.png"}}
    with pytest.raises(ImageBlockError, match="never fetches"):
        chat.prompt_parts([HumanMessage(content=[remote])])


def test_stream_yields_tokens_that_add_up_to_the_invoked_answer(model: DeepSeekOCR) -> None:
    chat = ChatDeepSeekOCR(model=model, max_new_tokens=6)
    chunks = list(chat.stream([_page_message()]))
    assert len(chunks) >= 2 and all(isinstance(c, AIMessageChunk) for c in chunks)
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    invoked = chat.invoke([_page_message()])
    assert total.content == invoked.content
    assert total.usage_metadata == invoked.usage_metadata
    assert sum(c.usage_metadata is not None for c in chunks) == 1  # usage once, at the end


def test_a_stop_sequence_cuts_the_answer_even_when_it_spans_tokens(model: DeepSeekOCR) -> None:
    chat = ChatDeepSeekOCR(model=model, max_new_tokens=8)
    full = str(chat.invoke([_page_message()]).content)
    if len(full) < 4:
        pytest.skip("the random model answered with fewer than four characters")
    stop = full[1:4]
    cut = chat.invoke([_page_message()], stop=[stop])
    assert cut.content == full[: full.find(stop)]
    assert cut.response_metadata["finish_reason"] == "stop"
    streamed = "".join(str(c.content) for c in chat.stream([_page_message()], stop=[stop]))
    assert streamed == cut.content


def test_a_follow_up_over_the_same_image_reads_its_prefix_from_the_cache(
    model: DeepSeekOCR,
) -> None:
    chat = ChatDeepSeekOCR(model=model, max_new_tokens=4)
    page = _page_message()
    first = chat.invoke([page])
    follow_up = [page, first, HumanMessage(content="Which booking number?")]
    model.forget_prefix()
    fresh = chat.invoke(follow_up)
    chat.invoke([page])
    reused = chat.invoke(follow_up)
    assert reused.content == fresh.content
    assert fresh.usage_metadata is not None and reused.usage_metadata is not None
    fresh_details = fresh.usage_metadata.get("input_token_details") or {}
    assert fresh_details.get("cache_read") == 0
    cache_read = (reused.usage_metadata.get("input_token_details") or {}).get("cache_read", 0)
    # At least BOS, the image and the text after it were not prefilled again.
    assert 1 + 73 + 1 <= cache_read < reused.usage_metadata["input_tokens"]


def test_in_an_agent_with_optical_memory_it_runs_without_the_recall_tool(
    model: DeepSeekOCR,
) -> None:
    from langchain.agents import create_agent

    from optical_memory import DecaySchedule, OpticalMemory
    from optical_memory.agents import OpticalMemoryMiddleware

    memory = OpticalMemory(None, schedule=DecaySchedule(tiers=[(Mode.TINY, 1)]), thread_id="t")
    for n in range(40):
        memory.add("user", f"Note {n}: the ferry timetable changed on day {n}. " * 3)
    middleware = OpticalMemoryMiddleware(memory)
    agent = create_agent(
        ChatDeepSeekOCR(model=model, max_new_tokens=2), [], middleware=[middleware]
    )
    state = agent.invoke(
        {"messages": [HumanMessage("When did it change?")]}, {"configurable": {"thread_id": "t"}}
    )
    assert isinstance(state["messages"][-1], AIMessage)
    usage = middleware.last_usage
    assert usage is not None and usage.target == "deepseek-ocr" and usage.pages > 0
    assert usage.billed_input_tokens is not None  # the local model reports its prompt
