"""The OCR probe: reading pages back, and the character accuracy it is scored with."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optical_memory.experiments.ocr import (
    character_accuracy,
    edit_distance,
    normalize_whitespace,
    read_text,
)
from optical_memory.modes import Mode
from optical_memory.renderers.pil import PillowRenderer
from optical_memory.turns import Turn

TEXT = (
    "The conference starts on 14 March 2027 in Ljubljana. My locker code is 48213 and "
    "my dentist is called Ingrid Halvorsen."
)


def reference_distance(a: str, b: str) -> int:
    """The textbook dynamic programme, to check the bit-parallel one against."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b))
            )
        previous = current
    return previous[-1]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="abcé🙂", max_size=70), st.text(alphabet="abcdé🙂", max_size=70))
def test_edit_distance_matches_the_textbook_definition(a: str, b: str) -> None:
    assert edit_distance(a, b) == reference_distance(a, b)


def test_character_accuracy_is_one_minus_normalized_edit_distance() -> None:
    assert character_accuracy("kitten", "kitten") == 1.0
    assert character_accuracy("kitten", "sitting") == pytest.approx(1 - 3 / 7)
    assert character_accuracy("abc", "") == 0.0
    assert character_accuracy("", "") == 1.0
    assert normalize_whitespace(" a \n b\t\tc ") == "a b c"


def test_unknown_engine_names_the_choices() -> None:
    page = PillowRenderer().render([Turn(role="user", content="hi")], Mode.TINY)[0]
    with pytest.raises(ValueError, match="tesseract, rapidocr"):
        read_text(page.image, "easyocr")


@pytest.mark.parametrize("engine", ["tesseract", "rapidocr"])
def test_engines_read_a_small_page_back(engine: str) -> None:
    if engine == "tesseract" and shutil.which("tesseract") is None:
        pytest.fail("tesseract not found: run `make setup` as root (apt tesseract-ocr)")
    page = PillowRenderer().render([Turn(role="user", content=TEXT)], Mode.SMALL)[0]
    read = normalize_whitespace(read_text(page.image, engine))
    assert character_accuracy(f"user: {TEXT}", read) > 0.9
    assert "48213" in read and "Ljubljana" in read


def test_tesseract_reads_a_dense_page_as_one_block_and_drops_no_lines(locomo_path: Path) -> None:
    # conv-26's first density-search sample page at TINY: tesseract's automatic layout analysis
    # read it with four whole lines missing (84%), though every line it found read right.
    from optical_memory.experiments.density import _sample_pages
    from optical_memory.experiments.locomo import read_locomo_sample
    from optical_memory.experiments.probe import enlarge_for_probe
    from optical_memory.experiments.similarity import page_accuracy
    from optical_memory.renderers.layout import Density

    if shutil.which("tesseract") is None:
        pytest.fail("tesseract not found: run `make setup` as root (apt tesseract-ocr)")
    conversation = read_locomo_sample(locomo_path, "conv-26")
    sample = _sample_pages(list(conversation.turns), Density(17, 1.1), 2)
    turns = [Turn(role=role, content=content) for role, content in sample.pieces[0]]
    page = PillowRenderer(font_size=17, line_spacing=1.1).render(turns, Mode.TINY)[0]
    assert page_accuracy(sample.texts[0], read_text(enlarge_for_probe(page.image))) > 0.97


def test_rapidocr_starts_without_logging_every_model_it_loads(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from optical_memory.experiments import ocr

    monkeypatch.setattr(ocr, "_rapidocr_engine", None)  # construct it here, as a probe process does
    page = PillowRenderer().render([Turn(role="user", content=TEXT)], Mode.SMALL)[0]
    assert "48213" in read_text(page.image, "rapidocr")
    assert "[RapidOCR]" not in capfd.readouterr().err
