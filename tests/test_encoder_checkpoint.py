"""Loading DeepEncoder from the official checkpoint layout: names, files, strictness.

Checkpoints are written with the tests' ``save_official(encoder_to_official(...))``, i.e. under the
official parameter names; the full-size one (1.6 GB in float32) once per session.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from tiny_deepseek import OFFICIAL_WEIGHTS, encoder_to_official, save_official

from optical_memory.model.checkpoint import (
    ENCODER_PREFIXES,
    INDEX_FILE,
    CheckpointError,
    find_weight_files,
    load_official_state_dict,
    official_to_encoder,
)
from optical_memory.model.config import DeepEncoderConfig
from optical_memory.model.deepencoder import DeepEncoder
from optical_memory.modes import Mode

TINY = DeepEncoderConfig.tiny()


def noise_page(width: int, height: int, seed: int) -> Image.Image:
    generator = torch.Generator().manual_seed(seed)
    data = torch.randint(0, 256, (height, width, 3), dtype=torch.uint8, generator=generator)
    return Image.frombytes("RGB", (width, height), data.numpy().tobytes())


@pytest.fixture(scope="session")
def full_size_checkpoint(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Image.Image, torch.Tensor]:
    """A random full-size encoder saved under the official names, a page, and its tokens."""
    torch.manual_seed(0)
    encoder = DeepEncoder().eval()
    page = noise_page(700, 1000, seed=5)
    (tokens,) = encoder.encode([page], Mode.TINY)
    directory = tmp_path_factory.mktemp("deepseek-ocr-full")
    save_official(directory, encoder_to_official(encoder.state_dict()))
    del encoder
    return directory, page, tokens


@pytest.fixture(scope="module")
def tiny_official() -> dict[str, torch.Tensor]:
    torch.manual_seed(2)
    return encoder_to_official(DeepEncoder(TINY).state_dict())


@pytest.fixture
def write_checkpoint(tmp_path: Path) -> Callable[..., Path]:
    def write(tensors: dict[str, torch.Tensor], shards: int = 1) -> Path:
        save_official(tmp_path, tensors, shards=shards)
        return tmp_path

    return write


def tokens_of(encoder: DeepEncoder) -> torch.Tensor:
    (tokens,) = encoder.encode([noise_page(300, 200, seed=1)], Mode.TINY)
    return tokens


# --- the full-size layout --------------------------------------------------------------------


def test_full_size_checkpoint_reloads_to_identical_outputs(
    full_size_checkpoint: tuple[Path, Image.Image, torch.Tensor],
) -> None:
    directory, page, reference = full_size_checkpoint
    assert [file.name for file in find_weight_files(directory)] == [OFFICIAL_WEIGHTS]
    encoder = DeepEncoder.from_checkpoint(directory)
    assert encoder.dtype == torch.float32 and encoder.device.type == "cpu"
    (tokens,) = encoder.encode([page], Mode.TINY)
    assert torch.equal(tokens, reference)


def test_full_size_official_names_and_shapes() -> None:
    with torch.device("meta"):
        official = encoder_to_official(DeepEncoder().state_dict())
    # SAM 179 (2 patch + pos + 12 x 14 + neck 6 + 2 convs), CLIP 293 (3 embeddings + 24 x 12
    # + pre_layrnorm 2), projector 2, two vectors: 476 of the release's 2,710 tensors.
    assert len(official) == 476
    assert all(name.startswith(ENCODER_PREFIXES) for name in official)
    shapes = {name: tuple(tensor.shape) for name, tensor in official.items()}
    expected = {
        "model.sam_model.pos_embed": (1, 64, 64, 768),
        "model.sam_model.patch_embed.proj.weight": (768, 3, 16, 16),
        "model.sam_model.blocks.0.norm1.weight": (768,),
        "model.sam_model.blocks.0.attn.rel_pos_h": (27, 64),
        "model.sam_model.blocks.2.attn.rel_pos_w": (127, 64),
        "model.sam_model.blocks.11.mlp.lin2.weight": (768, 3072),
        "model.sam_model.neck.0.weight": (256, 768, 1, 1),
        "model.sam_model.neck.1.bias": (256,),
        "model.sam_model.neck.2.weight": (256, 256, 3, 3),
        "model.sam_model.neck.3.weight": (256,),
        "model.sam_model.net_2.weight": (512, 256, 3, 3),
        "model.sam_model.net_3.weight": (1024, 512, 3, 3),
        "model.vision_model.embeddings.class_embedding": (1024,),
        "model.vision_model.embeddings.patch_embedding.weight": (1024, 3, 14, 14),
        "model.vision_model.embeddings.position_embedding.weight": (257, 1024),
        "model.vision_model.pre_layrnorm.weight": (1024,),
        "model.vision_model.transformer.layers.23.self_attn.qkv_proj.weight": (3072, 1024),
        "model.vision_model.transformer.layers.23.self_attn.qkv_proj.bias": (3072,),
        "model.vision_model.transformer.layers.0.self_attn.out_proj.weight": (1024, 1024),
        "model.vision_model.transformer.layers.0.mlp.fc1.weight": (4096, 1024),
        "model.vision_model.transformer.layers.0.layer_norm2.bias": (1024,),
        "model.projector.layers.weight": (1280, 2048),
        "model.projector.layers.bias": (1280,),
        "model.image_newline": (1280,),
        "model.view_seperator": (1280,),
    }
    assert {name: shapes.get(name) for name in expected} == expected


# --- the mapping -----------------------------------------------------------------------------


def test_fused_clip_qkv_splits_into_q_k_v_in_row_order() -> None:
    name = "model.vision_model.transformer.layers.3.self_attn.qkv_proj"
    weight = torch.arange(12 * 4, dtype=torch.float32).view(12, 4)
    bias = torch.arange(12, dtype=torch.float32)
    state = official_to_encoder({f"{name}.weight": weight, f"{name}.bias": bias})
    prefix = "clip.encoder.layers.3.self_attn."
    assert torch.equal(state[prefix + "q_proj.weight"], weight[0:4])
    assert torch.equal(state[prefix + "k_proj.weight"], weight[4:8])
    assert torch.equal(state[prefix + "v_proj.weight"], weight[8:12])
    assert state[prefix + "v_proj.bias"].tolist() == [8.0, 9.0, 10.0, 11.0]


def test_official_sam_names_map_to_transformers_names() -> None:
    tensor = torch.zeros(1)
    names = {
        "model.sam_model.blocks.7.norm2.bias": "sam.layers.7.layer_norm2.bias",
        "model.sam_model.blocks.10.attn.qkv.weight": "sam.layers.10.attn.qkv.weight",
        "model.sam_model.patch_embed.proj.weight": "sam.patch_embed.projection.weight",
        "model.sam_model.neck.3.weight": "sam.neck.layer_norm2.weight",
        "model.sam_model.net_3.weight": "sam.proj.conv2.weight",
        "model.vision_model.pre_layrnorm.bias": "clip.pre_layrnorm.bias",
        "model.projector.layers.weight": "projector.weight",
        "model.view_seperator": "view_seperator",
    }
    decoder = {"model.layers.1.mlp.experts.5.up_proj.weight": tensor, "lm_head.weight": tensor}
    state = official_to_encoder({**dict.fromkeys(names, tensor), **decoder})
    assert sorted(state) == sorted(names.values())


# --- loading ---------------------------------------------------------------------------------


def test_decoder_tensors_in_the_same_file_are_ignored(
    tiny_official: dict[str, torch.Tensor], write_checkpoint: Callable[..., Path]
) -> None:
    decoder = {
        "model.embed_tokens.weight": torch.randn(10, 48),
        "model.layers.0.self_attn.q_proj.weight": torch.randn(48, 48),
        "model.norm.weight": torch.ones(48),
        "lm_head.weight": torch.randn(10, 48),
    }
    directory = write_checkpoint({**tiny_official, **decoder})
    assert set(load_official_state_dict(directory, ENCODER_PREFIXES)) == set(tiny_official)
    encoder = DeepEncoder.from_checkpoint(directory, config=TINY)
    reference = DeepEncoder(TINY).eval()
    reference.load_state_dict(official_to_encoder(tiny_official))
    assert torch.equal(tokens_of(encoder), tokens_of(reference))


def test_sharded_checkpoint_is_read_through_its_index(
    tiny_official: dict[str, torch.Tensor], write_checkpoint: Callable[..., Path]
) -> None:
    directory = write_checkpoint(tiny_official, shards=3)
    (directory / "stray-copy.safetensors").write_bytes(b"not listed in the index")
    files = find_weight_files(directory)
    assert [file.name for file in files] == [
        f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)
    ]
    assert (directory / INDEX_FILE).exists()
    loaded = load_official_state_dict(directory)
    assert set(loaded) == set(tiny_official)
    assert all(torch.equal(loaded[name], tiny_official[name]) for name in loaded)


def test_dtype_and_device_are_chosen_at_load(
    tiny_official: dict[str, torch.Tensor], write_checkpoint: Callable[..., Path]
) -> None:
    halves = {name: tensor.to(torch.bfloat16) for name, tensor in tiny_official.items()}
    directory = write_checkpoint(halves)
    stored = DeepEncoder.from_checkpoint(directory, config=TINY)
    assert stored.dtype == torch.bfloat16  # the release's dtype, kept by default
    widened = DeepEncoder.from_checkpoint(directory, dtype=torch.float32, device="cpu", config=TINY)
    assert all(p.dtype == torch.float32 for p in widened.parameters())
    assert tokens_of(stored).dtype == torch.bfloat16
    assert tokens_of(widened).dtype == torch.float32


def test_missing_tensor_is_named(
    tiny_official: dict[str, torch.Tensor], write_checkpoint: Callable[..., Path]
) -> None:
    tensors = dict(tiny_official)
    del tensors["model.sam_model.blocks.1.norm2.weight"]
    del tensors["model.vision_model.transformer.layers.0.self_attn.qkv_proj.bias"]
    directory = write_checkpoint(tensors)
    with pytest.raises(CheckpointError) as error:
        DeepEncoder.from_checkpoint(directory, config=TINY)
    message = str(error.value)
    assert "2 missing tensor(s)" in message
    assert "model.sam_model.blocks.1.norm2.weight" in message
    assert "model.vision_model.transformer.layers.0.self_attn.qkv_proj.bias" in message
    assert str(directory) in message and "deepseek-ai/DeepSeek-OCR" in message


def test_unexpected_tensor_is_named(
    tiny_official: dict[str, torch.Tensor], write_checkpoint: Callable[..., Path]
) -> None:
    extra = {"model.sam_model.blocks.0.attn.gate": torch.zeros(3)}
    directory = write_checkpoint({**tiny_official, **extra})
    with pytest.raises(
        CheckpointError, match=r"1 unexpected tensor\(s\): model\.sam_model\.blocks\.0\.attn\.gate"
    ):
        DeepEncoder.from_checkpoint(directory, config=TINY)


def test_misshaped_tensor_is_named_with_both_shapes(
    tiny_official: dict[str, torch.Tensor], write_checkpoint: Callable[..., Path]
) -> None:
    tensors = {**tiny_official, "model.projector.layers.weight": torch.zeros(48, 60)}
    directory = write_checkpoint(tensors)
    with pytest.raises(CheckpointError) as error:
        DeepEncoder.from_checkpoint(directory, config=TINY)
    assert "mis-shaped" in str(error.value)
    assert "model.projector.layers.weight (checkpoint (48, 60), model (48, 64))" in str(error.value)


def test_full_size_model_refuses_a_small_checkpoint(
    tiny_official: dict[str, torch.Tensor], write_checkpoint: Callable[..., Path]
) -> None:
    directory = write_checkpoint(tiny_official)
    with pytest.raises(CheckpointError) as error:
        DeepEncoder.from_checkpoint(directory)
    # The tiny checkpoint has 2 of SAM's 12 blocks and narrower tensors everywhere.
    assert re.search(r"\d+ missing tensor\(s\): model\.", str(error.value))
    assert re.search(r"\d+ mis-shaped tensor\(s\): model\.", str(error.value))


def test_directory_without_weights_says_what_to_download(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError) as error:
        DeepEncoder.from_checkpoint(tmp_path)
    message = str(error.value)
    assert f"no *.safetensors weights in {tmp_path}" in message
    assert "download deepseek-ai/DeepSeek-OCR into that directory" in message
    with pytest.raises(CheckpointError, match="is not a directory"):
        find_weight_files(tmp_path / "absent")


def test_corrupt_file_raises_checkpoint_error(tmp_path: Path) -> None:
    (tmp_path / OFFICIAL_WEIGHTS).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage")
    with pytest.raises(CheckpointError, match=f"cannot read .*{OFFICIAL_WEIGHTS}.*damaged"):
        DeepEncoder.from_checkpoint(tmp_path, config=TINY)


def test_index_naming_an_absent_shard_raises(
    tiny_official: dict[str, torch.Tensor], write_checkpoint: Callable[..., Path]
) -> None:
    directory = write_checkpoint(tiny_official, shards=2)
    (directory / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"model-00002-of-00002\.safetensors"):
        find_weight_files(directory)


def test_a_tensor_stored_in_two_files_raises(tmp_path: Path) -> None:
    tensor = {"model.image_newline": torch.zeros(48)}
    save_file(tensor, str(tmp_path / "model.safetensors"))
    save_file(tensor, str(tmp_path / OFFICIAL_WEIGHTS))
    with pytest.raises(CheckpointError, match=r"model\.image_newline is stored in both"):
        load_official_state_dict(tmp_path)
