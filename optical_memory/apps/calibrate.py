"""``optical-memory calibrate``: measure what the user's model reads off pages, and keep it.

    optical-memory calibrate --model openai:URL#MODEL [--db PATH] [--target TARGET]
        [--modes tiny,small,base,large] [--input-price USD --output-price USD]
    optical-memory calibrate --model tesseract

Renders the calibration set at each mode, has the model transcribe every page (see
:mod:`optical_memory.experiments.legibility_calibration`), stores the table in the memory store
under the model's name and prints it with the run's cost and what the planner will now do.
Memories and agents that call that model plan with it from then on.
"""

from __future__ import annotations

import argparse
from typing import Any

from optical_memory.apps import CommandError
from optical_memory.apps.threads import add_db_argument
from optical_memory.modes import Mode


def add_parser(commands: Any) -> None:
    """Add ``calibrate`` to the CLI's subparsers."""
    from optical_memory.targets import TARGETS

    calibrate = commands.add_parser(
        "calibrate",
        help="measure what a model reads off pages at each mode; memories then plan with it",
        description="Render a fixed calibration set (prose, code, a table, exact values with "
        "look-alike glyphs) at each mode, have the model transcribe each page, and keep its "
        "character and exact-value accuracy per mode in the store.",
    )
    add_db_argument(calibrate)
    calibrate.add_argument(
        "--model",
        required=True,
        help="openai:URL[#MODEL] (an OpenAI-compatible server), deepseek-ocr:DIR (a local "
        "checkpoint) or tesseract (the OCR probe, at the pages' own pixels)",
    )
    calibrate.add_argument(
        "--target",
        choices=TARGETS,
        metavar="TARGET",
        help="the model's billing family (default: its own, else openai)",
    )
    calibrate.add_argument(
        "--modes",
        default=",".join(m.value for m in Mode),
        help="modes to measure, comma-separated (default: all)",
    )
    calibrate.add_argument("--input-price", type=float, help="money per million input tokens")
    calibrate.add_argument("--output-price", type=float, help="money per million output tokens")
    calibrate.set_defaults(run=calibrate_command)


def calibrate_command(args: argparse.Namespace) -> int:
    """Run the calibration; a bad spec or store becomes a one-line error."""
    from optical_memory import renderers
    from optical_memory.apps.backends import ModelSpecError, load_model
    from optical_memory.experiments.legibility_calibration import calibrate, report_lines
    from optical_memory.experiments.readers import (
        DEEPSEEK_PROMPT,
        ChatModelReader,
        Reader,
        TesseractReader,
    )
    from optical_memory.renderers.page import page_size
    from optical_memory.store import StoreError, open_store

    try:
        modes = [Mode.parse(name) for name in args.modes.split(",") if name.strip()]
    except ValueError as error:
        raise CommandError(str(error)) from error
    if not modes:
        raise CommandError("--modes names no mode: give e.g. tiny,small,base")
    reader: Reader
    if args.model == "tesseract":
        reader, key, target = TesseractReader(enlarge=False), "tesseract", args.target or "openai"
    else:
        try:
            loaded = load_model(args.model)
        except (ModelSpecError, ImportError) as error:
            raise CommandError(str(error)) from error
        chat = getattr(loaded, "model", None)
        if chat is None:
            raise CommandError(f"{args.model!r} is not a chat model that reads images")
        from optical_memory.agents.model_family import target_for_model
        from optical_memory.agents.window import model_key

        key = model_key(chat)
        target = args.target or target_for_model(chat) or "openai"
        prompt = DEEPSEEK_PROMPT if args.model.startswith("deepseek-ocr:") else None
        reader = ChatModelReader(chat, prompt, name=key) if prompt else ChatModelReader(chat)
    try:
        store = open_store(args.db)
    except StoreError as error:
        raise CommandError(str(error)) from error
    with store:
        result = calibrate(
            reader,
            renderers.create("pil"),
            model_key=key,
            target=target,
            modes=modes,
            store=store,
        )
    sizes = {mode: page_size(mode) for mode in modes}
    print("\n".join(report_lines(result, sizes, args.input_price, args.output_price)))
    return 0
