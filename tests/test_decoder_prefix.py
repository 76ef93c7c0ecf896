"""The KV cache of an unchanged prompt prefix is kept between calls and prefilled only once.

Every reuse is checked against a fresh prefill of the same prompt: the same logits within float
tolerance, and the same greedy answer.
"""

from __future__ import annotations

import pytest
import torch
from tiny_deepseek import tiny_model

from optical_memory.model.decoder import DeepSeekOCR
from optical_memory.model.prompt import PreparedPrompt, question_prompt
from optical_memory.modes import Mode

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> DeepSeekOCR:
    model: DeepSeekOCR = tiny_model(tmp_path_factory.mktemp("tokenizer"), encoder=False)
    return model


def _page(model: DeepSeekOCR, mode: Mode, seed: int) -> torch.Tensor:
    """A page's visual tokens ``[n, hidden]``, as DeepEncoder would give them."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(mode.sequence_tokens(), model.config.hidden_size, generator=generator)


def _fresh(model: DeepSeekOCR, prompt: PreparedPrompt) -> torch.Tensor:
    model.forget_prefix()
    start = model.prefill(prompt)
    assert start.reused_tokens == 0
    return start.logits


def _first_difference(a: PreparedPrompt, b: PreparedPrompt) -> int:
    x, y = a.input_ids[0].tolist(), b.input_ids[0].tolist()
    return next(i for i, (p, q) in enumerate(zip(x, y, strict=False)) if p != q)


def test_a_new_question_over_the_same_pages_prefills_only_the_question(
    model: DeepSeekOCR,
) -> None:
    pages = [_page(model, Mode.TINY, 1), _page(model, Mode.SMALL, 2)]
    first = model.prepare(question_prompt(pages, "Where is the hotel?"))
    second = model.prepare(question_prompt(pages, "Which booking number?"))
    model.forget_prefix()
    model.generate(first, max_new_tokens=4, ngram_size=None)
    reused = model.prefill(second)
    shared = _first_difference(first, second)
    assert reused.reused_tokens == shared
    assert shared > second.vision_tokens  # both pages' positions came from the first call
    torch.testing.assert_close(reused.logits, _fresh(model, second), rtol=1e-5, atol=1e-5)
    model.forget_prefix()
    fresh_answer = model.generate(second, max_new_tokens=6, ngram_size=None)
    model.generate(first, max_new_tokens=4, ngram_size=None)
    answer = model.generate(second, max_new_tokens=6, ngram_size=None)
    assert answer.prompt_cached_tokens == shared and fresh_answer.prompt_cached_tokens == 0
    assert answer.token_ids == fresh_answer.token_ids


def test_the_same_prompt_twice_recomputes_only_its_last_position(model: DeepSeekOCR) -> None:
    prompt = model.prepare(question_prompt([_page(model, Mode.TINY, 3)], "Free OCR."))
    first = model.generate(prompt, max_new_tokens=5, ngram_size=None)
    second = model.generate(prompt, max_new_tokens=5, ngram_size=None)
    assert second.prompt_cached_tokens == prompt.input_ids.shape[1] - 1
    assert second.token_ids == first.token_ids


def test_a_changed_page_is_prefilled_again_from_its_first_token(model: DeepSeekOCR) -> None:
    old = [_page(model, Mode.TINY, 4), _page(model, Mode.TINY, 5)]
    new = [old[0], _page(model, Mode.TINY, 6)]  # same mode and ids, other pixels
    before = model.prepare(question_prompt(old, "Who booked?"))
    after = model.prepare(question_prompt(new, "Who booked?"))
    assert torch.equal(before.input_ids, after.input_ids)
    model.forget_prefix()
    model.generate(before, max_new_tokens=2, ngram_size=None)
    reused = model.prefill(after)
    assert reused.reused_tokens == after.image_spans[1][0]
    torch.testing.assert_close(reused.logits, _fresh(model, after), rtol=1e-5, atol=1e-5)


def test_a_follow_up_reuses_the_answer_it_generated(model: DeepSeekOCR) -> None:
    prompt = model.prepare(question_prompt([_page(model, Mode.TINY, 7)], "Where?"))
    model.forget_prefix()
    answer = model.generate(prompt, max_new_tokens=4, ngram_size=None)
    assert answer.finish_reason == "length"  # every token was fed back into the cache
    more = torch.tensor([[*answer.token_ids, 11, 12, 13]])
    ids = torch.cat([prompt.input_ids, more], dim=1)
    embeds = torch.cat([prompt.inputs_embeds, model.language_model.embed_tokens(more)], dim=1)
    follow_up = PreparedPrompt(ids, embeds.detach(), prompt.image_spans)
    reused = model.prefill(follow_up)
    assert reused.reused_tokens == prompt.input_ids.shape[1] + len(answer.token_ids)
    torch.testing.assert_close(reused.logits, _fresh(model, follow_up), rtol=1e-5, atol=1e-5)


def test_a_stream_closed_early_leaves_a_usable_cache(model: DeepSeekOCR) -> None:
    pages = [_page(model, Mode.TINY, 8)]
    first = model.prepare(question_prompt(pages, "Where is the hotel?"))
    second = model.prepare(question_prompt(pages, "Which booking number?"))
    model.forget_prefix()
    stream = model.generate_ids(first)
    next(stream), next(stream)
    stream.close()
    reused = model.prefill(second)
    assert reused.reused_tokens == _first_difference(first, second)
    torch.testing.assert_close(reused.logits, _fresh(model, second), rtol=1e-5, atol=1e-5)


def test_changed_weights_or_switching_reuse_off_prefill_everything(model: DeepSeekOCR) -> None:
    prompt = model.prepare(question_prompt([_page(model, Mode.TINY, 9)], "Where?"))
    model.generate(prompt, max_new_tokens=2, ngram_size=None)
    layer = dict(model.language_model.named_parameters())["layers.0.self_attn.q_proj.weight"]
    with torch.no_grad():
        layer.mul_(1.5)  # in place: the kept keys and values are stale
    try:
        assert model.prefill(prompt).reused_tokens == 0
        model.generate(prompt, max_new_tokens=2, ngram_size=None)
        model.reuse_prefix = False
        assert model.generate(prompt, max_new_tokens=2).prompt_cached_tokens == 0
        assert model.prefill(prompt).reused_tokens == 0
    finally:
        model.reuse_prefix = True
        with torch.no_grad():
            layer.div_(1.5)
