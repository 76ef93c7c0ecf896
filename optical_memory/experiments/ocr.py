"""Reading page images back with a classical OCR engine: a probe of what a page still holds.

This is not DeepSeek-OCR; it is a cheap, CPU-only check that a page's text is legible at a mode
(Tesseract through ``pytesseract``, or RapidOCR's ONNX models). Both come with the ``ocr`` extra
and are imported only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from optical_memory.extras import import_extra

if TYPE_CHECKING:
    from PIL import Image

Engine = Literal["tesseract", "rapidocr"]
ENGINES: tuple[Engine, ...] = ("tesseract", "rapidocr")

#: A page is one column of text lines: tesseract reads it as one block of text (page
#: segmentation mode 6). Its automatic layout analysis (mode 3, the default) now and then drops
#: a run of lines whole, on a page it reads perfectly once they are found, which says nothing
#: about how legible the page is.
TESSERACT_CONFIG = "--psm 6"

_rapidocr_engine: object | None = None


class OcrEngineError(RuntimeError):
    """The OCR engine is installed but cannot run (e.g. the tesseract binary is missing)."""


def read_text(image: Image.Image, engine: Engine | str = "tesseract") -> str:
    """The text ``engine`` reads from ``image``, lines joined by newlines."""
    if engine == "tesseract":
        return _read_tesseract(image)
    if engine == "rapidocr":
        return _read_rapidocr(image)
    raise ValueError(f"unknown OCR engine {engine!r}: choose one of {', '.join(ENGINES)}")


def _read_tesseract(image: Image.Image) -> str:
    pytesseract = import_extra("pytesseract", "ocr")
    try:
        text = pytesseract.image_to_string(image.convert("RGB"), config=TESSERACT_CONFIG)
    except pytesseract.TesseractNotFoundError as error:
        raise OcrEngineError(
            "the tesseract program is not installed: apt-get install tesseract-ocr "
            "(or `make setup` as root), or use engine='rapidocr'"
        ) from error
    return str(text).strip()


def _read_rapidocr(image: Image.Image) -> str:
    global _rapidocr_engine
    if _rapidocr_engine is None:
        rapidocr = import_extra("rapidocr", "ocr")
        # RapidOCR logs every model file it loads at INFO, in every probe process; its engine
        # sets its logger's level from this setting, whatever the logger's level was before.
        _rapidocr_engine = rapidocr.RapidOCR(params={"Global.log_level": "warning"})
    import numpy as np

    result = _rapidocr_engine(np.asarray(image.convert("RGB")))  # type: ignore[operator]
    texts = getattr(result, "txts", None)
    if texts is None and isinstance(result, tuple):  # rapidocr < 2: ([(box, text, score)], ...)
        texts = [line[1] for line in (result[0] or [])]
    return "\n".join(str(text) for text in (texts or ()))


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions cost 1).

    Myers' bit-vector algorithm in Hyyrö's form (one Python big integer per column), so two
    pages of a few thousand characters compare in milliseconds rather than seconds.
    """
    if not a:
        return len(b)
    if not b:
        return len(a)
    positions: dict[str, int] = {}
    for index, char in enumerate(a):
        positions[char] = positions.get(char, 0) | (1 << index)
    mask = (1 << len(a)) - 1
    top = 1 << (len(a) - 1)
    plus, minus, score = mask, 0, len(a)  # vertical deltas +1 / -1 of the current column
    for char in b:
        equal = positions.get(char, 0)
        vertical = equal | minus
        horizontal = (((equal & plus) + plus) ^ plus) | equal
        h_plus = minus | ~(horizontal | plus)
        h_minus = plus & horizontal
        if h_plus & top:
            score += 1
        elif h_minus & top:
            score -= 1
        h_plus = (h_plus << 1) | 1
        h_minus <<= 1
        plus = (h_minus | ~(vertical | h_plus)) & mask
        minus = h_plus & vertical & mask
    return score


def character_accuracy(expected: str, read: str) -> float:
    """``1 - edit_distance / max(len(expected), len(read))``, in [0, 1]; 1.0 for two empties.

    Compare like with like: normalize whitespace first if layout is not what is measured
    (:func:`normalize_whitespace`).
    """
    longest = max(len(expected), len(read))
    if longest == 0:
        return 1.0
    return 1.0 - edit_distance(expected, read) / longest


def normalize_whitespace(text: str) -> str:
    """Runs of whitespace (newlines included) collapsed to one space, ends stripped."""
    return " ".join(text.split())
