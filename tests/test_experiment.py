"""The long-dialog experiment: its similarity measure, and a small run's report checked for
internal consistency (synthetic data always; one LoCoMo conversation when the data is here)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from optical_memory.apps.cli import main
from optical_memory.experiments.run import evidence_ids, load_dialogs
from optical_memory.experiments.similarity import substring_distance, substring_similarity
from optical_memory.legibility import FOX_POINTS, expected_precision
from optical_memory.modes import Mode
from optical_memory.targets import vision_tokens

TARGETS = ("deepseek-ocr", "openai", "anthropic", "qwen2.5-vl")


def _substring_distance_by_table(needle: str, haystack: str) -> int:
    """Sellers' dynamic programme, cell by cell: the reference for the bit-parallel version."""
    previous = [0] * (len(haystack) + 1)
    for i, a in enumerate(needle, start=1):
        current = [i] + [0] * len(haystack)
        for j, b in enumerate(haystack, start=1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a != b))
        previous = current
    return min(previous)


def test_substring_distance_equals_the_dynamic_programme_on_random_strings() -> None:
    rng = random.Random(8)
    for _ in range(400):
        needle = "".join(rng.choice("ab c") for _ in range(rng.randint(1, 40)))
        haystack = "".join(rng.choice("abcd ") for _ in range(rng.randint(0, 60)))
        assert substring_distance(needle, haystack) == _substring_distance_by_table(
            needle, haystack
        )


def test_substring_similarity_is_one_verbatim_and_nine_tenths_at_one_edit_in_ten() -> None:
    page = "Caroline: I went to the support group\nyesterday. Melanie: Oh wow!"
    assert substring_similarity("I went to the support group yesterday.", page) == 1.0
    assert substring_similarity("abcdefghij", "xx abcdefgXij yy") == pytest.approx(0.9)
    assert substring_similarity("abcdefghij", "xx abXdefgXij yy") == pytest.approx(0.8)
    assert substring_similarity("something else entirely", "") == 0.0


def test_evidence_ids_repair_locomos_malformed_ids() -> None:
    assert evidence_ids("D1:3") == ["D1:3"]
    assert evidence_ids("D8:6; D9:17") == ["D8:6", "D9:17"]
    assert evidence_ids("D:11:26") == ["D11:26"]
    assert evidence_ids("D") == ["D"]  # names no turn: counted as unresolved


def test_limit_keeps_only_questions_whose_evidence_is_in_the_kept_turns() -> None:
    (full,) = load_dialogs("synthetic")
    (cut,) = load_dialogs("synthetic", limit=60)
    assert len(cut.turns) == 60
    assert cut.questions
    assert all(int(e[1:]) < 60 for q in cut.questions for e in q.evidence)
    assert len(cut.questions) < len(full.questions)


def _run(tmp_path: Path, *args: str) -> tuple[dict[str, Any], Path]:
    out = tmp_path / "report"
    cache = str(tmp_path / "ocr-cache")
    status = main(
        [
            "experiment",
            "--out",
            str(out),
            "--modes",
            "tiny,base",
            "--quiet",
            "--cache",
            cache,
            *args,
        ]
    )
    assert status == 0
    return json.loads((out / "results.json").read_text(encoding="utf-8")), out


def _check_consistency(results: dict[str, Any], out: Path) -> None:
    """What every report must satisfy, whatever the data."""
    modes = results["settings"]["modes"]
    assert modes == ["tiny", "base", "small"]  # as asked, then the schedule's own modes
    for conversation in results["conversations"]:
        pages = conversation["pages"]
        assert pages, "the run must freeze at least one page"
        for page in pages:
            assert page["age"] == len(pages) - 1 - page["index"]
            assert set(page["modes"]) == set(modes)
            for mode, measured in page["modes"].items():
                width, height = measured["width"], measured["height"]
                for target in TARGETS:
                    tokens = measured["vision_tokens"][target]
                    assert tokens == vision_tokens(width, height, target, mode)
                    assert measured["compression"][target] == pytest.approx(
                        page["text_tokens"] / tokens
                    )
                assert 0.0 <= measured["probe_accuracy"] <= 1.0
                # The reader's own expectation beside the probe: the paper's Fox precision at
                # the page's text tokens, where the paper measured the mode.
                if mode in ("tiny", "small"):
                    assert measured["expected_precision"] == expected_precision(
                        page["text_tokens"], mode
                    )
                else:
                    assert measured["expected_precision"] is None
            assert page["modes"]["tiny"]["vision_tokens"]["deepseek-ocr"] == 73
            assert page["modes"]["base"]["vision_tokens"]["deepseek-ocr"] == 273
        # Every evidence turn is on exactly one page (its home page), once per question.
        seen = set()
        for evidence in conversation["evidence"]:
            key = (evidence["question"], evidence["dia_id"])
            assert key not in seen
            seen.add(key)
            home = pages[evidence["page"]]
            assert evidence["dia_id"] in home["turns"]
            assert evidence["age"] == home["age"]
            assert evidence["scheduled_mode"] == home["scheduled_mode"]
            for mode in modes:
                assert 0.0 <= evidence["similarity"][mode] <= 1.0
    summary = results["summary"]
    for mode in modes:
        row = summary["per_mode"][mode]
        for value in (row["mean_probe_accuracy"], row["evidence_recall"]):
            assert 0.0 <= value <= 1.0
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "expected model precision" in report
    expected = summary["expected_model_precision"]
    for mode in modes:
        if mode in ("tiny", "small"):
            assert 0.0 < expected["per_mode"][mode] <= 1.0
        else:
            assert expected["per_mode"][mode] is None
    for name in ("compression_vs_accuracy.png", "forgetting_curve.png", "context_tokens.png"):
        assert f"]({name})" in report
        with Image.open(out / name) as image:
            assert image.width > 300 and image.height > 200


def test_synthetic_experiment_report_is_consistent_and_deterministic(tmp_path: Path) -> None:
    results, out = _run(tmp_path, "--data", "synthetic", "--limit", "60")
    _check_consistency(results, out)
    (conversation,) = results["conversations"]
    assert conversation["turns"] == 60
    # Each planted fact in the kept turns is a question with one evidence turn; every one is
    # on a page, in the text tail, or (never, here) unresolved.
    questions = conversation["questions"]
    assert questions > 0
    assert len(conversation["evidence"]) + conversation["evidence_in_text"] == questions
    assert conversation["unresolved_evidence"] == []
    # Full text history grows with every turn; the window stays bounded; memory saves tokens.
    context = conversation["context"]
    assert [p["turns"] for p in context] == sorted(p["turns"] for p in context)
    assert context[-1]["turns"] == 60
    assert context[-1]["full_text"] == conversation["text_tokens"]
    assert all(p["window"] <= p["full_text"] for p in context)
    # BASE pages, 1024 px, are read almost perfectly and recall every planted fact on them.
    base = results["summary"]["per_mode"]["base"]
    assert base["mean_probe_accuracy"] > 0.95
    assert base["evidence_recall"] == 1.0
    # A run cut short still draws its forgetting curve (the default schedule's modes are
    # measured too) and leaves the goal unjudged.
    assert results["settings"]["modes"] == ["tiny", "base", "small"]
    assert results["summary"]["schedule"]["recall_by_age"]
    report = (out / "report.md").read_text()
    assert "not judged on a run cut to 60 turns" in report and "not met" not in report
    # Same data, same settings: the same numbers (the second run reads the OCR cache).
    again, _ = _run(tmp_path, "--data", "synthetic", "--limit", "60")
    assert again["conversations"] == results["conversations"]
    assert again["summary"] == results["summary"]


def test_locomo_conversation_report_is_consistent(tmp_path: Path, locomo_path: Path) -> None:
    results, out = _run(
        tmp_path, "--data", str(locomo_path), "--samples", "conv-26", "--limit", "60"
    )
    _check_consistency(results, out)
    (conversation,) = results["conversations"]
    assert conversation["sample_id"] == "conv-26"
    assert conversation["evidence"], "conv-26's first 60 turns hold evidence of some questions"
    assert all(e["dia_id"].startswith("D") for e in conversation["evidence"])
    assert {e["category"] for e in conversation["evidence"]} <= {1, 2, 3, 4, 5}


def test_experiment_rejects_an_unknown_sample_in_one_line(
    tmp_path: Path, locomo_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        ["experiment", "--data", str(locomo_path), "--samples", "conv-999", "--out", str(tmp_path)]
    )
    assert status == 1
    error = capsys.readouterr().err.strip()
    assert "conv-999" in error and "conv-26" in error and "\n" not in error


def test_fox_reference_points_are_the_papers() -> None:
    assert FOX_POINTS[64][0] == (10.5, 0.965) and FOX_POINTS[64][-1] == (19.7, 0.591)
    assert FOX_POINTS[100][0] == (6.7, 0.985) and FOX_POINTS[100][-1] == (12.6, 0.871)
    assert Mode.TINY.paper_tokens == 64 and Mode.SMALL.paper_tokens == 100


def test_html_renderer_experiment_is_consistent(tmp_path: Path, chromium_path: str) -> None:
    results, out = _run(tmp_path, "--data", "synthetic", "--limit", "60", "--renderer", "html")
    _check_consistency(results, out)
    assert results["settings"]["renderer"] == "html"
    assert results["settings"]["renderer_settings"].startswith("html")
    assert results["summary"]["per_mode"]["base"]["mean_probe_accuracy"] > 0.95
