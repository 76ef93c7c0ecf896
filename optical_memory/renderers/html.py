"""HtmlRenderer: turns typeset as markdown by Chromium (through Playwright), safe with hostile
content.

Layout happens once, in a reference page of 1024 x 1024 CSS px (BASE), and is the same for
every mode: the browser measures the height of every fragment (see ``html_markdown``) and the
pages are filled greedily, a fragment that does not fit being split at a source line, else at
a word, else at a character, so no line is ever clipped. ``render(turns, mode)`` then prints the
same pages with a device scale factor of ``canvas / 1024``, so the text is rasterized at the
canvas's size rather than resampled (TINY 512, SMALL 640, BASE 1024, LARGE and GUNDAM 1280, the
latter 2 x 2 tiles of 640). Measured heights do not change with the scale factor; should a page
ever come out taller at some scale, it is printed at 1024 and resampled instead of clipped.

Walls against hostile content, each enough on its own for what it covers: markdown with raw
HTML disabled and an allow-list sanitizer (``html_markdown``), then the browser's sandbox
(``sandbox``: no JavaScript, every request aborted, a Content-Security-Policy that allows
inline styles and nothing else).

Blocks printed as plain text (``html_markdown``: too long, too costly, too deep or too wide for
markdown) are laid out once in full; their page breaks are read from that layout (where each
page's lines end) and the pieces measured in one batch, so a long block costs a few layouts
rather than a search per page.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import itertools
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from optical_memory.closing import Closing
from optical_memory.modes import Mode
from optical_memory.renderers.html_markdown import (
    SourceBlock,
    fragment_html,
    is_cut_point,
    line_starts,
    plain_html,
    source_blocks,
)
from optical_memory.renderers.html_page import (
    BOTTOM,
    CONTENT_HEIGHT,
    MARGIN,
    MEASURE,
    PAGE_SIZE,
    PLAIN_BREAKS,
    document,
    head_html,
    section,
)
from optical_memory.renderers.page import RenderedPage, Span, page_size
from optical_memory.renderers.sandbox import (
    CHROMIUM_LAUNCH_ARGS,
    DEFAULT_CHROMIUM,
    ChromiumCrashedError,
    ChromiumNotFoundError,
    ChromiumSandbox,
    HtmlRendererError,
)
from optical_memory.turns import Turn

__all__ = [
    "CHROMIUM_LAUNCH_ARGS",
    "CONTENT_HEIGHT",
    "DEFAULT_CHROMIUM",
    "MARGIN",
    "PAGE_SIZE",
    "ChromiumCrashedError",
    "ChromiumNotFoundError",
    "HtmlRenderer",
    "HtmlRendererError",
    "RendererClosedError",
]

#: A fragment that does not fit starts the next page when less room than this is left, CSS px.
_MIN_SPLIT_ROOM = 60
#: At most this many characters are tried on one page when splitting a fragment.
_MAX_PAGE_CHARS = 16_000
#: Characters per text node when a plain block is laid out to find its page breaks.
_PLAN_CHUNK = 1024
#: Cut candidates measured per browser round trip when searching for a split.
_PROBES = 24
#: Bump when a change here or in ``html_markdown`` changes pixels for the same input.
_VERSION = "2"
#: Layouts kept for reuse (rendering one conversation at several modes measures it once).
_KEPT_LAYOUTS = 4


@dataclass(frozen=True)
class _Fragment:
    """One stacked section of a page: a turn's head, or ``content[start:end]`` of a turn."""

    turn: int
    start: int
    end: int
    html: str
    height: float
    is_text: bool = True


class RendererClosedError(HtmlRendererError):
    """The renderer was closed; a new one is needed to draw pages."""


class HtmlRenderer(Closing):
    """Prints turns as typeset markdown pages through a headless Chromium.

    ``chromium`` defaults to ``$OPTICAL_MEMORY_CHROMIUM`` or ``/usr/bin/chromium``. The browser
    starts on first use and is reused; close it with :meth:`close` or a ``with`` block.
    """

    def __init__(self, chromium: str | os.PathLike[str] | None = None) -> None:
        #: The browser this renderer lays out and prints in.
        self.sandbox = ChromiumSandbox(chromium, viewport=(PAGE_SIZE, PAGE_SIZE))
        self._layouts: dict[tuple[Any, ...], list[list[_Fragment]]] = {}
        self._closed = False

    # -- public interface ---------------------------------------------------------------------

    @property
    def settings_key(self) -> str:
        digest = hashlib.sha256(document("", "page").encode()).hexdigest()[:12]
        return f"html-v{_VERSION}-{PAGE_SIZE}-{digest}"

    @property
    def chromium(self) -> str:
        """The Chromium executable's path."""
        return self.sandbox.chromium

    @property
    def blocked_requests(self) -> int:
        """Requests the sandbox aborted (the sanitizer should leave none to abort)."""
        return self.sandbox.blocked_requests

    @property
    def is_running(self) -> bool:
        """Whether this renderer holds a started browser."""
        return self.sandbox.is_running

    def paginate(self, turns: Sequence[Turn]) -> list[list[Span]]:
        """The page breaks ``render`` makes, measured by the browser (same for every mode)."""
        self._check_open()
        return self.sandbox.run(
            lambda: [_spans(page) for page in self._layout(turns)], "paginating"
        )

    def render(self, turns: Sequence[Turn], mode: Mode | str) -> list[RenderedPage]:
        """Every page of ``turns`` at ``mode``'s canvas, in one batch."""
        mode = Mode.parse(mode)
        self._check_open()
        return self.sandbox.run(lambda: self._render(turns, mode), "rendering")

    def page_text(self, turns: Sequence[Turn]) -> list[str]:
        """What each page shows, read back from the browser's DOM (``innerText``) in the same
        sandbox the screenshots are taken in. For checks and debugging."""

        def read() -> list[str]:
            page = self.sandbox.page(1.0)
            texts = []
            for fragments in self._layout(turns):
                page.set_content(_document(fragments, "page"))
                texts.append(str(page.evaluate("() => document.body.innerText")))
            return texts

        self._check_open()
        return self.sandbox.run(read, "reading pages back")

    def close(self) -> None:
        """Close the browser and its thread (if started). The renderer stays closed: a memory
        still using it gets :class:`RendererClosedError` instead of a new browser its owner
        would not know to close."""
        self._closed = True
        self.sandbox.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RendererClosedError(
                "this HtmlRenderer was closed by its owner: create a new HtmlRenderer (or close "
                "it only after every memory using it is closed)"
            )

    # -- layout -------------------------------------------------------------------------------

    def _layout(self, turns: Sequence[Turn]) -> list[list[_Fragment]]:
        """Pages as lists of fragments; every character of every turn in exactly one.

        The last few layouts are kept, so rendering one conversation at several modes
        measures it once.
        """
        key = tuple((turn.role, turn.content, turn.timestamp, turn.number) for turn in turns)
        pages = self._layouts.pop(key, None)
        if pages is None:
            pages = self._measure_layout(turns)
        self._layouts[key] = pages
        while len(self._layouts) > _KEPT_LAYOUTS:
            del self._layouts[next(iter(self._layouts))]
        return pages

    def _measure_layout(self, turns: Sequence[Turn]) -> list[list[_Fragment]]:
        blocks = [source_blocks(turn.content) for turn in turns]
        heads = [head_html(turn, continued=False) for turn in turns]
        continued = [head_html(turn, continued=True) for turn in turns]
        # Whole blocks, measured in the same batch as the heads; a plain block too long for one
        # page is not (its plan lays it out anyway).
        whole = [
            None
            if block.kind == "plain" and block.end - block.start > _MAX_PAGE_CHARS
            else fragment_html(turn.content, block, block.start, block.end)
            for turn, turn_blocks in zip(turns, blocks, strict=True)
            for block in turn_blocks
        ]
        measured = iter(
            self._measure(
                [*heads, *continued, *(h for h in whole if h is not None)], labels=2 * len(turns)
            )
        )
        head_heights = [next(measured) for _ in turns]
        continued_heights = [next(measured) for _ in turns]
        whole_html = iter(whole)

        pages: list[list[_Fragment]] = []
        page: list[_Fragment] = []
        used = 0.0

        def place(fragment: _Fragment) -> None:
            nonlocal used
            page.append(fragment)
            used += fragment.height

        def next_page() -> None:
            nonlocal page, used
            pages.append(page)
            page, used = [], 0.0

        for index, (turn, turn_blocks) in enumerate(zip(turns, blocks, strict=True)):
            content = turn.content
            starts = line_starts(content)
            headed = False
            for block in turn_blocks:  # empty content is one empty block: an empty span
                start = block.start
                # The whole rest of the block, while known; after a split only its density.
                block_html = next(whole_html)
                rest: tuple[str, float] | None = None
                density = 0.0
                if block_html is not None:
                    rest = (block_html, next(measured))
                    density = (block.end - block.start) / max(rest[1], 1.0)
                planned: list[tuple[int, str, float]] = []  # a plain block's next pieces
                while True:
                    if not headed:
                        head = _Fragment(index, 0, 0, heads[index], head_heights[index], False)
                    elif not page:
                        head = _Fragment(
                            index, 0, 0, continued[index], continued_heights[index], False
                        )
                    else:
                        head = None
                    room = CONTENT_HEIGHT - used - (head.height if head else 0.0)
                    piece = None
                    if rest is not None and rest[1] <= room:
                        piece = (block.end, *rest)
                    elif room >= _MIN_SPLIT_ROOM or not page:
                        if block.kind == "plain" and not planned:
                            next_room = CONTENT_HEIGHT - continued_heights[index]
                            planned = self._plan_plain(content, block, start, room, next_room)
                        if planned:
                            piece = planned.pop(0)
                        else:
                            piece = self._split(content, starts, block, start, room, density)
                    if piece is None:
                        if not page:
                            raise HtmlRendererError(
                                f"turn {index}: the text at offset {start} does not fit on an "
                                "empty page; check the content for an enormous heading or rule"
                            )
                        next_page()
                        continue
                    end, piece_html, piece_height = piece
                    if head:
                        place(head)
                    place(_Fragment(index, start, end, piece_html, piece_height))
                    headed = True
                    if end == block.end:
                        break
                    density = (end - start) / max(piece_height, 1.0)
                    start, rest = end, None
                    next_page()
        if page:
            pages.append(page)
        return pages

    def _plan_plain(
        self, content: str, block: SourceBlock, start: int, room: float, next_room: float
    ) -> list[tuple[int, str, float]]:
        """The next pieces ``(end, html, height)`` of a plain block from ``start``: the first for
        ``room``, the others for ``next_room`` each (a fresh page after the turn's head).

        The rest of the block is laid out once and cut where each page's lines end (see
        ``PLAIN_BREAKS``); the pieces are then measured in one batch, and those up to the first
        that does not fit its room are returned (a line drawn in a fallback font can be taller
        than the others); the caller plans again, or searches, from there.
        """
        text = content[start : block.end]
        page = self.sandbox.page(1.0)
        sections = section(plain_html(text, chunk=_PLAN_CHUNK), is_text=True)
        page.set_content(document(sections, "measure"))
        units = page.evaluate(PLAIN_BREAKS, [room, next_room, _MAX_PAGE_CHARS])
        ends: list[int] = []
        for cut in _code_points(text, units):
            end = start + cut
            floor = ends[-1] if ends else start
            while floor + 1 < end < block.end and not is_cut_point(content, end):
                end -= 1  # never between a character and its combining mark
            if end > floor:
                ends.append(end)
        bounds = list(zip([start, *ends], ends, strict=False))
        htmls = [fragment_html(content, block, a, b) for a, b in bounds]
        pieces = []
        for k, ((_, end), piece_html, height) in enumerate(
            zip(bounds, htmls, self._measure(htmls), strict=True)
        ):
            if height > (room if k == 0 else next_room):
                break
            pieces.append((end, piece_html, height))
        return pieces

    def _split(
        self,
        content: str,
        starts: list[int],
        block: SourceBlock,
        start: int,
        room: float,
        density: float,
    ) -> tuple[int, str, float] | None:
        """The longest piece ``content[start:cut]`` of the block that fits ``room``, as
        ``(cut, html, height)``: cut at a source line (or the block's end), else at a word of
        the first line, else at a character. ``None`` if even one character does not fit.

        ``density`` (characters per CSS px of height) guesses how far to look first.
        """
        floor = start + 1
        if start == block.start and block.kind in ("fence", "table"):
            # A fence keeps its opening line and one character; a table its two header rows.
            keep = 1 if block.kind == "fence" else 2
            first = bisect.bisect_right(starts, block.start)
            inside = [s for s in starts[first : first + keep] if s < block.end]
            floor = inside[-1] + (keep == 1) if len(inside) == keep else block.end
        found = self._split_after(content, starts, block, start, floor, room, density)
        if found is None and floor > start + 1:  # that header alone does not fit: cut anywhere
            found = self._split_after(content, starts, block, start, start + 1, room, density)
        return found

    def _split_after(
        self,
        content: str,
        starts: list[int],
        block: SourceBlock,
        start: int,
        floor: int,
        room: float,
        density: float,
    ) -> tuple[int, str, float] | None:
        """:meth:`_split` with every cut at or after ``floor``."""
        limit = min(block.end, start + _MAX_PAGE_CHARS)
        guess = min(limit, start + int(density * room * 1.25) + 200)
        first_line = bisect.bisect_right(starts, floor)
        line_end = min(starts[first_line], block.end) if first_line < len(starts) else block.end

        def lines(bound: int) -> list[int]:
            # Only the line starts in [floor, bound]: the block may have many more lines.
            top = min(bound, block.end - 1)
            cuts = starts[bisect.bisect_left(starts, floor) : bisect.bisect_right(starts, top)]
            return [*cuts, block.end] if block.end <= bound else cuts

        def words(bound: int) -> list[int]:
            return [
                i
                for i in range(floor, min(line_end, bound + 1))
                if content[i - 1].isspace() and not content[i].isspace()
                if is_cut_point(content, i)
            ]

        def characters(bound: int) -> list[int]:
            return [i for i in range(floor, min(line_end, bound + 1)) if is_cut_point(content, i)]

        for candidates in (lines, words, characters):
            cuts = candidates(guess)
            found = self._largest_fitting(content, block, start, cuts, room)
            if guess < limit and (not cuts or (found is not None and found[0] == cuts[-1])):
                found = self._largest_fitting(content, block, start, candidates(limit), room)
            if found is not None:
                return found
        return None

    def _largest_fitting(
        self, content: str, block: SourceBlock, start: int, cuts: list[int], room: float
    ) -> tuple[int, str, float] | None:
        """Binary search over ``cuts`` (height grows with the cut), ``_PROBES`` per round trip."""
        best: tuple[int, str, float] | None = None
        low, high = -1, len(cuts)  # cuts[low] fits (or none does), cuts[high] does not
        while high - low > 1:
            gap = high - low - 1
            count = min(_PROBES, gap)
            probes = sorted({low + 1 + (k * gap) // count for k in range(count)})
            htmls = [fragment_html(content, block, start, cuts[p]) for p in probes]
            new_low, new_high = low, high
            for probe, piece_html, height in zip(probes, htmls, self._measure(htmls), strict=True):
                if height > room:
                    new_high = probe
                    break
                new_low, best = probe, (cuts[probe], piece_html, height)
            if (new_low, new_high) == (low, high):
                break
            low, high = new_low, new_high
        return best

    def _measure(self, htmls: list[str], labels: int = 0) -> list[float]:
        """Heights of fragments laid out in the reference page, CSS px; the first ``labels``
        are turn labels (styled as such on the page, so measured as such)."""
        if not htmls:
            return []
        page = self.sandbox.page(1.0)
        sections = "".join(section(h, is_text=k >= labels) for k, h in enumerate(htmls))
        page.set_content(document(sections, "measure"))
        return [float(h) for h in page.evaluate(MEASURE)]

    # -- rendering ----------------------------------------------------------------------------

    def _render(self, turns: Sequence[Turn], mode: Mode) -> list[RenderedPage]:
        canvas, _ = page_size(mode)
        scale = canvas / PAGE_SIZE
        rendered = []
        for fragments in self._layout(turns):
            document = _document(fragments, "page")
            image = self._screenshot(document, scale)
            if image is None:  # the scaled layout overflowed: print at 1024 and resample
                base = self._screenshot(document, 1.0)
                assert base is not None
                image = base.resize((canvas, canvas), Image.Resampling.LANCZOS)
            rendered.append(RenderedPage(image=image, mode=mode, spans=_spans(fragments)))
        return rendered

    def _screenshot(self, document: str, scale: float) -> Image.Image | None:
        page = self.sandbox.page(scale)
        page.set_content(document)
        if scale != 1.0 and float(page.evaluate(BOTTOM)) > PAGE_SIZE:
            return None
        png = page.screenshot(type="png", animations="disabled", caret="hide")
        with Image.open(io.BytesIO(png)) as image:
            return image.convert("RGB")


def _code_points(text: str, units: Sequence[int]) -> list[int]:
    """UTF-16 offsets into ``text`` (as the browser counts) as offsets in code points."""
    if not _ASTRAL.search(text):
        return list(units)
    offsets = list(itertools.accumulate((2 if c > "\uffff" else 1 for c in text), initial=0))
    return [bisect.bisect_left(offsets, unit) for unit in units]


_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def _document(fragments: Sequence[_Fragment], kind: str) -> str:
    return document("".join(section(f.html, f.is_text) for f in fragments), kind)


def _spans(fragments: Sequence[_Fragment]) -> list[Span]:
    """The page's text fragments as spans, adjacent pieces of one turn merged."""
    spans: list[Span] = []
    for fragment in fragments:
        if not fragment.is_text:
            continue
        if spans and spans[-1].turn == fragment.turn and spans[-1].end == fragment.start:
            spans[-1] = Span(fragment.turn, spans[-1].start, fragment.end)
        else:
            spans.append(Span(fragment.turn, fragment.start, fragment.end))
    return spans
