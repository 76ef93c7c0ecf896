"""A LangChain chat model's target family, read from the real client classes and model names."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("langchain_openai")
pytest.importorskip("langchain_anthropic")

from langchain_anthropic import ChatAnthropic
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from optical_memory.agents.model_family import target_for_model


@tool
def lookup(order: str) -> str:
    """Look an order up."""
    return order


def _openai(name: str) -> ChatOpenAI:
    return ChatOpenAI(model=name, api_key="unused")  # type: ignore[arg-type]


# Each model's family, as OpenAI's vision guide prices it: tiles for GPT-4o, 4.1 and 5,
# patches for the -mini and -nano models, GPT-4o-mini's own tile price.
@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("gpt-4o", "openai"),
        ("gpt-4o-2024-08-06", "openai"),
        ("gpt-4.1", "openai"),
        ("gpt-4o-mini", "openai-gpt-4o-mini"),
        ("gpt-4.1-mini", "openai-patches-mini"),
        ("gpt-4.1-nano", "openai-patches-nano"),
        ("gpt-5", "openai-gpt-5"),
        ("gpt-5-mini", "openai-patches-mini"),
        ("o3", "openai-o-series"),
        ("o4-mini", "openai-o4-mini"),
        ("deepseek-ai/DeepSeek-OCR", "deepseek-ocr-vllm"),
        ("Qwen/Qwen3-VL-8B-Instruct", "qwen3-vl"),
    ],
)
def test_openai_compatible_models_by_name(name: str, family: str) -> None:
    assert target_for_model(_openai(name)) == family


def test_anthropic_models_are_one_family_whatever_the_name() -> None:
    model = ChatAnthropic(model="claude-sonnet-4-6", api_key="unused")  # type: ignore[call-arg,arg-type]
    assert target_for_model(model) == "anthropic"


def test_a_model_with_tools_bound_is_read_through_the_binding() -> None:
    assert target_for_model(_openai("gpt-4.1-mini").bind_tools([lookup])) == "openai-patches-mini"


def test_langchains_fake_models_and_plain_runnables_have_no_family() -> None:
    fake = GenericFakeChatModel(messages=iter(["ok"]))
    assert target_for_model(fake) is None
    assert target_for_model(RunnableLambda(lambda messages: messages)) is None


def test_an_unknown_chat_model_names_itself_and_the_targets() -> None:
    model: Any = _openai("llama-3-70b")
    with pytest.raises(ValueError, match=r"ChatOpenAI\(model='llama-3-70b'\).*anthropic"):
        target_for_model(model)
