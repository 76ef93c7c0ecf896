"""Exact values that go with a page as text: the spans a reader of a small image misreads.

A page image shrunk to a cheap mode still carries its prose (a misread letter rarely changes a
word), but not its exact values: one wrong glyph in ``U024BE7LH``, ``$4,318.07`` or
``+1 (415) 555-0182`` and the value is wrong, and nothing tells the model so. So when a page is
frozen its exact values are picked out of the text it prints and kept with it; whenever the
page goes as an image at a size its reader cannot be trusted to read exactly, those values go
beside it as text.

What counts as an exact value (:func:`exact_values`): URLs, emails, amounts (a currency sign
or code), runs of digits and separators that make a phone number, and any word holding a digit
with at least :data:`MIN_VALUE_CHARS` letters or digits (codes, ids, hex, numbers, dates,
times). Short numbers ("2 kids", "at 10") are left to the image: they are as legible as the
prose around them. Words without digits are left out, save names and codes that mix cases
or join capitals with hyphens (``getUserName``, ``ISSO-lBKSH``).

The text is bounded (:data:`MAX_VERBATIM_TOKENS` a page): codes, ids, URLs, emails, phone
numbers and amounts are kept before plain numbers, and the kept ones read in page order. The
text is a pure function of the page's printed text, computed once when the page is frozen and
stored with it (see :mod:`optical_memory.memory.packing`), so a page's verbatim text never
changes and neither does a cached prompt prefix holding it.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable

from optical_memory.tokens import count_text_tokens

#: Most tokens of verbatim text one page may add (values beyond it are left to the image).
MAX_VERBATIM_TOKENS = 64
#: A word with a digit needs this many letters and digits to count as an exact value.
MIN_VALUE_CHARS = 3
#: How the verbatim text of a page opens; the values follow, separated by ``"; "``.
VERBATIM_LEAD = "Exact values printed on this page:"
#: Store blob namespace of a page's verbatim text (content_hash: the page's, mode: "-").
VERBATIM_NAMESPACE = "verbatim"

_OPENERS = "([{<\"'“‘"
_CLOSERS = ".,;:!?)]}>\"'”’…"
_QUOTES = "\"'“”‘’"
_STOPS = ".,;:!?…"
_CURRENCY = "$€£¥₹"
_CURRENCY_CODES = re.compile(r"^(?:USD|EUR|GBP|JPY|CHF|CAD|AUD|INR)$")
_URL = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|www\.)\S+$", re.IGNORECASE)
_EMAIL = re.compile(r"^[\w.+-]+@[\w-]+(?:\.[\w-]+)+$")
#: A word made of digits and the separators of phone numbers, amounts, dates and times.
_NUMERIC = re.compile(r"^[+(]*\d[\d().,:/+-]*$")
_NAME = re.compile(r"^(?:[a-z]+[A-Z]\w*|\w+_\w+)$")
_ALNUM = re.compile(r"[^\W_]", re.UNICODE)
#: Digits a run of numeric words needs to read as one value (a phone number: 7 and up).
_PHONE_DIGITS = 7
#: At most this many digits (E.164's longest number) in at most this many words.
_PHONE_MAX_DIGITS = 15
_PHONE_WORDS = 5


def _trim(word: str) -> str:
    """``word`` without the punctuation around it (a closing bracket stays when it closes one
    inside the word, as in ``(415)555``)."""
    word = word.lstrip(_OPENERS)
    while word and word[-1] in _CLOSERS:
        if word[-1] == ")" and word.count("(") >= word.count(")"):
            break
        word = word[:-1]
    return word


def _balance(run: str) -> str:
    """``run`` without a bracket at either end that has no partner inside it."""
    if run.startswith("(") and run.count("(") > run.count(")"):
        run = run[1:]
    if run.endswith(")") and run.count(")") > run.count("("):
        run = run[:-1]
    return run


def _is_code_word(value: str) -> bool:
    """A word without digits that is still a code: camelCase or snake_case names, mixed-case
    runs ("ISSO-lBKSH", "xQzLmP") and hyphenated capitals ("ISSO-OBKSH"), 6 characters up."""
    if len(_ALNUM.findall(value)) < 2 * MIN_VALUE_CHARS:
        return False
    if _NAME.match(value):
        return True
    letters = [char for char in value if char.isalpha()]
    # A capital straight after a small letter ("lB", "xQ"), not a capital opening a part
    # of a hyphenated word ("Jean-Luc").
    mixed = any(a.islower() and b.isupper() for a, b in itertools.pairwise(value))
    capitals = "-" in value and all(char.isupper() for char in letters)
    return bool(letters) and (mixed or capitals)


def _has_digit(text: str) -> bool:
    return any(char.isdigit() for char in text)


def _priority(value: str) -> int | None:
    """0: codes, ids, URLs, emails, amounts; 1: plain numbers, dates, times; None: no value."""
    if _URL.match(value) or _EMAIL.match(value):
        return 0
    if value[0] in _CURRENCY or value[-1] in _CURRENCY:
        return 0 if _has_digit(value) else None
    if not _has_digit(value):
        return 0 if _is_code_word(value) else None
    if len(_ALNUM.findall(value)) < MIN_VALUE_CHARS:
        return None
    if _NUMERIC.match(value):
        return 0 if sum(char.isdigit() for char in value) >= _PHONE_DIGITS else 1
    return 0


def exact_values(text: str) -> list[str]:
    """The exact values ``text`` prints (see the module docstring), each once, in order.

    >>> exact_values("Call +1 (415) 555-0182 about order B8O0-lI15 ($4,318.07) on 7/5/2023.")
    ['+1 (415) 555-0182', 'B8O0-lI15', '$4,318.07', '7/5/2023']
    """
    raw = text.split()
    words = [_trim(word) for word in raw]
    # Numeric words keep their brackets, as in "(415)", until a run of them is complete.
    loose = [word.lstrip(_QUOTES).rstrip(_QUOTES + _STOPS) for word in raw]
    values: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        # A run of numeric words ("+1 (415) 555-0182") is one value when it is phone-long.
        end = index
        while end < len(words) and loose[end] and _NUMERIC.match(loose[end]):
            end += 1
        run = _balance(" ".join(loose[index:end]))
        if 1 < end - index <= _PHONE_WORDS and (
            _PHONE_DIGITS <= sum(char.isdigit() for char in run) <= _PHONE_MAX_DIGITS
        ):
            values.append(run)
            index = end
            continue
        if end - index > _PHONE_WORDS:  # a list of numbers, not a phone number: one by one
            values.extend(word for word in words[index:end] if _priority(word) is not None)
            index = end
            continue
        before = words[index - 1] if index > 0 else ""
        after = words[index + 1] if index + 1 < len(words) else ""
        if word in _CURRENCY and word and _NUMERIC.match(after):  # "$ 40": both words
            values.append(f"{word} {after}")
            index += 2
            continue
        if _CURRENCY_CODES.match(word) and _NUMERIC.match(before):  # "40 USD": both words
            if values and values[-1] == before:
                values.pop()
            values.append(f"{before} {word}")
            index += 1
            continue
        if word and _priority(word) is not None:
            values.append(word)
        index += 1
    return list(dict.fromkeys(values))


def verbatim_text(texts: Iterable[str], max_tokens: int = MAX_VERBATIM_TOKENS) -> str:
    """The verbatim text for a page printing ``texts`` ("" when it prints no exact value):
    :data:`VERBATIM_LEAD` and the values, at most ``max_tokens`` tokens in all.

    >>> verbatim_text(["Booking U024BE7LH, total $4,318.07"])
    'Exact values printed on this page: U024BE7LH; $4,318.07'
    """
    values = list(dict.fromkeys(v for text in texts for v in exact_values(text)))
    if not values:
        return ""
    ranked = sorted(range(len(values)), key=lambda i: (_rank(values[i]), i))
    budget = max_tokens - count_text_tokens(VERBATIM_LEAD)
    kept: set[int] = set()
    for i in ranked:
        cost = count_text_tokens(f" {values[i]};")
        if cost <= budget:
            kept.add(i)
            budget -= cost
    if not kept:
        return ""
    return f"{VERBATIM_LEAD} " + "; ".join(values[i] for i in sorted(kept))


def _rank(value: str) -> int:
    priority = _priority(value)
    return 0 if priority is None else priority  # joined runs and amounts rank first
