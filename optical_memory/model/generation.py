"""Decoding for DeepSeek-OCR: settings, results, the n-gram guard and streaming text.

DeepSeek-OCR decodes greedily and, like its official vLLM pipeline, forbids a token that would
repeat an n-gram seen in the last few generated tokens (n = 30 within the last 90 by default),
which stops the model from looping over a table row or a line of a page
(:class:`NoRepeatNGramLogitsProcessor`). :class:`GenerationSettings` holds these choices,
:class:`Generation` is what ``DeepSeekOCR.generate`` returns, and :class:`TextStream` turns
token ids into text as they come.

Between calls the model keeps the KV cache of its last prompt (:class:`KeptPrefix`): a prompt
that starts like the previous one (the same pages in the same modes, the same leading text) is
prefilled from where the two part, not from the start.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import torch
from transformers import LogitsProcessor
from transformers.cache_utils import DynamicCache

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

    from optical_memory.model.prompt import PreparedPrompt

#: The official pipeline's settings (DeepSeek-OCR's vLLM ``run_dpsk_ocr_*`` scripts).
DEFAULT_NGRAM_SIZE = 30
DEFAULT_NGRAM_WINDOW = 90


class NoRepeatNGramLogitsProcessor(LogitsProcessor):
    """Bans every token that would complete an n-gram already present in a recent window.

    ``input_ids [batch, length]`` is the history to guard (``DeepSeekOCR.generate`` passes the
    generated tokens only, so the hundreds of identical ``<image>`` ids of the prompt never
    count). Only n-grams that start within the last ``window_size`` tokens are looked at.
    Tokens in ``whitelist_token_ids`` (the official scripts whitelist ``<td>`` and ``</td>``)
    may always repeat.
    """

    def __init__(
        self,
        ngram_size: int = DEFAULT_NGRAM_SIZE,
        window_size: int = DEFAULT_NGRAM_WINDOW,
        whitelist_token_ids: Iterable[int] = (),
    ) -> None:
        if ngram_size < 1:
            raise ValueError(f"ngram_size must be a positive integer, got {ngram_size}")
        if window_size < ngram_size:
            raise ValueError(
                f"window_size ({window_size}) must be at least ngram_size ({ngram_size}): "
                "a smaller window never holds a whole n-gram"
            )
        self.ngram_size = ngram_size
        self.window_size = window_size
        self.whitelist_token_ids = frozenset(int(t) for t in whitelist_token_ids)

    def banned_tokens(self, history: list[int]) -> set[int]:
        """Tokens that would repeat an n-gram of ``history``'s last ``window_size`` tokens."""
        n = self.ngram_size
        if len(history) < n:
            return set()
        prefix = tuple(history[len(history) - n + 1 :])
        start = max(0, len(history) - self.window_size)
        banned = {
            history[i + n - 1]
            for i in range(start, len(history) - n + 1)
            if tuple(history[i : i + n - 1]) == prefix
        }
        return banned - self.whitelist_token_ids

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.FloatTensor:
        """``scores [batch, vocab]`` with the banned tokens of each row set to ``-inf``."""
        guarded = scores.clone()
        for row, history in enumerate(input_ids.tolist()):
            banned = self.banned_tokens(history)
            if banned:
                guarded[row, sorted(banned)] = -float("inf")
        return guarded  # type: ignore[return-value]


@dataclass(frozen=True)
class GenerationSettings:
    """Decoding settings; the defaults follow the official pipeline (greedy, n-gram guard)."""

    max_new_tokens: int = 512
    temperature: float = 0.0  # 0: greedy
    ngram_size: int | None = DEFAULT_NGRAM_SIZE  # None: no guard
    ngram_window: int = DEFAULT_NGRAM_WINDOW
    #: Tokens that may always repeat; ``None``: ``<td>`` and ``</td>``, as the official scripts.
    ngram_whitelist: tuple[int, ...] | None = None
    seed: int | None = None  # for temperature > 0


@dataclass
class Generation:
    """What ``DeepSeekOCR.generate`` returns."""

    text: str
    token_ids: list[int]
    finish_reason: Literal["stop", "length"]
    prompt_text_tokens: int
    prompt_vision_tokens: int
    #: Prompt positions whose KV cache came from the previous call instead of being computed.
    prompt_cached_tokens: int = 0

    @property
    def prompt_tokens(self) -> int:
        return self.prompt_text_tokens + self.prompt_vision_tokens


class Prefill(NamedTuple):
    """A prompt run through the decoder: what generation starts from.

    ``logits [1, vocab]`` of the prompt's last position; ``cache`` holds every prompt position;
    ``reused_tokens`` of them came from the kept prefix of an earlier call.
    """

    logits: torch.Tensor
    cache: DynamicCache
    reused_tokens: int


@dataclass
class KeptPrefix:
    """The KV cache of an earlier prompt, kept to start the next one from.

    ``token_ids``: the ids of every position ``cache`` holds (the prompt's, then the generated
    tokens fed back); ``prompt_embeds [L, H]``: the prompt's input embeddings (pages' visual
    tokens included); ``weights``: the decoder's parameters when it was computed (versions,
    addresses, dtypes, devices: weights changed since make it useless).
    """

    token_ids: list[int]
    prompt_embeds: torch.Tensor
    cache: DynamicCache
    weights: tuple[Any, ...]

    def shared_length(self, prompt: PreparedPrompt, image_token_id: int | None) -> int:
        """How many leading positions ``prompt`` shares with this one: equal ids, and at the
        kept prompt's positions equal embeddings bit for bit (so a page's visual tokens must be
        the same); a generated position never matches an ``<image>`` of the new prompt."""
        ids = prompt.input_ids[0].tolist()
        n = min(len(self.token_ids), len(ids))
        unequal = (torch.tensor(self.token_ids[:n]) != torch.tensor(ids[:n])).nonzero()
        n = int(unequal[0]) if len(unequal) else n
        embedded = min(n, self.prompt_embeds.shape[0])
        new_embeds = prompt.inputs_embeds[0, :embedded].to(self.prompt_embeds)
        differ = (new_embeds != self.prompt_embeds[:embedded]).any(dim=-1).nonzero()
        if len(differ):
            return int(differ[0])
        generated_images = [i for i in range(embedded, n) if ids[i] == image_token_id]
        return generated_images[0] if generated_images else n


class TextStream:
    """Incremental detokenization: :meth:`push` a token id, get the text it adds.

    Byte-level BPE may split one character over several tokens; until it is whole the token
    adds nothing (``""``) and the next one brings it.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerFast) -> None:
        self.tokenizer = tokenizer
        self.token_ids: list[int] = []
        self.text = ""

    def push(self, token_id: int) -> str:
        self.token_ids.append(token_id)
        text = str(self.tokenizer.decode(self.token_ids, skip_special_tokens=True))
        if text.endswith("\ufffd") or len(text) <= len(self.text):
            return ""
        piece, self.text = text[len(self.text) :], text
        return piece
