"""DeepSeek-OCR's decoder: context assembly, scattering, generation, the n-gram guard.

A tiny random decoder (2 layers: dense then MoE with 4 experts, width 48) and a tokenizer
trained inside the test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from PIL import Image
from tiny_deepseek import write_tokenizer

from optical_memory.model.config import DecoderConfig
from optical_memory.model.decoder import DeepSeekOCR
from optical_memory.model.generation import GenerationSettings, NoRepeatNGramLogitsProcessor
from optical_memory.model.prompt import (
    FREE_OCR,
    TO_MARKDOWN,
    encode_by_mode,
    ocr_prompt,
    question_prompt,
    scatter_visual_tokens,
)
from optical_memory.model.tokenizer import load_tokenizer
from optical_memory.modes import Mode

torch.set_num_threads(2)


class FakePage:
    """A memory page: an image at a mode."""

    def __init__(self, mode: Mode, size: tuple[int, int] = (800, 1100)) -> None:
        self.mode = mode
        self.image = Image.new("RGB", size, "white")


class RecordingEncoder:
    """Stands in for DeepEncoder.encode: distinct random tokens per call, calls recorded."""

    def __init__(self, hidden: int) -> None:
        self.hidden = hidden
        self.calls: list[tuple[Mode, int]] = []
        self.outputs: list[torch.Tensor] = []
        self.generator = torch.Generator().manual_seed(7)

    def encode(self, images: Sequence[Image.Image], mode: Mode) -> list[torch.Tensor]:
        self.calls.append((mode, len(images)))
        out = [
            torch.randn(mode.sequence_tokens(*im.size), self.hidden, generator=self.generator)
            for im in images
        ]
        self.outputs += out
        return out


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    directory: Path = tmp_path_factory.mktemp("tokenizer")
    write_tokenizer(directory)
    return load_tokenizer(directory)


@pytest.fixture(scope="module")
def model(tokenizer) -> DeepSeekOCR:
    torch.manual_seed(0)
    config = replace(DecoderConfig.tiny(), vocab_size=len(tokenizer))
    return DeepSeekOCR(config, tokenizer=tokenizer).eval()


def test_image_token_id_is_read_from_the_tokenizer(model: DeepSeekOCR, tokenizer) -> None:
    assert model.image_token_id == tokenizer.convert_tokens_to_ids("<image>")
    assert model.image_token_id not in (0, 1)


def test_prompt_is_bos_then_exactly_sequence_tokens_image_ids_per_page(
    model: DeepSeekOCR, tokenizer
) -> None:
    encoder = RecordingEncoder(model.config.hidden_size)
    model.page_encoder = lambda pages: encode_by_mode(encoder.encode, pages)
    pages = [FakePage(Mode.TINY), FakePage(Mode.BASE), FakePage(Mode.GUNDAM), FakePage(Mode.TINY)]
    try:
        prompt = model.prepare(question_prompt(pages, "Where is the hotel?"))
    finally:
        model.page_encoder = None
    ids = prompt.input_ids[0].tolist()
    assert ids[0] == tokenizer.bos_token_id == 0
    expected = [73, 273, 273 + (10 * 2 + 1) * (10 * 3), 73]  # 800x1100 page: 2x3 tiles
    assert [end - start for start, end in prompt.image_spans] == expected
    image_id = model.image_token_id
    assert ids.count(image_id) == sum(expected) == prompt.vision_tokens
    for start, end in prompt.image_spans:
        assert set(ids[start:end]) == {image_id}
        assert ids[start - 1] != image_id and ids[end] != image_id  # the "\n" between pages
    text = tokenizer.decode([i for i in ids[1:] if i != image_id])
    assert text == "\n\n\n\nWhere is the hotel?"
    assert prompt.text_tokens == len(ids) - sum(expected)
    # One encoder call per mode, pages of a mode batched together.
    assert sorted(encoder.calls) == sorted([(Mode.TINY, 2), (Mode.BASE, 1), (Mode.GUNDAM, 1)])


def test_page_tokens_land_exactly_at_their_image_positions(model: DeepSeekOCR) -> None:
    encoder = RecordingEncoder(model.config.hidden_size)
    model.page_encoder = lambda pages: encode_by_mode(encoder.encode, pages)
    pages = [FakePage(Mode.SMALL), FakePage(Mode.TINY)]
    try:
        prompt = model.prepare(["Memory:", pages[0], pages[1], FREE_OCR])
    finally:
        model.page_encoder = None
    by_mode = {mode: out for (mode, _), out in zip(encoder.calls, encoder.outputs, strict=True)}
    embeds = prompt.inputs_embeds[0]
    for page, (start, end) in zip(pages, prompt.image_spans, strict=True):
        assert torch.equal(embeds[start:end], by_mode[page.mode])
    text_positions = torch.ones(embeds.shape[0], dtype=torch.bool)
    for start, end in prompt.image_spans:
        text_positions[start:end] = False
    table = model.language_model.embed_tokens(prompt.input_ids[0])
    assert torch.equal(embeds[text_positions], table[text_positions])


def test_scattered_visual_tokens_give_the_same_logits_as_passing_embeddings_directly(
    model: DeepSeekOCR, tokenizer
) -> None:
    generator = torch.Generator().manual_seed(1)
    page_a = torch.randn(73, model.config.hidden_size, generator=generator)
    page_b = torch.randn(111, model.config.hidden_size, generator=generator)
    prompt = model.prepare(["Notes", page_a, "\n", page_b, TO_MARKDOWN])

    table = model.language_model.embed_tokens

    def text(s: str) -> torch.Tensor:
        return table(torch.tensor(tokenizer.encode(s, add_special_tokens=False)))

    direct = torch.cat(
        [table(torch.tensor([0])), text("Notes"), page_a, text("\n"), page_b, text(TO_MARKDOWN)]
    ).unsqueeze(0)
    with torch.inference_mode():
        via_scatter = model(inputs_embeds=prompt.inputs_embeds).logits
        via_direct = model(inputs_embeds=direct).logits
    assert via_scatter.shape == (1, direct.shape[1], model.config.vocab_size)
    torch.testing.assert_close(via_scatter, via_direct, rtol=0, atol=0)


def test_scatter_refuses_a_token_count_that_does_not_match_the_image_positions() -> None:
    ids = torch.tensor([[0, 9, 9, 9, 5]])
    embeds = torch.zeros(1, 5, 4)
    with pytest.raises(ValueError, match="3 <image> positions but 2 visual tokens"):
        scatter_visual_tokens(ids, embeds, [torch.ones(2, 4)], image_token_id=9)


def test_a_page_whose_encoder_output_disagrees_with_its_mode_is_refused(
    model: DeepSeekOCR,
) -> None:
    model.page_encoder = lambda pages: [torch.zeros(5, 48) for _ in pages]
    try:
        with pytest.raises(ValueError, match=r"Mode\.sequence_tokens says 73"):
            model.prepare(ocr_prompt(FakePage(Mode.TINY)))
    finally:
        model.page_encoder = None


def _page_prompt(model: DeepSeekOCR) -> list:
    page = torch.randn(73, model.config.hidden_size, generator=torch.Generator().manual_seed(3))
    return ocr_prompt(page)


def test_generation_is_deterministic_and_uses_the_kv_cache_correctly(model: DeepSeekOCR) -> None:
    prompt = model.prepare(_page_prompt(model))
    first = model.generate(prompt, max_new_tokens=6, ngram_size=None)
    second = model.generate(prompt, max_new_tokens=6, ngram_size=None)
    assert first.token_ids == second.token_ids
    assert len(first.token_ids) == 6 and first.finish_reason == "length"
    # The same greedy tokens, recomputing the whole sequence at every step without a cache.
    embeds = prompt.inputs_embeds
    expected: list[int] = []
    with torch.inference_mode():
        for _ in range(6):
            next_id = int(model(inputs_embeds=embeds).logits[0, -1].argmax())
            expected.append(next_id)
            if next_id == model.config.eos_token_id:
                break
            step = model.language_model.embed_tokens(torch.tensor([[next_id]]))
            embeds = torch.cat([embeds, step], dim=1)
    assert first.token_ids == expected
    # Decode steps ran the experts eagerly on the CPU; the model's own setting is left as it was.
    assert model.text_config._experts_implementation == "grouped_mm"


def test_generation_stops_at_eos_and_leaves_it_out_of_the_text(model: DeepSeekOCR) -> None:
    prompt = model.prepare(_page_prompt(model))
    free_run = model.generate(prompt, max_new_tokens=4, ngram_size=None).token_ids
    assert model.config.eos_token_id not in free_run
    # Point EOS's output row at the hidden state that chose the third token, strongly enough
    # to win there: generation must end with EOS no later than that step.
    eos = model.config.eos_token_id
    with torch.inference_mode():
        table = model.language_model.embed_tokens(torch.tensor([free_run[:2]]))
        hidden = model.language_model(
            inputs_embeds=torch.cat([prompt.inputs_embeds, table], dim=1)
        ).last_hidden_state[0, -1]
    saved = model.lm_head.weight[eos].clone()
    with torch.no_grad():
        model.lm_head.weight[eos] = hidden / hidden.norm() * 1e3
    try:
        result = model.generate(prompt, max_new_tokens=20, ngram_size=None)
    finally:
        with torch.no_grad():
            model.lm_head.weight[eos] = saved
    assert result.finish_reason == "stop"
    assert result.token_ids[-1] == eos and len(result.token_ids) <= 3
    assert result.token_ids[:-1] == free_run[: len(result.token_ids) - 1]
    assert model.tokenizer is not None
    assert result.text == model.tokenizer.decode(result.token_ids[:-1], skip_special_tokens=True)


def test_stream_yields_the_text_generate_returns(model: DeepSeekOCR) -> None:
    prompt = model.prepare(_page_prompt(model))
    pieces = list(model.stream(prompt, max_new_tokens=8))
    assert "".join(pieces) == model.generate(prompt, max_new_tokens=8).text
    assert all(pieces)


class ConstantHead(torch.nn.Module):
    """An ``lm_head`` that prefers the same tokens whatever the input: a looping model."""

    def __init__(self, preference: Sequence[int], vocab: int) -> None:
        super().__init__()
        logits = torch.zeros(vocab)
        for rank, token in enumerate(preference):
            logits[token] = 10.0 - rank
        self.logits = logits

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(*hidden.shape[:-1], -1)


def test_ngram_guard_blocks_a_repeat_during_generation(model: DeepSeekOCR) -> None:
    prompt = model.prepare(_page_prompt(model))
    head = model.lm_head
    model.lm_head = ConstantHead([7, 8, 9, 10, 11], model.config.vocab_size)  # type: ignore[assignment]
    try:
        looping = model.generate(prompt, max_new_tokens=8, ngram_size=None).token_ids
        guarded = model.generate(prompt, max_new_tokens=8, ngram_size=2, ngram_window=90)
        short_window = model.generate(prompt, max_new_tokens=8, ngram_size=2, ngram_window=2)
    finally:
        model.lm_head = head
    assert looping == [7] * 8
    # 7 7 → the bigram (7, 7) is taken, so 8; then (8, 7) is new; then 7 → 7 and 8 both taken.
    assert guarded.token_ids == [7, 7, 8, 7, 9, 7, 10, 7]
    bigrams = list(zip(guarded.token_ids, guarded.token_ids[1:], strict=False))
    assert len(bigrams) == len(set(bigrams))
    # A window of 2 only remembers the last bigram: (7, 7) is banned once, then forgotten.
    assert short_window.token_ids == [7, 7, 8, 7, 7, 8, 7, 7]


def test_ngram_processor_bans_only_within_its_window_and_spares_the_whitelist() -> None:
    scores = torch.zeros(1, 20)
    history = torch.tensor([[3, 4, 5, 6, 3, 4]])
    banned = NoRepeatNGramLogitsProcessor(ngram_size=3, window_size=90)(history, scores)
    assert torch.isinf(banned[0, 5]) and banned[0, 5] < 0
    assert int(torch.isinf(banned).sum()) == 1
    assert not torch.isinf(scores).any()  # the input is left alone
    narrow = NoRepeatNGramLogitsProcessor(ngram_size=3, window_size=4)(history, scores)
    assert not torch.isinf(narrow).any()  # (3, 4, 5) started 6 tokens back
    spared = NoRepeatNGramLogitsProcessor(3, 90, whitelist_token_ids=[5])(history, scores)
    assert not torch.isinf(spared).any()


def test_ngram_processor_rejects_a_window_smaller_than_the_ngram() -> None:
    with pytest.raises(ValueError, match="window_size"):
        NoRepeatNGramLogitsProcessor(ngram_size=30, window_size=10)


def test_generation_settings_default_to_the_official_pipeline(
    model: DeepSeekOCR, tokenizer
) -> None:
    settings = GenerationSettings()
    assert (settings.temperature, settings.ngram_size, settings.ngram_window) == (0.0, 30, 90)
    assert settings.ngram_whitelist is None  # then <td> and </td> may repeat, as officially
    expected = tuple(tokenizer.convert_tokens_to_ids(t) for t in ("<td>", "</td>"))
    assert model.table_token_ids() == expected and len(set(expected)) == 2


#: ``language_config`` of the ``config.json`` published with deepseek-ai/DeepSeek-OCR.
RELEASED_LANGUAGE_CONFIG = {
    "architectures": ["DeepseekV2ForCausalLM"],
    "auto_map": {
        "AutoConfig": "configuration_deepseekv2.DeepseekV2Config",
        "AutoModel": "modeling_deepseek.DeepseekV2Model",
        "AutoModelForCausalLM": "modeling_deepseek.DeepseekV2ForCausalLM",
    },
    "bos_token_id": 0,
    "eos_token_id": 1,
    "first_k_dense_replace": 1,
    "hidden_size": 1280,
    "intermediate_size": 6848,
    "kv_lora_rank": None,
    "lm_head": True,
    "max_position_embeddings": 8192,
    "moe_intermediate_size": 896,
    "n_group": 1,
    "n_routed_experts": 64,
    "n_shared_experts": 2,
    "num_attention_heads": 10,
    "num_experts_per_tok": 6,
    "num_hidden_layers": 12,
    "num_key_value_heads": 10,
    "q_lora_rank": None,
    "qk_nope_head_dim": 0,
    "qk_rope_head_dim": 0,
    "rm_head": False,
    "topk_group": 1,
    "topk_method": "greedy",
    "torch_dtype": "bfloat16",
    "use_mla": False,
    "v_head_dim": 0,
    "vocab_size": 129280,
}


def test_decoder_config_reads_the_official_language_config() -> None:
    config = DecoderConfig.from_language_config(RELEASED_LANGUAGE_CONFIG)
    assert config == DecoderConfig()
    text = config.text_config()
    assert (text.head_dim, text.num_key_value_heads, text.rms_norm_eps) == (128, 10, 1e-6)
    assert text.mlp_layer_types == ["dense"] + ["sparse"] * 11
    assert text.rope_parameters == {"rope_type": "default", "rope_theta": 10_000.0}
    assert (text.n_routed_experts, text.num_experts_per_tok, text.n_shared_experts) == (64, 6, 2)
    assert text.routed_scaling_factor == 1.0 and text.topk_method == "greedy"


def test_decoder_config_refuses_what_it_does_not_implement() -> None:
    with pytest.raises(ValueError, match="use_mla"):
        DecoderConfig.from_language_config({"use_mla": True})
    with pytest.raises(ValueError, match="norm_topk_prob"):
        DecoderConfig.from_language_config({"norm_topk_prob": True})
    with pytest.raises(ValueError, match="num_experts_per_tok"):
        DecoderConfig.from_language_config({"n_routed_experts": 4, "num_experts_per_tok": 6})


def test_bfloat16_keeps_rope_frequencies_in_float32(tokenizer) -> None:
    config = replace(DecoderConfig.tiny(), num_hidden_layers=1, vocab_size=len(tokenizer))
    model = DeepSeekOCR(config, tokenizer=tokenizer).to(torch.bfloat16)
    rotary = model.language_model.rotary_emb
    assert rotary.inv_freq.dtype == torch.float32
    assert model.lm_head.weight.dtype == torch.bfloat16
    expected = 1.0 / (10_000.0 ** (torch.arange(0, 12, 2).float() / 12))
    torch.testing.assert_close(rotary.inv_freq, expected)


def test_sampling_with_a_seed_is_reproducible(model: DeepSeekOCR) -> None:
    prompt = model.prepare(_page_prompt(model))
    a = model.generate(prompt, max_new_tokens=5, temperature=1.5, seed=11, ngram_size=None)
    b = model.generate(prompt, max_new_tokens=5, temperature=1.5, seed=11, ngram_size=None)
    assert a.token_ids == b.token_ids
    assert len(a.token_ids) == 5 or a.finish_reason == "stop"


def test_text_between_pages_is_encoded_as_one_string(model: DeepSeekOCR, tokenizer) -> None:
    page = torch.zeros(73, model.config.hidden_size)
    split = model.prepare(["Memory", " page", page, "\nFree", " OCR."])
    joined = model.prepare(["Memory page", page, FREE_OCR])
    assert torch.equal(split.input_ids, joined.input_ids)
    expected = tokenizer.encode("Memory page", add_special_tokens=False)
    assert split.input_ids[0, 1 : 1 + len(expected)].tolist() == expected
