"""Typesetting for the Pillow renderer: turns broken into lines and pages of a reference page.

Each turn starts on a new line with its role as a bold, coloured label (``Caroline:``, or ``#12
Caroline:`` for a stored turn: its number in the thread, which the recall tool takes); a turn
that continues on the next page repeats it as ``#12 Caroline (continued):``. Newlines in
content are honoured, lines wrap at spaces and between CJK characters, and a word longer than a
line breaks between characters. Spans cover every character of every turn once, in order; a
turn with empty content gets a span of length 0 on the page that shows its label. Spaces and
line breaks after a page's last line stay on that page (a new page starts at the next visible
character).

Widths come from the renderer (:class:`Measurer`), in pixels of the reference page, so the
layout is the same at every mode.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from optical_memory.renderers.page import Span
from optical_memory.renderers.style import label_colour
from optical_memory.turns import Turn

_TAB_SPACES = 4
_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"  # str.splitlines' line boundaries
# Characters a line may break between (CJK ideographs, kana, hangul, fullwidth forms, emoji).
_WIDE = (
    "\u1100-\u115f\u2e80-\u2fff\u3001-\u303e\u3041-\u33ff\u3400-\u4dbf\u4e00-\u9fff"
    "\ua000-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6"
    "\U0001f000-\U0001faff\U00020000-\U0003fffd"
)
# One token per match: a line break, a run of spaces, a run of wide characters (a line may
# break between any two of them), or a word.
_TOKEN = re.compile(rf"(\r\n|[{_BREAKS}])|([^\S{_BREAKS}]+)|([{_WIDE}]+)|([^\s{_WIDE}]+)")
_BREAK, _SPACE, _WIDE_RUN, _WORD = 1, 2, 3, 4

# A run placed on a page: (line, x from the left margin in reference px, text, face, bold,
# colour: None for black text)
Piece = tuple[int, float, str, int, bool, tuple[int, int, int] | None]
# A measured run: (text, face index or -1 for invisible, width in reference px)
Run = tuple[str, int, float]


@dataclass
class Layout:
    """Where everything goes: per page, its spans and its placed runs."""

    spans: list[list[Span]]
    pieces: list[list[Piece]]


class Measurer(Protocol):
    """What the typesetter asks of a renderer: the page's room and the width of text."""

    @property
    def line_width(self) -> float: ...

    @property
    def lines_per_page(self) -> int: ...

    @property
    def measured_text(self) -> dict[str, tuple[tuple[Run, ...], float]]: ...

    def measure(self, text: str, bold: bool = False) -> tuple[tuple[Run, ...], float]: ...

    def label_runs(self, role: str, suffix: str) -> tuple[Run, ...]: ...


class Typesetter:
    """Fills reference pages line by line; one instance per layout.

    A full page is closed lazily: the next page opens only when something is drawn, so line
    breaks and spaces after the last line stay on the page they follow.
    """

    def __init__(self, renderer: Measurer) -> None:
        self.renderer = renderer
        self.width = renderer.line_width
        self.max_lines = max(1, renderer.lines_per_page)
        self.space = renderer.measure(" ")[1]
        self.spans: list[list[Span]] = []
        self.pieces: list[list[Piece]] = []
        self.line = self.max_lines  # "page full": the first piece opens page one
        self.x = 0.0
        self.has_text = False  # the current line holds content (not only a label)
        self.turn = 0
        self.role = ""
        self.number = ""  # "#12 " when the turn has a number in its thread
        self.span_start = 0  # where the current turn's span on the current page starts
        self.turn_has_span = False
        self.break_at: int | None = None  # content offset where the full page ended, mid-turn

    def set(self, turns: Sequence[Turn]) -> Layout:
        for index, turn in enumerate(turns):
            self._set_turn(index, turn)
        return Layout(spans=self.spans, pieces=self.pieces)

    def _set_turn(self, index: int, turn: Turn) -> None:
        if self.x > 0 or self.has_text:
            self._new_line(at=None)
        self.break_at = None  # a break pending from the last turn falls between turns
        self.turn, self.role = index, " ".join(turn.role.split()) or turn.role
        self.number = "" if turn.number is None else f"#{turn.number} "
        self.span_start, self.turn_has_span = 0, False
        self._label(":")
        content = turn.content
        measured, space = self.renderer.measured_text, self.space
        for match in _TOKEN.finditer(content):
            kind, token = match.lastindex, match.group()
            if kind == _SPACE:
                # Spaces never wrap: at a line's end they hang invisibly in the margin.
                if token == " ":
                    self.x += space
                else:
                    tabs = token.count("\t")
                    self.x += space * (len(token) - tabs + _TAB_SPACES * tabs)
                self.has_text = True
            elif kind == _WORD:
                self._fit(token, match.start(), measured)
            elif kind == _WIDE_RUN:  # each character a word of its own
                start = match.start()
                for offset, char in enumerate(token):
                    self._fit(char, start + offset, measured)
            else:
                self.has_text = True
                self._new_line(at=match.end())
        if len(content) > self.span_start or not self.turn_has_span:
            self._close_span(len(content))

    def _fit(
        self, word: str, start: int, measured: dict[str, tuple[tuple[Run, ...], float]]
    ) -> None:
        """Place ``word`` (at ``start`` in the content): most words were measured before, are
        one run and fit on the open line, which takes no more than this; others go to
        :meth:`_word`."""
        found = measured.get(word)
        if found is not None and len(found[0]) == 1 and self.line < self.max_lines:
            (text, face, width), x = found[0][0], self.x
            if x + width <= self.width:
                if face >= 0:
                    self.pieces[-1].append((self.line, x, text, face, False, None))
                self.x = x + width
                self.has_text = True
                return
        self._word(word, start)

    def _label(self, suffix: str) -> None:
        self._open_page_if_full()
        runs = self.renderer.label_runs(self.number + self.role, suffix)
        self._place(runs, bold=True, colour=label_colour(self.role))
        self.x += self.space

    def _word(self, word: str, start: int) -> None:
        self._open_page_if_full()
        # A word with more characters than the line has pixels is never measured whole (the
        # cost would grow with its length on every line): it starts a line and breaks.
        measured = self.renderer.measure(word) if len(word) <= self.width else None
        if measured is not None and self.x + measured[1] <= self.width:
            self._place(measured[0])
            return
        if self.has_text:
            self._new_line(at=start)
            self._open_page_if_full()
            if measured is not None and self.x + measured[1] <= self.width:
                self._place(measured[0])
                return
        # No room even on a fresh line: break between characters (widths summed per character).
        widths: dict[str, float] = {}
        piece_start, piece_width = 0, 0.0
        for offset, char in enumerate(word):
            char_width = widths.get(char)
            if char_width is None:
                char_width = widths[char] = self.renderer.measure(char)[1]
            if self.x + piece_width + char_width > self.width and offset > piece_start:
                self._place(self.renderer.measure(word[piece_start:offset])[0])
                self._new_line(at=start + offset)
                self._open_page_if_full()
                piece_start, piece_width = offset, 0.0
            piece_width += char_width
        self._place(self.renderer.measure(word[piece_start:])[0])

    def _place(
        self,
        runs: Sequence[Run],
        bold: bool = False,
        colour: tuple[int, int, int] | None = None,
    ) -> None:
        pieces = self.pieces[-1]
        for text, face, width in runs:
            if face >= 0:
                pieces.append((self.line, self.x, text, face, bold, colour))
            self.x += width
        if not bold:
            self.has_text = True

    def _new_line(self, at: int | None) -> None:
        """Move to the next line; ``at``: the content offset where it starts (None: between
        turns), which is where the current span ends if the page is full."""
        if self.line >= self.max_lines:
            return  # already full: the break is pending
        self.line += 1
        self.x = 0.0
        self.has_text = False
        if self.line >= self.max_lines:
            self.break_at = at

    def _open_page_if_full(self) -> None:
        if self.line < self.max_lines:
            return
        at = self.break_at
        if at is not None and at > self.span_start:
            self._close_span(at)
        self.spans.append([])
        self.pieces.append([])
        self.line, self.x, self.has_text, self.break_at = 0, 0.0, False, None
        if at is not None:  # mid-turn: say whose words continue here
            self.span_start = at
            self._label(" (continued):")

    def _close_span(self, end: int) -> None:
        self.spans[-1].append(Span(self.turn, self.span_start, end))
        self.turn_has_span = True
