"""The local DeepSeek-OCR model: DeepEncoder and the MoE decoder that reads its visual tokens.

Needs the ``model`` extra (torch, transformers, safetensors); importing this package without
it raises :class:`optical_memory.extras.MissingExtraError` naming the extra. The names below
load their modules on first use; everything else is importable from its own module:
``config`` (sizes), ``checkpoint`` (the official names, loading), ``prompt`` (prompt
assembly), ``generation`` (decoding), ``decoder`` and ``deepencoder`` (the modules),
``preprocess``, ``tokenizer`` and ``visual_cache``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from optical_memory.extras import import_extra, lazy_exports

for _dependency in ("torch", "transformers", "safetensors"):
    import_extra(_dependency, "model")

if TYPE_CHECKING:
    from optical_memory.model.checkpoint import CheckpointError
    from optical_memory.model.config import DecoderConfig, DeepEncoderConfig
    from optical_memory.model.decoder import DeepSeekOCR
    from optical_memory.model.deepencoder import DeepEncoder
    from optical_memory.model.generation import Generation, GenerationSettings
    from optical_memory.model.prompt import ocr_prompt, question_prompt
    from optical_memory.model.visual_cache import VisualTokenCache

__all__ = [
    "CheckpointError",
    "DecoderConfig",
    "DeepEncoder",
    "DeepEncoderConfig",
    "DeepSeekOCR",
    "Generation",
    "GenerationSettings",
    "VisualTokenCache",
    "ocr_prompt",
    "question_prompt",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "CheckpointError": "optical_memory.model.checkpoint",
        "DecoderConfig": "optical_memory.model.config",
        "DeepEncoderConfig": "optical_memory.model.config",
        "DeepSeekOCR": "optical_memory.model.decoder",
        "DeepEncoder": "optical_memory.model.deepencoder",
        "Generation": "optical_memory.model.generation",
        "GenerationSettings": "optical_memory.model.generation",
        "ocr_prompt": "optical_memory.model.prompt",
        "question_prompt": "optical_memory.model.prompt",
        "VisualTokenCache": "optical_memory.model.visual_cache",
    },
)
