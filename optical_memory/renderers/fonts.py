"""The font fallback chain: which installed font draws each character.

Pages mix Latin, CJK, Hebrew/Arabic and emoji, and no single free font covers them all. A
:class:`FontChain` holds an ordered list of faces (DejaVu Sans, then Noto Sans CJK, then a color
emoji font where one is installed) and gives each character to the first face that has a glyph
for it. A character no face covers goes to the first face and prints as its "missing glyph"
box; nothing here raises for unusual text.

Fonts are found at their Debian/Ubuntu paths first (``fonts-dejavu-core``, ``fonts-noto-cjk``,
``fonts-noto-color-emoji``), then through fontconfig's ``fc-match``/``fc-list`` when installed.
"""

from __future__ import annotations

import functools
import itertools
import shutil
import subprocess
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import ImageFont

#: Size at which glyph coverage is probed; any size works for outline fonts.
_PROBE_SIZE = 32
#: A code point no font maps: its mask is the face's "missing glyph" (.notdef) drawing.
_UNMAPPED = "\U0010ffff"


class FontNotFoundError(RuntimeError):
    """No usable font is installed; the message names the packages to install."""


@dataclass(frozen=True)
class FontFace:
    """One face of a font file.

    ``index`` picks the face inside a collection (``.ttc``). ``bitmap_size`` is set for fonts
    made of fixed-size bitmaps (Noto Color Emoji: 109 px), which FreeType loads only at that
    size; their glyphs are drawn at that size and scaled to the line.
    """

    path: str
    index: int = 0
    bitmap_size: int | None = None

    @functools.cached_property
    def name(self) -> str:
        """File name and face index, e.g. ``NotoSansCJK-Regular.ttc#0`` (for settings keys,
        which ``context()`` reads for every page it shows)."""
        return f"{Path(self.path).name}#{self.index}"

    def load(self, size: float) -> ImageFont.FreeTypeFont:
        """The face as a Pillow font of ``size`` px (bitmap fonts: at their one size)."""
        return _load(self.path, self.index, self.bitmap_size or size)

    def scale_at(self, size: float) -> float:
        """Factor from the loaded font's pixels to a ``size``-px line (1 for outline fonts)."""
        return size / self.bitmap_size if self.bitmap_size else 1.0


@functools.lru_cache(maxsize=256)
def _load(path: str, index: int, size: float) -> ImageFont.FreeTypeFont:
    layout = ImageFont.Layout.RAQM if has_complex_layout() else ImageFont.Layout.BASIC
    return ImageFont.truetype(path, size, index=index, layout_engine=layout)


@functools.cache
def has_complex_layout() -> bool:
    """Whether Pillow has libraqm, which shapes Arabic and orders right-to-left runs."""
    from PIL import features

    return bool(features.check("raqm"))


def is_invisible(char: str) -> bool:
    """Control and format characters and variation selectors: no width, nothing drawn."""
    if "\ufe00" <= char <= "\ufe0f" or "\U000e0100" <= char <= "\U000e01ef":
        return True
    return unicodedata.category(char) in ("Cc", "Cf", "Cs")


class FontChain:
    """Faces in order of preference; each character is drawn by the first face that has it."""

    def __init__(self, faces: Sequence[FontFace]) -> None:
        if not faces:
            raise FontNotFoundError("a font chain needs at least one face")
        self.faces: tuple[FontFace, ...] = tuple(faces)
        self._face_of: dict[str, int] = {}
        self._notdef = [self._glyph_signature(i, _UNMAPPED) for i in range(len(self.faces))]

    @functools.cached_property
    def key(self) -> str:
        """The faces' names joined, for settings keys (different fonts, different pixels);
        computed once (every page a request shows asks for it)."""
        return "+".join(face.name for face in self.faces)

    def face_of(self, char: str) -> int:
        """Index of the face that draws ``char`` (0, the primary face, when none has it)."""
        index = self._face_of.get(char)
        if index is None:
            index = next(
                (
                    i
                    for i in range(len(self.faces))
                    if self._glyph_signature(i, char) != self._notdef[i]
                ),
                0,
            )
            self._face_of[char] = index
        return index

    def runs(self, text: str) -> list[tuple[str, int]]:
        """``text`` cut into ``(piece, face index)`` runs; invisible characters get face -1."""
        # Linear in len(text): runs are sliced out of ``text`` where the face changes (growing
        # a run by concatenation would copy it once per character).
        runs: list[tuple[str, int]] = []
        start = 0
        for face, group in itertools.groupby(
            -1 if is_invisible(char) else self.face_of(char) for char in text
        ):
            end = start + sum(1 for _ in group)
            runs.append((text[start:end], face))
            start = end
        return runs

    def _glyph_signature(self, face: int, char: str) -> tuple[tuple[int, int], bytes]:
        mask = self.faces[face].load(_PROBE_SIZE).getmask(char)
        return mask.size, bytes(mask)


# Debian/Ubuntu paths, best first. Regular and bold per script.
_LATIN = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
)
_LATIN_BOLD = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/TTF/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
)
_CJK = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
)
_CJK_BOLD = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Bold.ttc",
)
_EMOJI = (
    "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf",
    "/usr/share/fonts/noto/NotoColorEmoji.ttf",
)
_EMOJI_BITMAP_SIZE = 109  # Noto Color Emoji's only strike


def _first_existing(paths: Sequence[str]) -> str | None:
    return next((p for p in paths if Path(p).is_file()), None)


def _fontconfig(*args: str, bold: bool = False) -> str | None:
    """A file fontconfig names for ``args`` (``fc-match``/``fc-list``), or ``None``; among
    several, the first in sorted order whose name matches the wanted weight."""
    if shutil.which(args[0]) is None:
        return None
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    if not lines:
        return None
    # Sorted, so every call picks the same file; a bold file for a bold chain, else a regular.
    return min(lines, key=lambda file: (("bold" in file.lower()) != bold, file))


def _loadable(face: FontFace) -> bool:
    try:
        face.load(_PROBE_SIZE)
    except OSError:
        return False
    return True


@functools.cache
def default_chain(bold: bool = False) -> FontChain:
    """The installed fallback chain: Latin (DejaVu Sans), CJK (Noto Sans CJK), color emoji.

    Raises :class:`FontNotFoundError` when not even a Latin font can be loaded.
    """
    faces: list[FontFace] = []
    latin = _first_existing(_LATIN_BOLD if bold else _LATIN) or _fontconfig(
        "fc-match", "--format=%{file}", "sans-serif:bold" if bold else "sans-serif"
    )
    if latin and _loadable(FontFace(latin)):
        faces.append(FontFace(latin))
    cjk = _first_existing(_CJK_BOLD if bold else _CJK) or _fontconfig(
        "fc-list", ":charset=4e2d", "--format=%{file}\n", bold=bold
    )
    if cjk and _loadable(FontFace(cjk)):
        faces.append(FontFace(cjk))
    emoji = _first_existing(_EMOJI)
    if emoji and _loadable(FontFace(emoji, bitmap_size=_EMOJI_BITMAP_SIZE)):
        faces.append(FontFace(emoji, bitmap_size=_EMOJI_BITMAP_SIZE))
    if not faces:
        raise FontNotFoundError(
            "no usable font found: install fonts-dejavu-core (and fonts-noto-cjk for CJK), "
            "e.g. `sudo apt-get install fonts-dejavu-core fonts-noto-cjk`"
        )
    return FontChain(faces)
