"""DeepSeek-OCR: DeepEncoder's visual tokens in the DeepSeek-3B-MoE decoder's context.

:class:`DeepSeekOCR` is the ``nn.Module``: an optional DeepEncoder, transformers'
``DeepseekOcr2TextModel`` (the same MoE text model as DeepSeek-OCR's: multi-head attention,
layer 0 dense, then routed experts with softmax scores, greedy top-k, no renormalization, plus
shared experts) and an untied ``lm_head``. Its sizes are a
:class:`~optical_memory.model.config.DecoderConfig`; the official checkpoint's names enter
through :mod:`optical_memory.model.checkpoint`; prompts of text and pages are assembled as
:mod:`optical_memory.model.prompt` describes; decoding settings and results live in
:mod:`optical_memory.model.generation`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import nn

# The package's __init__ has already checked the ``model`` extra (torch, transformers).
from transformers.cache_utils import DynamicCache
from transformers.models.deepseek_ocr2.modeling_deepseek_ocr2 import (
    DeepseekOcr2TextModel,
    DeepseekOcr2TextRotaryEmbedding,
)

from optical_memory.model.config import DecoderConfig
from optical_memory.model.generation import (
    Generation,
    GenerationSettings,
    KeptPrefix,
    NoRepeatNGramLogitsProcessor,
    Prefill,
    TextStream,
)
from optical_memory.model.prompt import (
    PageEncoder,
    PreparedPrompt,
    PromptPart,
    assemble_input_ids,
    encode_by_mode,
    scatter_visual_tokens,
    sequence_tokens,
)
from optical_memory.model.tokenizer import IMAGE_TOKEN, load_tokenizer, token_id
from optical_memory.views import PageImage

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

#: Guards the hand-over of a model's kept KV cache between threads (held only for the swap).
_KEPT_LOCK = threading.Lock()


class DecoderOutput(NamedTuple):
    logits: torch.Tensor  # [B, L, vocab] (or [B, 1, vocab] when only the last is kept)
    cache: Any


class DeepSeekOCR(nn.Module):
    """DeepEncoder + the DeepSeek-3B-MoE decoder with an untied ``lm_head``.

    ``encoder`` may be a ``DeepEncoder`` or ``None`` (then pages must come as visual-token
    tensors, or through :attr:`page_encoder`). ``tokenizer`` turns text into ids.

    The KV cache of the last prompt is kept between calls (:meth:`prefill`): its memory is the
    prompt's length × layers × 2 × hidden size in the model's dtype (about 60 KB per token for
    the released decoder in bfloat16); ``reuse_prefix = False`` turns it off and
    :meth:`forget_prefix` frees it.
    """

    def __init__(
        self,
        config: DecoderConfig,
        *,
        encoder: nn.Module | None = None,
        tokenizer: PreTrainedTokenizerFast | None = None,
        image_token_id: int | None = None,
    ) -> None:
        super().__init__()
        width = getattr(getattr(encoder, "config", None), "output_width", config.hidden_size)
        if width != config.hidden_size:
            raise ValueError(
                f"the encoder makes visual tokens of width {width} but the decoder is "
                f"{config.hidden_size} wide: pair DeepEncoderConfig and DecoderConfig of one size"
            )
        self.config = config
        self.text_config = config.text_config()
        self.encoder = encoder
        self.language_model = DeepseekOcr2TextModel(self.text_config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.tokenizer = tokenizer
        if image_token_id is None and tokenizer is not None:
            image_token_id = token_id(tokenizer, IMAGE_TOKEN)
        self.image_token_id = image_token_id
        #: Overrides how pages become visual tokens (a cache); defaults to ``encoder.encode``.
        self.page_encoder: PageEncoder | None = None
        #: Start each prompt from the longest prefix it shares with the previous one.
        self.reuse_prefix = True
        self._kept: KeptPrefix | None = None

    # -- loading -------------------------------------------------------------------------

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        *,
        dtype: torch.dtype = torch.bfloat16,
        device: str | torch.device = "cpu",
        encoder_config: Any = None,
    ) -> DeepSeekOCR:
        """Load the official checkpoint from a local directory; nothing is downloaded.

        The decoder's sizes come from ``config.json``'s ``language_config``, the tokenizer from
        ``tokenizer.json`` beside it; ``encoder_config`` (a ``DeepEncoderConfig``) defaults to
        the released encoder. Every tensor must be present, known and of the right shape, or a
        :class:`~optical_memory.model.checkpoint.CheckpointError` names it.
        """
        from optical_memory.model import checkpoint
        from optical_memory.model.config import DeepEncoderConfig
        from optical_memory.model.deepencoder import DeepEncoder

        directory = Path(path)
        checkpoint.find_weight_files(directory)  # cheap checks first, the 6.7 GB read last
        config = DecoderConfig.from_language_config(checkpoint.read_language_config(directory))
        tokenizer = load_tokenizer(directory)
        tensors = checkpoint.load_official_state_dict(directory)
        with torch.device("meta"):
            encoder = DeepEncoder(encoder_config or DeepEncoderConfig())
            model = cls(config, encoder=encoder, tokenizer=tokenizer)
        state = checkpoint.map_official_state_dict(tensors)
        del tensors
        checkpoint.load_state_strict(model, state, directory, checkpoint.official_name)
        # RoPE frequencies are computed, not stored: rebuild them off the meta device.
        model.language_model.rotary_emb = DeepseekOcr2TextRotaryEmbedding(model.text_config)
        return model.to(device=device, dtype=dtype).eval()

    # -- forward -------------------------------------------------------------------------

    def _apply(self, fn: Callable[..., Any], recurse: bool = True) -> DeepSeekOCR:
        super()._apply(fn, recurse)
        # RoPE frequencies stay float32 whatever dtype the weights take, as transformers keeps
        # them: in bfloat16 they would shift every position's rotation.
        rotary = self.language_model.rotary_emb
        if rotary.inv_freq.device.type != "meta":
            inv_freq, _ = rotary.compute_default_rope_parameters(self.text_config)
            device = rotary.inv_freq.device
            rotary.register_buffer("inv_freq", inv_freq.to(device), persistent=False)
            rotary.register_buffer("original_inv_freq", inv_freq.to(device), persistent=False)
        return self

    @property
    def device(self) -> torch.device:
        return self.language_model.embed_tokens.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.language_model.embed_tokens.weight.dtype

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        cache: Any = None,
        use_cache: bool = False,
        last_only: bool = False,
    ) -> DecoderOutput:
        """Logits for ``input_ids [B, L]`` or ``inputs_embeds [B, L, H]`` (positions 0..L-1
        after whatever ``cache`` holds)."""
        out = self.language_model(
            input_ids=input_ids, inputs_embeds=inputs_embeds, cache=cache, use_cache=use_cache
        )
        hidden = out.last_hidden_state[:, -1:] if last_only else out.last_hidden_state
        return DecoderOutput(self.lm_head(hidden), out.cache)

    # -- prompts -------------------------------------------------------------------------

    def encode_pages(self, pages: Sequence[PageImage]) -> list[torch.Tensor]:
        """Visual tokens ``[n, hidden]`` for each page: through :attr:`page_encoder` when set
        (``model.page_encoder = VisualTokenCache(memory.store, model.encoder)`` encodes each
        memory page once per mode and keeps it in the store), else ``encoder.encode`` in one
        batch per mode."""
        if not pages:
            return []
        if self.page_encoder is not None:
            return self.page_encoder(pages)
        if self.encoder is None:
            raise ValueError(
                "this DeepSeekOCR has no encoder: pass visual tokens as tensors, or build it "
                "with encoder=DeepEncoder(...)"
            )
        return encode_by_mode(self.encoder.encode, pages)  # type: ignore[arg-type]

    def prepare(self, parts: Sequence[PromptPart]) -> PreparedPrompt:
        """``input_ids`` and ``inputs_embeds`` for a prompt of text and pages (see module doc)."""
        tokenizer = self._require_tokenizer()
        assert self.image_token_id is not None
        pages = [p for p in parts if not isinstance(p, str | torch.Tensor)]
        encoded = iter(self.encode_pages(pages))
        visual: list[torch.Tensor] = []
        pieces: list[str | int] = []
        for part in parts:
            if isinstance(part, str):
                pieces.append(part)
                continue
            if isinstance(part, torch.Tensor):
                tokens = part
            else:
                tokens = next(encoded)
                expected = sequence_tokens(part)
                if tokens.shape[0] != expected:
                    raise ValueError(
                        f"the encoder gave {tokens.shape[0]} tokens for a {part.mode} page, "
                        f"Mode.sequence_tokens says {expected}"
                    )
            if tokens.dim() != 2:
                raise ValueError(f"visual tokens must be [n, hidden], got {tuple(tokens.shape)}")
            visual.append(tokens)
            pieces.append(int(tokens.shape[0]))
        ids, spans = assemble_input_ids(
            pieces,
            tokenizer,
            bos_token_id=self.config.bos_token_id,
            image_token_id=self.image_token_id,
        )
        input_ids = torch.tensor([ids], device=self.device)
        embeds = self.language_model.embed_tokens(input_ids)
        embeds = scatter_visual_tokens(input_ids, embeds, visual, self.image_token_id)
        return PreparedPrompt(input_ids, embeds, spans)

    def table_token_ids(self) -> tuple[int, ...]:
        """The ids of ``<td>`` and ``</td>`` in the tokenizer (128821, 128822 in the release)."""
        if self.tokenizer is None:
            return ()
        found = (token_id(self.tokenizer, tag) for tag in ("<td>", "</td>"))
        return tuple(i for i in found if i is not None)

    def _require_tokenizer(self) -> PreTrainedTokenizerFast:
        if self.tokenizer is None:
            raise ValueError(
                "this DeepSeekOCR has no tokenizer: load it with DeepSeekOCR.from_checkpoint(DIR) "
                "or pass tokenizer=load_tokenizer(DIR)"
            )
        if self.image_token_id is None:
            raise ValueError("the tokenizer has no <image> token: is it DeepSeek-OCR's?")
        return self.tokenizer

    # -- generation ----------------------------------------------------------------------

    @torch.inference_mode()
    def prefill(self, prompt: PreparedPrompt) -> Prefill:
        """Run ``prompt`` through the decoder: its last position's logits and its KV cache.

        With :attr:`reuse_prefix`, the cache kept from the previous call is cut back to the
        longest prefix this prompt shares with it (the same ids, the same visual tokens bit for
        bit: the same pages in the same modes and the same text before them) and only the rest
        is computed, at least the last position. ``reused_tokens`` says how many were not.
        """
        length = int(prompt.input_ids.shape[1])
        kept = self._take_kept()
        cache, reused = None, 0
        if kept is not None and self.reuse_prefix and kept.weights == self._weights_state():
            reused = min(kept.shared_length(prompt, self.image_token_id), length - 1)
            if reused > 0:
                cache = kept.cache
                cache.crop(reused - cache.get_seq_length())
        if cache is None:
            cache, reused = DynamicCache(config=self.text_config), 0
        embeds = prompt.inputs_embeds[:, reused:]
        out = self(inputs_embeds=embeds, cache=cache, use_cache=True, last_only=True)
        return Prefill(out.logits[:, -1], cache, reused)

    def forget_prefix(self) -> None:
        """Drop the KV cache kept from the last call (the next prompt is prefilled whole)."""
        self._take_kept()

    def _take_kept(self) -> KeptPrefix | None:
        with _KEPT_LOCK:  # taken, not shared: two calls at once never write one cache
            kept, self._kept = self._kept, None
        return kept

    def _weights_state(self) -> tuple[Any, ...]:
        return tuple(
            (p._version, p.data_ptr(), p.dtype, p.device) for p in self.language_model.parameters()
        )

    @torch.inference_mode()
    def generate_ids(
        self,
        prompt: PreparedPrompt,
        settings: GenerationSettings | None = None,
        *,
        prefilled: Prefill | None = None,
    ) -> Generator[int, None, None]:
        """New token ids one at a time (the EOS that stops it included), with a KV cache.

        Starts from ``prefilled`` when given (``prefill(prompt)``'s result), else prefills.
        When it ends (or is closed), the cache is kept for the next call's :meth:`prefill`.
        """
        settings = settings or GenerationSettings()
        guard = None
        if settings.ngram_size:
            whitelist = settings.ngram_whitelist
            guard = NoRepeatNGramLogitsProcessor(
                settings.ngram_size,
                settings.ngram_window,
                self.table_token_ids() if whitelist is None else whitelist,
            )
        generator = None
        if settings.temperature > 0:
            generator = torch.Generator(device=self.device)
            if settings.seed is not None:
                generator.manual_seed(settings.seed)
        start = prefilled if prefilled is not None else self.prefill(prompt)
        cache, logits = start.cache, start.logits
        generated: list[int] = []  # every id fed back into the cache
        consistent = True  # False while a step may have updated only some layers
        try:
            for _ in range(settings.max_new_tokens):
                scores = logits.float()
                if guard is not None:
                    history = torch.tensor([generated], dtype=torch.long)
                    scores = guard(history, scores)
                if generator is None:
                    next_id = int(scores.argmax(dim=-1))
                else:
                    probs = torch.softmax(scores / settings.temperature, dim=-1)
                    next_id = int(torch.multinomial(probs, 1, generator=generator))
                yield next_id
                if next_id == self.config.eos_token_id:
                    return
                step = torch.tensor([[next_id]], device=self.device)
                consistent = False
                with self._decode_experts():
                    out = self(input_ids=step, cache=cache, use_cache=True, last_only=True)
                consistent = True
                generated.append(next_id)
                logits = out.logits[:, -1]
        finally:
            if self.reuse_prefix and consistent:
                ids = prompt.input_ids[0].tolist() + generated
                embeds = prompt.inputs_embeds[0].detach()
                kept = KeptPrefix(ids, embeds, cache, self._weights_state())
                with _KEPT_LOCK:
                    self._kept = kept

    @contextmanager
    def _decode_experts(self) -> Iterator[None]:
        """On the CPU, one-token steps run the experts the eager way (only the 6 chosen ones);
        transformers' default grouped matmul visits all 64 per layer, slower there (measured by
        ``python benchmarks/decoder.py``), while it is the faster one for the prompt."""
        config = self.text_config
        if self.device.type != "cpu" or config._experts_implementation != "grouped_mm":
            yield
            return
        config._experts_implementation = "eager"
        try:
            yield
        finally:
            config._experts_implementation = "grouped_mm"

    def generate(self, parts: Sequence[PromptPart] | PreparedPrompt, **settings: Any) -> Generation:
        """Answer a prompt (parts or a :class:`PreparedPrompt`); keyword arguments are
        :class:`GenerationSettings` fields (``max_new_tokens``, ``ngram_size``, ...)."""
        prompt = parts if isinstance(parts, PreparedPrompt) else self.prepare(parts)
        start = self.prefill(prompt)
        ids = list(self.generate_ids(prompt, GenerationSettings(**settings), prefilled=start))
        stopped = bool(ids) and ids[-1] == self.config.eos_token_id
        text_ids = ids[:-1] if stopped else ids
        return Generation(
            text=str(self._require_tokenizer().decode(text_ids, skip_special_tokens=True)),
            token_ids=ids,
            finish_reason="stop" if stopped else "length",
            prompt_text_tokens=prompt.text_tokens,
            prompt_vision_tokens=prompt.vision_tokens,
            prompt_cached_tokens=start.reused_tokens,
        )

    def stream(
        self, parts: Sequence[PromptPart] | PreparedPrompt, **settings: Any
    ) -> Iterator[str]:
        """The answer's text piece by piece, as tokens are decoded (EOS not included)."""
        text = TextStream(self._require_tokenizer())
        prompt = parts if isinstance(parts, PreparedPrompt) else self.prepare(parts)
        for next_id in self.generate_ids(prompt, GenerationSettings(**settings)):
            if next_id == self.config.eos_token_id:
                return
            piece = text.push(next_id)
            if piece:
                yield piece
