"""DeepEncoder speed: seconds per page per mode, tokens out, and GFLOP/s against a plain matmul.

    .venv/bin/python benchmarks/encoder.py [--modes tiny,small,base,large,gundam]
        [--dtypes float32,bfloat16] [--device cpu] [--batch 1] [--repeats 1] [--wall]

A random full-size encoder (401,372,160 parameters) encodes one synthetic page per mode
(GUNDAM: a portrait A4 page, 2x3 tiles plus the global view). FLOPs are counted per view as the
hardware executes them (a multiply-add is 2): SAM's patch embedding, per block the qkv and
output projections (windowed blocks on the window-padded grid, 70x70 for 64x64 tokens), the
attention products (14x14 windows, or global), the decomposed relative-position products and
the MLP; the neck and the two strided convolutions; CLIP-L's 24 layers on 1 + g*g tokens; the
projector. LayerNorms, softmax and activations are left out (a few per cent at most).

The reference is ``torch.matmul`` of (4096 x 768) by (768 x 3072) in the same dtype, the shape
of SAM's MLP at BASE, timed right before and right after each mode; the row's "% of matmul" is
the encoder's GFLOP/s over the mean of the two. On a CPU seconds are the process's CPU time
divided by torch's thread count (``time.process_time``): on a shared, loaded machine wall time
measures the neighbours, on an idle one the two agree; ``--wall`` uses wall time (the last
column always shows it). On CUDA wall time is used, with synchronization. Pages are
preprocessed before the clock starts.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import torch
from PIL import Image

from optical_memory.model.config import DeepEncoderConfig
from optical_memory.model.deepencoder import DeepEncoder
from optical_memory.model.preprocess import preprocess
from optical_memory.modes import TILE_SIZE, Mode, gundam_tiles

#: Page sizes: a portrait A4 page at 150 dpi (GUNDAM picks 2x3 tiles for it).
PAGE_SIZE = (1240, 1754)
MATMUL_SHAPE = (4096, 768, 3072)


def view_flops(config: DeepEncoderConfig, side: int) -> float:
    """FLOPs of one ``side``-px square view through DeepEncoder (see the module docstring)."""
    c, window = config.sam_width, config.sam_window
    p = side // config.patch_size  # SAM tokens per side
    n = p * p
    flops = 2.0 * n * c * 3 * config.patch_size**2  # patch embedding
    for layer in range(config.sam_layers):
        if layer in config.sam_global_layers:
            tokens = n
            attention = 2 * (2.0 * n * n * c)  # q·k and p·v over all heads
            relative = 2 * (2.0 * n * p * c)  # q·R_h and q·R_w
        else:
            padded = math.ceil(p / window) * window
            tokens = padded * padded
            windows = (padded // window) ** 2
            attention = 2 * (2.0 * windows * window**4 * c)
            relative = 2 * (2.0 * tokens * window * c)
        flops += 2.0 * tokens * c * 3 * c + 2.0 * tokens * c * c + attention + relative
        flops += 2 * (2.0 * n * c * config.sam_mlp)
    neck, (mid, out) = config.neck_channels, config.downsample_channels
    flops += 2.0 * n * c * neck + 2.0 * n * neck * neck * 9
    flops += 2.0 * (n // 4) * neck * mid * 9 + 2.0 * (n // 16) * mid * out * 9
    g = side // 64
    t, w = g * g + 1, config.clip_width
    clip_layer = 2.0 * t * w * 4 * w + 2 * (2.0 * t * t * w) + 2 * (2.0 * t * w * config.clip_mlp)
    flops += config.clip_layers * clip_layer
    flops += 2.0 * g * g * 2 * w * config.output_width
    return flops


def page_flops(config: DeepEncoderConfig, mode: Mode, size: tuple[int, int]) -> float:
    flops = view_flops(config, mode.size)
    grid = gundam_tiles(*size) if mode is Mode.GUNDAM else None
    if grid is not None:
        flops += grid[0] * grid[1] * view_flops(config, TILE_SIZE)
    return flops


def synthetic_page(size: tuple[int, int], seed: int = 0) -> Image.Image:
    generator = torch.Generator().manual_seed(seed)
    data = torch.randint(0, 256, (size[1], size[0], 3), dtype=torch.uint8, generator=generator)
    return Image.frombytes("RGB", size, data.numpy().tobytes())


def make_clock(device: torch.device, wall: bool) -> Callable[[], float]:
    if device.type == "cuda":

        def cuda_clock() -> float:
            torch.cuda.synchronize(device)
            return time.perf_counter()

        return cuda_clock
    if wall:
        return time.perf_counter
    threads = torch.get_num_threads()
    return lambda: time.process_time() / threads


def matmul_rate(dtype: torch.dtype, device: torch.device, clock: Callable[[], float]) -> float:
    """GFLOP/s of the reference matmul, best of a few runs after a warm-up."""
    m, k, n = MATMUL_SHAPE
    a = torch.randn(m, k, dtype=dtype, device=device)
    b = torch.randn(k, n, dtype=dtype, device=device)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(5):
        start = clock()
        torch.matmul(a, b)
        best = min(best, clock() - start)
    return 2.0 * m * k * n / best / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", default="tiny,small,base,large,gundam")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=1, help="pages per encode call")
    parser.add_argument("--repeats", type=int, default=1, help="timed calls per mode (best)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--wall", action="store_true", help="wall time instead of CPU time")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    modes = [Mode.parse(name) for name in args.modes.split(",")]
    clock = make_clock(device, args.wall)
    config = DeepEncoderConfig()
    clock_name = "wall" if device.type == "cuda" or args.wall else "CPU"
    print(
        f"DeepEncoder, {device}, {torch.get_num_threads()} threads, batch {args.batch}, "
        f"{clock_name} seconds, torch {torch.__version__}"
    )
    print(
        "| dtype | mode | tokens/page | GFLOP/page | s/page | pages/s | GFLOP/s "
        "| matmul GFLOP/s | % of matmul | wall s/page |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for dtype_name in args.dtypes.split(","):
        dtype = getattr(torch, dtype_name)
        torch.manual_seed(0)
        encoder = DeepEncoder(config).eval().to(device=device, dtype=dtype)
        encoder.encode([synthetic_page((512, 512))], Mode.TINY)  # warm-up
        for mode in modes:
            pages = [preprocess(synthetic_page(PAGE_SIZE, i), mode) for i in range(args.batch)]
            reference = matmul_rate(dtype, device, clock)
            best = best_wall = float("inf")
            for _ in range(args.repeats):
                start, start_wall = clock(), time.perf_counter()
                # GUNDAM's tiles run 4 at a time (encode's default) even for a single page.
                tokens = encoder.encode(pages, mode, batch_size=max(4, args.batch))
                best = min(best, clock() - start)
                best_wall = min(best_wall, time.perf_counter() - start_wall)
            reference = (reference + matmul_rate(dtype, device, clock)) / 2
            seconds = best / args.batch
            flops = page_flops(config, mode, PAGE_SIZE)
            rate = flops / seconds / 1e9
            print(
                f"| {dtype_name} | {mode.value} | {tokens[0].shape[0]} | {flops / 1e9:.0f} "
                f"| {seconds:.2f} | {1 / seconds:.2f} | {rate:.0f} | {reference:.0f} "
                f"| {100 * rate / reference:.0f}% | {best_wall / args.batch:.2f} |",
                flush=True,
            )
        del encoder


if __name__ == "__main__":
    main()
