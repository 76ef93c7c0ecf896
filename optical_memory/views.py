"""A page image at a mode (:class:`PageImage`), and what DeepSeek-OCR's encoder sees of it: its
square view (Pillow only).

TINY and SMALL squash the page to the square; BASE, LARGE and GUNDAM's global view keep its
aspect ratio and pad with the mean grey, as the official preprocessing does. Both the local
encoder's preprocessing (``model.preprocess``, which needs torch) and the pages sent to a served
model (``agents.openai_pages``) use this one function.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from PIL import Image, ImageOps

from optical_memory.modes import Mode

#: The padding grey: the mean in 8 bits, ``int(0.5 * 255)``, as the official preprocessing.
PAD_COLOR = (127, 127, 127)
#: Resampling for every resize (PIL's default for ``Image.resize`` and ``ImageOps.pad``).
RESAMPLE = Image.Resampling.BICUBIC


@runtime_checkable
class PageImage(Protocol):
    """A page as a model is shown it: its image and the mode it is read at.

    Memory pages (``MemoryContext.pages`` items), rendered pages and images taken from chat
    messages all offer these two attributes; the local model's prompts and the OpenAI-style
    content parts accept anything that does.
    """

    @property
    def image(self) -> Image.Image: ...

    @property
    def mode(self) -> Mode: ...


def square_view(image: Image.Image, mode: Mode | str) -> Image.Image:
    """``image`` (RGB) as the ``mode.size`` square the encoder reads (GUNDAM: its global view)."""
    mode = Mode.parse(mode)
    page = image.convert("RGB")
    side = mode.size
    if mode.resizes_plainly:
        return page.resize((side, side), RESAMPLE)
    return ImageOps.pad(page, (side, side), method=RESAMPLE, color=PAD_COLOR)
