"""Loading DeepSeek-OCR from a checkpoint directory laid out like the official one.

Weights are random, written under the official names with ``save_official`` (tests' own) next
to a ``config.json`` shaped like the released one and a tokenizer trained in the test, then
read back through the same ``DeepSeekOCR.from_checkpoint`` a user calls on the real weights.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw
from tiny_deepseek import (
    encoder_to_official,
    save_official,
    tiny_model,
    to_official_state_dict,
    write_checkpoint,
    write_config,
    write_tokenizer,
)

from optical_memory.model.checkpoint import (
    CheckpointError,
    map_decoder_state_dict,
    map_official_state_dict,
    official_name,
)
from optical_memory.model.config import DecoderConfig, DeepEncoderConfig
from optical_memory.model.decoder import DeepSeekOCR
from optical_memory.model.deepencoder import DeepEncoder
from optical_memory.model.prompt import PromptPart, ocr_prompt
from optical_memory.model.tokenizer import TokenizerFilesError, load_tokenizer
from optical_memory.modes import Mode

torch.set_num_threads(2)


class Page:
    def __init__(self, image: Image.Image, mode: Mode) -> None:
        self.image, self.mode = image, mode


def _page_image() -> Image.Image:
    image = Image.new("RGB", (700, 900), "white")
    ImageDraw.Draw(image).text((40, 40), "Seaview hotel, booking 4417", fill="black")
    return image


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[DeepSeekOCR, Path]:
    directory = tmp_path_factory.mktemp("tiny-deepseek-ocr")
    model: DeepSeekOCR = tiny_model(directory)
    write_checkpoint(directory, model, torch.float32)
    return model, directory


def test_tiny_checkpoint_loads_and_answers_exactly_like_the_model_it_came_from(tiny) -> None:
    original, directory = tiny
    loaded = DeepSeekOCR.from_checkpoint(
        directory, dtype=torch.float32, encoder_config=DeepEncoderConfig.tiny()
    )
    assert loaded.config == original.config
    assert loaded.image_token_id == original.image_token_id
    for name, tensor in original.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    pages = [Page(_page_image(), Mode.TINY), Page(_page_image(), Mode.SMALL)]
    parts: list[PromptPart] = ["Memory:", pages[0], "\n", pages[1], "\nWhich hotel?"]
    with torch.inference_mode():
        a = original.prepare(parts)
        b = loaded.prepare(parts)
        assert torch.equal(a.input_ids, b.input_ids)
        assert [end - start for start, end in b.image_spans] == [73, 111]
        torch.testing.assert_close(
            loaded(inputs_embeds=b.inputs_embeds).logits,
            original(inputs_embeds=a.inputs_embeds).logits,
            rtol=0,
            atol=0,
        )
    assert loaded.generate(b, max_new_tokens=5) == original.generate(a, max_new_tokens=5)


def test_checkpoint_stores_one_tensor_per_expert_under_the_official_names(tiny) -> None:
    from safetensors import safe_open

    original, directory = tiny
    with safe_open(str(directory / "model-00001-of-000001.safetensors"), "pt") as reader:
        names = set(reader.keys())
        gate = reader.get_tensor("model.layers.1.mlp.experts.3.gate_proj.weight")
    assert not any("gate_up_proj" in name for name in names)
    assert {f"model.layers.1.mlp.experts.{e}.down_proj.weight" for e in range(4)} <= names
    assert {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"} <= names
    assert "model.layers.1.mlp.gate.weight" in names
    assert "model.layers.1.mlp.shared_experts.up_proj.weight" in names
    assert "model.layers.0.mlp.gate_proj.weight" in names  # layer 0 is dense
    stacked = original.language_model.layers[1].mlp.experts.gate_up_proj
    assert torch.equal(gate, stacked[3, :32])


def test_decoder_mapping_stacks_each_experts_gate_rows_then_up_rows() -> None:
    experts, inner, hidden = 3, 4, 5
    official = {}
    for e in range(experts):
        official[f"model.layers.2.mlp.experts.{e}.gate_proj.weight"] = torch.full(
            (inner, hidden), 10.0 * e + 1
        )
        official[f"model.layers.2.mlp.experts.{e}.up_proj.weight"] = torch.full(
            (inner, hidden), 10.0 * e + 2
        )
        official[f"model.layers.2.mlp.experts.{e}.down_proj.weight"] = torch.full(
            (hidden, inner), 10.0 * e + 3
        )
    official["model.layers.2.mlp.gate.weight"] = torch.zeros(experts, hidden)
    mapped = map_decoder_state_dict(official)
    gate_up = mapped["language_model.layers.2.mlp.experts.gate_up_proj"]
    down = mapped["language_model.layers.2.mlp.experts.down_proj"]
    assert gate_up.shape == (experts, 2 * inner, hidden) and down.shape == (experts, hidden, inner)
    for e in range(experts):
        assert gate_up[e, :inner].unique().tolist() == [10.0 * e + 1]
        assert gate_up[e, inner:].unique().tolist() == [10.0 * e + 2]
        assert down[e].unique().tolist() == [10.0 * e + 3]
    assert "language_model.layers.2.mlp.gate.weight" in mapped
    back = to_official_state_dict(mapped)
    assert back.keys() == official.keys()
    assert all(torch.equal(back[name], official[name]) for name in official)


def _official(directory: Path) -> dict[str, torch.Tensor]:
    from optical_memory.model.checkpoint import load_official_state_dict

    return load_official_state_dict(directory)


def _rewrite(directory: Path, target: Path, change) -> Path:
    tensors = _official(directory)
    change(tensors)
    save_official(target, tensors)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (target / name).write_bytes((directory / name).read_bytes())
    return target


def test_a_missing_expert_tensor_is_named(tiny, tmp_path: Path) -> None:
    _, directory = tiny
    name = "model.layers.1.mlp.experts.2.up_proj.weight"
    broken = _rewrite(directory, tmp_path, lambda t: t.pop(name))
    with pytest.raises(CheckpointError, match=name.replace(".", r"\.")):
        DeepSeekOCR.from_checkpoint(broken, encoder_config=DeepEncoderConfig.tiny())


def test_a_missing_or_misshaped_decoder_tensor_is_named_by_its_official_name(
    tiny, tmp_path: Path
) -> None:
    _, directory = tiny

    def damage(tensors: dict[str, torch.Tensor]) -> None:
        tensors.pop("model.layers.0.self_attn.o_proj.weight")
        tensors["model.norm.weight"] = torch.ones(7)

    broken = _rewrite(directory, tmp_path, damage)
    with pytest.raises(CheckpointError) as error:
        DeepSeekOCR.from_checkpoint(broken, encoder_config=DeepEncoderConfig.tiny())
    message = str(error.value)
    assert "missing" in message and "model.layers.0.self_attn.o_proj.weight" in message
    assert "mis-shaped" in message and "model.norm.weight (checkpoint (7,), model (48,))" in message


def test_an_unknown_decoder_tensor_is_refused(tiny, tmp_path: Path) -> None:
    _, directory = tiny
    broken = _rewrite(
        directory, tmp_path, lambda t: t.update({"model.mystery.weight": torch.zeros(2)})
    )
    with pytest.raises(CheckpointError, match=r"unexpected decoder tensor\(s\): model\.mystery"):
        DeepSeekOCR.from_checkpoint(broken, encoder_config=DeepEncoderConfig.tiny())


def test_a_directory_without_weights_says_what_to_download(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="deepseek-ai/DeepSeek-OCR"):
        DeepSeekOCR.from_checkpoint(tmp_path)


def test_a_directory_without_the_tokenizer_says_so(tiny, tmp_path: Path) -> None:
    _, directory = tiny
    for name in ("model-00001-of-000001.safetensors", "config.json"):
        (tmp_path / name).write_bytes((directory / name).read_bytes())
    with pytest.raises(TokenizerFilesError, match=r"no tokenizer\.json"):
        DeepSeekOCR.from_checkpoint(tmp_path, encoder_config=DeepEncoderConfig.tiny())


def _official_decoder_shapes(config: DecoderConfig) -> dict[str, tuple[int, ...]]:
    """The released decoder's tensor names and shapes, written out from its published sizes."""
    h, v = config.hidden_size, config.vocab_size
    shapes: dict[str, tuple[int, ...]] = {
        "model.embed_tokens.weight": (v, h),
        "model.norm.weight": (h,),
        "lm_head.weight": (v, h),
    }
    for n in range(config.num_hidden_layers):
        p = f"model.layers.{n}."
        for proj in "qkvo":
            shapes[f"{p}self_attn.{proj}_proj.weight"] = (h, h)
        shapes[f"{p}input_layernorm.weight"] = (h,)
        shapes[f"{p}post_attention_layernorm.weight"] = (h,)
        if n < config.first_k_dense_replace:
            shapes[f"{p}mlp.gate_proj.weight"] = (config.intermediate_size, h)
            shapes[f"{p}mlp.up_proj.weight"] = (config.intermediate_size, h)
            shapes[f"{p}mlp.down_proj.weight"] = (h, config.intermediate_size)
            continue
        inner, shared = config.moe_intermediate_size, 2 * config.moe_intermediate_size
        shapes[f"{p}mlp.gate.weight"] = (config.n_routed_experts, h)
        for e in range(config.n_routed_experts):
            shapes[f"{p}mlp.experts.{e}.gate_proj.weight"] = (inner, h)
            shapes[f"{p}mlp.experts.{e}.up_proj.weight"] = (inner, h)
            shapes[f"{p}mlp.experts.{e}.down_proj.weight"] = (h, inner)
        shapes[f"{p}mlp.shared_experts.gate_proj.weight"] = (shared, h)
        shapes[f"{p}mlp.shared_experts.up_proj.weight"] = (shared, h)
        shapes[f"{p}mlp.shared_experts.down_proj.weight"] = (h, shared)
    return shapes


def test_the_full_size_layout_maps_every_official_name_onto_the_model() -> None:
    """All 2,710 tensors and 3,336,106,240 parameters of the release, on the meta device."""
    with torch.device("meta"):
        model = DeepSeekOCR(DecoderConfig(), encoder=DeepEncoder())
        encoder_state = model.encoder.state_dict()  # type: ignore[union-attr]
    official = {
        name: torch.empty(shape, device="meta")
        for name, shape in _official_decoder_shapes(DecoderConfig()).items()
    }
    official.update(encoder_to_official(encoder_state))
    assert len(official) == 2710
    assert sum(math.prod(t.shape) for t in official.values()) == 3_336_106_240
    mapped = map_official_state_dict(official)
    expected = model.state_dict()
    assert mapped.keys() == expected.keys()
    assert all(mapped[n].shape == expected[n].shape for n in expected)
    experts = mapped["language_model.layers.11.mlp.experts.gate_up_proj"]
    assert tuple(experts.shape) == (64, 2 * 896, 1280)
    assert tuple(mapped["language_model.layers.5.mlp.experts.down_proj"].shape) == (64, 1280, 896)
    assert official_name("language_model.layers.3.mlp.experts.down_proj") == (
        "model.layers.3.mlp.experts.E.down_proj.weight"
    )


@pytest.mark.slow
def test_a_full_width_checkpoint_with_one_moe_layer_loads_every_tensor(tmp_path: Path) -> None:
    """Width 1280, 64 experts of 896, top-6, a real safetensors file in bfloat16."""
    write_tokenizer(tmp_path)
    vocab = len(load_tokenizer(tmp_path))
    config = replace(DecoderConfig(), num_hidden_layers=2, vocab_size=vocab)
    encoder_config = replace(DeepEncoderConfig.tiny(), output_width=1280)
    with torch.device("meta"):
        layout = DeepSeekOCR(config, encoder=DeepEncoder(encoder_config))
    generator = torch.Generator().manual_seed(0)
    official = {
        name: (torch.randn(t.shape, generator=generator) * 0.02).to(torch.bfloat16)
        for name, t in to_official_state_dict(layout.state_dict()).items()
    }
    moe = "model.layers.1.mlp.experts."
    assert sum(name.startswith(moe) for name in official) == 64 * 3
    save_official(tmp_path, official)
    write_config(tmp_path, config)
    loaded = DeepSeekOCR.from_checkpoint(tmp_path, encoder_config=encoder_config)
    state = loaded.state_dict()
    assert state.keys() == layout.state_dict().keys()
    assert all(t.dtype == torch.bfloat16 for t in state.values())
    stacked = state["language_model.layers.1.mlp.experts.gate_up_proj"]
    assert tuple(stacked.shape) == (64, 1792, 1280)
    for e in (0, 17, 63):
        assert torch.equal(stacked[e, :896], official[f"{moe}{e}.gate_proj.weight"])
        assert torch.equal(stacked[e, 896:], official[f"{moe}{e}.up_proj.weight"])
        down = state["language_model.layers.1.mlp.experts.down_proj"][e]
        assert torch.equal(down, official[f"{moe}{e}.down_proj.weight"])
    back = to_official_state_dict(state)
    assert back.keys() == official.keys()
    assert all(torch.equal(back[name], official[name]) for name in official)
    page = Page(_page_image(), Mode.TINY)
    answer = loaded.generate(ocr_prompt(page), max_new_tokens=3, ngram_size=None)
    assert len(answer.token_ids) >= 1 and answer.prompt_vision_tokens == 73
