"""``report.md`` for a long-dialog experiment: the headline table, the plots and the notes.

Every number it shows comes from :func:`~optical_memory.experiments.summary.summarize`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from optical_memory.experiments.plots import (
    plot_compression_vs_accuracy,
    plot_context_tokens,
    plot_forgetting_curve,
)
from optical_memory.experiments.records import RECALL_THRESHOLD, ConversationResult
from optical_memory.experiments.retrieval import retrieval_section
from optical_memory.experiments.summary import GOAL_ACCURACY, GOAL_COMPRESSION

_PLOTS = {
    "compression": "compression_vs_accuracy.png",
    "forgetting": "forgetting_curve.png",
    "context": "context_tokens.png",
}


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _expected_precision_lines(summary: dict[str, Any]) -> list[str]:
    """The forgetting curve's second view: how the evidence pages read at their scheduled mode,
    by the probe and as DeepSeek-OCR is expected to (its Fox precision at their text tokens)."""
    lines = [
        "",
        "Expected model precision is DeepSeek-OCR's own Fox precision (its paper's Table 2, "
        "64 vision tokens for TINY, 100 for SMALL) interpolated at the page's text tokens; the "
        "table has no column for the sharper modes (–).",
        "",
        "| page age | evidence pages | probe accuracy | expected model precision |",
        "|---|---|---|---|",
    ]
    for row in summary["expected_model_precision"]["by_age"]:
        a, b = row["ages"]
        lines.append(
            f"| {a}–{b} | {row['evidence_pages']} | {_pct(row['probe_accuracy'])} | "
            f"{_pct(row['expected_precision'])} |"
        )
    return lines


def headline(summary: dict[str, Any], modes: Sequence[str]) -> str:
    """The run in a few lines, as the docs quote it: per mode the compression, the probe's and
    the model's expected reading and evidence recall; then what the default schedule costs."""
    lines = [
        f"{summary['conversations']} conversation(s), {summary['turns']:,} turns, "
        f"{summary['pages']} pages, {summary['evidence_turns']:,} evidence turns.",
        "",
        "| mode | text tokens per DeepSeek-OCR token | probe accuracy | expected model precision "
        "| evidence recall (1–4) |",
        "|---|---|---|---|---|",
    ]
    for mode in modes:
        row = summary["per_mode"][mode]
        lines.append(
            f"| {mode} | {_num(row['mean_compression']['deepseek-ocr'])}× | "
            f"{_pct(row['mean_probe_accuracy'])} | "
            f"{_pct(summary['expected_model_precision']['per_mode'][mode])} | "
            f"{_pct(row['evidence_recall_categories_1_4'])} |"
        )
    default = summary.get("schedule_curve", {}).get("default")
    if default:
        unbudgeted = default[0]
        history = round(unbudgeted["tokens"] * unbudgeted["compression"])
        lines += [
            "",
            f"With the default schedule and no budget the whole context costs "
            f"{unbudgeted['tokens']:,} tokens for {history:,} of history text "
            f"({unbudgeted['compression']:.1f}×); the evidence turns of categories 1–4 are "
            f"expected to read at {_pct(unbudgeted['legibility'])}.",
        ]
    return "\n".join(lines)


def write_report(
    out: Path,
    conversations: Sequence[ConversationResult],
    summary: dict[str, Any],
    settings: dict[str, Any],
    modes: Sequence[str],
) -> dict[str, Path]:
    """Draw the three plots and write ``report.md`` that embeds them; return the paths."""
    paths = {name: out / filename for name, filename in _PLOTS.items()}
    plot_compression_vs_accuracy(conversations, modes, paths["compression"])
    plot_forgetting_curve(summary, modes, paths["forgetting"])
    plot_context_tokens(conversations, settings["window_turns"], paths["context"])

    lines = [
        "# Long-dialog experiment",
        "",
        f"Data: `{settings['data']}` — {summary['conversations']} conversation(s), "
        f"{summary['turns']} turns, {summary['pages']} pages, {summary['questions']} questions, "
        f"{summary['evidence_turns']} evidence turns"
        + (
            f" ({summary['unresolved_evidence']} evidence ids name no turn)"
            if summary["unresolved_evidence"]
            else ""
        )
        + ".",
        f"Renderer `{settings['renderer']}` ({settings['renderer_settings']}), probe "
        f"`{settings['probe']}`, modes {', '.join(m.upper() for m in modes)}.",
        "",
        "Compression is text tokens (o200k) the page replaces per vision token; probe accuracy is "
        "1 − normalized edit distance between an OCR engine's reading of the page image and the "
        "page's exact text; an evidence turn is recalled at a mode when the reading contains the "
        f"turn's text at substring similarity ≥ {RECALL_THRESHOLD}.",
        "",
        "| mode | pages | text tok/page | DeepSeek-OCR tok | ratio DeepSeek | ratio OpenAI | "
        "ratio Anthropic | ratio Qwen2.5-VL | probe accuracy | expected model precision | "
        f"pages ≥ {GOAL_ACCURACY:.0%} | evidence recall (1–4) | recall (5) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode in modes:
        row = summary["per_mode"][mode]
        ratio = row["mean_compression"]
        lines.append(
            f"| {mode.upper()} | {row['pages']} | {_num(row['mean_text_tokens'], 0)} | "
            f"{_num(row['mean_vision_tokens']['deepseek-ocr'], 0)} | "
            f"{_num(ratio['deepseek-ocr'])}× | {_num(ratio['openai'])}× | "
            f"{_num(ratio['anthropic'])}× | {_num(ratio['qwen2.5-vl'])}× | "
            f"{_pct(row['mean_probe_accuracy'])} | "
            f"{_pct(summary['expected_model_precision']['per_mode'][mode])} | "
            f"{_pct(row['pages_at_goal_accuracy'])} | "
            f"{_pct(row['evidence_recall_categories_1_4'])} | "
            f"{_pct(row['evidence_recall_category_5'])} |"
        )
    categories = sorted(
        {c for m in modes for c in summary["per_mode"][m]["evidence_recall_by_category"]}
    )
    lines += [
        "",
        "Evidence recall per QA category (1 multi-hop, 2 temporal, 3 open-domain, 4 single-hop; "
        "5 adversarial, reported apart):",
        "",
        "| mode | " + " | ".join(f"cat {c}" for c in categories) + " |",
        "|---|" + "---|" * len(categories),
    ]
    for mode in modes:
        by_category = summary["per_mode"][mode]["evidence_recall_by_category"]
        cells = [
            f"{_pct(by_category[c]['recall'])} (n={by_category[c]['evidence']})"
            if c in by_category
            else "–"
            for c in categories
        ]
        lines.append(f"| {mode.upper()} | " + " | ".join(cells) + " |")
    goal = summary["goal"]
    tiny = summary["per_mode"].get("tiny")
    if tiny is not None:
        verdict = "met" if goal["tiny_met"] else "not met"
        if settings.get("limit") is not None:  # a smoke run: too few pages to judge
            verdict = f"not judged on a run cut to {settings['limit']} turns a conversation"
        lines += [
            "",
            f"**Goal** (≥ {GOAL_ACCURACY:.0%} probe accuracy at ≥ {GOAL_COMPRESSION:.0f} text "
            f"tokens per vision token at TINY): {verdict} — TINY reads "
            f"{_pct(tiny['mean_probe_accuracy'])} at "
            f"{_num(tiny['mean_compression']['deepseek-ocr'])}×.",
        ]
    lines += [
        "",
        "## Compression vs probe accuracy",
        "",
        f"![compression vs accuracy]({_PLOTS['compression']})",
        "",
        "The paper's Fox points are the DeepSeek-OCR model decoding its own vision tokens; the "
        "dots here are a pixel probe (an OCR engine reading the same page images), a different "
        "measurement shown for orientation only.",
        "",
        "## Forgetting curve",
        "",
        f"![forgetting curve]({_PLOTS['forgetting']})",
        "",
        "| page age | evidence | scheduled mode(s) | recall | recall (1–4) |",
        "|---|---|---|---|---|",
    ]
    for row in summary["schedule"]["recall_by_age"]:
        a, b = row["ages"]
        scheduled_modes = ", ".join(m.upper() for m in row["scheduled_modes"])
        lines.append(
            f"| {a}–{b} | {row['evidence']} | {scheduled_modes}"
            f" | {_pct(row['recall'])} | {_pct(row['recall_categories_1_4'])} |"
        )
    lines += _expected_precision_lines(summary)
    unscheduled = [
        mode.upper()
        for mode, row in summary["schedule"]["recall_by_scheduled_mode"].items()
        if row["evidence"] == 0
    ]
    if unscheduled:
        lines += [
            "",
            f"No evidence page was old enough to be scheduled at {', '.join(unscheduled)} by the "
            "end of its conversation; the per-mode table above says how those pages read there.",
        ]
    lines += [
        "",
        "## Tokens in context",
        "",
        f"![tokens in context]({_PLOTS['context']})",
        "",
        "| conversation | turns | full text | keep last "
        f"{settings['window_turns']} | optical memory |",
        "|---|---|---|---|---|",
    ]
    for conversation in conversations:
        if conversation.context:
            last = conversation.context[-1]
            lines.append(
                f"| {conversation.sample_id} | {last.turns} | {last.full_text} | {last.window} | "
                f"{last.optical} |"
            )
    lines += [
        "",
        "## How it was measured",
        "",
        "- Memory: `OpticalMemory` with its defaults (packing, schedule "
        + ", ".join(f"{m.upper()} {w}" for m, w in settings["schedule"])
        + f", {settings['keep_recent_turns']} recent turns as text); every frozen page is drawn "
        "by the memory at every mode of the run.",
        "- Text tokens a page replaces: o200k tokens of its exact text (`role: content` per "
        "piece). Compression: those ÷ the page image's vision tokens for each target.",
        "- Probe: an OCR engine reads the page image (tesseract as one block of text, "
        "`--psm 6`: its automatic layout analysis can drop whole lines); pages under 1024 px "
        "are first enlarged by a whole factor (Lanczos), which adds no information. LARGE and "
        "GUNDAM draw the same 1280-px image, read once. Accuracy: 1 − edit distance ÷ the "
        "longer text, whitespace normalized.",
        "- Recall: substring similarity = 1 − (fewest edits turning the turn's text into some "
        "substring of the reading) ÷ the turn's length, whitespace normalized; a turn split over "
        "two pages is matched piece by piece against each page's reading (distances and lengths "
        "summed) and belongs to the page holding most of it.",
        f"- Evidence still in the context as text at the end ({summary['evidence_in_text']} "
        "turns: the recent window and the not-yet-full page) is read verbatim and left out of "
        "the per-mode recall. Age: pages back from the newest at the end of the conversation; "
        "the scheduled mode is what the default schedule gives that age (TEXT: the memory shows "
        "the page as text because its image would cost more).",
        "",
        f"Command: `{settings['command']}`",
        "",
    ]
    timing = settings.get("timing")
    if timing:
        lines.insert(
            -1,
            f"Run time: {timing['seconds']:.0f} s wall ({timing['pages_probed']} page images for "
            f"the probe, {timing['workers']} OCR processes), {timing['cpu_seconds']:.0f} s of CPU; "
            f"load average {timing['load_average_at_end']} at the end.",
        )
    lines += retrieval_section(summary.get("retrieval"))
    report = out / "report.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    paths["report"] = report
    return paths
