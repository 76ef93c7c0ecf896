"""DeepEncoder: DeepSeek-OCR's vision encoder, from page pixels to visual tokens.

Read top to bottom, a page goes (sizes for BASE, a 1024-px view; ``g = S / 64``):

1. SAM-base (ViTDet), transformers' ``DeepseekOcr2SamVisionEncoder``: 16-px patches
   ``(B, 3, 1024, 1024) → (B, 64, 64, 768)``, absolute position table (64×64, bicubic to other
   sizes), 12 blocks with 14×14 windowed attention and global attention in blocks 2, 5, 8, 11,
   decomposed relative positions; neck 768 → 256; two 3×3 stride-2 convolutions 256 → 512 →
   1024: ``(B, 1024, 16, 16)``, 16× fewer tokens.
2. CLIP-L (:class:`ClipFromSam`): the SAM features, flattened, stand in for CLIP's patch
   embeddings; a CLS token goes first and the 257-entry position table is interpolated to the
   grid; ``pre_layrnorm``, then transformers' ``CLIPEncoder`` (24 layers, quick-GELU):
   ``(B, 1 + 256, 1024)``.
3. Fusion: CLIP's output without CLS, then the SAM features, concatenated ``(B, 256, 2048)``,
   one Linear → ``(B, 256, 1280)``, the decoder's width.
4. Layout (:func:`arrange_tokens`): each grid row is followed by the learned ``image_newline``;
   GUNDAM's tiles are stitched into one grid that comes first; the global view; one
   ``view_seperator`` (the checkpoint's spelling). ``n == Mode.sequence_tokens(w, h)``.

The transformers building blocks are used as they are; what is written here is the glue: the
CLIP embeddings fed from SAM, the fusion, and the token layout. :meth:`DeepEncoder.encode` is
the entry point; :meth:`DeepEncoder.from_checkpoint` loads the official weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from transformers.initialization import no_init_weights
from transformers.models.clip.modeling_clip import CLIPEncoder
from transformers.models.deepseek_ocr2.modeling_deepseek_ocr2 import (
    DeepseekOcr2SamVisionEncoder,
    DeepseekOcr2SamVisionSdpaAttention,
)

from optical_memory.model.checkpoint import (
    ENCODER_PREFIXES,
    load_official_state_dict,
    load_state_strict,
    official_to_encoder,
)
from optical_memory.model.config import DeepEncoderConfig
from optical_memory.model.preprocess import PreprocessedPage, preprocess
from optical_memory.modes import Mode


class BlockedRelPosAttention(DeepseekOcr2SamVisionSdpaAttention):
    """transformers' SAM "sdpa" attention, with the relative-position bias built in row blocks.

    Same parameters and the same arithmetic (scaled dot product plus the decomposed relative
    bias ``rel_h[q, k_row] + rel_w[q, k_col]``). transformers' version makes the whole
    ``(B·heads, HW, HW)`` bias in a permuted layout and then copies it into a second one: at
    1024 px a global block moves 12 × 4096 × 4096 floats three times (2.4 GB), longer than the
    block's matrix products take on a CPU. Here the bias is made once, contiguous, for at most
    :attr:`bias_budget` bytes' worth of query rows at a time (so LARGE pages and batches stay
    within memory); fewer, larger blocks keep SDPA's kernel efficient.
    """

    #: Bytes of attention bias alive at once: one BASE page's global bias is 805 MB in float32.
    bias_budget = 512 * 2**20

    def forward(  # type: ignore[override]  # the two parents annotate different returns
        self, hidden_states: torch.Tensor, output_attentions: bool = False
    ) -> tuple[torch.Tensor, None]:
        """``hidden_states (B, H, W, C)`` (B counts windows) → ``((B, H, W, C), None)``."""
        batch, height, width, _ = hidden_states.shape
        heads, tokens = self.num_attention_heads, height * width
        qkv = self.qkv(hidden_states).reshape(batch, tokens, 3, heads, -1).permute(2, 0, 3, 1, 4)
        query, key, value = qkv.unbind(0)  # (B, heads, HW, d) each
        rel_h = rel_w = None
        if self.use_rel_pos:
            flat_query = query.reshape(batch * heads, height, width, -1)
            rows = self.get_rel_pos(height, height, self.rel_pos_h)  # (H, H, d)
            columns = self.get_rel_pos(width, width, self.rel_pos_w)  # (W, W, d)
            rel_h = torch.einsum("bhwc,hkc->bhwk", flat_query, rows)
            rel_w = torch.einsum("bhwc,wkc->bhwk", flat_query, columns)
            rel_h = rel_h.reshape(batch, heads, tokens, height, 1).contiguous()
            rel_w = rel_w.reshape(batch, heads, tokens, 1, width).contiguous()
        row_bytes = batch * heads * tokens * query.element_size()
        block = max(1, self.bias_budget // row_bytes)
        outputs = []
        for start in range(0, tokens, block):
            stop = min(tokens, start + block)
            bias = None
            if rel_h is not None and rel_w is not None:
                bias = (rel_h[:, :, start:stop] + rel_w[:, :, start:stop]).view(
                    batch, heads, stop - start, tokens
                )
            outputs.append(
                F.scaled_dot_product_attention(query[:, :, start:stop], key, value, attn_mask=bias)
            )
        attended = torch.cat(outputs, dim=2) if len(outputs) > 1 else outputs[0]
        attended = attended.view(batch, heads, height, width, -1).permute(0, 2, 3, 1, 4)
        return self.proj(attended.reshape(batch, height, width, -1)), None


def interpolate_clip_positions(table: torch.Tensor, grid: int) -> torch.Tensor:
    """CLIP's position table resized to a ``grid × grid`` patch grid.

    ``table (1 + s*s, C)``, CLS row first → ``(1 + grid*grid, C)``. The CLS row is kept; the
    ``s × s`` rows are resized bicubically (antialiased, in float32) as the official
    ``get_abs_pos`` does; at ``grid == s`` the table is returned unchanged.
    """
    side = math.isqrt(table.shape[0] - 1)
    if side == grid:
        return table
    cls_row, patches = table[:1], table[1:]
    image = patches.reshape(1, side, side, -1).permute(0, 3, 1, 2).float()
    resized = F.interpolate(
        image, size=(grid, grid), mode="bicubic", align_corners=False, antialias=True
    )
    resized = resized.permute(0, 2, 3, 1).reshape(grid * grid, -1).to(table.dtype)
    return torch.cat([cls_row, resized], dim=0)


class ClipEmbeddings(nn.Module):
    """CLS token + SAM features as patch embeddings + interpolated position table.

    Parameter names are the official ``vision_model.embeddings.*``; ``patch_embedding`` (CLIP's
    own 14-px pixel patches) is in the checkpoint but never used, since SAM supplies the patches.
    """

    def __init__(self, config: DeepEncoderConfig) -> None:
        super().__init__()
        width = config.clip_width
        self.class_embedding = nn.Parameter(torch.zeros(width))
        self.patch_embedding = nn.Conv2d(
            3, width, config.clip_patch_size, stride=config.clip_patch_size, bias=False
        )
        self.position_embedding = nn.Embedding(config.clip_positions, width)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``features (B, C, g, g)`` from SAM → ``(B, 1 + g*g, C)``."""
        batch, _, height, width = features.shape
        if height != width:
            raise ValueError(f"CLIP positions need a square grid, got {height}x{width}")
        patches = features.flatten(2).transpose(1, 2)
        cls_token = self.class_embedding.expand(batch, 1, -1)
        tokens = torch.cat([cls_token, patches], dim=1)
        return tokens + interpolate_clip_positions(self.position_embedding.weight, height)


class ClipFromSam(nn.Module):
    """CLIP-L over SAM's features: embeddings, ``pre_layrnorm``, transformers' CLIPEncoder.

    No post-LayerNorm: DeepSeek-OCR uses the last layer's hidden states as they are.
    """

    def __init__(self, config: DeepEncoderConfig) -> None:
        super().__init__()
        self.embeddings = ClipEmbeddings(config)
        self.pre_layrnorm = nn.LayerNorm(config.clip_width, eps=1e-5)
        # Annotated as CLIPConfig, but CLIPVisionModel itself passes its CLIPVisionConfig.
        self.encoder = CLIPEncoder(config.clip_config())  # type: ignore[arg-type]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``features (B, C, g, g)`` → hidden states ``(B, 1 + g*g, C)``, CLS first."""
        hidden = self.pre_layrnorm(self.embeddings(features))
        return self.encoder(inputs_embeds=hidden).last_hidden_state


def arrange_tokens(
    global_view: torch.Tensor,
    tiles: torch.Tensor | None,
    grid: tuple[int, int] | None,
    newline: torch.Tensor,
    separator: torch.Tensor,
) -> torch.Tensor:
    """Lay out one page's visual tokens in the decoder's order.

    ``global_view (g*g, D)`` row-major; ``tiles (w*h, t*t, D)`` in row-major tile order with
    ``grid = (w, h)``, or ``None``; ``newline``, ``separator`` ``(D,)``. Returns
    ``((w*t + 1) * h*t + g*(g + 1) + 1, D)``: the tiles stitched into one ``h*t × w*t`` grid
    with a newline after each row, then the global grid with a newline after each row, then the
    separator.
    """
    dim = global_view.shape[-1]
    side = math.isqrt(global_view.shape[0])
    parts = []
    if tiles is not None:
        if grid is None or grid[0] * grid[1] != tiles.shape[0]:
            raise ValueError(f"{tiles.shape[0]} tiles do not fill the grid {grid}")
        columns, rows = grid
        tile = math.isqrt(tiles.shape[1])
        stitched = tiles.reshape(rows, columns, tile, tile, dim).permute(0, 2, 1, 3, 4)
        stitched = stitched.reshape(rows * tile, columns * tile, dim)
        parts.append(_rows_with_newlines(stitched, newline))
    parts.append(_rows_with_newlines(global_view.reshape(side, side, dim), newline))
    parts.append(separator[None])
    return torch.cat(parts, dim=0)


def _rows_with_newlines(grid: torch.Tensor, newline: torch.Tensor) -> torch.Tensor:
    """``grid (R, C, D)`` → ``(R * (C + 1), D)``, ``newline`` after each row."""
    rows = grid.shape[0]
    newlines = newline.to(grid.dtype).expand(rows, 1, -1)
    return torch.cat([grid, newlines], dim=1).reshape(-1, grid.shape[-1])


class DeepEncoder(nn.Module):
    """DeepSeek-OCR's vision encoder: pages in, ``[n, 1280]`` visual tokens out per page.

    Submodules carry transformers' names (``sam``: ``DeepseekOcr2SamVisionEncoder``,
    ``clip.encoder``: ``CLIPEncoder``); :func:`checkpoint.official_to_encoder` maps the official
    names onto them. A new instance has random weights (normal, std 0.02; LayerNorm scales near
    1), reproducible under ``torch.manual_seed``.
    """

    def __init__(self, config: DeepEncoderConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or DeepEncoderConfig()
        # transformers' own initialization is skipped: _init_random_weights replaces it.
        with no_init_weights():
            sam_config = config.sam_config()
            self.sam = DeepseekOcr2SamVisionEncoder(sam_config)
            if config.attn_implementation == "sdpa":
                for layer in self.sam.layers:
                    layer.attn = BlockedRelPosAttention(sam_config, layer.window_size)
            self.clip = ClipFromSam(config)
            self.projector = nn.Linear(2 * config.clip_width, config.output_width)
            self.image_newline = nn.Parameter(torch.empty(config.output_width))
            self.view_seperator = nn.Parameter(torch.empty(config.output_width))
        self._init_random_weights()

    @torch.no_grad()
    def _init_random_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.LayerNorm):
                # Distinct scales and shifts, so that a swapped norm cannot go unnoticed.
                nn.init.normal_(module.weight, mean=1.0, std=0.1)
                nn.init.normal_(module.bias, std=0.02)
            elif isinstance(module, (nn.Linear, nn.Conv2d, nn.Embedding)):
                for parameter in module.parameters(recurse=False):
                    nn.init.normal_(parameter, std=0.02)
        for name, parameter in self.named_parameters():
            if "rel_pos" in name or name.endswith(
                ("pos_embed", "class_embedding", "image_newline", "view_seperator")
            ):
                nn.init.normal_(parameter, std=0.02)

    @property
    def dtype(self) -> torch.dtype:
        return self.image_newline.dtype

    @property
    def device(self) -> torch.device:
        return self.image_newline.device

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """``pixels (B, 3, S, S)`` normalized → projected features ``(B, (S/64)², D)``."""
        sam = self.sam(pixel_values=pixels).last_hidden_state  # (B, 1024, S/64, S/64)
        clip = self.clip(sam)  # (B, 1 + (S/64)², 1024)
        fused = torch.cat([clip[:, 1:], sam.flatten(2).transpose(1, 2)], dim=-1)
        return self.projector(fused)

    def encode(
        self,
        images: Sequence[Image.Image | PreprocessedPage],
        mode: Mode | str,
        batch_size: int = 4,
    ) -> list[torch.Tensor]:
        """Visual tokens for each page, ``[mode.sequence_tokens(w, h), D]`` in the model dtype.

        ``images`` are PIL images (preprocessed here) or :class:`PreprocessedPage` s at
        ``mode``. Views of one size run together, at most ``batch_size`` at a time: every global
        view in one stream, every GUNDAM tile of every page in another.
        """
        mode = Mode.parse(mode)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        pages = [
            image if isinstance(image, PreprocessedPage) else preprocess(image, mode)
            for image in images
        ]
        wrong = [page.mode.value for page in pages if page.mode is not mode]
        if wrong:
            raise ValueError(f"pages preprocessed for {wrong} cannot be encoded at {mode.value}")
        if not pages:
            return []
        global_views = self._features([page.global_view for page in pages], batch_size)
        tiled = [page.tiles for page in pages if page.tiles is not None]
        tiles = self._features(tiled, batch_size) if tiled else None
        tokens, offset = [], 0
        with torch.no_grad():
            for page, global_view in zip(pages, global_views, strict=True):
                page_tiles = None
                if page.tiles is not None and tiles is not None:
                    count = page.tiles.shape[0]
                    page_tiles = tiles[offset : offset + count]
                    offset += count
                tokens.append(
                    arrange_tokens(
                        global_view, page_tiles, page.grid, self.image_newline, self.view_seperator
                    )
                )
        return tokens

    def _features(self, views: Sequence[torch.Tensor], batch_size: int) -> torch.Tensor:
        """Projected features of every view, ``(N, g², D)``; ``views`` are (3, S, S) or stacks."""
        pixels = torch.cat([view if view.dim() == 4 else view[None] for view in views])
        with torch.inference_mode():
            outputs = [
                self(chunk.to(device=self.device, dtype=self.dtype))
                for chunk in pixels.split(batch_size)
            ]
        # Concatenated outside inference mode: a normal tensor, usable where autograd is on.
        return torch.cat(outputs)

    @classmethod
    def from_checkpoint(
        cls,
        path: Path | str,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        config: DeepEncoderConfig | None = None,
    ) -> DeepEncoder:
        """DeepEncoder with the official weights from the local checkpoint directory ``path``.

        Reads only the encoder's tensors (the decoder's are left in the file), maps their names
        with :func:`checkpoint.official_to_encoder` and loads strictly: a missing, unexpected
        or mis-shaped tensor raises :class:`checkpoint.CheckpointError` naming it. ``dtype``
        defaults to the stored one (bfloat16 for the release); ``device`` to the CPU.
        """
        official = load_official_state_dict(path, prefixes=ENCODER_PREFIXES)
        state = {
            name: tensor.to(device=device, dtype=dtype)
            for name, tensor in official_to_encoder(official).items()
        }
        with torch.device("meta"):
            model = cls(config)
        load_state_strict(model, state, source=path)
        return model.eval()
