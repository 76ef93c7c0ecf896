"""DeepEncoder: sizes, token counts and layout per mode, batching, dtypes, the CLIP glue.

Full-size tests use one random encoder per module (about 1.6 GB in float32) under
``torch.inference_mode``; per-mode token counts at TINY, SMALL and one GUNDAM grid run by
default, BASE and LARGE are marked slow (``make test`` still runs them).
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterator
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from tiny_deepseek import encoder_to_official

from optical_memory.extras import MissingExtraError
from optical_memory.model.checkpoint import official_to_encoder
from optical_memory.model.config import DeepEncoderConfig
from optical_memory.model.deepencoder import (
    BlockedRelPosAttention,
    DeepEncoder,
    arrange_tokens,
    interpolate_clip_positions,
)
from optical_memory.model.preprocess import preprocess
from optical_memory.modes import Mode


def noise_page(width: int, height: int, seed: int) -> Image.Image:
    """A reproducible page of random pixels (random weights need varied inputs)."""
    generator = torch.Generator().manual_seed(seed)
    data = torch.randint(0, 256, (height, width, 3), dtype=torch.uint8, generator=generator)
    return Image.frombytes("RGB", (width, height), data.numpy().tobytes())


def relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    return float((value.float() - reference.float()).norm() / reference.float().norm())


@pytest.fixture(scope="module")
def full_encoder() -> Iterator[DeepEncoder]:
    torch.manual_seed(0)
    encoder = DeepEncoder().eval()
    yield encoder
    del encoder


@pytest.fixture(scope="module")
def tiny_encoder() -> DeepEncoder:
    torch.manual_seed(1)
    return DeepEncoder(DeepEncoderConfig.tiny()).eval()


def assert_layout(tokens: torch.Tensor, encoder: DeepEncoder, grid: tuple[int, int] | None, g: int):
    """Newlines end every row of the tile grid and of the global grid; the separator is last."""
    newline, separator = encoder.image_newline, encoder.view_seperator
    position = 0
    if grid is not None:
        columns, rows = grid
        for _ in range(10 * rows):
            position += 10 * columns
            assert torch.equal(tokens[position], newline)
            position += 1
    for _ in range(g):
        assert not torch.equal(tokens[position], newline)
        position += g
        assert torch.equal(tokens[position], newline)
        position += 1
    assert torch.equal(tokens[position], separator)
    assert position == tokens.shape[0] - 1


# --- sizes -----------------------------------------------------------------------------------


def test_parameter_count_is_the_released_encoders() -> None:
    with torch.device("meta"):
        encoder = DeepEncoder()

    def count(module: torch.nn.Module) -> int:
        return sum(parameter.numel() for parameter in module.parameters())

    # SAM-base with neck and the two strided convs; CLIP-L including its unused pixel patch
    # embedding; the 2048 -> 1280 projector; image_newline and view_seperator.
    assert count(encoder.sam) == 95_569_152
    assert count(encoder.clip) == 303_177_728
    assert count(encoder.projector) == 2_622_720
    assert encoder.image_newline.numel() + encoder.view_seperator.numel() == 2_560
    assert count(encoder) == 401_372_160


def test_config_rejects_a_clip_width_that_sam_does_not_feed() -> None:
    with pytest.raises(ValueError, match="clip_width"):
        DeepEncoderConfig(clip_width=768)


# --- token counts and layout at full size ----------------------------------------------------

FULL_SIZE_CASES = [
    pytest.param(Mode.TINY, (800, 1100), None, id="tiny"),
    pytest.param(Mode.SMALL, (1100, 800), None, id="small"),
    pytest.param(Mode.GUNDAM, (1280, 640), (2, 1), id="gundam-2x1"),
    pytest.param(Mode.BASE, (800, 1100), None, id="base", marks=pytest.mark.slow),
    pytest.param(Mode.LARGE, (800, 1100), None, id="large", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("mode", "size", "grid"), FULL_SIZE_CASES)
def test_full_size_token_count_and_layout(
    full_encoder: DeepEncoder, mode: Mode, size: tuple[int, int], grid: tuple[int, int] | None
) -> None:
    (tokens,) = full_encoder.encode([noise_page(*size, seed=3)], mode)
    assert tokens.shape == (mode.sequence_tokens(*size), 1280)
    assert tokens.dtype == torch.float32
    assert torch.isfinite(tokens).all()
    assert_layout(tokens, full_encoder, grid, mode.grid)
    # Visual tokens vary over the page (no collapsed features).
    features = tokens[:-1][~(tokens[:-1] == full_encoder.image_newline).all(dim=1)]
    assert features.std(dim=0).mean() > 1e-3


def test_batch_of_three_equals_three_singles(full_encoder: DeepEncoder) -> None:
    pages = [noise_page(700 + 50 * i, 900, seed=i) for i in range(3)]
    batched = full_encoder.encode(pages, Mode.TINY, batch_size=3)
    for page, tokens in zip(pages, batched, strict=True):
        (single,) = full_encoder.encode([page], Mode.TINY)
        # Batched matrix products block differently: float32 rounding, nothing more.
        assert relative_error(tokens, single) < 1e-5
    assert relative_error(batched[0], batched[1]) > 0.1


def test_bfloat16_is_within_2e_2_of_float32(full_encoder: DeepEncoder) -> None:
    page = noise_page(640, 900, seed=4)
    (reference,) = full_encoder.encode([page], Mode.TINY)
    half = copy.deepcopy(full_encoder).to(torch.bfloat16)
    (tokens,) = half.encode([page], Mode.TINY)
    del half
    assert tokens.dtype == torch.bfloat16
    assert tokens.shape == reference.shape
    assert relative_error(tokens, reference) < 2e-2


def test_gundam_pages_with_different_grids_batch_like_singles(tiny_encoder: DeepEncoder) -> None:
    sizes = [(1280, 640), (600, 500), (640, 1280)]  # grids (2, 1), none, (1, 2)
    pages = [preprocess(noise_page(*size, seed=i), Mode.GUNDAM) for i, size in enumerate(sizes)]
    assert [page.grid for page in pages] == [(2, 1), None, (1, 2)]
    batched = tiny_encoder.encode(pages, Mode.GUNDAM, batch_size=2)
    for page, tokens, size in zip(pages, batched, sizes, strict=True):
        assert tokens.shape == (Mode.GUNDAM.sequence_tokens(*size), 48)
        assert_layout(tokens, tiny_encoder, page.grid, 16)
        (single,) = tiny_encoder.encode([page], Mode.GUNDAM)
        assert torch.allclose(tokens, single, rtol=1e-4, atol=1e-6)


def test_encode_rejects_pages_prepared_for_another_mode(tiny_encoder: DeepEncoder) -> None:
    page = preprocess(noise_page(100, 100, seed=0), Mode.SMALL)
    with pytest.raises(ValueError, match="small"):
        tiny_encoder.encode([page], Mode.TINY)
    assert tiny_encoder.encode([], "tiny") == []


# --- the token layout ------------------------------------------------------------------------


def test_tiles_are_stitched_into_one_grid_before_the_global_view() -> None:
    dim, tile = 3, 10
    # Feature (tile index, row, column) per token, for a 2-column, 1-row tile grid.
    index = torch.arange(2).view(2, 1, 1).expand(2, tile, tile)
    rows = torch.arange(tile).view(1, tile, 1).expand(2, tile, tile)
    columns = torch.arange(tile).view(1, 1, tile).expand(2, tile, tile)
    tiles = torch.stack([index, rows, columns], dim=-1).float().reshape(2, tile * tile, dim)
    global_view = torch.full((4, dim), 7.0)
    newline, separator = torch.full((dim,), -1.0), torch.full((dim,), -2.0)
    tokens = arrange_tokens(global_view, tiles, (2, 1), newline, separator)
    assert tokens.shape == ((2 * tile + 1) * tile + 2 * 3 + 1, dim)
    first_row = tokens[: 2 * tile + 1]
    # Row 0 of tile 0, then row 0 of tile 1, then a newline.
    assert first_row[:tile, 0].tolist() == [0.0] * tile
    assert first_row[tile : 2 * tile, 0].tolist() == [1.0] * tile
    assert first_row[:tile, 2].tolist() == list(range(tile))
    assert torch.equal(first_row[-1], newline)
    second_row = tokens[2 * tile + 1 : 2 * (2 * tile + 1)]
    assert second_row[:tile, 1].tolist() == [1.0] * tile  # tile row 1
    global_part = tokens[(2 * tile + 1) * tile :]
    assert torch.equal(global_part[0], global_view[0]) and torch.equal(global_part[2], newline)
    assert torch.equal(global_part[5], newline) and torch.equal(global_part[6], separator)


def test_tiles_that_do_not_fill_the_grid_are_refused() -> None:
    with pytest.raises(ValueError, match="do not fill"):
        arrange_tokens(
            torch.zeros(4, 2), torch.zeros(3, 100, 2), (2, 1), torch.zeros(2), torch.zeros(2)
        )


# --- the glue against plain reimplementations ------------------------------------------------


def test_clip_positions_interpolate_all_but_the_cls_row() -> None:
    table = torch.randn(257, 8)
    assert interpolate_clip_positions(table, 16) is table
    small = interpolate_clip_positions(table, 10)
    assert small.shape == (101, 8) and torch.equal(small[0], table[0])
    constant = interpolate_clip_positions(torch.ones(257, 8), 20)
    assert constant.shape == (401, 8) and torch.allclose(constant, torch.ones(401, 8), atol=1e-5)


def plain_official_clip(official: dict[str, torch.Tensor], features: torch.Tensor) -> torch.Tensor:
    """DeepSeek-OCR's VitModel over SAM features, written out from its released code."""
    prefix = "model.vision_model."
    batch, width, grid, _ = features.shape
    cls_token = official[prefix + "embeddings.class_embedding"].expand(batch, 1, width)
    x = torch.cat([cls_token, features.flatten(2).transpose(1, 2)], dim=1)
    table = official[prefix + "embeddings.position_embedding.weight"]
    side = int((table.shape[0] - 1) ** 0.5)
    patches = table[1:].view(1, side, side, width).permute(0, 3, 1, 2)
    resized = F.interpolate(patches, size=(grid, grid), mode="bicubic", antialias=True)
    x = x + torch.cat([table[:1], resized.permute(0, 2, 3, 1).reshape(-1, width)])
    x = F.layer_norm(
        x,
        (width,),
        official[prefix + "pre_layrnorm.weight"],
        official[prefix + "pre_layrnorm.bias"],
    )
    heads, layer = 2, 0
    while f"{prefix}transformer.layers.{layer}.layer_norm1.weight" in official:
        p = f"{prefix}transformer.layers.{layer}."

        def norm(t: torch.Tensor, name: str, p: str = p) -> torch.Tensor:
            return F.layer_norm(
                t, (width,), official[p + name + ".weight"], official[p + name + ".bias"]
            )

        qkv = F.linear(
            norm(x, "layer_norm1"),
            official[p + "self_attn.qkv_proj.weight"],
            official[p + "self_attn.qkv_proj.bias"],
        )
        q, k, v = qkv.view(batch, -1, 3, heads, width // heads).unbind(2)
        attended = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        )
        attended = attended.transpose(1, 2).reshape(batch, -1, width)
        x = x + F.linear(
            attended,
            official[p + "self_attn.out_proj.weight"],
            official[p + "self_attn.out_proj.bias"],
        )
        hidden = F.linear(
            norm(x, "layer_norm2"), official[p + "mlp.fc1.weight"], official[p + "mlp.fc1.bias"]
        )
        hidden = hidden * torch.sigmoid(1.702 * hidden)
        x = x + F.linear(hidden, official[p + "mlp.fc2.weight"], official[p + "mlp.fc2.bias"])
        layer += 1
    assert layer == 2
    return x


def test_clip_over_sam_features_matches_the_official_formulation(tiny_encoder: DeepEncoder) -> None:
    official = encoder_to_official(tiny_encoder.state_dict())
    features = torch.randn(2, 32, 10, 10)
    with torch.inference_mode():
        ours = tiny_encoder.clip(features)
        reference = plain_official_clip(official, features)
    assert relative_error(ours, reference) < 1e-5


@pytest.mark.parametrize("budget", [None, 2**20], ids=["default-budget", "many-blocks"])
def test_blocked_relative_position_attention_matches_transformers_eager(
    tiny_encoder: DeepEncoder, budget: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if budget is not None:  # 1 MiB: 64 query rows per block at 512 px, 16 blocks
        monkeypatch.setattr(BlockedRelPosAttention, "bias_budget", budget)
    eager = DeepEncoder(replace(DeepEncoderConfig.tiny(), attn_implementation="eager")).eval()
    eager.load_state_dict(tiny_encoder.state_dict())
    assert type(eager.sam.layers[0].attn).__name__ == "DeepseekOcr2SamVisionAttention"
    assert isinstance(tiny_encoder.sam.layers[0].attn, BlockedRelPosAttention)
    with torch.inference_mode():
        for side in (512, 640):  # windows padded at 640 (40 = 6*7 - 2); positions resized
            pixels = torch.randn(2, 3, side, side)
            assert relative_error(tiny_encoder(pixels), eager(pixels)) < 1e-5


def test_mapping_round_trip_keeps_every_tensor(tiny_encoder: DeepEncoder) -> None:
    state = tiny_encoder.state_dict()
    back = official_to_encoder(encoder_to_official(state))
    assert set(back) == set(state)
    assert all(torch.equal(back[name], state[name]) for name in state)


# --- packaging -------------------------------------------------------------------------------


def test_importing_the_model_package_without_torch_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [name for name in sys.modules if name.startswith("optical_memory.model")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingExtraError, match=r"optical-memory\[model\]"):
        import optical_memory.model  # noqa: F401
