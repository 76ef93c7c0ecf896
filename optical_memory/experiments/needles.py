"""The needle benchmark: exact values planted in conversations, and how many survive the memory.

Each conversation gets exact values a reader misreads (look-alike codes, amounts, phone numbers,
hex ids: :func:`make_value`) appended, one sentence each, to turns drawn at random from those
that end up on pages. The conversation is put in an :class:`~optical_memory.OpticalMemory`
for a target, and its default context (no budget) is what the model would be sent. A planted
value is *recovered* when it can be read back exactly from what is sent: the text (recent
turns, pages sent as text, a page's verbatim text) or the reader's reading of the page image at
the size it is sent. *Read alone* counts what the readings and the plain text give without any
verbatim text (the memory as it was before pages carried their exact values); the tokens beside
it are the context's tokens without and with the verbatim text.

Nothing here is tuned on the conversations it is run on: values are drawn from a seeded
generator and the exact-value rules (:mod:`optical_memory.verbatim`) are fixed in advance.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from optical_memory.experiments.ocr import normalize_whitespace
from optical_memory.experiments.readers import Reader
from optical_memory.memory import OpticalMemory
from optical_memory.memory.context import MemoryContext, MemoryPage
from optical_memory.turns import Turn

KINDS = ("look-alike code", "amount", "phone number", "hex id")
#: Glyphs readers confuse with one another (0/O, 1/l/I, 5/S, 8/B).
LOOKALIKES = "0O1lI5S8B"
_SENTENCES = {
    "look-alike code": "The locker code is {value}.",
    "amount": "The invoice came to {value} in the end.",
    "phone number": "You can reach the front desk on {value}.",
    "hex id": "The build id was {value}, remember it.",
}


def make_value(kind: str, rng: random.Random) -> str:
    """A fresh exact value of ``kind`` (one of :data:`KINDS`)."""
    if kind == "look-alike code":
        chars = rng.choices(LOOKALIKES + "KH7Z", k=8)
        chars[rng.randrange(8)] = rng.choice("0158")  # every code has a digit to misread
        return "".join(chars[:4]) + "-" + "".join(chars[4:])
    if kind == "amount":
        return f"${rng.randint(1, 98)},{rng.randint(0, 999):03d}.{rng.randint(0, 99):02d}"
    if kind == "phone number":
        return f"+1 ({rng.randint(201, 989)}) {rng.randint(200, 989)}-{rng.randint(0, 9999):04d}"
    if kind == "hex id":
        digits = rng.choices(string.hexdigits.lower()[:16], k=12)
        digits[rng.randrange(12)] = rng.choice("0123456789")
        return "".join(digits)
    raise ValueError(f"unknown needle kind {kind!r}: choose one of {', '.join(KINDS)}")


@dataclass(frozen=True)
class Needle:
    """The exact ``value`` of ``kind`` planted in turn ``turn_index`` of its conversation."""

    kind: str
    value: str
    turn_index: int


def plant(
    turns: Sequence[Turn], count: int, rng: random.Random, keep_recent: int
) -> tuple[list[Turn], list[Needle]]:
    """``turns`` with ``count`` values planted (kinds in turn, each in its own turn, none in the
    last ``2 * keep_recent`` turns, which stay text), and the needles."""
    candidates = range(max(0, len(turns) - 2 * keep_recent))
    if count > len(candidates):
        raise ValueError(f"{count} needles need {count} turns before the recent ones")
    chosen = sorted(rng.sample(candidates, count))
    planted = list(turns)
    needles = []
    for n, index in enumerate(chosen):
        kind = KINDS[n % len(KINDS)]
        value = make_value(kind, rng)
        sentence = _SENTENCES[kind].format(value=value)
        turn = planted[index]
        planted[index] = turn.model_copy(update={"content": f"{turn.content} {sentence}"})
        needles.append(Needle(kind, value, index))
    return planted, needles


@dataclass
class NeedleOutcome:
    """Where one needle went and whether it came back."""

    needle: Needle
    shown_as: str  # "text", "image" or "missing" (split over pages or forgotten)
    read: bool  # recovered without verbatim text
    recovered: bool  # recovered from everything sent


@dataclass
class Run:
    """One conversation in one target's memory: its needles and its tokens."""

    conversation: str
    target: str
    outcomes: list[NeedleOutcome] = field(default_factory=list)
    tokens_today: int = 0  # the context without verbatim text
    tokens: int = 0  # the context as sent
    verbatim_tokens: int = 0
    pages: int = 0


def _contains(text: str, value: str) -> bool:
    return normalize_whitespace(value) in normalize_whitespace(text)


def run_conversation(
    name: str,
    turns: Sequence[Turn],
    needles: Sequence[Needle],
    target: str,
    read: Callable[[MemoryPage], str],
) -> Run:
    """Put ``turns`` in a memory for ``target`` and check each needle against its context;
    ``read(page)`` is the reader's reading of an image page at its mode."""
    with OpticalMemory(None, target=target) as memory:
        for turn in turns:
            memory.add(turn.role, turn.content, timestamp=turn.timestamp)
        context = memory.context()
        result = Run(name, target, pages=len(context.pages) + len(context.text_pages))
        result.tokens = context.total_tokens
        result.verbatim_tokens = sum(page.verbatim_tokens for page in context.pages)
        result.tokens_today = result.tokens - result.verbatim_tokens
        texts = [f"{t.role}: {t.content}" for t in context.recent]
        texts += [page.text for page in context.text_pages]
        printed = {page.page_id: memory.recall(page.page_id) for page in context.pages}
        prefetch = getattr(read, "prefetch", None)
        if prefetch is not None:  # read the needles' pages together
            prefetch(
                [p for p in context.pages if any(n.value in printed[p.page_id] for n in needles)]
            )
        for needle in needles:
            result.outcomes.append(_outcome(needle, context, texts, printed, read))
    return result


def _outcome(
    needle: Needle,
    context: MemoryContext,
    texts: list[str],
    printed: dict[int, str],
    read: Callable[[MemoryPage], str],
) -> NeedleOutcome:
    if any(_contains(text, needle.value) for text in texts):
        return NeedleOutcome(needle, "text", True, True)
    pages = [page for page in context.pages if needle.value in printed[page.page_id]]
    if not pages:
        return NeedleOutcome(needle, "missing", False, False)
    by_reading = any(_contains(read(page), needle.value) for page in pages)
    by_text = any(_contains(page.verbatim, needle.value) for page in pages)
    return NeedleOutcome(needle, "image", by_reading, by_reading or by_text)


class PageReadings:
    """A reader's readings of image pages, each page (content and mode) read once, the pages
    of a batch in ``workers`` threads (an OCR engine runs as its own process)."""

    def __init__(self, reader: Reader, workers: int = 2) -> None:
        self.reader = reader
        self.workers = workers
        self.readings: dict[str, str] = {}

    def prefetch(self, pages: Sequence[MemoryPage]) -> None:
        todo = {page.image_key: page for page in pages if page.image_key not in self.readings}
        if not todo:
            return
        for page in todo.values():
            page.image.load()  # from the store, in this thread
        with ThreadPoolExecutor(max(1, self.workers)) as pool:
            read = pool.map(lambda page: self.reader.read(page.image, page.mode), todo.values())
            self.readings.update(zip(todo, read, strict=True))

    def __call__(self, page: MemoryPage) -> str:
        if page.image_key not in self.readings:
            self.readings[page.image_key] = self.reader.read(page.image, page.mode)
        return self.readings[page.image_key]


@dataclass(frozen=True)
class TargetSummary:
    """All conversations of one target."""

    target: str
    needles: int
    on_images: int
    read: int
    recovered: int
    tokens_today: int
    tokens: int

    @property
    def extra_tokens(self) -> float:
        """Tokens added by verbatim text, as a share of today's tokens."""
        return self.tokens / self.tokens_today - 1 if self.tokens_today else 0.0


def summarize(runs: Sequence[Run]) -> list[TargetSummary]:
    """One :class:`TargetSummary` per target, in the order the runs first name them."""
    targets = list(dict.fromkeys(run.target for run in runs))
    summaries = []
    for target in targets:
        mine = [run for run in runs if run.target == target]
        outcomes = [o for run in mine for o in run.outcomes]
        summaries.append(
            TargetSummary(
                target=target,
                needles=len(outcomes),
                on_images=sum(o.shown_as == "image" for o in outcomes),
                read=sum(o.read for o in outcomes),
                recovered=sum(o.recovered for o in outcomes),
                tokens_today=sum(run.tokens_today for run in mine),
                tokens=sum(run.tokens for run in mine),
            )
        )
    return summaries


def by_kind(runs: Sequence[Run], target: str) -> dict[str, tuple[int, int, int]]:
    """Per needle kind for ``target``: (needles, read alone, recovered)."""
    table: dict[str, tuple[int, int, int]] = {}
    for run in runs:
        if run.target != target:
            continue
        for o in run.outcomes:
            n, r, k = table.get(o.needle.kind, (0, 0, 0))
            table[o.needle.kind] = (n + 1, r + o.read, k + o.recovered)
    return table


def table_lines(summaries: Sequence[TargetSummary]) -> list[str]:
    """The per-target markdown table."""
    lines = [
        "| target | needles | on images | read alone (today) | recovered (pages + verbatim) "
        "| tokens today | tokens now | more tokens |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        lines.append(
            f"| {s.target} | {s.needles} | {s.on_images} | {s.read} ({_pct(s.read, s.needles)}) "
            f"| {s.recovered} ({_pct(s.recovered, s.needles)}) | {s.tokens_today:,} "
            f"| {s.tokens:,} | {s.extra_tokens:+.1%} |"
        )
    return lines


def _pct(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "-"
