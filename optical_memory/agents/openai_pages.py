"""Memory pages as OpenAI chat-completions content parts, for a served VLM.

Any OpenAI-compatible server (vLLM serving DeepSeek-OCR, see ``docs/serving.md``; a hosted VLM)
takes images as ``image_url`` parts holding ``data:`` URLs. Each page is sent at its mode's size,
prepared the way DeepSeek-OCR prepares it, so the server never sees more detail than the mode
keeps: TINY and SMALL squashed to 512² / 640², BASE and LARGE fitted and padded with grey
(127, 127, 127) to 1024² / 1280², GUNDAM as rendered (the server cuts its tiles itself).

    from langchain_openai import ChatOpenAI
    from langchain_core.messages import HumanMessage

    context = memory.context(budget_tokens=4000)
    llm = ChatOpenAI(base_url="http://gpu-box:8000/v1", model="deepseek-ai/DeepSeek-OCR",
                     api_key="EMPTY", temperature=0)
    llm.invoke([HumanMessage(content=pages_to_openai_content(context.pages, "Who booked?"))])
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

from PIL import Image

from optical_memory.modes import Mode
from optical_memory.views import PageImage, square_view


def page_image_for_mode(image: Image.Image, mode: Mode | str) -> Image.Image:
    """``image`` at the size and geometry the mode feeds DeepSeek-OCR's encoder (RGB)."""
    mode = Mode.parse(mode)
    if mode is Mode.GUNDAM:
        return image.convert("RGB")  # served whole: the server cuts its own tiles
    return square_view(image, mode)


def png_data_url(image: Image.Image) -> str:
    """``data:image/png;base64,...`` for ``image``."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def pages_to_openai_content(
    pages: Sequence[PageImage], text: str | None = None, *, detail: str | None = None
) -> list[dict[str, Any]]:
    """OpenAI content parts: one ``image_url`` part per page (oldest first, each at its mode's
    size), then ``text`` as a ``text`` part when given.

    ``detail`` (``"low"``, ``"high"``, ``"auto"``) is passed on for servers that read it.
    The list goes straight into ``HumanMessage(content=...)`` for ``ChatOpenAI`` or into a raw
    chat-completions request.
    """
    parts: list[dict[str, Any]] = []
    for page in pages:
        image_url: dict[str, Any] = {
            "url": png_data_url(page_image_for_mode(page.image, page.mode))
        }
        if detail is not None:
            image_url["detail"] = detail
        parts.append({"type": "image_url", "image_url": image_url})
    if text is not None:
        parts.append({"type": "text", "text": text})
    return parts
