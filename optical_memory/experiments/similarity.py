"""Does a probe's reading of a page still contain a given turn? Approximate substring matching.

:func:`substring_distance` is Sellers' approximate matching (the fewest edits that turn the
needle into *some* substring of the haystack) computed with Myers' bit-parallel column
recurrence, the same one :func:`~optical_memory.experiments.ocr.edit_distance` uses for whole
pages; the only
difference is the table's first row, all zeros here, so a match may start anywhere. A 300-character
turn against a 3,000-character page costs 3,000 steps of a few big-int operations (a millisecond
or two) instead of 900,000 Python-level cell updates.
"""

from __future__ import annotations

from optical_memory.experiments.ocr import character_accuracy, normalize_whitespace


def substring_distance(needle: str, haystack: str) -> int:
    """Fewest unit edits (insert, delete, substitute) turning ``needle`` into a substring of
    ``haystack`` (the empty substring included, so at most ``len(needle)``)."""
    m = len(needle)
    if m == 0:
        return 0
    masks: dict[str, int] = {}
    for position, char in enumerate(needle):
        masks[char] = masks.get(char, 0) | (1 << position)
    full = (1 << m) - 1
    top = 1 << (m - 1)
    plus, minus = full, 0  # vertical deltas +1 / -1 of the current column
    score = best = m
    for char in haystack:
        equal = masks.get(char, 0)
        vertical = equal | minus
        horizontal = (((equal & plus) + plus) ^ plus) | equal
        h_plus = (minus | ~(horizontal | plus)) & full
        h_minus = plus & horizontal
        if h_plus & top:
            score += 1
        elif h_minus & top:
            score -= 1
            best = min(best, score)
        h_plus = (h_plus << 1) & full  # first row stays 0: a match may begin at any column
        h_minus = (h_minus << 1) & full
        plus = (h_minus | ~(vertical | h_plus)) & full
        minus = h_plus & vertical
    return best


def substring_similarity(needle: str, haystack: str) -> float:
    """How well ``haystack`` contains ``needle``, in [0, 1], whitespace normalized on both.

    ``1 - substring_distance / len(needle)``: 1.0 when the needle occurs verbatim, 0.9 when the
    best-matching stretch of the haystack is one edit per ten characters away. An empty needle is
    always contained.
    """
    needle, haystack = normalize_whitespace(needle), normalize_whitespace(haystack)
    if not needle:
        return 1.0
    return 1.0 - substring_distance(needle, haystack) / len(needle)


def page_accuracy(expected: str, read: str) -> float:
    """The probe's character accuracy on a page: :func:`~.ocr.character_accuracy` with
    whitespace normalized on both sides (line breaks are layout, not content)."""
    return character_accuracy(normalize_whitespace(expected), normalize_whitespace(read))
