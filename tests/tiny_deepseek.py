"""A small DeepSeek-OCR checkpoint directory for tests, laid out like the official one.

``save_official`` writes tensors under their official names (``encoder_to_official`` and
``to_official_state_dict`` turn module state dicts into them, the inverses of the loader's
mappings); ``write_tokenizer`` trains a byte-level BPE of a few hundred entries with the official
special tokens (BOS ``<｜begin▁of▁sentence｜>`` = 0, EOS ``<｜end▁of▁sentence｜>`` = 1, pad,
``<image>``, ``<|grounding|>``, ``<td>``, ...) and writes ``tokenizer.json``,
``tokenizer_config.json`` and ``special_tokens_map.json``; ``write_config`` writes a
``config.json`` shaped like the released model's with small ``language_config`` sizes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from optical_memory.model.checkpoint import INDEX_FILE, encoder_official_name, official_name
from optical_memory.model.config import DecoderConfig
from optical_memory.model.tokenizer import BOS_TOKEN, EOS_TOKEN, IMAGE_TOKEN

#: The file name of the official single-file release.
OFFICIAL_WEIGHTS = "model-00001-of-000001.safetensors"

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


# --- official names, written ------------------------------------------------------------------

_SPLIT_QKV = re.compile(r"^(clip\.encoder\.layers\.\d+\.self_attn\.)([qkv])_proj\.(weight|bias)$")


def encoder_to_official(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """DeepEncoder's state under official names: the inverse of ``official_to_encoder`` (CLIP's
    q, k and v projections fused into one ``qkv_proj``, q rows first)."""
    official: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        split = _SPLIT_QKV.match(name)
        if split is None:
            official[encoder_official_name(name)] = tensor
        elif split.group(2) == "q":
            prefix, kind = split.group(1), split.group(3)
            parts = [state[f"{prefix}{part}_proj.{kind}"] for part in "qkv"]
            official[encoder_official_name(name)] = torch.cat(parts, dim=0)
    return official


def to_official_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A ``DeepSeekOCR`` state dict under the official names (experts unstacked, CLIP's q/k/v
    fused): the inverse of ``map_official_state_dict``."""
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


def save_official(
    directory: Path | str, tensors: Mapping[str, torch.Tensor], shards: int = 1
) -> list[Path]:
    """Write ``tensors`` (official names) as a checkpoint directory; returns the files written.

    One shard gives the official ``model-00001-of-000001.safetensors``; more give
    ``model-0000i-of-0000n.safetensors`` plus ``model.safetensors.index.json``. Tensors keep
    their dtype.
    """
    if shards < 1:
        raise ValueError(f"shards must be at least 1, got {shards}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    names = sorted(tensors)
    file_names = (
        [OFFICIAL_WEIGHTS]
        if shards == 1
        else [f"model-{i:05d}-of-{shards:05d}.safetensors" for i in range(1, shards + 1)]
    )
    files, weight_map = [], {}
    for shard, file_name in enumerate(file_names):
        file = directory / file_name
        part = {n: tensors[n].detach().to("cpu").contiguous() for n in names[shard::shards]}
        save_file(part, str(file), metadata={"format": "pt"})
        files.append(file)
        weight_map.update(dict.fromkeys(part, file_name))
    if shards > 1:
        index = {"metadata": {}, "weight_map": weight_map}
        (directory / INDEX_FILE).write_text(json.dumps(index, indent=2, sort_keys=True))
    return files


def write_checkpoint(directory: Path, model: Any, dtype: torch.dtype = torch.float32) -> None:
    """Save ``model`` (a ``DeepSeekOCR``) as an official checkpoint directory: weights under
    the official names, ``config.json`` and the tokenizer."""
    state = {name: t.to(dtype) for name, t in model.state_dict().items()}
    save_official(directory, to_official_state_dict(state))
    write_config(directory, model.config)
    write_tokenizer(directory)


def tiny_model(directory: Path, *, encoder: bool = True) -> Any:
    """A tiny random ``DeepSeekOCR`` (seed 0; with a tiny DeepEncoder unless ``encoder`` is
    False) whose tokenizer is written to ``directory``."""
    from optical_memory.model import DecoderConfig, DeepEncoder, DeepEncoderConfig, DeepSeekOCR
    from optical_memory.model.tokenizer import load_tokenizer

    write_tokenizer(directory)
    tokenizer = load_tokenizer(directory)
    torch.manual_seed(0)
    config = replace(DecoderConfig.tiny(), vocab_size=len(tokenizer))
    vision = DeepEncoder(DeepEncoderConfig.tiny()) if encoder else None
    return DeepSeekOCR(config, encoder=vision, tokenizer=tokenizer).eval()
