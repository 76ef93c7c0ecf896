"""Readers: whatever reads a page image back as text, behind one small interface.

A :class:`Reader` takes a page image (and the mode it is sent at) and returns the text it
reads. Three kinds:

- :class:`TesseractReader`: the pixel probe's engine. By default it enlarges small pages as the
  probe does (:func:`~optical_memory.experiments.probe.enlarge_for_probe`); with
  ``enlarge=False`` it reads the page at its own pixels, as a cloud model receives it.
- :class:`ChatModelReader`: any LangChain chat model, sent the page as an image block with a
  transcription prompt; it adds up the tokens the model reports, so a calibration run can say
  what it cost.
- :func:`deepseek_reader`: the local DeepSeek-OCR (``ChatDeepSeekOCR``) with its own
  transcription prompt, each page encoded at the mode it is sent at.

The OCR engine, LangChain and torch are imported only when a reader of that kind is made.
"""

from __future__ import annotations

import base64
import io
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from optical_memory.modes import Mode

if TYPE_CHECKING:
    from PIL import Image

#: What a chat model is asked when it reads a page.
TRANSCRIBE_PROMPT = (
    "Transcribe all the text in this image exactly, character for character, line by line. "
    "Reply with the text only."
)
#: DeepSeek-OCR's own prompt for plain transcription (its model card's "Free OCR").
DEEPSEEK_PROMPT = "Free OCR."


@runtime_checkable
class Reader(Protocol):
    """Reads a page image back as text; ``name`` identifies it in tables and caches."""

    @property
    def name(self) -> str: ...

    def read(self, image: Image.Image, mode: Mode | None = None) -> str:
        """The text read from ``image`` (sent at ``mode``, when the reader cares)."""
        ...


@dataclass(frozen=True)
class TesseractReader:
    """Tesseract (or ``engine="rapidocr"``): enlarged as the probe enlarges, or at the page's
    own pixels with ``enlarge=False``."""

    engine: str = "tesseract"
    enlarge: bool = True

    @property
    def name(self) -> str:
        return self.engine if self.enlarge else f"{self.engine}-own-pixels"

    def read(self, image: Image.Image, mode: Mode | None = None) -> str:
        from optical_memory.experiments.ocr import read_text
        from optical_memory.experiments.probe import enlarge_for_probe

        # Tesseract's OpenMP threads fight over a small machine's cores (see the probe).
        os.environ.setdefault("OMP_THREAD_LIMIT", "1")
        return read_text(enlarge_for_probe(image) if self.enlarge else image, self.engine)


class ChatModelReader:
    """A LangChain chat model asked to transcribe each page (``prompt``), the page sent as a
    PNG image block naming its mode. ``input_tokens``/``output_tokens`` add up the usage the
    model reported over every read."""

    def __init__(self, model: Any, prompt: str = TRANSCRIBE_PROMPT, name: str | None = None):
        self.model = model
        self.prompt = prompt
        self._name = name or _model_name(model)
        self.input_tokens = 0
        self.output_tokens = 0
        self.calls = 0

    @property
    def name(self) -> str:
        return self._name

    def read(self, image: Image.Image, mode: Mode | None = None) -> str:
        from langchain_core.messages import HumanMessage

        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        block: dict[str, Any] = {
            "type": "image",
            "base64": base64.b64encode(buffer.getvalue()).decode("ascii"),
            "mime_type": "image/png",
        }
        if mode is not None:
            block["extras"] = {"mode": Mode.parse(mode).value}
        # The page first, then the request: DeepSeek-OCR's own prompt form ("<image>\nFree OCR.").
        text = {"type": "text", "text": f"\n{self.prompt}"}
        message = HumanMessage(content_blocks=[block, text])  # type: ignore[list-item]
        response = self.model.invoke([message])
        self.calls += 1
        usage = getattr(response, "usage_metadata", None) or {}
        self.input_tokens += int(usage.get("input_tokens", 0) or 0)
        self.output_tokens += int(usage.get("output_tokens", 0) or 0)
        return str(response.text).strip()


def deepseek_reader(checkpoint: str, **fields: Any) -> ChatModelReader:
    """The local DeepSeek-OCR at ``checkpoint`` (a folder of the official weights; nothing is
    downloaded) as a reader, with :data:`DEEPSEEK_PROMPT`; ``fields`` go to
    ``ChatDeepSeekOCR`` (e.g. ``max_new_tokens``)."""
    from optical_memory.agents.chat_model import ChatDeepSeekOCR

    model = ChatDeepSeekOCR.from_checkpoint(checkpoint, **fields)
    return ChatModelReader(model, DEEPSEEK_PROMPT, name="deepseek-ocr")


def _model_name(model: Any) -> str:
    for attribute in ("model_name", "model", "model_id"):
        value = getattr(model, attribute, None)
        if isinstance(value, str) and value:
            return value
    return type(model).__name__
