"""The ``optical-memory`` command.

One function per subcommand (``render_command`` …), each wired up in :func:`build_parser` with
``set_defaults(run=...)``. To add one: write ``def demo_command(args) -> int``, add its
subparser in :func:`build_parser`, done. Expected failures (bad input, missing files) raise
:class:`CommandError` or one of the errors in ``_USER_ERRORS``; :func:`main` prints them as one
line on stderr and exits 1, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from optical_memory.apps import CommandError, page_file_name
from optical_memory.apps.threads import add_db_argument
from optical_memory.experiments.locomo import ConversationFormatError, read_conversation
from optical_memory.modes import Mode
from optical_memory.renderers.fonts import FontNotFoundError
from optical_memory.renderers.page import RenderedPage, Renderer
from optical_memory.targets import vision_tokens
from optical_memory.tokens import EncodingFileError, split_text_tokens
from optical_memory.turns import Turn, transcript

#: How manifests define their text: what a model would read instead of the pages.
TEXT_DEFINITION = (
    "transcript: one 'role: content' per turn, joined by newlines, tokenized once with "
    "{encoding}; each token counts for the page that holds its first character (a turn's "
    "'role: ' and the newline after it count with the turn's first and last page)"
)


_USER_ERRORS = (
    CommandError,
    ConversationFormatError,
    FontNotFoundError,
    EncodingFileError,
    OSError,
)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``prog: error: …``) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _mode(name: str) -> Mode:
    try:
        return Mode.parse(name)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port {value!r} is not a whole number") from None
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"port {port} is out of range: give 1 to 65535")
    return port


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="optical-memory",
        description="Long-context memory for LLM agents, made of pictures.",
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    render = commands.add_parser(
        "render",
        help="print a conversation onto page images at one mode",
        description="Write one PNG per page and manifest.json (spans, text and vision tokens).",
    )
    render.set_defaults(run=render_command)
    render.add_argument("input", type=Path, help="JSON list of {role, content}, or a LoCoMo file")
    render.add_argument(
        "--mode",
        type=_mode,
        required=True,
        help="resolution mode: " + ", ".join(m.value for m in Mode),
    )
    render.add_argument("--out", type=Path, required=True, help="folder for pages and manifest")
    render.add_argument("--sample", help="LoCoMo sample id, e.g. conv-26")
    render.add_argument(
        "--renderer",
        choices=["pil", "html"],
        default="pil",
        help="page renderer: pil (default) or html (markdown via Chromium, needs the html extra)",
    )

    chat = commands.add_parser(
        "chat",
        help="chat in the terminal; memory persists in a SQLite file",
        description="A terminal chat whose old turns fade into page images. Commands: /memory "
        "(tiers and tokens), /search QUERY (where something was said: ranked turns, with the "
        "turns beside them as context), /recall N (turn N's exact text; N-M a range; page ID a "
        "page's), /pages DIR, /threads, /help, /quit. Reads piped stdin too.",
    )
    chat.set_defaults(run=chat_command)
    _conversation_arguments(chat)
    chat.add_argument("--thread", default="default", help="thread to talk in (default: default)")

    serve = commands.add_parser(
        "serve",
        help="the memory viewer in the browser: threads, fading pages, tokens, a chat box",
        description="A web viewer of a memory file (FastAPI); binds to loopback by default.",
    )
    serve.set_defaults(run=serve_command)
    _conversation_arguments(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8000, help="port (default 8000)")

    from optical_memory.apps.experiment_commands import add_parsers as add_experiment_parsers

    add_experiment_parsers(commands)  # experiment, density

    from optical_memory.apps.threads import add_parser as add_threads_parser

    add_threads_parser(commands)  # threads list|export|import|delete

    from optical_memory.apps.calibrate import add_parser as add_calibrate_parser

    add_calibrate_parser(commands)  # calibrate --model SPEC

    from optical_memory.apps.image_costs_command import add_parser as add_image_costs_parser

    add_image_costs_parser(commands)  # image-costs show|reset

    demo = commands.add_parser(
        "demo",
        help="build memory over a bundled long dialogue; write pages, contact sheet, report",
        description="Memory over a deterministic synthetic dialogue with planted facts: pages "
        "at their current tiers, a contact sheet of the fading, report.md and report.json.",
    )
    demo.set_defaults(run=demo_command)
    demo.add_argument("--out", type=Path, required=True, help="folder for the demo's files")
    demo.add_argument(
        "--ocr",
        choices=["tesseract", "rapidocr"],
        help="also read every page back with this OCR engine and report recall per tier",
    )
    demo.add_argument("--turns", type=int, default=None, help="dialogue length (default 640)")
    demo.add_argument("--budget", type=int, metavar="TOKENS", help="fit the context to a budget")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``optical-memory``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except _USER_ERRORS as error:
        print(f"optical-memory {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return 1
    return status


def _one_line(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror and error.filename:
        return f"{error.strerror}: {error.filename}"
    return " ".join(str(error).split()) or type(error).__name__


# --- render ------------------------------------------------------------------------------------


def render_command(args: argparse.Namespace) -> int:
    """``optical-memory render INPUT --mode MODE --out DIR [--sample ID] [--renderer pil|html]``."""
    turns = read_conversation(args.input, args.sample)
    if not turns:
        raise CommandError(f"{args.input} holds no turns: nothing to render")
    renderer = _renderer(args.renderer)
    try:
        pages = renderer.render(turns, args.mode)
    except ImportError as error:  # an optional extra the renderer needs (html)
        raise CommandError(str(error)) from error
    finally:
        getattr(renderer, "close", lambda: None)()  # the html renderer's browser
    args.out.mkdir(parents=True, exist_ok=True)
    for stale in args.out.glob("page-*.png"):
        stale.unlink()  # a previous, longer render must not leave pages behind
    files = []
    for number, page in enumerate(pages, start=1):
        name = page_file_name(number, args.mode)
        (args.out / name).write_bytes(page.png())
        files.append(name)
    manifest = render_manifest(turns, pages, files, renderer.settings_key)
    manifest["input"] = str(args.input)
    manifest["sample"] = args.sample
    (args.out / "manifest.json").write_text(
        json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    totals = manifest["totals"]
    print(
        f"{totals['pages']} pages at {args.mode.value} in {args.out}: "
        f"{totals['text_tokens']} text tokens as {totals['vision_tokens']} vision tokens"
    )
    return 0


def _renderer(name: str) -> Renderer:
    from optical_memory import renderers

    try:
        return renderers.create(name)
    except ValueError as error:
        raise CommandError(str(error)) from error


def render_manifest(
    turns: Sequence[Turn],
    pages: Sequence[RenderedPage],
    files: Sequence[str],
    renderer: str,
    encoding: str = "o200k_base",
) -> dict[str, Any]:
    """The manifest of rendered pages: per page its file, mode, size, spans, text tokens
    (see :data:`TEXT_DEFINITION`) and DeepSeek-OCR vision tokens; then the totals."""
    text = transcript(turns)
    text_tokens = split_text_tokens(text, page_starts(turns, pages), encoding)
    entries = []
    for page, file, tokens in zip(pages, files, text_tokens, strict=True):
        width, height = page.image.size
        entries.append(
            {
                "file": file,
                "mode": page.mode.value,
                "size": [width, height],
                "spans": [list(span) for span in page.spans],
                "text_tokens": tokens,
                "vision_tokens": vision_tokens(width, height, "deepseek-ocr", page.mode),
            }
        )
    return {
        "renderer": renderer,
        "text": TEXT_DEFINITION.format(encoding=encoding),
        "pages": entries,
        "totals": {
            "pages": len(entries),
            "turns": len(turns),
            "characters": len(text),
            "text_tokens": sum(text_tokens),
            "vision_tokens": sum(entry["vision_tokens"] for entry in entries),
        },
    }


def page_starts(turns: Sequence[Turn], pages: Sequence[RenderedPage]) -> list[int]:
    """Where each page's text begins in :func:`~optical_memory.turns.transcript` (turns)."""
    turn_starts, position = [], 0
    for turn in turns:
        turn_starts.append(position)
        position += len(turn.role) + 2 + len(turn.content) + 1  # "role: " content "\n"
    starts = []
    for page in pages:
        if not page.spans:
            raise ValueError("a rendered page without spans cannot be placed in the transcript")
        first = page.spans[0]
        label = 0 if first.start == 0 else len(turns[first.turn].role) + 2
        starts.append(turn_starts[first.turn] + label + first.start)
    return starts


# --- chat and serve ----------------------------------------------------------------------------


def _conversation_arguments(parser: argparse.ArgumentParser) -> None:
    add_db_argument(parser)
    parser.add_argument(
        "--model",
        help="echo (default), openai:URL[#MODEL] (an OpenAI-compatible server such as vLLM) or "
        "deepseek-ocr:DIR (a local checkpoint); default: $OPTICAL_MEMORY_MODEL, else echo",
    )
    parser.add_argument(
        "--keep-recent",
        type=int,
        default=6,
        metavar="N",
        help="newest turns kept as text (default 6)",
    )
    parser.add_argument(
        "--budget", type=int, metavar="TOKENS", help="most tokens the model is sent per turn"
    )
    from optical_memory.targets import TARGETS

    parser.add_argument(
        "--target",
        choices=TARGETS,
        metavar="TARGET",
        help="the model family tokens are counted for (default: the model's own, else "
        f"deepseek-ocr): {', '.join(TARGETS)}",
    )


def _run_conversation(run: Any, args: argparse.Namespace, **where: Any) -> int:
    """Start the chat or the viewer on ``args``' memory and model; their errors as one line."""
    from optical_memory.apps.backends import ModelSpecError
    from optical_memory.store import StoreError

    try:
        run(
            args.db,
            **where,
            model_spec=args.model,
            keep_recent_turns=args.keep_recent,
            budget_tokens=args.budget,
            target=args.target,
        )
    except (ModelSpecError, StoreError, ImportError) as error:
        raise CommandError(str(error)) from error
    return 0


def chat_command(args: argparse.Namespace) -> int:
    """``optical-memory chat [--db PATH] [--thread NAME] [--model SPEC]``."""
    from optical_memory.apps.chat import run_chat

    return _run_conversation(run_chat, args, thread_id=args.thread)


def serve_command(args: argparse.Namespace) -> int:
    """``optical-memory serve [--db PATH] [--host 127.0.0.1] [--port 8000] [--model SPEC]``."""
    from optical_memory.apps.web.app import serve

    return _run_conversation(serve, args, host=args.host, port=args.port)


# --- demo --------------------------------------------------------------------------------------


def demo_command(args: argparse.Namespace) -> int:
    """``optical-memory demo --out DIR [--ocr tesseract|rapidocr] [--turns N] [--budget T]``."""
    from optical_memory.apps.demo import DEMO_TURNS, run_demo
    from optical_memory.experiments.ocr import OcrEngineError
    from optical_memory.extras import MissingExtraError

    turns = DEMO_TURNS if args.turns is None else args.turns
    if turns < 1:
        raise CommandError(f"--turns must be at least 1, not {turns}")
    try:
        run_demo(args.out, turns=turns, ocr=args.ocr, budget_tokens=args.budget)
    except (MissingExtraError, OcrEngineError, ValueError) as error:
        raise CommandError(str(error)) from error
    return 0
