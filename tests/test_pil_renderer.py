"""The Pillow renderer: page sizes, exact spans, determinism, labels, wrapping and fonts."""

from __future__ import annotations

import io
import itertools
import shutil
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from optical_memory.modes import TILE_SIZE, Mode, gundam_grid
from optical_memory.renderers import PillowRenderer, Renderer, Span
from optical_memory.renderers import fonts as fonts_module
from optical_memory.renderers.fonts import FontNotFoundError, default_chain
from optical_memory.renderers.page import RenderedPage
from optical_memory.renderers.palette import Ramp
from optical_memory.renderers.style import label_colour
from optical_memory.targets import vision_tokens
from optical_memory.turns import Turn

LOREM = (
    "Memory fades the way a photograph does: first the fine print, then the faces, "
    "until only the shape of the day remains. "
)


@pytest.fixture(scope="module")
def renderer() -> PillowRenderer:
    return PillowRenderer()


@pytest.fixture(scope="module")
def cramped() -> PillowRenderer:
    """A page with room for six short lines, so that small inputs cross many pages."""
    return PillowRenderer(font_size=30, margin=400)


def rebuilt(turns: Sequence[Turn], pages: Sequence[Sequence[Span]]) -> list[str]:
    """Each turn's content put back together from the spans, in page order."""
    pieces = [""] * len(turns)
    for spans in pages:
        for turn, start, end in spans:
            pieces[turn] += turns[turn].content[start:end]
    return pieces


def assert_spans_cover_exactly(turns: Sequence[Turn], pages: Sequence[Sequence[Span]]) -> None:
    flat = [span for spans in pages for span in spans]
    assert all(spans for spans in pages), "every page holds some text"
    assert [span.turn for span in flat] == sorted(span.turn for span in flat)
    assert {span.turn for span in flat} == set(range(len(turns)))
    for index, turn in enumerate(turns):
        own = [span for span in flat if span.turn == index]
        assert own[0].start == 0 and own[-1].end == len(turn.content)
        assert all(a.end == b.start for a, b in itertools.pairwise(own))
    assert rebuilt(turns, pages) == [turn.content for turn in turns]


def rgb(page: RenderedPage) -> np.ndarray:
    """The page's pixels, (height, width, 3) uint8."""
    return np.asarray(page.image.convert("RGB"))


def ink(image: np.ndarray) -> np.ndarray:
    """Boolean mask of pixels that are not (nearly) white."""
    return image.min(axis=2) < 200


# --- the protocol and page sizes ---------------------------------------------------------------


def test_pillow_renderer_satisfies_the_renderer_protocol(renderer: PillowRenderer) -> None:
    assert isinstance(renderer, Renderer)


@pytest.mark.parametrize(
    ("mode", "size"),
    [
        (Mode.TINY, (512, 512)),
        (Mode.SMALL, (640, 640)),
        (Mode.BASE, (1024, 1024)),
        (Mode.LARGE, (1280, 1280)),
        (Mode.GUNDAM, (1280, 1280)),
    ],
)
def test_pages_have_the_modes_input_size(
    renderer: PillowRenderer, mode: Mode, size: tuple[int, int]
) -> None:
    [page] = renderer.render([Turn(role="user", content="hello")], mode)
    assert page.image.size == size
    assert page.mode is mode


def test_a_text_page_is_a_palette_image_stored_at_four_bits_a_pixel(
    renderer: PillowRenderer,
) -> None:
    turns = [Turn(role="user", content=LOREM * 20), Turn(role="assistant", content=LOREM * 20)]
    [page] = renderer.render(turns, Mode.BASE)
    assert page.image.mode == "P"
    colours = page.image.convert("RGB").getcolors(256)
    assert colours is not None and len(colours) <= 16
    png = page.png()
    assert png[24] == 4  # IHDR bit depth: two pixels a byte
    stored = Image.open(io.BytesIO(png))
    assert np.array_equal(np.asarray(stored.convert("RGB")), rgb(page))


def test_gundam_pages_tile_exactly_into_two_by_two_tiles(renderer: PillowRenderer) -> None:
    [page] = renderer.render([Turn(role="user", content="hello")], Mode.GUNDAM)
    width, height = page.image.size
    assert width % TILE_SIZE == 0 and height % TILE_SIZE == 0
    assert gundam_grid(width, height) == (width // TILE_SIZE, height // TILE_SIZE) == (2, 2)
    assert vision_tokens(width, height, "deepseek-ocr", Mode.GUNDAM) == 693


def test_no_turns_render_no_pages(renderer: PillowRenderer) -> None:
    assert renderer.render([], Mode.BASE) == []
    assert renderer.paginate([]) == []


# --- spans --------------------------------------------------------------------------------------

_SCRIPTS = st.sampled_from(
    [
        "The quick brown fox",
        "你好世界，記憶は薄れる",
        "שלום עולם",
        "مرحبا بالعالم",
        "😀🤖👨‍👩‍👧 ✨",
        "e\u0301 a\u0308",
        "\t\r\n\x00\x07\u200b\ufeff\u2028",
        "x" * 90,
        " " * 40,
        "\n\n\n",
    ]
)
_CONTENT = st.lists(st.one_of(st.text(max_size=120), _SCRIPTS), max_size=6).map("".join)
_TURNS = st.lists(
    st.builds(
        Turn,
        role=st.one_of(
            st.sampled_from(["user", "assistant", "Caroline", "ツール"]),
            st.text(min_size=1, max_size=30).filter(str.strip),  # any label must print
        ),
        content=_CONTENT,
    ),
    max_size=5,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(turns=_TURNS)
def test_spans_of_all_pages_concatenate_back_to_every_turn(
    cramped: PillowRenderer, turns: list[Turn]
) -> None:
    pages = cramped.paginate(turns)
    if not turns:
        assert pages == []
        return
    assert_spans_cover_exactly(turns, pages)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(turns=_TURNS)
def test_any_unicode_renders_without_raising_and_keeps_the_layout(
    cramped: PillowRenderer, turns: list[Turn]
) -> None:
    pages = cramped.render(turns, Mode.TINY)
    assert [page.spans for page in pages] == cramped.paginate(turns)


@settings(max_examples=60, deadline=None)
@given(text=st.text(min_size=1, max_size=12), bold=st.booleans())
def test_a_word_measures_the_same_by_its_characters_as_by_its_font_runs(
    renderer: PillowRenderer, text: str, bold: bool
) -> None:
    # Most words take the per-character shortcut; it must agree with the general measure.
    plain = renderer._measure_plain(text, bold)
    assert plain is None or plain == renderer._measure_runs(text, bold)


def test_layout_is_the_same_at_every_mode(renderer: PillowRenderer) -> None:
    turns = [Turn(role="user", content=LOREM * 40), Turn(role="assistant", content=LOREM * 25)]
    expected = renderer.paginate(turns)
    assert len(expected) > 1
    for mode in Mode:
        assert [page.spans for page in renderer.render(turns, mode)] == expected


def test_empty_content_gets_a_span_of_length_zero(renderer: PillowRenderer) -> None:
    turns = [Turn(role="user", content="hi"), Turn(role="tool", content="")]
    assert renderer.paginate(turns) == [[Span(0, 0, 2), Span(1, 0, 0)]]


def test_text_that_does_not_fit_continues_on_the_next_page(renderer: PillowRenderer) -> None:
    turns = [Turn(role="user", content=LOREM * 60)]
    pages = renderer.paginate(turns)
    assert len(pages) >= 2
    assert pages[1][0].turn == 0 and pages[1][0].start == pages[0][-1].end > 0
    assert_spans_cover_exactly(turns, pages)


def test_a_smaller_font_fits_more_text_on_a_page() -> None:
    turns = [Turn(role="user", content=LOREM * 80)]
    small = PillowRenderer(font_size=14).paginate(turns)
    large = PillowRenderer(font_size=28).paginate(turns)
    assert len(small) < len(large)
    assert small[0][0].end > 1.5 * large[0][0].end


def test_wider_margins_fit_less_text_on_a_page() -> None:
    turns = [Turn(role="user", content=LOREM * 40)]
    narrow = PillowRenderer(margin=16).paginate(turns)
    wide = PillowRenderer(margin=200).paginate(turns)
    assert wide[0][0].end < narrow[0][0].end


# --- drawing -------------------------------------------------------------------------------------


def test_same_input_gives_the_same_png_bytes_from_fresh_and_warm_renderers() -> None:
    turns = [
        Turn(role="user", content="Déjà vu 你好 שלום 😀 " + LOREM * 10),
        Turn(role="assistant", content=LOREM * 10),
    ]
    first = [page.png() for page in PillowRenderer().render(turns, Mode.SMALL)]
    warm = PillowRenderer()
    warm.render(turns, Mode.SMALL)
    second = [page.png() for page in warm.render(turns, Mode.SMALL)]
    assert first == second
    assert first[0].startswith(b"\x89PNG")


def test_role_labels_are_coloured_and_the_text_is_black(renderer: PillowRenderer) -> None:
    [page] = renderer.render([Turn(role="user", content="plain words here")], Mode.BASE)
    pixels = rgb(page).astype(int)
    inked = ink(pixels)
    grey = (pixels[..., 0] == pixels[..., 1]) & (pixels[..., 1] == pixels[..., 2])
    coloured = inked & ~grey
    label_columns = np.nonzero(coloured.any(axis=0))[0]
    # Black text is grey to its core; a label is coloured at its core, grey at most on its edge.
    text_columns = np.nonzero((inked & grey & (pixels.min(axis=2) < 64)).any(axis=0))[0]
    assert label_columns.size > 0, "the label has colour"
    assert label_columns.max() < text_columns.min(), "the label comes first, the text is black"
    # The label's strongest pixels are its colour.
    darkest = pixels[coloured][pixels[coloured].sum(axis=1).argmin()]
    assert np.abs(darkest - np.array(label_colour("user"))).max() < 40


def test_user_and_assistant_labels_differ_in_colour() -> None:
    assert label_colour("user") != label_colour("assistant")
    assert label_colour("Caroline") == label_colour("caroline")  # stable across case


def test_newlines_in_content_start_new_lines(renderer: PillowRenderer) -> None:
    def ink_rows(content: str) -> int:
        [page] = renderer.render([Turn(role="u", content=content)], Mode.BASE)
        rows = np.asarray(ink(rgb(page)).any(axis=1))
        return int(np.count_nonzero(rows[1:] & ~rows[:-1]))  # bands of inked rows

    assert ink_rows("one two") == 1
    assert ink_rows("one\ntwo") == 2
    assert ink_rows("one\n\n\ntwo") == 2  # blank lines take room but hold no ink


def test_a_word_longer_than_a_line_breaks_between_characters_inside_the_margins(
    renderer: PillowRenderer,
) -> None:
    [page] = renderer.render([Turn(role="u", content="x" * 400)], Mode.BASE)
    columns = np.nonzero(ink(rgb(page)).any(axis=0))[0]
    assert columns.min() >= renderer.margin - 2
    assert columns.max() <= 1024 - renderer.margin + 2
    assert page.spans == [Span(0, 0, 400)]


def test_every_script_prints_ink_at_tiny(renderer: PillowRenderer) -> None:
    [label_only] = renderer.render([Turn(role="u", content="")], Mode.TINY)
    label_ink = ink(rgb(label_only))
    for text in ["Latin", "漢字かな", "שלום", "مرحبا", "🤖"]:
        [page] = renderer.render([Turn(role="u", content=text)], Mode.TINY)
        text_ink = ink(rgb(page)) & ~label_ink
        assert text_ink.sum() > 10, f"{text!r} left no ink beyond its label"


@pytest.mark.parametrize("ramp", [Ramp(), Ramp(levels=14, fringe=0.0, core=1.0), Ramp(levels=3)])
def test_text_is_drawn_in_the_ramps_greys_and_the_labels_colours(ramp: Ramp) -> None:
    turns = [Turn(role="user", content=LOREM * 3), Turn(role="assistant", content=LOREM * 3)]
    [page] = PillowRenderer(ramp=ramp).render(turns, Mode.BASE)
    colours = {colour for _, colour in page.image.convert("RGB").getcolors(256) or []}
    greys = {(g, g, g) for g in ramp.greys}
    labels = {label_colour("user"), label_colour("assistant")}
    assert colours <= greys | labels
    assert labels <= colours and (0, 0, 0) in colours and (255, 255, 255) in colours
    # Every grey in between shows up on antialiased edges: coverage blends through the ramp.
    assert len(colours & greys) == ramp.levels


def test_faint_coverage_is_dropped_and_near_full_coverage_is_solid_ink() -> None:
    turns = [Turn(role="u", content=LOREM * 3)]

    def ink_share(ramp: Ramp) -> tuple[float, float]:
        [page] = PillowRenderer(ramp=ramp).render(turns, Mode.BASE)
        pixels = rgb(page)[..., 0]
        return float((pixels < 255).mean()), float((pixels == 0).mean())

    inked, black = ink_share(Ramp(fringe=0.0, core=1.0))
    stretched_inked, stretched_black = ink_share(Ramp(fringe=0.3, core=0.6))
    assert stretched_inked < inked  # the faint halo is gone
    assert stretched_black > black  # more of each stroke is solid


def test_an_emoji_changes_only_its_own_pixels(renderer: PillowRenderer) -> None:
    if not any(face.bitmap_size for face in renderer.fonts.faces):
        pytest.skip("no colour emoji font installed")
    [plain] = renderer.render([Turn(role="user", content=LOREM)], Mode.BASE)
    [page] = renderer.render([Turn(role="user", content=LOREM + "🎉")], Mode.BASE)  # at the end
    before, after = rgb(plain), rgb(page)
    changed = np.argwhere((before != after).any(axis=2))
    (top, left), (bottom, right) = changed.min(axis=0), changed.max(axis=0)
    assert right - left < 40 and bottom - top < 40, "only the emoji's box differs"
    assert len(page.image.getpalette() or ()) // 3 > 16, "the emoji's colours join the palette"
    stored = Image.open(io.BytesIO(page.png()))
    assert np.array_equal(np.asarray(stored.convert("RGB")), after)


def test_colour_emoji_keep_their_colour(renderer: PillowRenderer) -> None:
    if not any(face.bitmap_size for face in renderer.fonts.faces):
        pytest.skip("no colour emoji font installed")
    [page] = renderer.render([Turn(role="u", content="🤖🤖🤖")], Mode.BASE)
    pixels = rgb(page).astype(int)
    saturated = (pixels.max(axis=2) - pixels.min(axis=2)) > 60
    assert saturated[:, 100:].any()


# --- settings and fonts ---------------------------------------------------------------------


def test_settings_key_changes_with_every_setting_that_changes_pixels() -> None:
    base = PillowRenderer()
    assert base.settings_key == PillowRenderer().settings_key
    others = [
        PillowRenderer(font_size=21),
        PillowRenderer(margin=33),
        PillowRenderer(line_spacing=1.3),
        PillowRenderer(fonts=default_chain(bold=True)),
        PillowRenderer(ramp=Ramp(levels=8)),
        PillowRenderer(ramp=Ramp(fringe=0.0, core=1.0)),
    ]
    keys = {base.settings_key, *(renderer.settings_key for renderer in others)}
    assert len(keys) == 1 + len(others)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"font_size": 0}, "font_size"),
        ({"line_spacing": 0.5}, "line_spacing"),
        ({"margin": 600}, "margin"),
        ({"margin": -1}, "margin"),
    ],
)
def test_impossible_settings_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PillowRenderer(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"levels": 1}, "2 to 64 greys"),
        ({"levels": 65}, "2 to 64 greys"),
        ({"fringe": 0.8, "core": 0.2}, "fringe < core"),
        ({"fringe": -0.1}, "fringe < core"),
        ({"core": 1.5}, "fringe < core"),
    ],
)
def test_impossible_ramps_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Ramp(**kwargs)  # type: ignore[arg-type]


def test_the_fallback_chain_gives_each_script_its_font() -> None:
    chain = default_chain()
    names = [face.name for face in chain.faces]
    assert chain.face_of("a") == 0
    assert "CJK" in names[chain.face_of("中")]
    assert chain.face_of("\U0010ffff") == 0  # nobody has it: the primary face's box
    if any(face.bitmap_size for face in chain.faces):
        assert "Emoji" in names[chain.face_of("🤖")]


def test_no_installed_font_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fonts_module, "_first_existing", lambda paths: None)
    monkeypatch.setattr(fonts_module, "_fontconfig", lambda *args, **kwargs: None)
    default_chain.cache_clear()
    try:
        with pytest.raises(FontNotFoundError, match="fonts-dejavu-core"):
            default_chain()
    finally:
        default_chain.cache_clear()


def test_fontconfig_finds_the_fonts_where_the_debian_paths_do_not_exist(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if shutil.which("fc-match") is None:
        pytest.skip("fontconfig is not installed")
    monkeypatch.setattr(fonts_module, "_first_existing", lambda paths: None)
    default_chain.cache_clear()
    try:
        chain = default_chain()
        assert chain.face_of("a") == 0
        assert chain.face_of("中") > 0, "a CJK font found through fc-list"
    finally:
        default_chain.cache_clear()


def black_ink_columns(image: np.ndarray) -> np.ndarray:
    """Columns holding black ink (grey and dark: the content, not the role label, whose
    antialiased edge may be a lighter grey)."""
    grey = (image.max(axis=2).astype(int) - image.min(axis=2)) < 20
    return np.flatnonzero((grey & (image.min(axis=2) < 64)).any(axis=0))


@pytest.mark.parametrize("length", [95, 400, 100_000])
def test_a_long_role_is_shortened_and_the_content_starts_inside_the_page(
    renderer: PillowRenderer, length: int
) -> None:
    role = ("Dr. Maximilian Alexander " * (length // 25 + 1))[:length]
    [short] = renderer.render([Turn(role="u", content="hello")], Mode.BASE)
    [page] = renderer.render([Turn(role=role, content="hello")], Mode.BASE)
    assert page.spans == [Span(0, 0, 5)]
    pixels = rgb(page)
    columns = np.flatnonzero(ink(pixels).any(axis=0))
    assert columns.min() >= renderer.margin - 2
    assert columns.max() <= 1024 - renderer.margin + 2
    # The whole word is drawn: as wide in black ink as after a one-letter label.
    expected, drawn = black_ink_columns(rgb(short)), black_ink_columns(pixels)
    assert drawn.max() - drawn.min() == expected.max() - expected.min()
    assert drawn.min() <= 1024 // 2 + renderer.font_size  # the label left room on its line
