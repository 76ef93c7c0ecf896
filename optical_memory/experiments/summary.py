"""The numbers of a long-dialog experiment: per mode, per age bin and per evidence turn.

:func:`summarize` computes every number a plot or the report shows; its output is stored in
``results.json`` next to the per-page and per-evidence records.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from optical_memory.experiments.records import (
    RECALL_THRESHOLD,
    TARGETS,
    ConversationResult,
    EvidenceResult,
)
from optical_memory.legibility import FOX_POINTS

#: The goal: this probe accuracy at this many text tokens per vision token, at TINY.
GOAL_ACCURACY = 0.97
GOAL_COMPRESSION = 20.0


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
