"""``CallUsage``: the accounting of one model request."""

from __future__ import annotations

from dataclasses import dataclass, field

from optical_memory.agents.calibration import SentImage

#: ``usage`` lists of the middleware and ``wrap`` keep this many latest calls.
MAX_USAGE = 1000


@dataclass(frozen=True)
class CallUsage:
    """Token accounting of one outgoing model request, for the target model."""

    thread_id: str
    text_tokens: int
    """Text the model is sent: system prompt, tool schemas, captions, text pages, turns."""
    vision_tokens: int
    """Tokens of every image: pages, mosaics and the images in the caller's messages."""
    replaced_text_tokens: int
    """Text tokens of what the page images print: what they stand in for."""
    pages: int
    """Pages sent as images (each page of a mosaic counts)."""
    text_pages: int
    """Pages sent as their text, because their image would have cost more (the gate)."""
    messages: int
    """The caller's messages sent verbatim (the recent window and turns not yet on a page)."""
    budget_tokens: int | None = None
    target: str = "deepseek-ocr"
    model: str = ""
    images: int = 0
    """Images in the request: pages, mosaics and the caller's own."""
    image_bytes: int = 0
    """Bytes of those images (before base64)."""
    mosaics: int = 0
    forgotten_for_limits: int = 0
    """Pages left out because the target's per-request image or byte limit was reached."""
    truncated_chars: int = 0
    """Characters of the newest message left out because it alone exceeds the budget."""
    billed_input_tokens: int | None = None
    """What the model reported (``usage_metadata["input_tokens"]``), once it answered."""
    sent_images: tuple[SentImage, ...] = field(default=(), repr=False, compare=False)
    text_chars: int = field(default=0, repr=False, compare=False)
    """Characters of the text counted in ``text_tokens`` (for calibration)."""

    @property
    def total_tokens(self) -> int:
        """What the request was counted to cost (text + images)."""
        return self.text_tokens + self.vision_tokens

    @property
    def saved_tokens(self) -> int:
        """What the images saved: the text they replaced minus what they cost."""
        return self.replaced_text_tokens - self.vision_tokens
