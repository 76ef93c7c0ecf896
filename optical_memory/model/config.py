"""Sizes of DeepSeek-OCR's two networks: :class:`DeepEncoderConfig` and :class:`DecoderConfig`.

The defaults are the released model's; ``tiny()`` gives random-weight stand-ins for tests whose
encoder output width matches the decoder's. :meth:`DecoderConfig.from_language_config` reads a
checkpoint's ``config.json`` and refuses settings the decoder does not implement;
:meth:`DecoderConfig.text_config` is the transformers configuration the decoder is built from.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from transformers.models.clip.configuration_clip import CLIPVisionConfig
from transformers.models.deepseek_ocr2.configuration_deepseek_ocr2 import (
    DeepseekOcr2SamVisionConfig,
    DeepseekOcr2TextConfig,
)

#: The decoder's fields transformers' text configuration takes under the same names.
_TEXT_FIELDS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "max_position_embeddings",
    "rms_norm_eps",
    "n_routed_experts",
    "num_experts_per_tok",
    "moe_intermediate_size",
    "n_shared_experts",
    "bos_token_id",
    "eos_token_id",
)
#: What the released decoder fixes (greedy top-k routing in one group, no biases, no tying);
#: :meth:`DecoderConfig.from_language_config` refuses checkpoints that differ.
_TEXT_FIXED: dict[str, Any] = {
    "routed_scaling_factor": 1.0,
    "topk_method": "greedy",
    "n_group": 1,
    "topk_group": 1,
    "tie_word_embeddings": False,
    "attention_bias": False,
    "mlp_bias": False,
}
#: transformers' SAM vision configuration field ← this encoder configuration's field.
_SAM_FIELDS = {
    "hidden_size": "sam_width",
    "output_channels": "neck_channels",
    "num_hidden_layers": "sam_layers",
    "num_attention_heads": "sam_heads",
    "image_size": "sam_image_size",
    "patch_size": "patch_size",
    "mlp_dim": "sam_mlp",
    "window_size": "sam_window",
}
#: transformers' CLIP vision configuration field ← this encoder configuration's field.
_CLIP_FIELDS = {
    "hidden_size": "clip_width",
    "intermediate_size": "clip_mlp",
    "num_hidden_layers": "clip_layers",
    "num_attention_heads": "clip_heads",
}


@dataclass(frozen=True)
class DeepEncoderConfig:
    """Sizes of DeepEncoder; the defaults are the released DeepSeek-OCR's.

    The pixel geometry (16-px patches, 4× fewer tokens per side after the two strided
    convolutions) is fixed by the modes; only widths and depths vary, e.g. in :meth:`tiny`.
    """

    # SAM-base (ViTDet)
    sam_width: int = 768
    sam_layers: int = 12
    sam_heads: int = 12
    sam_mlp: int = 3072
    sam_window: int = 14
    sam_global_layers: tuple[int, ...] = (2, 5, 8, 11)
    #: Side in pixels the absolute position table was trained for (64×64 patches).
    sam_image_size: int = 1024
    patch_size: int = 16
    neck_channels: int = 256
    #: Output channels of the two stride-2 convolutions; the last is CLIP's width.
    downsample_channels: tuple[int, int] = (512, 1024)
    # CLIP-L
    clip_width: int = 1024
    clip_layers: int = 24
    clip_heads: int = 16
    clip_mlp: int = 4096
    #: CLS + 16×16 grid of CLIP-L/14 at 224 px.
    clip_positions: int = 257
    #: CLIP's own pixel patch embedding (kept for the checkpoint, never used).
    clip_patch_size: int = 14
    # Fusion
    output_width: int = 1280
    #: transformers attention for SAM and CLIP: "sdpa" (torch's fused kernels) or "eager".
    attn_implementation: str = field(default="sdpa", compare=False)

    def __post_init__(self) -> None:
        if self.downsample_channels[-1] != self.clip_width:
            raise ValueError(
                f"SAM's last channels ({self.downsample_channels[-1]}) feed CLIP as patch "
                f"embeddings, so they must equal clip_width ({self.clip_width})"
            )
        if math.isqrt(self.clip_positions - 1) ** 2 != self.clip_positions - 1:
            raise ValueError(f"clip_positions must be 1 + a square, got {self.clip_positions}")

    def sam_config(self) -> DeepseekOcr2SamVisionConfig:
        """The transformers configuration of SAM-base."""
        sam = DeepseekOcr2SamVisionConfig(
            **{theirs: getattr(self, ours) for theirs, ours in _SAM_FIELDS.items()},
            global_attn_indexes=list(self.sam_global_layers),
            downsample_channels=list(self.downsample_channels),
        )
        sam._attn_implementation = self.attn_implementation
        return sam

    def clip_config(self) -> CLIPVisionConfig:
        """The transformers configuration of CLIP-L (quick-GELU, as OpenAI's CLIP)."""
        clip = CLIPVisionConfig(
            **{theirs: getattr(self, ours) for theirs, ours in _CLIP_FIELDS.items()},
            hidden_act="quick_gelu",
            layer_norm_eps=1e-5,
        )
        clip._attn_implementation = self.attn_implementation
        return clip

    @classmethod
    def tiny(cls) -> DeepEncoderConfig:
        """A few-thousand-parameter encoder with the real geometry, for tests."""
        return cls(
            sam_width=32,
            sam_layers=2,
            sam_heads=2,
            sam_mlp=64,
            sam_window=6,
            sam_global_layers=(1,),
            neck_channels=16,
            downsample_channels=(24, 32),
            clip_width=32,
            clip_layers=2,
            clip_heads=2,
            clip_mlp=64,
            output_width=48,
        )


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
            **{name: getattr(self, name) for name in _TEXT_FIELDS},
            num_key_value_heads=self.num_attention_heads,
            rope_parameters={"rope_type": "default", "rope_theta": self.rope_theta},
            mlp_layer_types=self.mlp_layer_types(),
            **_TEXT_FIXED,
        )
        config._attn_implementation = "sdpa"
        return config
