"""Summaries, plots and ``report.md`` for a long-dialog experiment.

Every number a plot or the report shows comes from :func:`summarize`, whose output is stored in
``results.json`` next to the per-page and per-evidence records.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from optical_memory.experiments.records import (
    RECALL_THRESHOLD,
    TARGETS,
    ConversationResult,
    EvidenceResult,
)
from optical_memory.experiments.retrieval import retrieval_section
from optical_memory.extras import import_extra
from optical_memory.legibility import FOX_POINTS

#: The issue's goal: this probe accuracy at this many text tokens per vision token, at TINY.
GOAL_ACCURACY = 0.97
GOAL_COMPRESSION = 20.0

_MODE_COLORS = {
    "tiny": "#d62728",
    "small": "#ff7f0e",
    "base": "#2ca02c",
    "large": "#1f77b4",
    "gundam": "#9467bd",
}
_PLOTS = {
    "compression": "compression_vs_accuracy.png",
    "forgetting": "forgetting_curve.png",
    "context": "context_tokens.png",
}


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return statistics.fmean(values) if values else None


def _recall(evidence: Sequence[EvidenceResult], mode: str) -> float | None:
    return _mean(1.0 if e.recalled(mode) else 0.0 for e in evidence)


def _question_recall(evidence: Sequence[EvidenceResult], mode: str) -> float | None:
    """Share of questions all of whose evidence turns are recalled."""
    by_question: dict[tuple[str, int], list[bool]] = defaultdict(list)
    for e in evidence:
        by_question[(e.sample_id, e.question)].append(e.recalled(mode))
    return _mean(1.0 if all(v) else 0.0 for v in by_question.values())


def _age_bins(ages: Iterable[int], tiers: Sequence[tuple[str, int]]) -> list[tuple[int, int]]:
    """Page-age bins that follow the schedule's tiers (GUNDAM 0–1, LARGE 2–5, ...), so each bin
    has one scheduled mode; the last tier's bin runs to the oldest age."""
    oldest = max(ages, default=0)
    bins, start = [], 0
    for index, (_, width) in enumerate(tiers):
        end = oldest if index == len(tiers) - 1 else start + width - 1
        if start > oldest:
            break
        bins.append((start, max(start, end)))
        start += width
    return bins or [(0, oldest)]


def summarize(
    conversations: Sequence[ConversationResult],
    modes: Sequence[str],
    tiers: Sequence[tuple[str, int]],
) -> dict[str, Any]:
    """Per-mode means, recall per QA category and per age (binned by the schedule's ``tiers``,
    ``(mode, width in pages)``); every number the report shows."""
    pages = [page for conversation in conversations for page in conversation.pages]
    evidence = [e for conversation in conversations for e in conversation.evidence]
    per_mode: dict[str, Any] = {}
    for mode in modes:
        measured = [page.modes[mode] for page in pages]
        text = sum(page.text_tokens for page in pages)
        by_category: dict[str, Any] = {}
        for category in sorted({e.category for e in evidence}):
            chosen = [e for e in evidence if e.category == category]
            by_category[str(category)] = {"evidence": len(chosen), "recall": _recall(chosen, mode)}
        answerable = [e for e in evidence if e.category != 5]
        adversarial = [e for e in evidence if e.category == 5]
        per_mode[mode] = {
            "pages": len(measured),
            "mean_text_tokens": _mean(page.text_tokens for page in pages),
            "mean_vision_tokens": {t: _mean(m.vision_tokens[t] for m in measured) for t in TARGETS},
            "mean_compression": {t: _mean(m.compression[t] for m in measured) for t in TARGETS},
            "total_compression": {
                t: (text / total if (total := sum(m.vision_tokens[t] for m in measured)) else None)
                for t in TARGETS
            },
            "mean_probe_accuracy": _mean(m.probe_accuracy for m in measured),
            "min_probe_accuracy": min((m.probe_accuracy for m in measured), default=None),
            "pages_at_goal_accuracy": _mean(
                1.0 if m.probe_accuracy >= GOAL_ACCURACY else 0.0 for m in measured
            ),
            "evidence_recall": _recall(evidence, mode),
            "evidence_recall_categories_1_4": _recall(answerable, mode),
            "evidence_recall_category_5": _recall(adversarial, mode),
            "question_recall_categories_1_4": _question_recall(answerable, mode),
            "evidence_recall_by_category": by_category,
        }

    # Under the default schedule: each evidence turn is read at the mode its page's age gives
    # it at the end of the conversation (a forgotten page recalls nothing).
    def scheduled(e: EvidenceResult) -> bool:
        mode = e.scheduled_mode
        if mode == "text":
            return True  # the memory shows this page as text: read verbatim
        return mode is not None and e.recalled(mode)

    in_run = [e for e in evidence if e.scheduled_mode in (None, "text", *modes)]
    by_age = []
    for start, end in _age_bins((e.age for e in in_run), tiers):
        chosen = [e for e in in_run if start <= e.age <= end]
        if chosen:
            scheduled_modes = sorted({str(e.scheduled_mode) for e in chosen})
            by_age.append(
                {
                    "ages": [start, end],
                    "evidence": len(chosen),
                    "scheduled_modes": scheduled_modes,
                    "recall": _mean(1.0 if scheduled(e) else 0.0 for e in chosen),
                    "recall_categories_1_4": _mean(
                        1.0 if scheduled(e) else 0.0 for e in chosen if e.category != 5
                    ),
                }
            )
    by_page_age = []
    for age in sorted({e.age for e in in_run}):
        chosen = [e for e in in_run if e.age == age]
        by_page_age.append(
            {
                "age": age,
                "evidence": len(chosen),
                "recall": _mean(1.0 if scheduled(e) else 0.0 for e in chosen),
            }
        )
    by_scheduled_mode = {}
    for mode in modes:
        chosen = [e for e in in_run if e.scheduled_mode == mode]
        by_scheduled_mode[mode] = {
            "evidence": len(chosen),
            "recall": _mean(1.0 if scheduled(e) else 0.0 for e in chosen),
        }
    return {
        "conversations": len(conversations),
        "turns": sum(c.turns for c in conversations),
        "questions": sum(c.questions for c in conversations),
        "pages": len(pages),
        "evidence_turns": len(evidence),
        "evidence_in_text": sum(c.evidence_in_text for c in conversations),
        "unresolved_evidence": sum(len(c.unresolved_evidence) for c in conversations),
        "text_tokens": sum(c.text_tokens for c in conversations),
        "recall_threshold": RECALL_THRESHOLD,
        "per_mode": per_mode,
        "schedule": {
            "evidence_in_run": len(in_run),
            "recall": _mean(1.0 if scheduled(e) else 0.0 for e in in_run),
            "recall_by_age": by_age,
            "recall_by_page_age": by_page_age,
            "recall_by_scheduled_mode": by_scheduled_mode,
        },
        "expected_model_precision": expected_precision_summary(conversations, modes, tiers),
        "fox_reference": {
            "source": "DeepSeek-OCR paper, Table 2 (Fox): the model's decoding precision, "
            "not a pixel probe",
            "points": {str(tokens): points for tokens, points in FOX_POINTS.items()},
        },
        "goal": {
            "accuracy": GOAL_ACCURACY,
            "compression": GOAL_COMPRESSION,
            "tiny_met": _goal_met(per_mode.get("tiny")),
        },
    }


def _goal_met(tiny: dict[str, Any] | None) -> bool | None:
    if tiny is None or tiny["mean_probe_accuracy"] is None:
        return None
    compression = tiny["mean_compression"]["deepseek-ocr"]
    return bool(tiny["mean_probe_accuracy"] >= GOAL_ACCURACY and compression >= GOAL_COMPRESSION)


def expected_precision_summary(
    conversations: Sequence[ConversationResult],
    modes: Sequence[str],
    tiers: Sequence[tuple[str, int]],
) -> dict[str, Any]:
    """The probe beside the reader: per mode, the pages' mean expected model precision (the
    paper's Fox precision at their text tokens; None where the table has no column); per age
    bin of the forgetting curve, the evidence pages' mean probe accuracy and expected model
    precision at their scheduled mode (expected precision: TINY and SMALL pages only)."""
    pages = [page for conversation in conversations for page in conversation.pages]
    per_mode = {}
    for mode in modes:
        per_mode[mode] = _mean(
            x for p in pages if (x := p.modes[mode].expected_precision) is not None
        )
    at_schedule = []  # (age, probe accuracy, expected precision) of each evidence turn's page
    for conversation in conversations:
        for turn in conversation.evidence:
            if turn.scheduled_mode in modes:
                measured = conversation.pages[turn.page].modes[str(turn.scheduled_mode)]
                at_schedule.append((turn.age, measured.probe_accuracy, measured.expected_precision))
    by_age = []
    for start, end in _age_bins((age for age, _, _ in at_schedule), tiers):
        chosen = [(p, x) for age, p, x in at_schedule if start <= age <= end]
        if chosen:
            expected: list[float] = [x for _, x in chosen if x is not None]
            by_age.append(
                {
                    "ages": [start, end],
                    "evidence_pages": len(chosen),
                    "probe_accuracy": _mean(p for p, _ in chosen),
                    "expected_precision": _mean(expected),
                    "evidence_pages_with_expected_precision": len(expected),
                }
            )
    return {
        "source": "DeepSeek-OCR paper, Table 2 (Fox), interpolated at each page's text tokens "
        "(optical_memory.legibility.expected_precision)",
        "per_mode": per_mode,
        "by_age": by_age,
    }


# --- plots -------------------------------------------------------------------------------------


def _pyplot() -> Any:
    matplotlib = import_extra("matplotlib", "demo")
    matplotlib.use("Agg")  # files only, never a window
    return import_extra("matplotlib.pyplot", "demo")


def plot_compression_vs_accuracy(
    conversations: Sequence[ConversationResult], modes: Sequence[str], path: Path
) -> None:
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(8, 5.5), dpi=110)
    for mode in modes:
        measured = [page.modes[mode] for c in conversations for page in c.pages]
        xs = [m.compression["deepseek-ocr"] for m in measured]
        ys = [m.probe_accuracy for m in measured]
        color = _MODE_COLORS.get(mode, "black")
        axes.scatter(xs, ys, s=10, alpha=0.35, color=color, linewidths=0)
        if xs:
            axes.scatter(
                [statistics.fmean(xs)],
                [statistics.fmean(ys)],
                s=90,
                color=color,
                edgecolors="black",
                label=f"{mode.upper()} (pixel probe; page dots, mean)",
                zorder=3,
            )
    for tokens, marker in ((64, "s"), (100, "^")):
        xs = [x for x, _ in FOX_POINTS[tokens]]
        ys = [y for _, y in FOX_POINTS[tokens]]
        axes.plot(
            xs,
            ys,
            marker=marker,
            linestyle="--",
            color="grey" if tokens == 64 else "black",
            label=f"DeepSeek-OCR paper, Fox, {tokens} tokens (model decoding, not a probe)",
        )
    axes.axhline(GOAL_ACCURACY, color="green", linewidth=0.8, linestyle=":")
    axes.axvline(GOAL_COMPRESSION, color="green", linewidth=0.8, linestyle=":")
    axes.set_xlabel("compression: text tokens (o200k) per DeepSeek-OCR vision token")
    axes.set_ylabel("character accuracy")
    axes.set_ylim(-0.02, 1.02)
    axes.set_title("What each mode saves and what stays legible")
    axes.legend(fontsize=7, loc="lower left")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def plot_forgetting_curve(summary: dict[str, Any], modes: Sequence[str], path: Path) -> None:
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=110)
    rows = [row for row in summary["schedule"]["recall_by_age"] if row["recall"] is not None]
    labels = [f"{a}–{b}" if a != b else str(a) for a, b in (row["ages"] for row in rows)]
    xs = list(range(len(rows)))
    axes.plot(xs, [row["recall"] for row in rows], marker="o", label="all questions")
    axes.plot(
        xs,
        [row["recall_categories_1_4"] for row in rows],
        marker=".",
        linestyle="--",
        label="categories 1–4",
    )
    _plot_page_legibility(axes, summary, [row["ages"] for row in rows])
    for x, row in zip(xs, rows, strict=True):
        modes_here = "/".join(m.upper() for m in row["scheduled_modes"])
        axes.annotate(
            modes_here,
            (x, row["recall"]),
            textcoords="offset points",
            xytext=(0, 8),
            ha="center",
            fontsize=7,
        )
    axes.set_xticks(xs, labels)
    axes.set_xlabel("page age at the end of the conversation (pages; newest = 0)")
    axes.set_ylabel(f"evidence recall (similarity ≥ {RECALL_THRESHOLD}); page accuracy")
    axes.set_ylim(-0.02, 1.08)
    axes.set_title("Forgetting curve under the default decay schedule")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _plot_page_legibility(axes: Any, summary: dict[str, Any], bins: list[list[int]]) -> None:
    """On the forgetting curve: the evidence pages' probe accuracy and expected model precision
    at their scheduled mode, per age bin (x: the bin's position among ``bins``)."""
    rows = {tuple(row["ages"]): row for row in summary["expected_model_precision"]["by_age"]}
    for key, label, style in (
        ("probe_accuracy", "evidence pages: probe accuracy", ":"),
        ("expected_precision", "evidence pages: expected model precision (Fox)", "-."),
    ):
        points = [
            (x, rows[tuple(ages)][key])
            for x, ages in enumerate(bins)
            if tuple(ages) in rows and rows[tuple(ages)][key] is not None
        ]
        if points:
            axes.plot(*zip(*points, strict=True), marker="x", linestyle=style, label=label)


def plot_context_tokens(
    conversations: Sequence[ConversationResult], window: int, path: Path
) -> None:
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=110)
    styles = (
        ("full_text", "full text history", "black"),
        ("window", f"keep last {window} turns", "tab:orange"),
        ("optical", "optical memory", "tab:blue"),
    )
    for index, conversation in enumerate(conversations):
        turns = [p.turns for p in conversation.context]
        for key, label, color in styles:
            axes.plot(
                turns,
                [getattr(p, key) for p in conversation.context],
                color=color,
                alpha=0.8 if len(conversations) == 1 else 0.5,
                label=label if index == 0 else None,
            )
    axes.set_xlabel("turns in the conversation")
    axes.set_ylabel("tokens in context (text o200k + DeepSeek-OCR vision)")
    axes.set_title(
        "Context size as the dialog grows"
        + (" (one line per conversation)" if len(conversations) > 1 else "")
    )
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


# --- report.md ---------------------------------------------------------------------------------


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
        "pages ≥ 97% | evidence recall (1–4) | recall (5) |",
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
