"""Density search: the committed result is coherent, and a small search picks what it should."""

from __future__ import annotations

import json
from pathlib import Path

from optical_memory.experiments.density import THRESHOLD, search
from optical_memory.experiments.probe import Probe
from optical_memory.experiments.run import load_dialogs
from optical_memory.renderers.layout import DENSITY_FILE, Density, chosen_density


def test_committed_result_chooses_a_default_every_mode_reads_at_the_threshold() -> None:
    result = json.loads(DENSITY_FILE.read_text(encoding="utf-8"))
    default = result["default"]
    assert chosen_density() == Density(default["font_size"], default["line_spacing"])
    assert result["threshold"] == THRESHOLD == 0.97
    assert set(default["accuracy"]) == {"tiny", "small", "base", "large", "gundam"}
    assert all(accuracy >= THRESHOLD for accuracy in default["accuracy"].values())
    # The default is legible at TINY, so it is no denser than TINY's own limit, and every
    # sharper mode's limit is at least as dense as TINY's.
    tiny = result["per_mode"]["tiny"]
    assert default["text_tokens_per_page"] <= tiny["text_tokens_per_page"]
    for mode in ("small", "base", "large", "gundam"):
        assert result["per_mode"][mode]["text_tokens_per_page"] >= tiny["text_tokens_per_page"]
    # Every number in the file comes from a measurement listed in it.
    measured = {(m["font_size"], m["line_spacing"]) for m in result["measurements"]}
    assert (default["font_size"], default["line_spacing"]) in measured


def test_search_picks_the_densest_setting_that_stays_legible(tmp_path: Path) -> None:
    (dialog,) = load_dialogs("synthetic")
    result = search(
        dialog.turns,
        modes=["base"],
        font_sizes=[20, 5],
        line_spacings=[1.2],
        pages=1,
        probe=Probe(cache=tmp_path),
        workers=1,
    )
    by_size = {m["font_size"]: m for m in result["measurements"]}
    # 5-px text is denser but unreadable; 20-px text is read at >= 97%: 20 wins.
    assert by_size[5]["text_tokens_per_page"] > 4 * by_size[20]["text_tokens_per_page"]
    assert by_size[5]["accuracy"]["base"] < THRESHOLD <= by_size[20]["accuracy"]["base"]
    assert result["per_mode"]["base"]["font_size"] == 20
    assert result["default"]["font_size"] == 20
    assert result["per_mode"]["base"]["compression_deepseek_ocr"] == (
        by_size[20]["text_tokens_per_page"] / 273
    )
