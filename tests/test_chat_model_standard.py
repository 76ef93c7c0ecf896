"""LangChain's own conformance suites (``langchain-tests``) against ``ChatDeepSeekOCR``.

The model is a tiny random DeepSeek-OCR (DeepEncoder and decoder with test sizes, a tokenizer
trained here): its answers are noise, but every path the suites check (invoke, stream, batch,
their async forms, events, usage metadata, stop sequences, conversations, named messages) runs
through the real code. Tool calling, structured output and serialization are not offered, so
the suites skip their tests, each saying why.
"""

from __future__ import annotations

import functools
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from langchain_core.language_models import BaseChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests
from tiny_deepseek import write_tokenizer

from optical_memory.agents.chat_model import ChatDeepSeekOCR
from optical_memory.model.config import DecoderConfig, DeepEncoderConfig
from optical_memory.model.decoder import DeepSeekOCR
from optical_memory.model.deepencoder import DeepEncoder
from optical_memory.model.tokenizer import load_tokenizer

torch.set_num_threads(2)


@functools.cache
def tiny_model() -> DeepSeekOCR:
    """One tiny random model for the whole module (the suites build a chat model per test)."""
    with tempfile.TemporaryDirectory() as directory:
        write_tokenizer(Path(directory))
        tokenizer = load_tokenizer(directory)
    torch.manual_seed(0)
    config = replace(DecoderConfig.tiny(), vocab_size=len(tokenizer))
    encoder = DeepEncoder(DeepEncoderConfig.tiny())
    return DeepSeekOCR(config, encoder=encoder, tokenizer=tokenizer).eval()


class _Settings:
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ChatDeepSeekOCR

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": tiny_model(), "max_new_tokens": 12}

    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def returns_usage_metadata(self) -> bool:
        return True


# The suites' async tests carry no asyncio mark: they are written for pytest-asyncio's auto mode.
# The mark goes on these two classes only, so the rest of the tests keep the strict default; the
# suites' sync tests then inherit it, which pytest-asyncio warns about and which changes nothing.
_SYNC_TESTS_MARKED = pytest.mark.filterwarnings("ignore:.*is marked with '@pytest.mark.asyncio'")


@pytest.mark.asyncio
@_SYNC_TESTS_MARKED
class TestChatDeepSeekOCRUnit(_Settings, ChatModelUnitTests):
    pass


@pytest.mark.asyncio
@_SYNC_TESTS_MARKED
class TestChatDeepSeekOCRIntegration(_Settings, ChatModelIntegrationTests):
    @pytest.mark.xfail(
        reason="downloads its image from GitHub and nothing here reaches the network; both of "
        "its base64 formats are tested in test_chat_model.py",
        run=False,
    )
    def test_image_inputs(self, model: BaseChatModel) -> None:
        super().test_image_inputs(model)
