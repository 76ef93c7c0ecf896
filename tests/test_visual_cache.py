"""Visual-token cache: a memory page is encoded once per mode and encoder, then read back."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from optical_memory import DecaySchedule, Mode, OpticalMemory
from optical_memory.model.config import DeepEncoderConfig
from optical_memory.model.deepencoder import DeepEncoder
from optical_memory.model.visual_cache import NAMESPACE, VisualTokenCache, encoder_identity

torch.set_num_threads(2)
SCHEDULE = DecaySchedule(tiers=[(Mode.SMALL, 1), (Mode.TINY, 2)], batch=1)


def _memory(path: Path) -> OpticalMemory:
    return OpticalMemory(path, keep_recent_turns=2, schedule=SCHEDULE)


@pytest.fixture
def filled(tmp_path: Path) -> Path:
    path = tmp_path / "memory.db"
    with _memory(path) as memory:
        for i in range(12):
            memory.add("user", f"Turn {i}: the hotel was Seaview, booking {4400 + i}. " * 30)
    return path


@pytest.fixture(scope="module")
def encoder() -> DeepEncoder:
    torch.manual_seed(0)
    return DeepEncoder(DeepEncoderConfig.tiny()).eval()


def test_pages_are_encoded_once_and_read_back_identical(filled: Path, encoder) -> None:
    with _memory(filled) as memory:
        pages = memory.context().pages
        assert {page.mode for page in pages} == {Mode.TINY, Mode.SMALL}
        cache = VisualTokenCache(memory.store, encoder)
        first = cache(pages)
        assert cache.encodes == len(pages)
        for page, tokens in zip(pages, first, strict=True):
            assert tokens.shape == (page.mode.sequence_tokens(), 48)
            alone = encoder.encode([page.image], page.mode)[0]
            torch.testing.assert_close(tokens, alone, rtol=1e-5, atol=1e-5)
        again = cache(pages)
        assert cache.encodes == len(pages)  # nothing encoded the second time
        assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    # Another process opening the same file finds them in the store.
    with _memory(filled) as reopened:
        cache = VisualTokenCache(reopened.store, encoder)
        read = cache(reopened.context().pages)
        assert cache.encodes == 0
        assert all(torch.equal(a, b) for a, b in zip(first, read, strict=True))


def test_changed_weights_or_dtype_invalidate_the_cache(filled: Path) -> None:
    torch.manual_seed(1)
    encoder = DeepEncoder(DeepEncoderConfig.tiny()).eval()
    with _memory(filled) as memory:
        pages = memory.context().pages
        cache = VisualTokenCache(memory.store, encoder)
        before = cache(pages)
        identity = encoder_identity(encoder)
        with torch.no_grad():
            encoder.projector.bias.add_(1.0)  # in place: same tensors, new values
        assert encoder_identity(encoder) != identity
        after = cache(pages)
        assert cache.encodes == 2 * len(pages)
        assert not torch.equal(before[0], after[0])
        encoder.to(torch.bfloat16)
        cache(pages)
        assert cache.encodes == 3 * len(pages)


def test_identity_is_stable_for_the_same_weights() -> None:
    torch.manual_seed(2)
    a = DeepEncoder(DeepEncoderConfig.tiny())
    b = DeepEncoder(DeepEncoderConfig.tiny())
    b.load_state_dict(a.state_dict())
    assert encoder_identity(a) == encoder_identity(b)


def test_the_local_model_reads_memory_pages_through_the_cache(filled: Path, encoder) -> None:
    from dataclasses import replace

    from tiny_deepseek import write_tokenizer

    from optical_memory.model import DecoderConfig, DeepSeekOCR, question_prompt
    from optical_memory.model.tokenizer import load_tokenizer

    write_tokenizer(filled.parent / "tokenizer")
    tokenizer = load_tokenizer(filled.parent / "tokenizer")
    config = replace(DecoderConfig.tiny(), vocab_size=len(tokenizer))
    model = DeepSeekOCR(config, encoder=encoder, tokenizer=tokenizer).eval()
    with _memory(filled) as memory:
        pages = memory.context().pages
        parts = question_prompt(pages, "Which booking number?")
        direct = model.prepare(parts)
        cache = VisualTokenCache(memory.store, model.encoder)
        model.page_encoder = cache
        cached = model.prepare(parts)
        model.prepare(parts)
        assert cache.encodes == len(pages)  # the second prepare encoded nothing
        stored = [
            memory.store.get_blob(
                NAMESPACE,
                p.content_hash,
                p.mode.value,
                f"{p.renderer_key}|{encoder_identity(encoder)}",
            )
            for p in pages
        ]
        assert all(data is not None for data in stored)
    assert torch.equal(direct.input_ids, cached.input_ids)
    torch.testing.assert_close(cached.inputs_embeds, direct.inputs_embeds, rtol=1e-5, atol=1e-5)


def test_a_memory_is_accepted_for_its_store(filled: Path, encoder) -> None:
    with _memory(filled) as memory:
        pages = memory.context().pages
        VisualTokenCache(memory.store, encoder)(pages)
        from_memory = VisualTokenCache(memory, encoder)
        from_memory(pages)
        assert from_memory.encodes == 0  # the same store's entries


def test_pages_without_a_content_hash_are_encoded_every_time(encoder) -> None:
    from PIL import Image

    class ChatImage:  # an image from a message: no content hash, nothing to key it by
        def __init__(self) -> None:
            self.image = Image.new("RGB", (300, 200), "white")
            self.mode = Mode.TINY

    with OpticalMemory(None) as memory:
        cache = VisualTokenCache(memory.store, encoder)
        first = cache([ChatImage()])
        cache([ChatImage()])
        assert cache.encodes == 2
        assert first[0].shape == (Mode.TINY.sequence_tokens(), 48)
        assert memory.store.get_blob(NAMESPACE, "", "tiny", "") is None


def test_a_wrong_store_or_encoder_says_what_to_pass(encoder) -> None:
    with pytest.raises(TypeError, match=r"pass memory\.store"):
        VisualTokenCache("memory.db", encoder)
    with OpticalMemory(None) as memory, pytest.raises(TypeError, match=r"model\.encoder"):
        VisualTokenCache(memory.store, object())  # type: ignore[arg-type]
    with OpticalMemory(None) as memory, pytest.raises(TypeError, match=r"model\.encoder"):
        VisualTokenCache(memory.store, None)  # a DeepSeekOCR built without an encoder
