"""The needle benchmark: planted exact values, found again from what the memory sends."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from optical_memory.experiments.needles import (
    KINDS,
    LOOKALIKES,
    PageReadings,
    make_value,
    plant,
    run_conversation,
    summarize,
)
from optical_memory.experiments.readers import Reader, TesseractReader
from optical_memory.experiments.synthetic import generate_dialogue
from optical_memory.tokens import get_encoding
from optical_memory.turns import Turn


def dialogue(turns: int = 200, seed: int = 1) -> list[Turn]:
    return [Turn(role=r, content=c) for r, c in generate_dialogue(turns, seed=seed).turns]


class BlindReader:
    """Reads nothing off any page (a model that cannot make out small glyphs at all)."""

    name = "blind"

    def __init__(self) -> None:
        self.pages = 0

    def read(self, image: object, mode: object = None) -> str:
        self.pages += 1
        return ""


def test_values_are_exact_look_alikes_planted_once_before_the_recent_turns() -> None:
    rng = random.Random(0)
    turns = dialogue()
    planted, needles = plant(turns, 12, rng, keep_recent=6)
    assert [n.kind for n in needles] == list(KINDS) * 3
    for needle in needles:
        assert needle.turn_index < len(turns) - 12
        assert planted[needle.turn_index].content.startswith(turns[needle.turn_index].content)
        assert sum(needle.value in turn.content for turn in planted) == 1
    codes = [n.value for n in needles if n.kind == "look-alike code"]
    assert all(sum(c in LOOKALIKES for c in code) >= 3 for code in codes)
    assert make_value("phone number", rng).startswith("+1 (")
    with pytest.raises(ValueError, match="unknown needle kind"):
        make_value("ssn", rng)
    with pytest.raises(ValueError, match="need 300 turns"):
        plant(turns, 300, rng, keep_recent=6)


def test_a_reader_that_reads_nothing_still_gets_every_value_from_the_verbatim_text() -> None:
    rng = random.Random(3)
    planted, needles = plant(dialogue(), 8, rng, keep_recent=6)
    blind = BlindReader()
    run = run_conversation("synthetic", planted, needles, "deepseek-ocr", PageReadings(blind))
    on_images = [o for o in run.outcomes if o.shown_as == "image"]
    assert len(on_images) == 8 and blind.pages >= 1
    assert not any(o.read for o in on_images)
    assert all(o.recovered for o in on_images)
    # Tokens: today's context plus exactly the verbatim text's tokens, counted here again.
    assert run.tokens == run.tokens_today + run.verbatim_tokens
    summary = summarize([run])[0]
    assert (summary.needles, summary.read, summary.recovered) == (8, 0, 8)


def test_the_tesseract_reader_is_a_reader_and_names_how_it_reads() -> None:
    reader: Reader = TesseractReader(enlarge=False)
    assert isinstance(reader, Reader)
    assert reader.name == "tesseract-own-pixels"
    assert TesseractReader().name == "tesseract"


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="needs the tesseract program")
def test_on_locomo_every_planted_value_comes_back_for_a_tenth_more_tokens(
    locomo_path: Path,
) -> None:
    from optical_memory.experiments.locomo import read_locomo

    conversation = read_locomo(locomo_path)[-1]
    planted, needles = plant(list(conversation.turns), 8, random.Random(11), keep_recent=6)
    readings = PageReadings(TesseractReader())
    run = run_conversation(conversation.sample_id, planted, needles, "deepseek-ocr", readings)
    assert all(o.recovered for o in run.outcomes)
    assert run.tokens <= 1.10 * run.tokens_today
    # The verbatim text holds each value on an image page word for word.
    enc = get_encoding()
    assert run.verbatim_tokens >= sum(
        len(enc.encode(o.needle.value)) for o in run.outcomes if o.shown_as == "image"
    )


def test_the_deepseek_reader_sends_each_page_at_the_mode_it_is_read_at(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("langchain_core")
    from tiny_deepseek import tiny_model

    from optical_memory import renderers
    from optical_memory.agents.chat_model import ChatDeepSeekOCR
    from optical_memory.experiments.readers import DEEPSEEK_PROMPT, ChatModelReader
    from optical_memory.modes import Mode

    model = tiny_model(tmp_path)
    reader = ChatModelReader(ChatDeepSeekOCR(model=model, max_new_tokens=4), DEEPSEEK_PROMPT)
    page = renderers.create("pil").render([Turn(role="user", content="code B8O0-lI15")], Mode.TINY)
    prompt = 1 + len(model.tokenizer.encode(f"\n{DEEPSEEK_PROMPT}", add_special_tokens=False))
    assert isinstance(reader.read(page[0].image, Mode.TINY), str)
    assert reader.input_tokens == 73 + prompt  # TINY: 64 tokens, 8 newlines, 1 separator
    reader.read(page[0].image, Mode.BASE)  # the same pixels, encoded as BASE says
    assert reader.input_tokens == 73 + 273 + 2 * prompt
    assert reader.calls == 2
