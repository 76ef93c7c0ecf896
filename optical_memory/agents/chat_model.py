"""``ChatDeepSeekOCR``: the local DeepSeek-OCR model as a LangChain chat model.

Messages may hold text and images (LangChain v1 image blocks with base64 data, the older
``source_type="base64"`` blocks, or OpenAI ``image_url`` parts with a ``data:`` URL). The
released model has no chat template, so the prompt is the messages' contents in order, each
message on its own line, images becoming pages in place (BOS, then text and ``<image>`` runs, no
role tags; see :mod:`optical_memory.model.prompt`). An image's mode comes from the block's
``extras={"mode": ...}``, else from ``default_mode``, else from its size (the smallest mode whose
input side holds it).

Usage metadata splits the prompt into text and vision tokens under
``usage_metadata["input_token_details"]`` (``"text"``, ``"vision"``) and the same numbers in
``response_metadata`` (``input_text_tokens``, ``input_vision_tokens``). The model keeps the KV
cache of the last prompt: a call whose messages start like the previous call's (the same images
in the same modes, the same leading text) prefills only the rest, and ``"cache_read"`` counts
the prompt tokens it did not compute again.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from optical_memory.extras import import_extra
from optical_memory.modes import Mode

import_extra("langchain_core", "langchain")
from langchain_core.callbacks import CallbackManagerForLLMRun  # noqa: E402
from langchain_core.language_models import BaseChatModel  # noqa: E402
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage  # noqa: E402
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult  # noqa: E402
from pydantic import ConfigDict, Field  # noqa: E402

#: Modes by input side, for images that do not say theirs.
_MODES_BY_SIDE = (Mode.TINY, Mode.SMALL, Mode.BASE, Mode.LARGE)


class ImageBlockError(ValueError):
    """An image block the local model cannot read (a remote URL, an unknown encoding)."""


@dataclass(frozen=True)
class ImagePage:
    """An image from a message, with the mode it is encoded at."""

    image: Image.Image
    mode: Mode


def mode_for_image(width: int, height: int) -> Mode:
    """The smallest mode whose input side holds the image; GUNDAM beyond LARGE's 1280 px."""
    side = max(width, height)
    for mode in _MODES_BY_SIDE:
        if side <= mode.size:
            return mode
    return Mode.GUNDAM


def _image_bytes(block: dict[str, Any]) -> bytes:
    kind = block.get("type")
    data: str | None = None
    if kind == "image":
        data = block.get("base64") or (
            block.get("data") if block.get("source_type") == "base64" else None
        )
        url = block.get("url")
        if data is None and isinstance(url, str):
            data = _data_url_payload(url)
    elif kind == "image_url":
        image_url = block.get("image_url")
        url = image_url.get("url") if isinstance(image_url, dict) else image_url
        data = _data_url_payload(str(url))
    if data is None:
        raise ImageBlockError(
            f"cannot read an image from block {sorted(block)}: give base64 data "
            '({"type": "image", "base64": ..., "mime_type": "image/png"}) — the local model '
            "never fetches URLs"
        )
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ImageBlockError(f"image block holds invalid base64: {error}") from error


def _data_url_payload(url: str) -> str:
    if not url.startswith("data:") or ";base64," not in url:
        raise ImageBlockError(
            f"image URL {url[:40]!r}... is not a base64 data URL: the local model never fetches "
            "URLs; send the image's bytes instead"
        )
    return url.split(";base64,", 1)[1]


class ChatDeepSeekOCR(BaseChatModel):
    """A LangChain chat model over a local :class:`~optical_memory.model.DeepSeekOCR`.

    ``ChatDeepSeekOCR.from_checkpoint("/models/DeepSeek-OCR")`` loads the official checkpoint
    (nothing is downloaded); ``ChatDeepSeekOCR(model=DeepSeekOCR(...))`` wraps a built one.
    Decoding is greedy with the windowed no-repeat-n-gram guard unless told otherwise.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: Any = Field(exclude=True)
    """The :class:`~optical_memory.model.DeepSeekOCR` that answers."""
    max_new_tokens: int = 512
    temperature: float = 0.0
    ngram_size: int | None = 30
    ngram_window: int = 90
    default_mode: Mode | None = None
    """Mode for images whose block does not name one; ``None`` picks by image size."""
    model_name: str = "deepseek-ai/DeepSeek-OCR"

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, *, dtype: Any = None, device: str = "cpu", **fields: Any
    ) -> ChatDeepSeekOCR:
        """Load the official checkpoint from ``path`` (bfloat16 unless ``dtype`` says)."""
        torch = import_extra("torch", "model")
        from optical_memory.model.decoder import DeepSeekOCR

        model = DeepSeekOCR.from_checkpoint(path, dtype=dtype or torch.bfloat16, device=device)
        return cls(model=model, **fields)

    @property
    def _llm_type(self) -> str:
        return "deepseek-ocr-local"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "ngram_size": self.ngram_size,
            "ngram_window": self.ngram_window,
        }

    # -- prompt --------------------------------------------------------------------------

    def prompt_parts(self, messages: Sequence[BaseMessage]) -> list[str | ImagePage]:
        """The model prompt for ``messages``: text and pages in order, one line per message."""
        parts: list[str | ImagePage] = []
        for index, message in enumerate(messages):
            if index:
                parts.append("\n")
            content = message.content
            blocks: list[Any] = [content] if isinstance(content, str) else list(content)
            for block in blocks:
                if isinstance(block, str):
                    parts.append(block)
                elif isinstance(block, dict) and block.get("type") == "text":
                    parts.append(str(block.get("text", "")))
                elif isinstance(block, dict) and block.get("type") in ("image", "image_url"):
                    parts.append(self._image_page(block))
        return [p for p in parts if not (isinstance(p, str) and p == "")]

    def _image_page(self, block: dict[str, Any]) -> ImagePage:
        image = Image.open(io.BytesIO(_image_bytes(block)))
        image.load()
        extras = block.get("extras") or block.get("metadata") or {}
        named = extras.get("mode") if isinstance(extras, dict) else None
        if named is not None:
            mode = Mode.parse(named)
        elif self.default_mode is not None:
            mode = Mode.parse(self.default_mode)
        else:
            mode = mode_for_image(*image.size)
        return ImagePage(image=image.convert("RGB"), mode=mode)

    # -- generation ----------------------------------------------------------------------

    def _settings(self) -> dict[str, Any]:
        return {
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "ngram_size": self.ngram_size,
            "ngram_window": self.ngram_window,
        }

    def _pieces(
        self, messages: list[BaseMessage], stop: list[str] | None
    ) -> Iterator[tuple[str, dict[str, Any] | None]]:
        """``(text piece, None)`` while decoding, then ``("", usage)`` once at the end."""
        from optical_memory.model.generation import GenerationSettings, TextStream

        model = self.model
        prompt = model.prepare(self.prompt_parts(messages))
        start = model.prefill(prompt)
        text = TextStream(model.tokenizer)
        # A stop sequence may begin in text not yet complete: hold back its length minus one.
        hold = max((len(s) for s in stop or () if s), default=1) - 1
        generated, sent, end = 0, 0, None
        finish = "length"
        settings = GenerationSettings(**self._settings())
        # Closed as soon as it stops, so the model keeps this prompt's cache for the next call.
        with closing(model.generate_ids(prompt, settings, prefilled=start)) as new_ids:
            for next_id in new_ids:
                generated += 1
                if next_id == model.config.eos_token_id:
                    finish = "stop"
                    break
                text.push(next_id)
                end = _first_stop(text.text, stop)
                if end is not None:
                    finish = "stop"
                    break
                if len(text.text) - hold > sent:
                    yield text.text[sent : len(text.text) - hold], None
                    sent = len(text.text) - hold
        end = len(text.text) if end is None else end
        if end > sent:
            yield text.text[sent:end], None
        usage = {
            "input_tokens": prompt.text_tokens + prompt.vision_tokens,
            "output_tokens": generated,
            "total_tokens": prompt.text_tokens + prompt.vision_tokens + generated,
            "input_token_details": {
                "text": prompt.text_tokens,
                "vision": prompt.vision_tokens,
                "cache_read": start.reused_tokens,
            },
        }
        metadata = {
            "finish_reason": finish,
            "model_name": self.model_name,
            "input_text_tokens": prompt.text_tokens,
            "input_vision_tokens": prompt.vision_tokens,
        }
        yield "", {"usage": usage, "metadata": metadata}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        text: list[str] = []
        final: dict[str, Any] = {}
        for piece, end in self._pieces(messages, stop):
            text.append(piece)
            if end is not None:
                final = end
        message = AIMessage(
            content="".join(text),
            usage_metadata=final["usage"],
            response_metadata=final["metadata"],
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for piece, end in self._pieces(messages, stop):
            if end is None:
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
                if run_manager is not None:
                    run_manager.on_llm_new_token(piece, chunk=chunk)
            else:
                chunk = ChatGenerationChunk(
                    message=AIMessageChunk(
                        content="",
                        usage_metadata=end["usage"],
                        response_metadata=end["metadata"],
                        chunk_position="last",
                    )
                )
            yield chunk


def _first_stop(text: str, stop: list[str] | None) -> int | None:
    found = [text.find(s) for s in stop or () if s and s in text]
    return min(found) if found else None
