"""Prompt assembly for DeepSeek-OCR: text and pages → ``input_ids`` and ``inputs_embeds``.

A prompt is a sequence of parts, text and pages, each page at its own mode. It becomes
``input_ids`` with BOS first and exactly ``Mode.sequence_tokens`` ``<image>`` ids per page; the
token embeddings at those positions are then replaced by the page's visual tokens (masked
scatter), so that every page stands in the context where its text would have stood:

    parts      ["Memory:", page₁ (TINY), page₂ (BASE), "\\nWhat was the hotel's name?"]
    input_ids  [BOS, t t, <image>×73, <image>×273, t t t t t t]
    embeds     [e   e e, page₁ [73, H],  page₂ [273, H],  e e e e e e]

The released model has no chat template: the official pipeline encodes each text split between
``<image>`` tags on its own, without special tokens, and so does :func:`assemble_input_ids`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch

from optical_memory.modes import Mode
from optical_memory.views import PageImage

if TYPE_CHECKING:
    from PIL import Image
    from transformers import PreTrainedTokenizerFast

#: Prompt endings of the released model (its README): plain OCR and OCR to markdown.
FREE_OCR = "\nFree OCR."
TO_MARKDOWN = "\n<|grounding|>Convert the document to markdown."

#: A prompt part: text, a page to encode, or a page's visual tokens ``[n, hidden]`` already made.
PromptPart = str | PageImage | torch.Tensor

#: Visual tokens ``[n, hidden]`` for each page (e.g. a ``VisualTokenCache``); typed loosely so
#: that callables over a narrower page type (memory pages) fit.
PageEncoder = Callable[[Sequence[Any]], list[Any]]


def ocr_prompt(page: PageImage | torch.Tensor, task: Literal["free", "markdown"] = "free") -> list:
    """The released model's OCR prompt: the page, then ``"\\nFree OCR."`` or the markdown one."""
    return [page, FREE_OCR if task == "free" else TO_MARKDOWN]


def question_prompt(pages: Sequence[PageImage | torch.Tensor], question: str) -> list:
    """Pages oldest first, each followed by a newline, then the question."""
    parts: list[PromptPart] = []
    for page in pages:
        parts += [page, "\n"]
    parts.append(question)
    return parts


def encode_by_mode(
    encode: Callable[[list[Image.Image], Mode], list[torch.Tensor]], pages: Sequence[PageImage]
) -> list[torch.Tensor]:
    """``encode(images, mode)`` (``DeepEncoder.encode``) once per mode, results in page order."""
    result: dict[int, torch.Tensor] = {}
    by_mode: dict[Mode, list[int]] = {}
    for index, page in enumerate(pages):
        by_mode.setdefault(Mode.parse(page.mode), []).append(index)
    for mode, indices in by_mode.items():
        tokens = encode([pages[i].image for i in indices], mode)
        result.update(zip(indices, tokens, strict=True))
    return [result[i] for i in range(len(pages))]


def sequence_tokens(page: PageImage) -> int:
    """How many visual tokens ``page`` takes at its mode (``Mode.sequence_tokens``)."""
    width, height = page.image.size
    return Mode.parse(page.mode).sequence_tokens(width, height)


@dataclass
class PreparedPrompt:
    """A prompt ready for the decoder.

    ``input_ids [1, L]``; ``inputs_embeds [1, L, H]``; ``image_spans``: ``(start, end)`` of each
    page's ``<image>`` run in prompt order (``end`` exclusive).
    """

    input_ids: torch.Tensor
    inputs_embeds: torch.Tensor
    image_spans: list[tuple[int, int]] = field(default_factory=list)

    @property
    def vision_tokens(self) -> int:
        return sum(end - start for start, end in self.image_spans)

    @property
    def text_tokens(self) -> int:
        """Every other position, BOS included."""
        return int(self.input_ids.shape[1]) - self.vision_tokens


def assemble_input_ids(
    pieces: Sequence[str | int],
    tokenizer: PreTrainedTokenizerFast,
    *,
    bos_token_id: int,
    image_token_id: int,
) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids for ``pieces`` (text, or a page's number of visual tokens) and the spans.

    BOS first; a page of ``n`` tokens becomes ``n`` ``<image>`` ids; the text between two pages
    (consecutive text pieces joined) is encoded as one string without special tokens, as the
    official pipeline encodes each text split between ``<image>`` tags.
    """
    ids = [bos_token_id]
    spans: list[tuple[int, int]] = []
    text: list[str] = []
    for piece in [*pieces, 0]:  # a final empty page flushes the trailing text
        if isinstance(piece, str):
            text.append(piece)
            continue
        if text:
            ids += tokenizer.encode("".join(text), add_special_tokens=False)
            text = []
        if piece:
            spans.append((len(ids), len(ids) + piece))
            ids += [image_token_id] * piece
    return ids, spans


def scatter_visual_tokens(
    input_ids: torch.Tensor,
    text_embeds: torch.Tensor,
    visual_tokens: Sequence[torch.Tensor],
    image_token_id: int,
) -> torch.Tensor:
    """``text_embeds [B, L, H]`` with the ``<image>`` positions replaced, in order, by the rows
    of ``visual_tokens`` (each ``[n, H]``). The counts must agree exactly."""
    mask = input_ids == image_token_id
    rows = (
        torch.cat(list(visual_tokens)).to(text_embeds)
        if visual_tokens
        else text_embeds.new_zeros((0, text_embeds.shape[-1]))
    )
    if int(mask.sum()) != rows.shape[0]:
        raise ValueError(
            f"{int(mask.sum())} <image> positions but {rows.shape[0]} visual tokens: a page's "
            "tokens must come from Mode.sequence_tokens for its mode and size"
        )
    if rows.shape[-1] != text_embeds.shape[-1]:
        raise ValueError(
            f"visual tokens have width {rows.shape[-1]}, the decoder {text_embeds.shape[-1]}"
        )
    return text_embeds.masked_scatter(mask.unsqueeze(-1), rows)
