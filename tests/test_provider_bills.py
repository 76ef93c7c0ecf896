"""Accounting follows the model and its bill: real LangChain clients against local API stubs.

``ChatOpenAI``, ``ChatAnthropic`` and ``ChatGoogleGenerativeAI`` talk to stubs on 127.0.0.1
(:mod:`provider_stubs`) that bill text and images by rules of their own. The middleware takes
the target from the model, counts the request, reads the bill back, and learns the provider's
prices from the bills (:mod:`optical_memory.agents.calibration`).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("langchain_openai")
pytest.importorskip("langchain_anthropic")
pytest.importorskip("langchain_google_genai")

from langchain.agents import create_agent
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import HumanMessage
from langchain_google_genai import ChatGoogleGenerativeAI
from langchain_openai import ChatOpenAI
from PIL import Image
from provider_stubs import IMAGE_TOKENS, provider_stubs
from pydantic import SecretStr

from optical_memory import OpticalMemory
from optical_memory.agents import OpticalMemoryMiddleware, wrap


@pytest.fixture(scope="module")
def stub() -> Iterator[Any]:
    with provider_stubs() as server:
        yield server


def _url(stub: Any) -> str:
    host, port = stub.server_address[:2]
    return f"http://{host}:{port}"


MODELS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "openai": (
        "openai",
        lambda url: ChatOpenAI(
            model="gpt-4o", base_url=f"{url}/v1", api_key=SecretStr("stub"), max_retries=0
        ),
    ),
    "anthropic": (
        "anthropic",
        lambda url: ChatAnthropic(  # type: ignore[call-arg]
            model="claude-stub-vision", base_url=url, api_key=SecretStr("stub"), max_retries=0
        ),
    ),
    "gemini": (
        "gemini",
        lambda url: ChatGoogleGenerativeAI(
            model="gemini-2.5-flash", base_url=url, api_key=SecretStr("stub"), max_retries=0
        ),
    ),
}


def _memory_with_pages(thread: str, notes: int = 60) -> OpticalMemory:
    memory = OpticalMemory(None, thread_id=thread)
    _add_notes(memory, notes)
    return memory


def _add_notes(memory: OpticalMemory, notes: int) -> None:
    for n in range(notes):
        memory.add(
            "user", f"Note {n}: the harbour ledger lists crate {n * 7} for pier {n % 5}. " * 4
        )


def _threads_of_many_lengths(memory: OpticalMemory, count: int) -> list[str]:
    """Threads of 30 to 570 notes in ``memory``'s store: their pages are shown at different
    sizes, in different numbers."""
    names = []
    for k in range(count):
        name = f"t{k}"
        _add_notes(OpticalMemory(memory.store, thread_id=name), 30 + (k * 5 % count) * 90)
        names.append(name)
    return names


def _question(n: int) -> HumanMessage:
    """A question, every other one with a photo of 1024 or 1280 pixels."""
    text = f"What did crate {n * 7} hold? " * (1 + n % 4)
    if n % 2:
        return HumanMessage(text)
    side = (1024, 1280)[n // 2 % 2]
    buffer = io.BytesIO()
    Image.new("RGB", (side, side * 3 // 4), (n * 30 % 256, 120, 90)).save(buffer, format="PNG")
    photo = base64.b64encode(buffer.getvalue()).decode()
    blocks = [
        {"type": "text", "text": text},
        {"type": "image", "base64": photo, "mime_type": "image/png"},
    ]
    return HumanMessage(content_blocks=blocks)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", list(MODELS))
def test_the_target_comes_from_the_model_and_bills_teach_the_providers_prices(
    stub: Any, name: str
) -> None:
    target, make = MODELS[name]
    memory = OpticalMemory(None)
    threads = _threads_of_many_lengths(memory, 7)
    model = make(_url(stub))
    chat = wrap(memory, model)
    assert chat.target == target
    table = chat.builder.cost_table(target, model)
    first_bill = len(stub.bills)
    for n in range(24):
        config: Any = {"configurable": {"thread_id": threads[n % len(threads)]}}
        chat.invoke([_question(n)], config)
        usage = chat.usage[-1]
        assert usage.billed_input_tokens == stub.bills[-1].tokens
        if n == 0:  # the formula was only the prior: the stub bills otherwise
            assert abs(usage.total_tokens - stub.bills[-1].tokens) > 0.03 * stub.bills[-1].tokens
    sizes = {size for bill in stub.bills[first_bill:] for size in bill.sizes}
    assert len(sizes) >= 3, "the requests mix page sizes"
    learnt = {(max(map(int, k.split("/")[0].split("x"))), c) for k, c in table.fit.costs.items()}
    assert {side for side, _ in learnt} >= {max(size) for size in sizes}
    for side, cost in learnt:
        assert cost == pytest.approx(IMAGE_TOKENS[side], rel=0.03), side
    # The next request is predicted as the stub bills it.
    config = {"configurable": {"thread_id": threads[3]}}
    chat.invoke([HumanMessage("And crate 21?")], config)
    usage = chat.usage[-1]
    predicted = table.predict(
        usage.sent_images, text=usage.text_tokens, chars=usage.text_chars, messages=usage.messages
    )
    assert predicted == pytest.approx(stub.bills[-1].tokens, rel=0.03)


def test_an_agent_on_openai_learns_what_the_api_bills_and_keeps_it(stub: Any) -> None:
    memory = OpticalMemory(None)
    threads = _threads_of_many_lengths(memory, 6)
    middleware = OpticalMemoryMiddleware(memory)
    model = MODELS["openai"][1](_url(stub))
    agent = create_agent(model, [], middleware=[middleware])
    for n in range(20):
        config: Any = {"configurable": {"thread_id": threads[n % len(threads)]}}
        agent.invoke({"messages": [HumanMessage(f"Where is pier {n % 5}?")]}, config)
    usage = middleware.last_usage
    assert usage is not None and usage.target == "openai" and usage.model == "gpt-4o"
    assert usage.images > 0 and usage.billed_input_tokens == stub.bills[-1].tokens
    learnt = middleware.builder.cost_table("openai", model).fit.costs
    assert learnt
    # The learnt costs are kept in the store: a new middleware starts from them.
    again = OpticalMemoryMiddleware(memory)
    assert again.builder.cost_table("openai", model).fit.costs == learnt
    assert again.reset_calibration() == 1
    assert again.builder.cost_table("openai", model).fit.costs == {}


def test_an_unknown_chat_model_family_is_an_error_listing_the_targets(stub: Any) -> None:
    model = ChatOpenAI(model="my-own-vlm", base_url=f"{_url(stub)}/v1", api_key=SecretStr("stub"))
    with pytest.raises(ValueError, match="pass target= one of deepseek-ocr, deepseek-ocr-vllm"):
        wrap(OpticalMemory(None), model)
    assert wrap(OpticalMemory(None), model, target="qwen3-vl").target == "qwen3-vl"
