"""A small DeepSeek-OCR checkpoint directory for tests, laid out like the official one.

``write_tokenizer`` trains a byte-level BPE of a few hundred entries with the official special
tokens (BOS ``<｜begin▁of▁sentence｜>`` = 0, EOS ``<｜end▁of▁sentence｜>`` = 1, pad, ``<image>``,
``<|grounding|>``, ``<td>``, ...) and writes ``tokenizer.json``, ``tokenizer_config.json`` and
``special_tokens_map.json``; ``write_config`` writes a ``config.json`` shaped like
``../shared/reference/deepseek-ocr-config.json`` with small ``language_config`` sizes.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from optical_memory.model.decoder import DecoderConfig
from optical_memory.model.tokenizer import BOS_TOKEN, EOS_TOKEN, IMAGE_TOKEN

PAD_TOKEN = "<｜▁pad▁｜>"
#: Added after training, as the official vocabulary has them at its end.
EXTRA_SPECIAL = [IMAGE_TOKEN, "<|grounding|>", "<|ref|>", "<|/ref|>", "<|det|>", "<|/det|>"]
EXTRA_PLAIN = ["<td>", "</td>"]
CORPUS = [
    "Free OCR. Convert the document to markdown.",
    "The hotel was called Seaview; the booking number is 4417 for March 3rd.",
    "User: where did we agree to meet? Assistant: at the station in Lyon at 9:30.",
    "Memory page one, turns 1 to 12, base mode. Tables: <td> cell </td>.",
    "ünïcödé — 東京 and Zürich, prices 12.50 € and 3,000 ¥.",
]


def write_tokenizer(directory: Path, vocab_size: int = 400) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS_TOKEN, EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS * 4, trainer)
    tokenizer.add_special_tokens(EXTRA_SPECIAL)
    tokenizer.add_tokens(EXTRA_PLAIN)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(directory / "tokenizer.json"))
    special = {"bos_token": BOS_TOKEN, "eos_token": EOS_TOKEN, "pad_token": PAD_TOKEN}
    (directory / "special_tokens_map.json").write_text(json.dumps(special), encoding="utf-8")
    settings = {"tokenizer_class": "LlamaTokenizerFast", "add_bos_token": False, **special}
    (directory / "tokenizer_config.json").write_text(json.dumps(settings), encoding="utf-8")


def official_config(decoder: DecoderConfig) -> dict[str, Any]:
    """A ``config.json`` like the official one, with ``decoder``'s sizes."""
    language = {
        "architectures": ["DeepseekV2ForCausalLM"],
        **asdict(decoder),
        "kv_lora_rank": None,
        "lm_head": True,
        "n_group": 1,
        "num_key_value_heads": decoder.num_attention_heads,
        "q_lora_rank": None,
        "qk_nope_head_dim": 0,
        "qk_rope_head_dim": 0,
        "rm_head": False,
        "topk_group": 1,
        "topk_method": "greedy",
        "torch_dtype": "bfloat16",
        "use_mla": False,
        "v_head_dim": 0,
    }
    # The official file keeps neither of these two (DeepseekV2's defaults apply).
    del language["rms_norm_eps"], language["rope_theta"]
    return {
        "_name_or_path": "deepseek-ai/DeepSeek-OCR",
        "architectures": ["DeepseekOCRForCausalLM"],
        "language_config": language,
        "model_type": "deepseek_vl_v2",
        "projector_config": {"input_dim": 2048, "n_embed": decoder.hidden_size},
        "torch_dtype": "bfloat16",
        **{k: v for k, v in language.items() if k != "architectures"},
    }


def write_config(directory: Path, decoder: DecoderConfig) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(official_config(decoder), indent=1)
    (directory / "config.json").write_text(text, encoding="utf-8")
