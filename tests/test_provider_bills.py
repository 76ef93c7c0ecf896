"""Accounting follows the model and its bill: real LangChain clients against local API stubs.

``ChatOpenAI``, ``ChatAnthropic`` and ``ChatGoogleGenerativeAI`` talk to stubs on 127.0.0.1
(:mod:`provider_stubs`) that bill images by a rule no target uses. The middleware takes the
target from the model, counts the request, reads the bill back, and from then on prices images
as billed.
"""

from __future__ import annotations

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
from provider_stubs import provider_stubs
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


def _memory_with_pages(thread: str) -> OpticalMemory:
    memory = OpticalMemory(None, thread_id=thread)
    for n in range(60):
        memory.add(
            "user", f"Note {n}: the harbour ledger lists crate {n * 7} for pier {n % 5}. " * 4
        )
    return memory


@pytest.mark.parametrize("name", list(MODELS))
def test_the_target_comes_from_the_model_and_the_bill_calibrates_the_count(
    stub: Any, name: str
) -> None:
    target, make = MODELS[name]
    memory = _memory_with_pages("t")
    chat = wrap(memory, make(_url(stub)))
    assert chat.target == target
    config: Any = {"configurable": {"thread_id": "t"}}
    chat.invoke([HumanMessage("What did crate 14 hold?")], config)
    first = chat.usage[-1]
    assert first.target == target and first.images > 0
    assert first.billed_input_tokens is not None
    assert first.billed_input_tokens == stub.bills[-1].tokens
    # The formula was only the prior: the stub bills images differently.
    assert abs(first.total_tokens - first.billed_input_tokens) > 0.01 * first.billed_input_tokens
    chat.invoke([HumanMessage("And crate 21?")], config)
    second = chat.usage[-1]
    assert second.billed_input_tokens is not None
    assert second.billed_input_tokens == stub.bills[-1].tokens
    assert (
        abs(second.total_tokens - second.billed_input_tokens) <= 0.01 * second.billed_input_tokens
    )


def test_an_agent_on_openai_counts_what_the_api_bills(stub: Any) -> None:
    memory = _memory_with_pages("a")
    middleware = OpticalMemoryMiddleware(memory)
    model = MODELS["openai"][1](_url(stub))
    agent = create_agent(model, [], middleware=[middleware])
    config: Any = {"configurable": {"thread_id": "a"}}
    for question in ("Where is pier 3?", "Which crate came last?", "Thanks."):
        agent.invoke({"messages": [HumanMessage(question)]}, config)
    usage = middleware.last_usage
    assert usage is not None and usage.target == "openai" and usage.model == "gpt-4o"
    assert usage.images > 0
    assert usage.billed_input_tokens is not None
    assert abs(usage.total_tokens - usage.billed_input_tokens) <= 0.01 * usage.billed_input_tokens
    # The learnt costs are kept in the store: a new middleware starts from them.
    again = OpticalMemoryMiddleware(memory)
    agent = create_agent(model, [], middleware=[again])
    agent.invoke({"messages": [HumanMessage("Pier 4?")]}, config)
    fresh = again.last_usage
    assert fresh is not None and fresh.billed_input_tokens is not None
    assert abs(fresh.total_tokens - fresh.billed_input_tokens) <= 0.01 * fresh.billed_input_tokens


def test_an_unknown_chat_model_family_is_an_error_listing_the_targets(stub: Any) -> None:
    model = ChatOpenAI(model="my-own-vlm", base_url=f"{_url(stub)}/v1", api_key=SecretStr("stub"))
    with pytest.raises(ValueError, match="pass target= one of deepseek-ocr, deepseek-ocr-vllm"):
        wrap(OpticalMemory(None), model)
    assert wrap(OpticalMemory(None), model, target="qwen3-vl").target == "qwen3-vl"
