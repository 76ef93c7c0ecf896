"""Ask the local DeepSeek-OCR about memory pages.

    python examples/deepseek_ocr_local.py --weights /models/DeepSeek-OCR
    python examples/deepseek_ocr_local.py --weights DIR --image scan.png --mode base --task markdown

Without ``--image`` it builds a small optical memory from a short made-up dialogue, shows the
model its oldest page and asks for a free OCR of it, then asks a question over every page. The
weights are never downloaded here: ``--weights`` must be a local directory holding the official
checkpoint (``config.json``, ``model-00001-of-000001.safetensors``, ``tokenizer.json``, ...).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DOWNLOAD_HELP = """\
no DeepSeek-OCR checkpoint in {path}.

Download deepseek-ai/DeepSeek-OCR from the Hugging Face Hub (about 6.7 GB, one bf16
safetensors file plus config.json and the tokenizer files) into a directory, e.g.

    pip install -U huggingface_hub
    hf download deepseek-ai/DeepSeek-OCR --local-dir {path}

then run again with --weights {path}. This example never downloads anything itself.
"""


@dataclass(frozen=True)
class ImageFile:
    """A page image read from disk, at the mode it is shown to the model."""

    image: Any
    mode: Any


def _has_checkpoint(directory: Path) -> bool:
    return (directory / "config.json").is_file() and any(directory.glob("*.safetensors"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=Path, required=True, help="checkpoint directory")
    parser.add_argument("--image", type=Path, help="a page image to read instead of the demo")
    parser.add_argument("--mode", default="base", help="tiny, small, base, large or gundam")
    parser.add_argument("--task", choices=["free", "markdown"], default="free")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32", "float16"])
    parser.add_argument("--max-new-tokens", type=int, default=256)
    args = parser.parse_args()

    if not _has_checkpoint(args.weights):
        print(DOWNLOAD_HELP.format(path=args.weights), file=sys.stderr)
        return 2

    import torch
    from PIL import Image

    from optical_memory import DecaySchedule, Mode, OpticalMemory
    from optical_memory.model import DeepSeekOCR, VisualTokenCache, ocr_prompt, question_prompt

    torch.manual_seed(0)
    started = time.perf_counter()
    model = DeepSeekOCR.from_checkpoint(
        args.weights, dtype=getattr(torch, args.dtype), device=args.device
    )
    print(f"loaded {args.weights} in {time.perf_counter() - started:.1f} s", file=sys.stderr)

    def answer(parts: list) -> None:
        started = time.perf_counter()
        for piece in model.stream(parts, max_new_tokens=args.max_new_tokens):
            print(piece, end="", flush=True)
        print(f"\n[{time.perf_counter() - started:.1f} s]\n")

    if args.image is not None:
        page = ImageFile(Image.open(args.image).convert("RGB"), Mode.parse(args.mode))
        tokens = page.mode.sequence_tokens(*page.image.size)
        print(f"# {args.image} at {page.mode.value}: {tokens} visual tokens\n")
        answer(ocr_prompt(page, args.task))
        return 0

    schedule = DecaySchedule(tiers=[(Mode.BASE, 1), (Mode.SMALL, 1), (Mode.TINY, 4)])
    memory = OpticalMemory(keep_recent_turns=2, schedule=schedule)
    for day in range(1, 31):  # about four pages of notes
        memory.add(
            "user",
            f"Day {day}: I booked room {100 + day} at the Seaview hotel in Lyon. "
            + f"Breakfast at {7 + day % 3}:30, the taxi number is {4400 + day}, and my "
            f"colleague Ana arrives on platform {day % 7 + 1}. " * 4,
        )
        memory.add("assistant", f"Noted for day {day}: room {100 + day}, taxi {4400 + day}.")
    context = memory.context()
    if not context.pages:
        print("the dialogue fits in the recent window: no pages to show", file=sys.stderr)
        return 1
    # Each page is encoded once per mode and kept in the memory's store.
    model.page_encoder = VisualTokenCache(memory.store, model.encoder)
    print(
        f"# {len(context.pages)} pages ({context.vision_tokens} visual tokens) stand for "
        f"{context.replaced_text_tokens} text tokens\n"
    )
    oldest = context.pages[0]
    print(f"## Free OCR of the oldest page ({oldest.mode.value})")
    answer(ocr_prompt(oldest, args.task))
    print("## Question over all pages")
    answer(question_prompt(context.pages, "Which room did I book on day 3?"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
