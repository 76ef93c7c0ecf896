"""Density search: the committed result is coherent, the rule is what it says, and a small
leave-one-conversation-out search picks what it should."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from optical_memory.experiments.density import THRESHOLD, WORST_PAGE, meets, search
from optical_memory.experiments.probe import Probe
from optical_memory.experiments.synthetic import generate_dialogue
from optical_memory.renderers.layout import DENSITY_FILE, Density, chosen_density
from optical_memory.turns import Turn


def test_committed_result_is_the_densest_layout_every_conversation_reads_by_the_rule() -> None:
    result = json.loads(DENSITY_FILE.read_text(encoding="utf-8"))
    default = result["default"]
    assert chosen_density() == Density(default["font_size"], default["line_spacing"])
    assert result["rule"] == {"faintest_mode": "tiny", "worst_page": 0.95, "mean": 0.97}
    assert len(result["conversations"]) >= 2
    by_layout = {(m["font_size"], m["line_spacing"]): m for m in result["measurements"]}
    chosen = by_layout[(default["font_size"], default["line_spacing"])]
    # Every number about the default comes from its measurements, on every conversation.
    assert set(chosen["conversations"]) == set(result["conversations"])
    pages = {
        mode: [a for c in chosen["conversations"].values() for a in c["accuracy"][mode]]
        for mode in default["accuracy"]
    }
    assert meets(pages, "tiny")
    assert default["worst_page"]["tiny"] == min(pages["tiny"]) >= WORST_PAGE
    # Every denser layout was read on every conversation and fails the rule there.
    for layout in result["measurements"]:
        if layout["text_tokens_per_page"] > default["text_tokens_per_page"]:
            read = {
                mode: [a for c in layout["conversations"].values() for a in c["accuracy"][mode]]
                for mode in default["accuracy"]
                if all(mode in c["accuracy"] for c in layout["conversations"].values())
            }
            assert len(read["tiny"]) == len(pages["tiny"])
            tiny_fails = min(read["tiny"]) < WORST_PAGE or sum(read["tiny"]) < THRESHOLD * len(
                read["tiny"]
            )
            assert tiny_fails or not meets(read, "tiny")
    # Each conversation was held out once; its numbers are the chosen layout's pages there.
    assert [fold["held_out"] for fold in result["held_out"]] == result["conversations"]
    for fold in result["held_out"]:
        assert fold["held_out"] not in fold["chosen_on"]
        layout = by_layout[(fold["layout"]["font_size"], fold["layout"]["line_spacing"])]
        there = layout["conversations"][fold["held_out"]]["accuracy"]["tiny"]
        assert fold["worst_page"] == min(there)
        assert fold["accuracy"]["tiny"] == pytest.approx(sum(there) / len(there))
    assert "shared" not in result["command"]


def test_one_page_below_the_worst_page_bar_fails_the_rule_whatever_the_mean() -> None:
    assert meets({"tiny": [0.99, 0.97], "small": [0.99]}, "tiny")
    assert not meets({"tiny": [1.0, 1.0, 1.0, 0.94], "small": [0.99]}, "tiny")
    assert not meets({"tiny": [0.96, 0.96], "small": [0.99]}, "tiny")  # mean below 97%
    assert not meets({"tiny": [0.99], "small": [0.96]}, "tiny")  # a sharper mode below 97%


def test_search_holds_each_conversation_out_and_picks_the_densest_legible_layout(
    tmp_path: Path,
) -> None:
    conversations = {
        f"synthetic-{seed}": [
            Turn(role=role, content=content)
            for role, content in generate_dialogue(80, seed=seed).turns
        ]
        for seed in (0, 1)
    }
    result = search(
        conversations,
        modes=["base"],
        font_sizes=[20, 5],
        line_spacings=[1.2],
        pages=1,
        probe=Probe(cache=tmp_path),
        workers=1,
    )
    by_size = {m["font_size"]: m for m in result["measurements"]}
    # 5-px text is denser but unreadable; 20-px text reads at >= 97%: 20 wins, on both
    # conversations and in both folds.
    assert by_size[5]["text_tokens_per_page"] > 4 * by_size[20]["text_tokens_per_page"]
    assert result["default"]["font_size"] == 20
    assert result["default"]["worst_page"]["base"] >= WORST_PAGE
    assert [fold["held_out"] for fold in result["held_out"]] == list(conversations)
    for fold in result["held_out"]:
        assert fold["layout"] == {"font_size": 20.0, "line_spacing": 1.2}
        assert fold["meets"] and fold["accuracy"]["base"] >= THRESHOLD
    assert result["held_out_spread"]["folds_meeting_the_rule"] == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["optical-memory", "density", "--data", "/home/me/data/locomo10.json", "--quiet"],
        ["optical-memory", "density", "--data=/home/me/data/locomo10.json", "--quiet"],
    ],
)
def test_the_recorded_density_command_names_its_data_file_without_its_folder(
    monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    from optical_memory.apps.experiment_commands import _command_line

    monkeypatch.setattr("sys.argv", argv)
    recorded = _command_line("density", data_by_name=True)
    assert "/home/me" not in recorded and "locomo10.json" in recorded
    assert recorded.startswith("optical-memory density --data") and recorded.endswith("--quiet")
