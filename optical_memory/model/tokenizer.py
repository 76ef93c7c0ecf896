"""DeepSeek-OCR's tokenizer, read from the checkpoint directory (``tokenizer.json``).

The official directory holds ``tokenizer.json`` (a byte-level BPE of 129,280 entries with the
special tokens ``<｜begin▁of▁sentence｜>`` = 0, ``<｜end▁of▁sentence｜>`` = 1 and ``<image>`` =
128815), ``tokenizer_config.json`` and ``special_tokens_map.json``. We read ``tokenizer.json``
with the ``tokenizers`` library through transformers' ``PreTrainedTokenizerFast`` and take the
BOS/EOS strings from the two JSON files when they are present.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

BOS_TOKEN = "<｜begin▁of▁sentence｜>"
EOS_TOKEN = "<｜end▁of▁sentence｜>"
IMAGE_TOKEN = "<image>"


class TokenizerFilesError(FileNotFoundError):
    """The checkpoint directory has no usable ``tokenizer.json``."""


def _special_token(value: Any) -> str | None:
    # tokenizer_config.json writes either "<tok>" or {"content": "<tok>", ...}
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def load_tokenizer(directory: str | Path) -> PreTrainedTokenizerFast:
    """The tokenizer in ``directory``; nothing is downloaded.

    Raises :class:`TokenizerFilesError` when ``tokenizer.json`` is missing and ``ValueError``
    when it lacks the BOS, EOS or ``<image>`` token.
    """
    from optical_memory.extras import import_extra

    transformers = import_extra("transformers", "model")
    directory = Path(directory)
    tokenizer_file = directory / "tokenizer.json"
    if not tokenizer_file.is_file():
        raise TokenizerFilesError(
            f"no tokenizer.json in {directory}: pass the directory that holds the whole "
            "DeepSeek-OCR checkpoint (deepseek-ai/DeepSeek-OCR on the Hugging Face Hub), "
            "tokenizer files included"
        )
    settings = _read_json(directory / "tokenizer_config.json")
    settings.update(_read_json(directory / "special_tokens_map.json"))
    bos = _special_token(settings.get("bos_token")) or BOS_TOKEN
    eos = _special_token(settings.get("eos_token")) or EOS_TOKEN
    pad = _special_token(settings.get("pad_token")) or eos
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_file=str(tokenizer_file), bos_token=bos, eos_token=eos, pad_token=pad
    )
    for token in (bos, eos, IMAGE_TOKEN):
        if token_id(tokenizer, token) is None:
            raise ValueError(
                f"{tokenizer_file} has no {token!r} token: is this DeepSeek-OCR's tokenizer?"
            )
    return tokenizer


def token_id(tokenizer: PreTrainedTokenizerFast, token: str) -> int | None:
    """The id of a single token string, or ``None`` when the vocabulary lacks it."""
    found = tokenizer.convert_tokens_to_ids(token)
    if not isinstance(found, int) or found == tokenizer.unk_token_id:
        return None
    return found
