"""Page geometry per target: what each level costs the provider and what its reader can read."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest

from optical_memory import Mode, OpticalMemory, renderers
from optical_memory.experiments.synthetic import generate_dialogue
from optical_memory.geometry import (
    DEEPSEEK_SIDES,
    calibrated_cells,
    cell_legibility,
    level_geometry,
    level_sides,
)
from optical_memory.legibility import ModeLegibility
from optical_memory.renderers.pil import PillowRenderer
from optical_memory.turns import Turn

DEFAULT_FONT_PX = 17  # the renderer's text size on its 1024-px reference page


def openai_bill(side: int) -> int:
    """GPT-4o's documented rule, worked out here: within 2048², short side to 768, then
    85 + 170 per 512-px tile."""
    seen = min(side, 2048)
    seen = min(seen, 768)
    return 85 + 170 * math.ceil(seen / 512) ** 2


def anthropic_bill(side: int) -> int:
    """Claude's documented rule: w*h/750 tokens, the image first brought within 1568 px and
    about 1.15 megapixels."""
    seen = min(side, 1568, int(math.sqrt(1_150_000)) + 1)
    return max(1, round(seen * seen / 750))


def seen_cell(side: int, seen_side: float) -> float:
    """Glyph cell height the reader sees: the default font scaled to the page, then to what
    the provider keeps of it."""
    return DEFAULT_FONT_PX * side / 1024 * seen_side / side


@pytest.mark.parametrize("mode", list(Mode))
def test_openai_levels_cost_no_more_and_show_glyphs_at_least_as_large(mode: Mode) -> None:
    before, now = DEEPSEEK_SIDES[mode], level_sides("openai")[mode]
    assert openai_bill(now) <= openai_bill(before)
    assert seen_cell(now, min(now, 768)) >= seen_cell(before, min(before, 768))
    assert now <= 768  # never more pixels than the provider keeps: it would shrink them


def test_openai_small_pages_fill_the_four_tiles_they_are_billed_for() -> None:
    # 640 px already pays for four 512-px tiles; 768 px is the most those tiles hold.
    assert openai_bill(640) == openai_bill(level_sides("openai")[Mode.SMALL])
    assert level_sides("openai")[Mode.SMALL] == 768


def test_a_flat_price_per_image_buys_the_largest_page_at_every_level() -> None:
    sides = level_sides("gemini-3")
    assert all(side >= DEEPSEEK_SIDES[Mode.GUNDAM] for side in sides.values())


@pytest.mark.parametrize("mode", list(Mode))
def test_area_billing_never_costs_claude_more_than_before(mode: Mode) -> None:
    before, now = DEEPSEEK_SIDES[mode], level_sides("anthropic")[mode]
    assert anthropic_bill(now) <= anthropic_bill(before) + 2  # rounding of the resize


def test_levels_still_fade_sharpest_to_faintest_for_every_target() -> None:
    from optical_memory.modes import FADING_ORDER
    from optical_memory.targets import TARGETS

    for target in TARGETS:
        sides = level_sides(target)
        ordered = [sides[mode] for mode in FADING_ORDER]
        assert ordered == sorted(ordered, reverse=True), target


def test_deepseek_keeps_its_own_five_sizes() -> None:
    assert level_sides("deepseek-ocr") == {m: DEEPSEEK_SIDES[m] for m in Mode}
    assert renderers.resolve(None, "deepseek-ocr").settings_key == PillowRenderer().settings_key


def test_claude_prior_is_the_published_cell_measurements_and_unknown_below_them() -> None:
    # pxpipe's figures: 5x8-px cells 10% exact, 10x16 95%, 20x32 100%.
    assert cell_legibility("anthropic", 8.0) == pytest.approx(0.10)
    assert cell_legibility("anthropic", 16.0) == pytest.approx(0.95)
    assert cell_legibility("anthropic", 40.0) == pytest.approx(1.0)
    assert cell_legibility("anthropic", 6.0) == 0.0
    # Nothing published for GPT: no better than Claude at any cell.
    for cell in (8.0, 12.0, 16.0, 24.0, 32.0):
        assert cell_legibility("openai", cell) <= cell_legibility("anthropic", cell)


def test_a_calibration_that_reads_small_cells_makes_faint_pages_cheaper() -> None:
    # The model read every character even at TINY (512 px): SMALL need not be drawn larger.
    table = {mode: ModeLegibility(1.0, 1.0, 4) for mode in (Mode.TINY, Mode.SMALL)}
    cells = calibrated_cells("anthropic", table)
    calibrated, prior = level_sides("anthropic", cells), level_sides("anthropic")
    assert anthropic_bill(calibrated[Mode.SMALL]) < anthropic_bill(prior[Mode.SMALL])
    small = level_geometry("anthropic", Mode.SMALL, calibrated[Mode.SMALL], cells)
    assert small.legibility == 1.0
    # Nothing was measured below TINY's cells: no level is drawn smaller than that.
    assert calibrated[Mode.TINY] == prior[Mode.TINY]
    assert calibrated[Mode.GUNDAM] == prior[Mode.GUNDAM]  # sharp levels stay sharp


@pytest.mark.parametrize(
    ("sides", "error", "words"),
    [
        ({"tiny": 0}, ValueError, "64 to 4096"),
        ({"tiny": 99999}, ValueError, "64 to 4096"),
        ({"tiny": 512.5}, ValueError, "whole number"),
        ({"huge": 512}, ValueError, "unknown mode"),
        ("tiny:512", TypeError, "must map modes"),
    ],
)
def test_bad_page_sides_get_a_clear_error(sides: object, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        PillowRenderer(sides=sides)  # type: ignore[arg-type]


def test_an_unknown_target_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        level_sides("gpt-9")


def test_a_memory_draws_pages_at_its_targets_sides_and_keeps_their_text() -> None:
    turns = generate_dialogue(120, seed=3).turns
    sizes = {}
    texts = {}
    for target in ("deepseek-ocr", "openai"):
        with OpticalMemory(None, target=target) as memory:
            for role, content in turns:
                memory.add(role, content)
            pages = memory.context().pages
            assert pages
            sizes[target] = {(p.mode, p.width, p.height) for p in pages}
            texts[target] = [memory.recall(p.page_id) for p in pages]
            for page in pages:
                assert page.image.size == (page.width, page.height)
    sides = level_sides("openai")
    assert sizes["openai"] == {(mode, sides[mode], sides[mode]) for mode, _, _ in sizes["openai"]}
    assert texts["openai"] == texts["deepseek-ocr"]  # same pages, only drawn larger


needs_stub = pytest.mark.skipif(
    shutil.which("tesseract") is None, reason="the reading stub needs the tesseract program"
)


def _read_through_stub(turns: list[Turn], renderer: PillowRenderer) -> tuple[int, int]:
    """Characters of the first two SMALL pages the stub reads back, and the tokens it bills."""
    from langchain_openai import ChatOpenAI
    from pydantic import SecretStr
    from reader_stub import reader_stub

    from optical_memory.experiments.ocr import character_accuracy, normalize_whitespace
    from optical_memory.experiments.readers import ChatModelReader

    with reader_stub() as server:
        host, port = server.server_address[:2]
        model = ChatOpenAI(
            base_url=f"http://{host!s}:{port}/v1",
            model="gpt-4o",
            api_key=SecretStr("none"),
            temperature=0,
        )
        reader = ChatModelReader(model)
        read_chars = 0
        for page in renderer.render(turns, Mode.SMALL)[:2]:
            expected = normalize_whitespace(page.text(turns))
            got = normalize_whitespace(reader.read(page.image, Mode.SMALL))
            read_chars += round(character_accuracy(expected, got) * len(expected))
        return read_chars, sum(server.bills)


def _assert_geometry_reads_more_per_token(turns: list[Turn]) -> None:
    pytest.importorskip("langchain_openai")
    chars_before, tokens_before = _read_through_stub(turns, PillowRenderer())
    chars_now, tokens_now = _read_through_stub(turns, PillowRenderer(sides=level_sides("openai")))
    assert tokens_now <= tokens_before
    assert chars_now > chars_before
    assert chars_now / tokens_now > chars_before / tokens_before


@needs_stub
def test_through_the_reading_stub_openai_geometry_reads_more_characters_per_billed_token() -> None:
    turns = [Turn(role=r, content=c) for r, c in generate_dialogue(40, seed=11).turns]
    _assert_geometry_reads_more_per_token(turns)


@needs_stub
def test_on_a_real_conversation_openai_geometry_reads_more_per_billed_token(
    locomo_path: Path,
) -> None:
    from optical_memory.experiments.locomo import read_locomo

    conversation = read_locomo(locomo_path)[-1]  # the geometry comes from billing and priors
    _assert_geometry_reads_more_per_token(list(conversation.turns)[:80])


@pytest.mark.parametrize(("target", "unit"), [("qwen3-vl", 32)])
def test_qwen_levels_sit_on_its_patch_grid_so_nothing_is_resampled(target: str, unit: int) -> None:
    # Qwen's smart_resize rounds each side to whole patches: any other side is resampled.
    for mode, side in level_sides(target).items():
        assert side % unit == 0, (mode, side)


def test_an_agent_for_another_target_is_sent_pages_at_that_targets_sides() -> None:
    pytest.importorskip("langchain")
    import base64
    import io

    from langchain_core.messages import HumanMessage
    from PIL import Image
    from recording_model import RecordingChatModel

    from optical_memory.agents import wrap

    memory = OpticalMemory(None, thread_id="t")  # drawn for DeepSeek-OCR by default
    for role, content in generate_dialogue(120, seed=5).turns:
        memory.add(role, content)
    model = RecordingChatModel(messages=iter(["ok"]))
    chat = wrap(memory, model, target="openai")
    chat.invoke([HumanMessage("What was the build id?")], {"configurable": {"thread_id": "t"}})
    sizes = set()
    for message in model.requests[-1]:
        for block in message.content_blocks:
            if block["type"] == "image":
                data = base64.b64decode(block["base64"])
                sizes.add(Image.open(io.BytesIO(data)).size)
    small = level_sides("openai")[Mode.SMALL]
    assert (small, small) in sizes
    assert all(side <= 768 for side, _ in sizes)  # nothing OpenAI would shrink
