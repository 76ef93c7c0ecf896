"""The three plots of a long-dialog experiment, drawn with matplotlib (the demo extra)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from optical_memory.experiments.records import RECALL_THRESHOLD, ConversationResult
from optical_memory.experiments.summary import GOAL_ACCURACY, GOAL_COMPRESSION
from optical_memory.extras import import_extra
from optical_memory.legibility import FOX_POINTS

_MODE_COLORS = {
    "tiny": "#d62728",
    "small": "#ff7f0e",
    "base": "#2ca02c",
    "large": "#1f77b4",
    "gundam": "#9467bd",
}


def pyplot() -> Any:
    """matplotlib's pyplot, drawing to files only (the Agg backend)."""
    matplotlib = import_extra("matplotlib", "demo")
    matplotlib.use("Agg")  # files only, never a window
    return import_extra("matplotlib.pyplot", "demo")


def plot_compression_vs_accuracy(
    conversations: Sequence[ConversationResult], modes: Sequence[str], path: Path
) -> None:
    plt = pyplot()
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
    plt = pyplot()
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
    plt = pyplot()
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
