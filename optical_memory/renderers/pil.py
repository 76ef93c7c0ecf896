"""The Pillow renderer: turns printed as dense pages of text, fast, no browser.

Layout happens once, on a reference page of 1024x1024 px (BASE's input): line breaks and page
breaks are the same at every mode, so a page keeps exactly its text as it fades from GUNDAM to
TINY. ``render`` then draws that layout on the mode's canvas, with the font at the scaled size
(crisper than drawing large and shrinking) and every piece at its scaled position.

Speed comes from caching, per renderer: each character's advance and glyph mask is drawn once
per size; a word's width is the sum of its advances and its image is pasted together from its
glyphs (runs of right-to-left or complex scripts are shaped whole instead). The page is a
palette image (:mod:`~optical_memory.renderers.palette`: a few greys, one entry per label
colour): black text is pasted word by word straight into its grey indices, then the role labels
in their colours; colour emoji keep their colours, only their pixels reduced into the rest of a
256-colour palette. From 1024 px up words start at even pixels (smaller PNGs). Kerning is not
applied between cached glyphs.

Lines and pages are broken by :mod:`~optical_memory.renderers.typesetting`; a role label never
takes more than half the line (a longer role is cut and ends in "…"; the stored turn keeps it
whole). Right-to-left words are shaped and ordered within each word when Pillow has libraqm;
the words of a line always run left to right.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from PIL import Image, ImageDraw

from optical_memory.modes import Mode
from optical_memory.renderers.fonts import (
    FontChain,
    default_chain,
    has_complex_layout,
    is_invisible,
)
from optical_memory.renderers.layout import chosen_density
from optical_memory.renderers.page import (
    REFERENCE_SIZE,
    RenderedPage,
    Span,
    page_sides,
    page_size,
    sides_key,
)
from optical_memory.renderers.palette import INK as INK_INDEX
from optical_memory.renderers.palette import Ramp
from optical_memory.renderers.style import INK
from optical_memory.renderers.typesetting import Layout, Run, Typesetter
from optical_memory.turns import Turn

#: Bump when a change to this file or to the typesetting changes pixels for the same settings.
RENDERER_VERSION = 5

#: Widest a role label may be, as a share of the line; the content starts after it.
LABEL_SHARE = 0.5
_MISSING: Any = object()  # not in a cache (None there means: no ink)
_CACHE_LIMIT = 200_000  # entries per cache (word images the largest); cleared when full

# Scripts drawn by a shaping engine (Hebrew, Arabic, Syriac, Thaana, Indic, Thai, Lao,
# Tibetan, Myanmar, Khmer, Mongolian, presentation forms) and combining marks.
_COMPLEX = re.compile(
    "[\u0300-\u036f\u0483-\u0489\u0591-\u08ff\u0900-\u0fff\u1000-\u109f\u1780-\u18af"
    "\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufb1d-\ufdff\ufe20-\ufe2f\ufe70-\ufeff"
    "\U00010800-\U00010fff\U0001e800-\U0001efff]"
)


class PillowRenderer:
    """Prints turns onto page images with Pillow.

    Sizes are in pixels of the 1024-px reference page (BASE) and scale with the mode:
    ``font_size=20`` is 20 px at BASE, 10 px at TINY, 25 px at LARGE and GUNDAM.

    Args:
        font_size: text size on the reference page. Default: the density search's choice
            (:func:`~optical_memory.renderers.layout.chosen_density`), the densest layout whose
            TINY pages the probe still reads at its threshold (``benchmarks/render.py`` prints
            what a page then holds).
        margin: blank border on every side of the reference page. Default 32.
        line_spacing: line height as a multiple of ``font_size``. Default: the density
            search's choice.
        fonts: the fallback chain for text; default: the installed DejaVu Sans, Noto Sans CJK
            and Noto Color Emoji (:func:`~optical_memory.renderers.fonts.default_chain`).
        label_fonts: the chain for role labels; default: the bold faces of the same families.
        ramp: the page's greys and how glyph coverage maps onto them; default
            :class:`~optical_memory.renderers.palette.Ramp` ``()`` (6 greys).
        sides: the page side in px per mode, for a reader that is not DeepSeek-OCR (see
            :func:`optical_memory.geometry.level_sides`); default: each mode's own
            (:func:`~optical_memory.renderers.page.page_size`). The layout stays the same.
    """

    def __init__(
        self,
        font_size: float | None = None,
        margin: float = 32,
        line_spacing: float | None = None,
        fonts: FontChain | None = None,
        label_fonts: FontChain | None = None,
        ramp: Ramp | None = None,
        sides: Mapping[Mode, int] | Mapping[str, int] | None = None,
    ) -> None:
        density = chosen_density()
        font_size = density.font_size if font_size is None else font_size
        line_spacing = density.line_spacing if line_spacing is None else line_spacing
        if font_size <= 0:
            raise ValueError(f"font_size must be positive, got {font_size}")
        if line_spacing < 1:
            raise ValueError(f"line_spacing must be at least 1, got {line_spacing}")
        if margin < 0 or REFERENCE_SIZE - 2 * margin < font_size * line_spacing:
            raise ValueError(
                f"margin {margin} leaves no room for one line of {font_size} px text on a "
                f"{REFERENCE_SIZE}-px page: use a margin between 0 and "
                f"{int((REFERENCE_SIZE - font_size * line_spacing) // 2)}"
            )
        self.font_size = float(font_size)
        self.margin = float(margin)
        self.line_spacing = float(line_spacing)
        self.fonts = fonts or default_chain(bold=False)
        self.label_fonts = label_fonts or default_chain(bold=True)
        self.ramp = ramp or Ramp()
        self.sides = page_sides(sides)
        # Per label flag (False: text, True: labels): text -> its runs and width.
        self._measured: tuple[dict[str, tuple[tuple[Run, ...], float]], ...] = ({}, {})
        self._images: dict[tuple[str, int, bool, float], _Glyphs | None] = {}
        self._advances: dict[tuple[str, int, bool, float], float] = {}
        self._labels: dict[tuple[str, str], tuple[Run, ...]] = {}
        # Per label flag (False: text, True: labels): character -> (face, advance) when it is
        # measured plainly, None when not (see _measure_plain).
        self._plain: tuple[dict[str, tuple[int, float] | None], ...] = ({}, {})
        # (face, bold, size) -> character -> (its glyph, its advance): what _compose reads.
        self._chars: dict[tuple[int, bool, float], dict[str, tuple[_Glyphs | None, float]]] = {}
        ascent, descent = self.fonts.faces[0].load(self.font_size).getmetrics()
        # Baseline below the top of a line: the line's extra leading split above and below.
        self._baseline = (self.line_height - ascent - descent) / 2 + ascent

    # --- settings --------------------------------------------------------------------------

    @property
    def settings_key(self) -> str:
        """Everything that changes the pixels: version, sizes, layout engine and font files."""
        engine = "raqm" if has_complex_layout() else "basic"
        return (
            f"pil/v{RENDERER_VERSION}/size={self.font_size:g}/margin={self.margin:g}"
            f"/spacing={self.line_spacing:g}/layout={engine}"
            f"/fonts={self.fonts.key}/labels={self.label_fonts.key}/greys={self.ramp.key}"
            + sides_key(self.sides)
        )

    def page_size(self, mode: Mode | str) -> tuple[int, int]:
        """``(width, height)`` of a page drawn at ``mode``: its side in ``sides``, else the
        mode's own size."""
        mode = Mode.parse(mode)
        side = self.sides.get(mode)
        return (side, side) if side is not None else page_size(mode)

    @property
    def line_height(self) -> float:
        """Distance between baselines on the reference page, in px."""
        return self.font_size * self.line_spacing

    @property
    def line_width(self) -> float:
        """Width available to text on the reference page, in px."""
        return float(REFERENCE_SIZE - 2 * self.margin)

    @property
    def lines_per_page(self) -> int:
        """Lines that fit on one page."""
        return int((REFERENCE_SIZE - 2 * self.margin) // self.line_height)

    # --- the Renderer protocol -------------------------------------------------------------

    def paginate(self, turns: Sequence[Turn]) -> list[list[Span]]:
        """The spans on each page ``render`` would draw, at any mode, without drawing."""
        return self._layout(turns).spans

    def render(self, turns: Sequence[Turn], mode: Mode) -> list[RenderedPage]:
        """Draw ``turns`` as pages at ``mode``: one image of :func:`page_size` per page."""
        mode = Mode.parse(mode)
        layout = self._layout(turns)
        width, height = self.page_size(mode)
        scale = width / REFERENCE_SIZE
        size = self.font_size * scale
        origin = self.margin * scale
        baseline = self._baseline * scale
        line_height = self.line_height * scale
        # From 1024 px up, words start at even pixels: PNG packs two pixels a byte, so a word
        # seen before is the same bytes again and deflate finds it (a smaller page).
        even = ~1 if width >= REFERENCE_SIZE else ~0
        pages = []
        images, draw, ramp = self._images, self._glyphs, self.ramp
        lines = range(max(1, self.lines_per_page))
        tops = [round(origin + line * line_height + baseline) for line in lines]
        for spans, pieces in zip(layout.spans, layout.pieces, strict=True):
            # Ink is pasted straight into palette indices (renderers.palette): the page needs
            # no pass over its pixels after drawing.
            page = ramp.sheet((width, height))
            # The core image's paste: Image.paste's checks cost more than the paste itself.
            paste = page.im.paste
            coloured = []
            for line, x, text, face, bold, colour in pieces:
                found = images.get((text, face, bold, size), _MISSING)
                glyphs = draw(text, face, bold, size) if found is _MISSING else found
                if glyphs is None:
                    continue
                left = (round(origin + x * scale) + glyphs.left) & even
                top = tops[line] + glyphs.top
                if colour is None and glyphs.colour is None:
                    box = (left, top, left + glyphs.width, top + glyphs.height)
                    paste(INK_INDEX, box, glyphs.core)
                else:
                    coloured.append((left, top, glyphs, colour))
            labels = [
                (x, y, g.core, colour or INK) for x, y, g, colour in coloured if g.colour is None
            ]
            image = ramp.compose(page, labels)
            emoji = [(x, y, g.core, g.colour) for x, y, g, _ in coloured if g.colour is not None]
            if emoji:  # colour glyphs: their own colours, after the greys and labels
                image = ramp.add_colour_glyphs(image, emoji)
            pages.append(RenderedPage(image=image, mode=mode, spans=spans))
        return pages

    # --- layout (reference page) -----------------------------------------------------------

    def _layout(self, turns: Sequence[Turn]) -> Layout:
        return Typesetter(self).set(turns)

    @property
    def measured_text(self) -> dict[str, tuple[tuple[Run, ...], float]]:
        """The plain text measured so far (text → its runs and width), which the typesetter
        reads first: most words were measured before."""
        return self._measured[False]

    def measure(self, text: str, bold: bool = False) -> tuple[tuple[Run, ...], float]:
        """``text`` as font runs with their widths on the reference page, and the total width.

        Runs that need no shaping measure as the sum of their characters' advances, exactly as
        they are drawn (glyph by glyph); others measure as the shaped run.
        """
        measured = self._measured[bold]
        found = measured.get(text)
        if found is None:
            found = self._measure_plain(text, bold) or self._measure_runs(text, bold)
            if len(measured) >= _CACHE_LIMIT:
                measured.clear()
            measured[text] = found
        return found

    def _measure_plain(self, text: str, bold: bool) -> tuple[tuple[Run, ...], float] | None:
        """``text`` as one run, when every character is visible, needs no shaping and comes
        from the same face (most words): the sum of their advances. None otherwise."""
        table = self._plain[bold]
        face, width = -1, 0.0
        for char in text:
            found = table.get(char, _MISSING)
            if found is _MISSING:
                found = self._plain_char(char, bold)
            if found is None or (face >= 0 and found[0] != face):
                return None
            face = found[0]
            width += found[1]
        return (((text, face, width),), width) if face >= 0 else None

    def _plain_char(self, char: str, bold: bool) -> tuple[int, float] | None:
        """(face, advance) of a visible character that needs no shaping; None for others."""
        found = None
        if not is_invisible(char) and not _needs_shaping(char):
            face = (self.label_fonts if bold else self.fonts).face_of(char)
            found = (face, self._advance(char, face, bold))
        table = self._plain[bold]
        if len(table) >= _CACHE_LIMIT:
            table.clear()
        table[char] = found
        return found

    def _measure_runs(self, text: str, bold: bool) -> tuple[tuple[Run, ...], float]:
        runs: list[Run] = []
        for piece, face in (self.label_fonts if bold else self.fonts).runs(text):
            if face < 0:
                runs.append((piece, face, 0.0))
            elif _needs_shaping(piece):
                runs.append((piece, face, self._shaped_length(piece, face, bold)))
            else:
                advance = self._advance
                runs.append((piece, face, sum(advance(c, face, bold) for c in piece)))
        return tuple(runs), sum(run[2] for run in runs)

    def label_runs(self, role: str, suffix: str) -> tuple[Run, ...]:
        """The bold runs of ``role + suffix`` (``":"``, ``" (continued):"``), at most
        :data:`LABEL_SHARE` of the line wide: a longer role is cut and ends in "…"."""
        key = (role, suffix)
        found = self._labels.get(key)
        if found is not None:
            return found
        limit = self.line_width * LABEL_SHARE
        # Never more characters than the limit has pixels: a huge role costs no more than that.
        runs, width = self.measure(role[: int(limit) + 1] + suffix, bold=True)
        if len(role) > limit or width > limit:
            low, high = 0, min(len(role), int(limit))  # the longest prefix that fits with "…"
            while low < high:
                middle = (low + high + 1) // 2
                if self.measure(f"{role[:middle]}…{suffix}", bold=True)[1] <= limit:
                    low = middle
                else:
                    high = middle - 1
            runs = self.measure(f"{role[:low].rstrip()}…{suffix}", bold=True)[0]
        if len(self._labels) >= _CACHE_LIMIT:
            self._labels.clear()
        self._labels[key] = runs
        return runs

    def _advance(self, char: str, face: int, bold: bool, size: float | None = None) -> float:
        """Pen advance of one character in px at ``size`` (default: the reference size)."""
        size = self.font_size if size is None else size
        key = (char, face, bold, size)
        found = self._advances.get(key)
        if found is None:
            font_face = (self.label_fonts if bold else self.fonts).faces[face]
            found = font_face.load(size).getlength(char) * font_face.scale_at(size)
            self._advances[key] = found
        return found

    def _shaped_length(self, run: str, face: int, bold: bool) -> float:
        font_face = (self.label_fonts if bold else self.fonts).faces[face]
        return font_face.load(self.font_size).getlength(run) * font_face.scale_at(self.font_size)

    # --- drawing (mode's canvas) -----------------------------------------------------------

    def _glyphs(self, text: str, face: int, bold: bool, size: float) -> _Glyphs | None:
        """The run drawn at ``size``: composed from cached glyphs, or shaped as a whole."""
        key = (text, face, bold, size)
        try:
            return self._images[key]
        except KeyError:
            pass
        chain = self.label_fonts if bold else self.fonts
        if len(text) == 1 or _needs_shaping(text) or chain.faces[face].bitmap_size:
            glyphs = _draw_run(chain, face, text, size, self.ramp.contrast)
        else:
            glyphs = self._compose(text, face, bold, size)
        if len(self._images) >= _CACHE_LIMIT:
            self._images.clear()
        self._images[key] = glyphs
        return glyphs

    def _compose(self, text: str, face: int, bold: bool, size: float) -> _Glyphs | None:
        """A run's mask pasted together from its characters' cached masks, at their advances."""
        chars = self._chars.get((face, bold, size))
        if chars is None or len(chars) >= _CACHE_LIMIT:
            chars = self._chars[(face, bold, size)] = {}
        placed = []
        pen = 0.0
        left = top = 1 << 30
        right = bottom = -(1 << 30)
        for char in text:
            found = chars.get(char)
            if found is None:
                glyph = self._glyphs(char, face, bold, size)
                found = chars[char] = (glyph, self._advance(char, face, bold, size))
            glyph, advance = found
            if glyph is not None:
                x, y = round(pen) + glyph.left, glyph.top
                placed.append((x, y, glyph))
                left = x if x < left else left
                top = y if y < top else top
                right = x + glyph.width if x + glyph.width > right else right
                bottom = y + glyph.height if y + glyph.height > bottom else bottom
            pen += advance
        if not placed:
            return None
        core = Image.core.fill("L", (right - left, bottom - top), 0)
        paste = core.paste
        for x, y, glyph in placed:
            x, y = x - left, y - top
            # 255 through the glyph's mask ("over"): neighbouring glyph boxes may overlap.
            paste(255, (x, y, x + glyph.width, y + glyph.height), glyph.core)
        return _Glyphs(core, left, top)


def _needs_shaping(text: str) -> bool:
    """Whether ``text`` needs a shaping engine: right-to-left or complex scripts, combining
    marks. Other text is drawn glyph by glyph from cached glyph images."""
    return _COMPLEX.search(text) is not None


class _Glyphs:
    """A drawn run: its coverage mask (``L``), placed at (left, top) from the pen position on the
    baseline; ``colour`` holds the RGB pixels of colour glyphs (emoji), else the run takes the
    ink colour. Kept as Pillow's core image (``core``), which is what the page's paste takes."""

    __slots__ = ("colour", "core", "height", "left", "top", "width")

    def __init__(self, core: Any, left: int, top: int, colour: Image.Image | None = None) -> None:
        self.core, self.left, self.top, self.colour = core, left, top, colour
        self.width, self.height = core.size


def _draw_run(
    chain: FontChain, face: int, text: str, size: float, contrast: list[int]
) -> _Glyphs | None:
    font_face = chain.faces[face]
    font = font_face.load(size)
    box = font.getbbox(text, anchor="ls")
    left, top = math.floor(box[0]), math.floor(box[1])
    right, bottom = math.ceil(box[2]), math.ceil(box[3])
    if right <= left or bottom <= top:
        return None  # spaces, marks with no ink
    if font_face.bitmap_size is None:
        mask = Image.new("L", (right - left, bottom - top), 0)
        ImageDraw.Draw(mask).text((-left, -top), text, fill=255, font=font, anchor="ls")
        return _Glyphs(mask.im.point(contrast, None), left, top)
    # A bitmap colour font draws at its one size; shrink to the line.
    drawn = Image.new("RGBA", (right - left, bottom - top), (0, 0, 0, 0))
    ImageDraw.Draw(drawn).text((-left, -top), text, font=font, anchor="ls", embedded_color=True)
    factor = font_face.scale_at(size)
    shrunk = drawn.resize(
        (max(1, round(drawn.width * factor)), max(1, round(drawn.height * factor))),
        Image.Resampling.LANCZOS,
    )
    return _Glyphs(
        shrunk.getchannel("A").im, round(left * factor), round(top * factor), shrunk.convert("RGB")
    )
