"""The local DeepSeek-OCR model: DeepEncoder, per-mode preprocessing, checkpoint loading, and
the MoE decoder that reads the visual tokens (``DeepSeekOCR``).

Needs the ``model`` extra (torch, transformers, safetensors); importing this package without
it raises :class:`optical_memory.extras.MissingExtraError` naming the extra. The names below
load their modules on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from optical_memory.extras import import_extra

for _dependency in ("torch", "transformers", "safetensors"):
    import_extra(_dependency, "model")

if TYPE_CHECKING:
    from optical_memory.model.checkpoint import (
        CheckpointError,
        encoder_to_official,
        find_weight_files,
        load_official_state_dict,
        load_state_strict,
        official_to_encoder,
        save_official,
    )
    from optical_memory.model.decoder import (
        DecoderConfig,
        DeepSeekOCR,
        Generation,
        PreparedPrompt,
        map_official_state_dict,
        ocr_prompt,
        question_prompt,
    )
    from optical_memory.model.deepencoder import DeepEncoder, DeepEncoderConfig
    from optical_memory.model.generation import NoRepeatNGramLogitsProcessor
    from optical_memory.model.preprocess import PreprocessedPage, preprocess
    from optical_memory.model.tokenizer import load_tokenizer

_EXPORTS = {
    "DeepSeekOCR": "optical_memory.model.decoder",
    "DecoderConfig": "optical_memory.model.decoder",
    "Generation": "optical_memory.model.decoder",
    "PreparedPrompt": "optical_memory.model.decoder",
    "map_official_state_dict": "optical_memory.model.decoder",
    "ocr_prompt": "optical_memory.model.decoder",
    "question_prompt": "optical_memory.model.decoder",
    "NoRepeatNGramLogitsProcessor": "optical_memory.model.generation",
    "load_tokenizer": "optical_memory.model.tokenizer",
    "DeepEncoder": "optical_memory.model.deepencoder",
    "DeepEncoderConfig": "optical_memory.model.deepencoder",
    "PreprocessedPage": "optical_memory.model.preprocess",
    "preprocess": "optical_memory.model.preprocess",
    "CheckpointError": "optical_memory.model.checkpoint",
    "encoder_to_official": "optical_memory.model.checkpoint",
    "find_weight_files": "optical_memory.model.checkpoint",
    "load_official_state_dict": "optical_memory.model.checkpoint",
    "load_state_strict": "optical_memory.model.checkpoint",
    "official_to_encoder": "optical_memory.model.checkpoint",
    "save_official": "optical_memory.model.checkpoint",
}
__all__ = [
    "CheckpointError",
    "DecoderConfig",
    "DeepEncoder",
    "DeepEncoderConfig",
    "DeepSeekOCR",
    "Generation",
    "NoRepeatNGramLogitsProcessor",
    "PreparedPrompt",
    "PreprocessedPage",
    "encoder_to_official",
    "find_weight_files",
    "load_official_state_dict",
    "load_state_strict",
    "load_tokenizer",
    "map_official_state_dict",
    "ocr_prompt",
    "official_to_encoder",
    "preprocess",
    "question_prompt",
    "save_official",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'optical_memory.model' has no attribute {name!r}")
