"""The demo: `optical-memory demo --out DIR` and the synthetic dialogue it is built on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from optical_memory.apps.cli import main
from optical_memory.apps.demo import DEMO_TURNS, run_demo
from optical_memory.experiments.synthetic import FACT_KINDS, generate_dialogue
from optical_memory.modes import Mode
from optical_memory.schedule import DecaySchedule


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One full `optical-memory demo` run, as `make demo` does it."""
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(out)]) == 0
    return out


def test_demo_writes_pages_contact_sheet_and_reports(demo_out: Path) -> None:
    report = json.loads((demo_out / "report.json").read_text())
    pages = sorted((demo_out / "pages").glob("page-*.png"))
    image_pages = sum(n for mode, n in report["pages_per_mode"].items() if mode != "text")
    assert len(pages) == image_pages > 0
    for path in pages:
        mode = path.stem.split("-")[2]
        side = {"tiny": 512, "small": 640, "base": 1024, "large": 1280, "gundam": 1280}[mode]
        assert Image.open(path).size == (side, side)
    sheet = Image.open(demo_out / "contact-sheet.png")
    reached = [
        m for m, n in report["pages_per_mode"].items() if n and m not in ("text", "forgotten")
    ]
    assert sheet.width >= len(reached) * 300  # one close-up per mode reached
    # Every page is framed in its mode's colour: each reached mode's colour is on the sheet.
    colours = {colour for _, colour in sheet.convert("RGB").getcolors(1 << 24) or []}
    frames = {"small": (0xFF, 0x7F, 0x00), "tiny": (0xE3, 0x1A, 0x1C), "base": (0x33, 0xA0, 0x2C)}
    for mode in reached:
        assert frames[mode] in colours, mode
    assert Image.open(demo_out / "overview.png").size == (1600, 600)
    markdown = (demo_out / "report.md").read_text()
    assert f"{report['compression_ratio']}x" in markdown
    assert str(report["history_text_tokens"]) in markdown


def test_demo_memory_fades_through_every_default_tier(demo_out: Path) -> None:
    report = json.loads((demo_out / "report.json").read_text())
    counts = report["pages_per_mode"]
    assert report["turns"] == DEMO_TURNS
    assert sum(counts.values()) == report["pages"]
    # The newest 16 pages (and the up to 7 since the last batch) are SMALL by age: shown as
    # images, or as text when that is cheaper; the older ones have faded to TINY.
    assert counts["small"] + counts["text"] >= DecaySchedule().tiers[0][1]
    for mode, _ in DecaySchedule().tiers:
        assert counts[Mode.parse(mode).value] > 0, mode


def test_demo_report_accounting_adds_up(demo_out: Path) -> None:
    report = json.loads((demo_out / "report.json").read_text())
    total = report["context_text_tokens"] + report["context_vision_tokens"]
    assert report["context_total_tokens"] == total
    assert report["compression_ratio"] == round(report["history_text_tokens"] / total, 2)
    assert report["compression_ratio"] > 2
    assert report["replaced_text_tokens"] > report["context_vision_tokens"]
    assert report["renders"] == sum(
        n for mode, n in report["pages_per_mode"].items() if mode != "text"
    )
    assert report["renders_on_second_context"] == 0
    assert report["images_cached"] >= report["renders"]


def test_demo_is_deterministic_and_reruns_in_place(tmp_path: Path) -> None:
    first = run_demo(tmp_path, turns=150, log=lambda _: None)
    pngs = {p.name: p.read_bytes() for p in (tmp_path / "pages").glob("*.png")}
    second = run_demo(tmp_path, turns=150, log=lambda _: None)
    timing = {"seconds_adding", "seconds_first_context", "seconds_second_context"}
    assert {k: v for k, v in vars(first).items() if k not in timing} == {
        k: v for k, v in vars(second).items() if k not in timing
    }
    assert second.renders > 0  # the old memory file was replaced, not reused
    assert {p.name: p.read_bytes() for p in (tmp_path / "pages").glob("*.png")} == pngs


def test_demo_with_a_budget_stays_within_it(tmp_path: Path) -> None:
    report = run_demo(tmp_path, turns=150, budget_tokens=1500, log=lambda _: None)
    assert report.context_total_tokens <= 1500


def test_demo_refuses_bad_arguments_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--out", str(tmp_path), "--turns", "0"]) == 1
    assert "--turns must be at least 1" in capsys.readouterr().err
    file = tmp_path / "file"
    file.write_text("x")
    assert main(["demo", "--out", str(file)]) == 1
    assert "is a file" in capsys.readouterr().err


def test_synthetic_dialogue_is_deterministic_with_facts_where_it_says() -> None:
    dialogue = generate_dialogue(300, seed=3)
    assert dialogue == generate_dialogue(300, seed=3)
    assert dialogue.turns != generate_dialogue(300, seed=4).turns
    assert len(dialogue.turns) == 300
    assert [role for role, _ in dialogue.turns[:4]] == ["user", "assistant", "user", "assistant"]
    assert len(dialogue.facts) == 50
    assert {fact.kind for fact in dialogue.facts} == set(FACT_KINDS)
    values = [fact.value for fact in dialogue.facts]
    assert len(set(values)) == len(values)
    for fact in dialogue.facts:
        assert fact.value in dialogue.turns[fact.turn][1]
        others = [c for i, (_, c) in enumerate(dialogue.turns) if i != fact.turn]
        assert not any(fact.value in content for content in others if fact.kind != "number")
    assert dialogue.facts_in(range(0, 12)) == dialogue.facts[:2]
    assert dialogue.messages()[0] == {"role": "user", "content": dialogue.turns[0][1]}


def test_synthetic_dialogue_refuses_impossible_requests() -> None:
    with pytest.raises(ValueError, match="turns"):
        generate_dialogue(0)
    with pytest.raises(ValueError, match="fact_every"):
        generate_dialogue(10, fact_every=1)


def test_demo_with_ocr_reports_fact_recall_per_tier(tmp_path: Path) -> None:
    report = run_demo(tmp_path, turns=50, ocr="tesseract", log=lambda _: None)
    assert report.ocr_engine == "tesseract"
    modes = [tier.mode for tier in report.ocr]
    assert modes == [m for m in ("gundam", "large", "base", "small", "tiny") if m in modes]
    assert sum(tier.pages for tier in report.ocr) == report.pages - report.text_pages
    for tier in report.ocr:
        assert 0 <= tier.facts_found <= tier.facts_planted
        assert 0.0 <= tier.character_accuracy <= 1.0
    sharpest = report.ocr[0]
    assert sharpest.character_accuracy > 0.95  # a SMALL page reads back almost verbatim
    assert sharpest.facts_planted > 0 and sharpest.facts_found == sharpest.facts_planted
    markdown = (tmp_path / "report.md").read_text()
    assert "## Read back with tesseract" in markdown
