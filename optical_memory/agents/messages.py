"""A caller's LangChain message as a provider accepts it: malformed images as placeholders.

What a message is stored as (its turn, its images) is read in :mod:`optical_memory.messages`,
as plain data; this module makes the copies a request sends.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from optical_memory.messages import IMAGE_BLOCK_TYPES, ImageRef, image_ref

__all__ = ["sendable"]


def sendable(message: Any, images: Sequence[ImageRef]) -> Any:
    """``message`` (whose images are ``images``) as a provider accepts it: a copy whose
    malformed image blocks and non-base64 ``data:`` URLs are replaced by their placeholder
    text; else ``message`` itself."""
    content = getattr(message, "content", None)
    if not isinstance(content, list):
        return message
    text_urls = any(isinstance(b, dict) and _is_text_data_url(b) for b in content)
    if not text_urls and not any(image.unreadable for image in images):
        return message
    blocks: list[Any] = []
    changed = False
    for block in content:
        if isinstance(block, dict) and block.get("type") in IMAGE_BLOCK_TYPES:
            image = image_ref(block)
            if image.unreadable or _is_text_data_url(block):
                blocks.append({"type": "text", "text": image.placeholder(1).replace("1: ", "", 1)})
                changed = True
                continue
        blocks.append(block)
    return message.model_copy(update={"content": blocks}) if changed else message


def _is_text_data_url(block: dict[str, Any]) -> bool:
    if block.get("type") not in IMAGE_BLOCK_TYPES:
        return False
    inner = block.get("image_url") if block.get("type") == "image_url" else block
    url = inner.get("url") if isinstance(inner, dict) else inner
    if not isinstance(url, str) or not url.startswith("data:"):
        return False
    return not url[5:].partition(",")[0].endswith(";base64")
