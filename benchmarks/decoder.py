"""DeepSeek-OCR decoder speed: prefill and decode tokens per second, random weights.

    python benchmarks/decoder.py                      # tiny and full size, CPU, bfloat16
    python benchmarks/decoder.py --sizes tiny --dtypes float32,bfloat16 --threads 2
    python benchmarks/decoder.py --device cuda --sizes full   # on a GPU
    python benchmarks/decoder.py --sizes full --pages 10 --new-tokens 4   # prefix reuse, 10 pages

The prompt is what a memory question looks like to the decoder: BOS, ``--pages`` BASE pages of
visual tokens (273 each, random here, as DeepEncoder's would be), then a question; generation is
greedy with the KV cache and the n-gram guard, as ``DeepSeekOCR.generate`` runs it. Prefill
tokens/s = prompt length / time to the first new token; decode tokens/s = further new tokens /
their time. "full" is the released decoder's size (12 layers, width 1280, 64 experts, top-6,
vocabulary 129,280: 2.93 B parameters, ≈570 M active per token); its weights are random, so
its tokens are meaningless but its arithmetic is the real model's. "slice" is the full model's
first two layers (one dense, one MoE) with the full embedding and head, small enough for float32.

The second table is a follow-up question: the same pages, another question. Its prefill is
timed with the KV cache of the first question's prompt kept (the model's default: only the
part after the pages is computed) and without (``reuse_prefix = False``: everything again).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from optical_memory.model.config import DecoderConfig
from optical_memory.model.decoder import DeepSeekOCR
from optical_memory.model.generation import GenerationSettings
from optical_memory.model.prompt import PreparedPrompt
from optical_memory.modes import Mode


def build(size: str, dtype: torch.dtype, device: str, experts: str) -> DeepSeekOCR:
    configs = {
        "tiny": replace(DecoderConfig.tiny(), vocab_size=4096),
        # Full width and vocabulary, layers 0 (dense) and 1 (MoE) only: fits in float32 anywhere.
        "slice": replace(DecoderConfig(), num_hidden_layers=2),
        "full": DecoderConfig(),
    }
    config = configs[size]
    # Built on the meta device and filled in place: a full-size random init would take longer
    # than the measurement.
    with torch.device("meta"):
        model = DeepSeekOCR(config).to(dtype)
    model.to_empty(device=device)  # allocated in ``dtype`` right away
    generator = torch.Generator(device="cpu").manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("norm.weight"):
                parameter.fill_(1.0)
                continue
            for row in parameter.view(-1, parameter.shape[-1]).split(4096):
                row.copy_(torch.randn(row.shape, generator=generator).mul_(0.02))
    model.text_config._experts_implementation = experts
    return model.eval()


def prompt_for(
    model: DeepSeekOCR, pages: int, question_tokens: int, question_id: int = 7
) -> PreparedPrompt:
    """BOS, ``pages`` BASE pages of random visual tokens (the same ones for every call: seeded),
    then ``question_tokens`` copies of ``question_id``."""
    hidden = model.config.hidden_size
    n = Mode.BASE.sequence_tokens()
    ids = [model.config.bos_token_id] + [5] * (pages * n) + [question_id] * question_tokens
    input_ids = torch.tensor([ids], device=model.device)
    spans = [(1 + i * n, 1 + (i + 1) * n) for i in range(pages)]
    embeds = model.language_model.embed_tokens(input_ids).detach().clone()
    generator = torch.Generator().manual_seed(1)
    for start, end in spans:
        rows = torch.randn(end - start, hidden, generator=generator) * 0.5
        embeds[0, start:end] = rows.to(device=model.device, dtype=embeds.dtype)
    return PreparedPrompt(input_ids, embeds, spans)


def follow_up_prefill(
    model: DeepSeekOCR, first: PreparedPrompt, second: PreparedPrompt, reuse: bool
) -> tuple[float, int]:
    """Seconds to prefill ``second`` right after answering ``first``; positions reused."""
    sync = torch.cuda.synchronize if model.device.type == "cuda" else (lambda: None)
    model.reuse_prefix = reuse
    model.forget_prefix()
    for _ in model.generate_ids(first, GenerationSettings(max_new_tokens=2)):
        pass
    sync()
    start = time.perf_counter()
    prefill = model.prefill(second)
    sync()
    seconds = time.perf_counter() - start
    model.reuse_prefix = True
    return seconds, prefill.reused_tokens


def measure(model: DeepSeekOCR, prompt: PreparedPrompt, new_tokens: int) -> tuple[float, float]:
    settings = GenerationSettings(max_new_tokens=new_tokens)
    sync = torch.cuda.synchronize if model.device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    stamps = []
    for _ in model.generate_ids(prompt, settings):
        sync()
        stamps.append(time.perf_counter())
    prefill = prompt.input_ids.shape[1] / (stamps[0] - start)
    decode = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else float("nan")
    return prefill, decode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="tiny,slice,full", help="tiny, slice, full")
    parser.add_argument("--dtypes", default="bfloat16")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pages", type=int, default=1)
    parser.add_argument("--question-tokens", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--experts", default="grouped_mm", help="transformers experts backend")
    parser.add_argument("--repeats", type=int, default=2, help="best of N (after a warm-up)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(
        f"device {args.device}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"experts={args.experts}, prompt = BOS + {args.pages} BASE page(s) + "
        f"{args.question_tokens} text tokens, {args.new_tokens} new tokens\n"
    )
    print("| model | dtype | parameters | prompt tokens | prefill tokens/s | decode tokens/s |")
    print("|---|---|---:|---:|---:|---:|")
    follow_ups = []
    for size in args.sizes.split(","):
        for dtype_name in args.dtypes.split(","):
            dtype = getattr(torch, dtype_name)
            model = build(size, dtype, args.device, args.experts)
            prompt = prompt_for(model, args.pages, args.question_tokens)
            model.reuse_prefix = False  # every measured call prefills its whole prompt
            measure(model, prompt, 2)  # warm-up
            runs = [measure(model, prompt, args.new_tokens) for _ in range(args.repeats)]
            prefill = max(r[0] for r in runs)
            decode = max(r[1] for r in runs)
            params = sum(p.numel() for p in model.parameters())
            print(
                f"| {size} | {dtype_name} | {params / 1e6:,.1f} M | {prompt.input_ids.shape[1]} "
                f"| {prefill:,.1f} | {decode:,.2f} |",
                flush=True,
            )
            second = prompt_for(model, args.pages, args.question_tokens, question_id=8)
            timings = {
                reuse: min(
                    (follow_up_prefill(model, prompt, second, reuse) for _ in range(args.repeats)),
                    key=lambda run: run[0],
                )
                for reuse in (False, True)
            }
            follow_ups.append((size, dtype_name, second.input_ids.shape[1], timings))
            del model

    print("\nFollow-up question over the same pages: prefill time of the second call\n")
    print("| model | dtype | prompt tokens | without reuse s | with reuse s | reused | speed-up |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for size, dtype_name, length, timings in follow_ups:
        (cold, _), (warm, reused) = timings[False], timings[True]
        print(
            f"| {size} | {dtype_name} | {length} | {cold:.3f} | {warm:.3f} | {reused} "
            f"| {cold / warm:.1f}x |"
        )


if __name__ == "__main__":
    main()
