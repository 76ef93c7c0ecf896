"""DeepSeek-OCR: DeepEncoder's visual tokens in the DeepSeek-3B-MoE decoder's context.

A prompt is a sequence of parts, text and memory pages, each page at its own mode. The prompt
becomes ``input_ids`` with BOS first and exactly ``Mode.sequence_tokens`` ``<image>`` ids per
page; the token embeddings at those positions are then replaced by the page's visual tokens
(masked scatter), so that every page stands in the context where its text would have stood:

    parts      ["Memory:", page₁ (TINY), page₂ (BASE), "\\nWhat was the hotel's name?"]
    input_ids  [BOS, t t, <image>×73, <image>×273, t t t t t t]
    embeds     [e   e e, page₁ [73, H],  page₂ [273, H],  e e e e e e]

The decoder is transformers' ``DeepseekOcr2TextModel`` (the same MoE text model as
DeepSeek-OCR's: multi-head attention, layer 0 dense, then routed experts with softmax scores,
greedy top-k, no renormalization, plus shared experts) and an untied ``lm_head``. The official
checkpoint's names enter through :func:`map_official_state_dict`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol, runtime_checkable

import torch
from torch import nn

# The package's __init__ has already checked the ``model`` extra (torch, transformers).
from transformers.cache_utils import DynamicCache
from transformers.models.deepseek_ocr2.configuration_deepseek_ocr2 import DeepseekOcr2TextConfig
from transformers.models.deepseek_ocr2.modeling_deepseek_ocr2 import (
    DeepseekOcr2TextModel,
    DeepseekOcr2TextRotaryEmbedding,
)

from optical_memory.model.generation import (
    DEFAULT_NGRAM_SIZE,
    DEFAULT_NGRAM_WINDOW,
    NoRepeatNGramLogitsProcessor,
)
from optical_memory.model.tokenizer import IMAGE_TOKEN, load_tokenizer, token_id
from optical_memory.modes import Mode

if TYPE_CHECKING:
    from PIL import Image
    from transformers import PreTrainedTokenizerFast

#: Prompt endings of the released model (its README): plain OCR and OCR to markdown.
FREE_OCR = "\nFree OCR."
TO_MARKDOWN = "\n<|grounding|>Convert the document to markdown."


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecoderConfig:
    """Sizes of the DeepSeek-3B-MoE decoder; the defaults are the released model's."""

    vocab_size: int = 129_280
    hidden_size: int = 1280
    num_hidden_layers: int = 12
    num_attention_heads: int = 10  # heads of 128: plain multi-head attention, no MLA
    intermediate_size: int = 6848  # the dense MLP of the first layer(s)
    first_k_dense_replace: int = 1
    n_routed_experts: int = 64
    num_experts_per_tok: int = 6
    moe_intermediate_size: int = 896
    n_shared_experts: int = 2  # one shared MLP of 2 x 896
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10_000.0
    max_position_embeddings: int = 8192
    bos_token_id: int = 0
    eos_token_id: int = 1

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not a multiple of num_attention_heads "
                f"{self.num_attention_heads}"
            )
        if not 1 <= self.num_experts_per_tok <= self.n_routed_experts:
            raise ValueError(
                f"num_experts_per_tok ({self.num_experts_per_tok}) must lie in 1.."
                f"n_routed_experts ({self.n_routed_experts})"
            )
        if not 0 <= self.first_k_dense_replace <= self.num_hidden_layers:
            raise ValueError(f"first_k_dense_replace {self.first_k_dense_replace} out of range")

    @classmethod
    def tiny(cls) -> DecoderConfig:
        """A small random-weight stand-in for tests: 2 layers (dense, then MoE with 4 experts,
        top-2), width 48 to take ``DeepEncoderConfig.tiny()``'s visual tokens."""
        return cls(
            vocab_size=512,
            hidden_size=48,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=96,
            n_routed_experts=4,
            num_experts_per_tok=2,
            moe_intermediate_size=32,
            n_shared_experts=2,
            max_position_embeddings=4096,
        )

    @classmethod
    def from_language_config(cls, language_config: Mapping[str, Any]) -> DecoderConfig:
        """Read the sizes from a checkpoint's ``config.json`` ``language_config``.

        Keys the file leaves out take DeepseekV2's defaults (RMSNorm eps 1e-6, RoPE base 10000).
        Settings this decoder does not implement (MLA, grouped routing, renormalized top-k,
        another scoring function, RoPE scaling) raise ``ValueError`` naming them.
        """
        unsupported = {
            "use_mla": (False, None),
            "kv_lora_rank": (None, 0),
            "q_lora_rank": (None, 0),
            "topk_method": ("greedy", None),
            "scoring_func": ("softmax", None),
            "norm_topk_prob": (False, None),
            "rope_scaling": (None,),
            "attention_bias": (False, None),
        }
        for key, allowed in unsupported.items():
            if language_config.get(key) not in allowed:
                raise ValueError(
                    f"language_config {key}={language_config[key]!r} is not supported: this "
                    f"decoder implements DeepSeek-OCR's plain MHA + greedy-softmax MoE ({key} in "
                    f"{allowed})"
                )
        if language_config.get("routed_scaling_factor", 1.0) != 1.0:
            raise ValueError("language_config routed_scaling_factor != 1.0 is not supported")
        heads = language_config.get("num_attention_heads", cls.num_attention_heads)
        if language_config.get("num_key_value_heads", heads) != heads:
            raise ValueError("language_config num_key_value_heads must equal num_attention_heads")
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in language_config.items() if k in known and v is not None}
        return cls(**values)

    def mlp_layer_types(self) -> list[str]:
        """``"dense"`` for the first ``first_k_dense_replace`` layers, then ``"sparse"`` (MoE)."""
        return [
            "dense" if i < self.first_k_dense_replace else "sparse"
            for i in range(self.num_hidden_layers)
        ]

    def text_config(self) -> DeepseekOcr2TextConfig:
        """The transformers configuration of the text model (head_dim = hidden / heads)."""
        config = DeepseekOcr2TextConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            num_key_value_heads=self.num_attention_heads,
            max_position_embeddings=self.max_position_embeddings,
            rms_norm_eps=self.rms_norm_eps,
            rope_parameters={"rope_type": "default", "rope_theta": self.rope_theta},
            n_routed_experts=self.n_routed_experts,
            num_experts_per_tok=self.num_experts_per_tok,
            moe_intermediate_size=self.moe_intermediate_size,
            n_shared_experts=self.n_shared_experts,
            routed_scaling_factor=1.0,
            topk_method="greedy",
            n_group=1,
            topk_group=1,
            mlp_layer_types=self.mlp_layer_types(),
            bos_token_id=self.bos_token_id,
            eos_token_id=self.eos_token_id,
            tie_word_embeddings=False,
            attention_bias=False,
            mlp_bias=False,
        )
        config._attn_implementation = "sdpa"
        return config


# --------------------------------------------------------------------------------------------
# Official parameter names
# --------------------------------------------------------------------------------------------

_EXPERT = re.compile(r"model\.layers\.(\d+)\.mlp\.experts\.(\d+)\.(gate|up|down)_proj\.weight")
_LAYER = re.compile(r"model\.layers\.(\d+)\.(.+)")
_DECODER_TOP = {
    "model.embed_tokens.weight": "language_model.embed_tokens.weight",
    "model.norm.weight": "language_model.norm.weight",
    "lm_head.weight": "lm_head.weight",
}


def is_encoder_name(name: str) -> bool:
    """Whether an official checkpoint name belongs to DeepEncoder (SAM, CLIP, projector...)."""
    from optical_memory.model.checkpoint import ENCODER_PREFIXES

    return name.startswith(ENCODER_PREFIXES)


def map_decoder_state_dict(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official decoder names → this module's (``language_model.*``, ``lm_head.*``).

    ``model.layers.N.mlp.experts.E.{gate,up,down}_proj.weight [896, 1280]`` / ``[1280, 896]``
    are stacked into transformers' ``language_model.layers.N.mlp.experts.gate_up_proj
    [E, 2*896, 1280]`` (each expert's gate rows, then its up rows) and ``down_proj
    [E, 1280, 896]``; every other name keeps its tail. Encoder names must not be passed here.

    Raises :class:`~optical_memory.model.checkpoint.CheckpointError` naming an unknown tensor
    or a missing expert tensor.
    """
    from optical_memory.model.checkpoint import CheckpointError

    mapped: dict[str, torch.Tensor] = {}
    experts: dict[int, dict[int, dict[str, torch.Tensor]]] = {}
    unknown: list[str] = []
    for name, tensor in tensors.items():
        if name in _DECODER_TOP:
            mapped[_DECODER_TOP[name]] = tensor
        elif match := _EXPERT.fullmatch(name):
            layer, expert, kind = int(match[1]), int(match[2]), match[3]
            experts.setdefault(layer, {}).setdefault(expert, {})[kind] = tensor
        elif match := _LAYER.fullmatch(name):
            mapped[f"language_model.layers.{match[1]}.{match[2]}"] = tensor
        else:
            unknown.append(name)
    if unknown:
        raise CheckpointError(
            f"unexpected decoder tensor(s) {_listing(unknown)}: this is not a DeepSeek-OCR "
            "checkpoint, or a newer layout than this version of optical-memory reads"
        )
    for layer, by_expert in sorted(experts.items()):
        count = max(by_expert) + 1
        gate_up, down = [], []
        for expert in range(count):
            parts = by_expert.get(expert, {})
            for kind in ("gate", "up", "down"):
                if kind not in parts:
                    raise CheckpointError(
                        f"missing tensor model.layers.{layer}.mlp.experts.{expert}.{kind}_proj"
                        ".weight: the checkpoint is incomplete; download it again"
                    )
            gate_up.append(torch.cat([parts["gate"], parts["up"]], dim=0))
            down.append(parts["down"])
        prefix = f"language_model.layers.{layer}.mlp.experts"
        mapped[f"{prefix}.gate_up_proj"] = torch.stack(gate_up)
        mapped[f"{prefix}.down_proj"] = torch.stack(down)
    return mapped


def map_official_state_dict(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The whole official checkpoint → :class:`DeepSeekOCR`'s state dict, in one place.

    Encoder names (``model.sam_model.*``, ``model.vision_model.*``, ``model.projector.*``,
    ``model.image_newline``, ``model.view_seperator``) go through DeepEncoder's own
    ``official_to_encoder`` and land under ``encoder.``; the decoder's through
    :func:`map_decoder_state_dict`.
    """
    from optical_memory.model.checkpoint import official_to_encoder

    mapped = {f"encoder.{name}": t for name, t in official_to_encoder(tensors).items()}
    decoder = {name: t for name, t in tensors.items() if not is_encoder_name(name)}
    mapped.update(map_decoder_state_dict(decoder))
    return mapped


def official_name(module_name: str) -> str:
    """The official checkpoint name of one :class:`DeepSeekOCR` state-dict entry.

    Stacked experts name their layer's per-expert tensors with ``E``
    (``model.layers.N.mlp.experts.E.{gate,up}_proj.weight``); used by error messages.
    """
    from optical_memory.model.checkpoint import encoder_official_name

    if module_name.startswith("encoder."):
        return encoder_official_name(module_name.removeprefix("encoder."))
    for official, ours in _DECODER_TOP.items():
        if module_name == ours:
            return official
    name = module_name.removeprefix("language_model.")
    name = name.replace("mlp.experts.gate_up_proj", "mlp.experts.E.{gate,up}_proj.weight")
    name = name.replace("mlp.experts.down_proj", "mlp.experts.E.down_proj.weight")
    return f"model.{name}"


def to_official_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of :func:`map_official_state_dict`: a :class:`DeepSeekOCR` state dict under
    the official names (experts unstacked, CLIP's q/k/v fused). Tests write checkpoints so."""
    from optical_memory.model.checkpoint import encoder_to_official

    encoder = {
        name.removeprefix("encoder."): t for name, t in state.items() if name.startswith("encoder.")
    }
    official = encoder_to_official(encoder)
    for name, tensor in state.items():
        if name.startswith("encoder."):
            continue
        if name.endswith("mlp.experts.gate_up_proj"):
            prefix = official_name(name).split(".E.")[0]
            gate, up = tensor.chunk(2, dim=1)
            for e in range(tensor.shape[0]):
                official[f"{prefix}.{e}.gate_proj.weight"] = gate[e]
                official[f"{prefix}.{e}.up_proj.weight"] = up[e]
        elif name.endswith("mlp.experts.down_proj"):
            prefix = official_name(name).split(".E.")[0]
            for e in range(tensor.shape[0]):
                official[f"{prefix}.{e}.down_proj.weight"] = tensor[e]
        else:
            official[official_name(name)] = tensor
    return official


def _listing(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(sorted(names)[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


# --------------------------------------------------------------------------------------------
# Context assembly
# --------------------------------------------------------------------------------------------


@runtime_checkable
class PageLike(Protocol):
    """A memory page: its image at a mode (``MemoryContext.pages`` items, ``RenderedPage``)."""

    @property
    def image(self) -> Image.Image: ...

    @property
    def mode(self) -> Mode: ...


#: Visual tokens ``[n, hidden]`` for each page (e.g. ``OpticalMemory.visual_tokens``, cached);
#: typed loosely so that callables over a narrower page type (``MemoryPage``) fit.
PageEncoder = Callable[[Sequence[Any]], list[Any]]


def encode_by_mode(
    encode: Callable[[list[Image.Image], Mode], list[torch.Tensor]], pages: Sequence[PageLike]
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


#: A prompt part: text, a page to encode, or a page's visual tokens ``[n, hidden]`` already made.
PromptPart = str | PageLike | torch.Tensor


def ocr_prompt(page: PageLike | torch.Tensor, task: Literal["free", "markdown"] = "free") -> list:
    """The released model's OCR prompt: the page, then ``"\\nFree OCR."`` or the markdown one."""
    return [page, FREE_OCR if task == "free" else TO_MARKDOWN]


def question_prompt(pages: Sequence[PageLike | torch.Tensor], question: str) -> list:
    """Pages oldest first, each followed by a newline, then the question."""
    parts: list[PromptPart] = []
    for page in pages:
        parts += [page, "\n"]
    parts.append(question)
    return parts


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


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


class DecoderOutput(NamedTuple):
    logits: torch.Tensor  # [B, L, vocab] (or [B, 1, vocab] when only the last is kept)
    past_key_values: Any


@dataclass
class Generation:
    """What :meth:`DeepSeekOCR.generate` returns."""

    text: str
    token_ids: list[int]
    finish_reason: Literal["stop", "length"]
    prompt_text_tokens: int
    prompt_vision_tokens: int

    @property
    def prompt_tokens(self) -> int:
        return self.prompt_text_tokens + self.prompt_vision_tokens


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


class DeepSeekOCR(nn.Module):
    """DeepEncoder + the DeepSeek-3B-MoE decoder with an untied ``lm_head``.

    ``encoder`` may be a ``DeepEncoder`` or ``None`` (then pages must come as visual-token
    tensors, or through :attr:`page_encoder`). ``tokenizer`` turns text into ids.
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
        from optical_memory.model.deepencoder import DeepEncoder, DeepEncoderConfig

        directory = Path(path)
        checkpoint.find_weight_files(directory)  # cheap checks first, the 6.7 GB read last
        config = DecoderConfig.from_language_config(_language_config(directory))
        tokenizer = load_tokenizer(directory)
        tensors = checkpoint.load_official_state_dict(directory)
        with torch.device("meta"):
            encoder = DeepEncoder(encoder_config or DeepEncoderConfig())
            model = cls(config, encoder=encoder, tokenizer=tokenizer)
        state = map_official_state_dict(tensors)
        del tensors
        checkpoint.load_state_strict(model, state, directory, official_name=official_name)
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
        past_key_values: Any = None,
        use_cache: bool = False,
        last_only: bool = False,
    ) -> DecoderOutput:
        """Logits for ``input_ids [B, L]`` or ``inputs_embeds [B, L, H]`` (positions 0..L-1
        after whatever ``past_key_values`` holds)."""
        out = self.language_model(
            input_ids=input_ids,
            inputs_embeds=inputs_embeds,
            past_key_values=past_key_values,
            use_cache=use_cache,
        )
        hidden = out.last_hidden_state[:, -1:] if last_only else out.last_hidden_state
        return DecoderOutput(self.lm_head(hidden), out.past_key_values)

    # -- prompts -------------------------------------------------------------------------

    def encode_pages(self, pages: Sequence[PageLike]) -> list[torch.Tensor]:
        """Visual tokens ``[n, hidden]`` for each page: through :attr:`page_encoder` when set
        (``model.page_encoder = memory.visual_tokens`` encodes each page once per mode and
        keeps it in the store), else ``encoder.encode`` in one batch per mode."""
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
                expected = _sequence_tokens(part)
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
    def generate_ids(
        self, prompt: PreparedPrompt, settings: GenerationSettings | None = None
    ) -> Iterator[int]:
        """New token ids one at a time (the EOS that stops it included), with a KV cache."""
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
        cache = DynamicCache(config=self.text_config)
        embeds = prompt.inputs_embeds
        out = self(inputs_embeds=embeds, past_key_values=cache, use_cache=True, last_only=True)
        generated: list[int] = []
        for _ in range(settings.max_new_tokens):
            scores = out.logits[:, -1].float()
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
            generated.append(next_id)
            step = torch.tensor([[next_id]], device=self.device)
            with self._decode_experts():
                out = self(input_ids=step, past_key_values=cache, use_cache=True, last_only=True)

    @contextmanager
    def _decode_experts(self) -> Iterator[None]:
        """On the CPU, one-token steps run the experts the eager way (only the 6 chosen ones);
        transformers' default grouped matmul visits all 64 per layer, 5x slower there (see
        benchmarks/decoder.py), while it is the faster one for the prompt."""
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
        ids = list(self.generate_ids(prompt, GenerationSettings(**settings)))
        stopped = bool(ids) and ids[-1] == self.config.eos_token_id
        text_ids = ids[:-1] if stopped else ids
        return Generation(
            text=str(self._require_tokenizer().decode(text_ids, skip_special_tokens=True)),
            token_ids=ids,
            finish_reason="stop" if stopped else "length",
            prompt_text_tokens=prompt.text_tokens,
            prompt_vision_tokens=prompt.vision_tokens,
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


def _sequence_tokens(page: PageLike) -> int:
    mode = Mode.parse(page.mode)
    width, height = page.image.size
    return mode.sequence_tokens(width, height)


def _language_config(directory: Path) -> dict[str, Any]:
    from optical_memory.model.checkpoint import CheckpointError

    config_file = directory / "config.json"
    if not config_file.is_file():
        raise CheckpointError(
            f"no config.json in {directory}: pass the directory that holds the DeepSeek-OCR "
            "checkpoint (deepseek-ai/DeepSeek-OCR on the Hugging Face Hub)"
        )
    config = json.loads(config_file.read_text(encoding="utf-8"))
    language = config.get("language_config")
    if not isinstance(language, dict):
        # Older exports put the decoder's keys at the top level only.
        language = config
    return dict(language)
