"""``optical-memory demo``: memory over a long synthetic dialogue, written out to look at.

Builds an :class:`~optical_memory.memory.OpticalMemory` over
:func:`~optical_memory.experiments.synthetic.generate_dialogue`, then writes into ``out``:

- ``pages/page-NNNN-MODE.png``: every page at the mode its age earns (NNNN = page id, as the
  recall tool and the viewer number pages);
- ``contact-sheet.png``: every page in age order, each at a quarter of its own pixels and framed
  in its mode's colour (legend on top), then the same corner of the newest page of each mode
  close up at one display size, so the fading from sharp to tiny is visible;
- ``report.md`` and ``report.json``: turns, pages per mode, text tokens of the whole history,
  tokens in the context, compression ratio, render counts (and, with ``ocr``, what a classical
  OCR engine reads back per tier and how many planted facts it finds);
- ``memory.db``: the memory itself (a SQLite file), rebuilt on every run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from optical_memory.apps import page_file_name
from optical_memory.apps.demo_pictures import contact_sheet, overview_picture
from optical_memory.experiments.synthetic import SyntheticDialogue, generate_dialogue
from optical_memory.memory import MemoryContext, OpticalMemory
from optical_memory.modes import FADING_ORDER

#: Turns in the demo dialogue: enough pages to reach every tier of the default schedule
#: (tested in tests/test_demo.py).
DEMO_TURNS = 640


@dataclass
class OcrTier:
    """What an OCR engine read back from the pages of one mode."""

    mode: str
    pages: int
    character_accuracy: float
    facts_planted: int
    facts_found: int


@dataclass
class DemoReport:
    """Everything ``report.json`` holds."""

    turns: int
    pages: int
    pages_per_mode: dict[str, int]
    text_pages: int
    recent_turns: int
    history_text_tokens: int
    context_text_tokens: int
    context_vision_tokens: int
    context_total_tokens: int
    replaced_text_tokens: int
    compression_ratio: float
    page_compression_ratio: float
    renders: int
    renders_per_turn: float
    renders_on_second_context: int
    images_cached: int
    seconds_adding: float
    seconds_first_context: float
    seconds_second_context: float
    target: str
    files: dict[str, str] = field(default_factory=dict)
    ocr_engine: str | None = None
    ocr: list[OcrTier] = field(default_factory=list)


def run_demo(
    out: str | Path,
    *,
    turns: int = DEMO_TURNS,
    seed: int = 0,
    ocr: str | None = None,
    budget_tokens: int | None = None,
    log: Callable[[str], None] = print,
) -> DemoReport:
    """Build the demo memory and write its pages, contact sheet and reports into ``out``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} is a file: pass a folder for the demo's output")
    pages_dir = out / "pages"
    pages_dir.mkdir(parents=True, exist_ok=True)
    for old in pages_dir.glob("page-*.png"):
        old.unlink()
    db = out / "memory.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)

    dialogue = generate_dialogue(turns, seed=seed)
    with OpticalMemory(db, thread_id="demo") as memory:
        started = time.perf_counter()
        added = memory.add_messages(dialogue.messages())
        seconds_adding = time.perf_counter() - started

        started = time.perf_counter()
        context = memory.context(budget_tokens)
        seconds_first = time.perf_counter() - started
        renders_first = memory.renders
        started = time.perf_counter()
        memory.context(budget_tokens)
        seconds_second = time.perf_counter() - started
        renders_second = memory.renders - renders_first
        stats = memory.stats()

        page_files = _write_pages(context, pages_dir)
        sheet = out / "contact-sheet.png"
        contact_sheet(memory, context).save(sheet)
        overview = out / "overview.png"
        overview_picture(memory, context, stats.history_text_tokens).save(overview)

        history = stats.history_text_tokens
        report = DemoReport(
            turns=len(added),
            pages=len(context.pages) + len(context.text_pages),
            pages_per_mode=_pages_per_mode(context),
            text_pages=len(context.text_pages),
            recent_turns=len(context.recent),
            history_text_tokens=history,
            context_text_tokens=context.text_tokens,
            context_vision_tokens=context.vision_tokens,
            context_total_tokens=context.total_tokens,
            replaced_text_tokens=context.replaced_text_tokens,
            compression_ratio=round(history / max(1, context.total_tokens), 2),
            page_compression_ratio=round(
                context.replaced_text_tokens / max(1, context.vision_tokens), 2
            ),
            renders=renders_first,
            renders_per_turn=round(renders_first / max(1, len(added)), 3),
            renders_on_second_context=renders_second,
            images_cached=stats.images_cached,
            seconds_adding=round(seconds_adding, 3),
            seconds_first_context=round(seconds_first, 3),
            seconds_second_context=round(seconds_second, 4),
            target=memory.target,
            files={
                "pages": str(pages_dir),
                "contact_sheet": str(sheet),
                "overview": str(out / "overview.png"),
                "report_md": str(out / "report.md"),
                "report_json": str(out / "report.json"),
                "memory": str(db),
            },
        )
        if ocr is not None:
            report.ocr_engine = ocr
            report.ocr = _ocr_tiers(memory, context, dialogue, [t.id or 0 for t in added], ocr)

    (out / "report.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
    (out / "report.md").write_text(_markdown(report, len(page_files)))
    log(f"pages:         {pages_dir} ({len(page_files)} PNG files)")
    log(f"contact sheet: {sheet}")
    log(f"overview:      {overview}")
    log(f"report:        {out / 'report.md'} and {out / 'report.json'}")
    log(
        f"{report.turns} turns, {report.history_text_tokens} text tokens of history -> "
        f"{report.context_total_tokens} tokens in context ({report.compression_ratio}x)"
    )
    return report


def _pages_per_mode(context: MemoryContext) -> dict[str, int]:
    counts = {mode.value: 0 for mode in FADING_ORDER}
    for page in context.pages:
        counts[page.mode.value] += 1
    counts["text"] = len(context.text_pages)
    return counts


def _write_pages(context: MemoryContext, folder: Path) -> list[Path]:
    paths = []
    for page in context.pages:
        path = folder / page_file_name(page.page_id, page.mode)
        path.write_bytes(page.png())
        paths.append(path)
    return paths


def _ocr_tiers(
    memory: OpticalMemory,
    context: MemoryContext,
    dialogue: SyntheticDialogue,
    turn_ids: list[int],
    engine: str,
) -> list[OcrTier]:
    from optical_memory.experiments.ocr import character_accuracy, normalize_whitespace, read_text
    from optical_memory.experiments.probe import enlarge_for_probe

    index_of = {turn_id: index for index, turn_id in enumerate(turn_ids)}
    tiers: dict[str, list[tuple[float, int, int]]] = {}
    for page in context.pages:
        expected = normalize_whitespace(memory.recall(page.page_id))
        # At the engine's working scale, as the experiment's probe reads (SMALL 640 → 1280 px).
        read = normalize_whitespace(read_text(enlarge_for_probe(page.image), engine))
        facts = dialogue.facts_in({index_of[t] for t in page.turn_ids if t in index_of})
        # A fact counts as planted on this page only when its value is printed here (a turn
        # may be split across pages).
        planted = [f for f in facts if f.value.casefold() in expected.casefold()]
        found = [f for f in planted if f.value.casefold() in read.casefold()]
        tiers.setdefault(page.mode.value, []).append(
            (character_accuracy(expected, read), len(planted), len(found))
        )
    return [
        OcrTier(
            mode=mode.value,
            pages=len(rows),
            character_accuracy=round(sum(r[0] for r in rows) / len(rows), 3),
            facts_planted=sum(r[1] for r in rows),
            facts_found=sum(r[2] for r in rows),
        )
        for mode in FADING_ORDER
        if (rows := tiers.get(mode.value))
    ]


def _markdown(report: DemoReport, page_files: int) -> str:
    modes = " | ".join(f"{m}: {n}" for m, n in report.pages_per_mode.items())
    lines = [
        "# optical-memory demo",
        "",
        f"A synthetic dialogue of {report.turns} turns, stored as optical memory "
        f"(token counts for target `{report.target}`).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| turns | {report.turns} |",
        f"| pages | {report.pages} ({modes}) |",
        f"| recent turns kept as text | {report.recent_turns} |",
        f"| text tokens of the whole history | {report.history_text_tokens} |",
        f"| tokens in context (text + vision) | {report.context_total_tokens} "
        f"({report.context_text_tokens} + {report.context_vision_tokens}) |",
        f"| text tokens the page images stand for | {report.replaced_text_tokens} |",
        f"| compression ratio (history / context) | {report.compression_ratio}x |",
        f"| compression ratio of the pages (their text / their vision tokens) | "
        f"{report.page_compression_ratio}x |",
        f"| renders (first context) | {report.renders} ({report.renders_per_turn} per turn) |",
        f"| renders on a second context() call | {report.renders_on_second_context} |",
        f"| seconds: adding / first context / second context | {report.seconds_adding} / "
        f"{report.seconds_first_context} / {report.seconds_second_context} |",
        "",
        f"Files: {page_files} page images in `{report.files['pages']}`, the contact sheet "
        f"`{report.files['contact_sheet']}`, the memory `{report.files['memory']}`.",
        "",
    ]
    if report.ocr_engine:
        lines += [
            f"## Read back with {report.ocr_engine}",
            "",
            "| mode | pages | character accuracy | planted facts found |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {t.mode} | {t.pages} | {t.character_accuracy:.3f} | "
            f"{t.facts_found} / {t.facts_planted} |"
            for t in report.ocr
        ]
        lines.append("")
    return "\n".join(lines)
