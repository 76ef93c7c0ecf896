"""Calibration: what the user's own model reads off pages, per mode, measured and kept.

A fixed calibration set (:data:`CALIBRATION_PAGES`: prose, code, a table and exact values
built from look-alike glyphs 0/O, 1/l/I, 5/S, 8/B, hex ids, amounts, phone numbers and dates)
is drawn at every mode the target could be sent at; a :class:`~optical_memory.experiments.
readers.Reader` transcribes each page. Per mode the run keeps the share of characters read
(:func:`~optical_memory.experiments.ocr.character_accuracy` over whitespace-normalized text,
averaged over the pages) and the share of the exact values found word for word
(:data:`CALIBRATION_VALUES`), in the store under the model's key
(:func:`~optical_memory.legibility.save_calibration`). A memory planning for that model then
uses the table in place of the priors (:meth:`OpticalMemory.use_calibration
<optical_memory.memory.OpticalMemory.use_calibration>`; the agent middleware does so for the
model it calls): the modes a budget picks, and which pages carry their exact values as text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from optical_memory.experiments.ocr import character_accuracy, normalize_whitespace
from optical_memory.experiments.readers import ChatModelReader, Reader
from optical_memory.legibility import (
    EXACT_ACCURACY_NEEDED,
    ModeLegibility,
    exact_value_prior,
    expected_precision,
    save_calibration,
)
from optical_memory.modes import Mode
from optical_memory.renderers.page import Renderer
from optical_memory.store import Store
from optical_memory.targets import vision_tokens
from optical_memory.turns import Turn, turn_text

#: Exact values of the calibration set, each printed once (look-alikes, hex, amounts, phones,
#: dates, a URL and an email).
CALIBRATION_VALUES: tuple[str, ...] = (
    "0O1l-I5S8B",
    "B8S5-O0lI1",
    "U024BE7LH",
    "KH8Q-0OlI",
    "S5B8-1lI0O",
    "0x7f3a9c1e",
    "9f3a6c1e2b7d",
    "d00d1e5e0b1e",
    "$4,318.07",
    "$90,210.55",
    "€12,905.50",
    "+1 (415) 555-0182",
    "+44 20 7946 0958",
    "2024-03-17",
    "07/11/2025",
    "https://ex.io/r/O0l1I",
    "ola.b8@mail.example.com",
)

_PROSE = (
    "We left the harbour before dawn, when the water was still and the gulls had not yet "
    "woken. My sister steered while I read the charts aloud, and by the time the sun cleared "
    "the headland we could see the lighthouse on the far island. The wind rose in the "
    "afternoon, so we reefed the mainsail and ate our sandwiches in the lee of the cabin. "
    "Nobody spoke much; the sea did the talking. In the evening we anchored in a small bay, "
    "lit the stove, and listened to the radio forecast promising rain for the morning."
)
_CODE = (
    "def settle(invoices, rate=1.08):\n"
    "    total = 0\n"
    "    for item in invoices:\n"
    "        if item.status == 'open' and item.amount > 0:\n"
    "            total += round(item.amount * rate, 2)\n"
    "    return {'total': total, 'count': len(invoices), 'id': 'I1l0O'}\n"
)
_TABLE = (
    "| order | customer | amount | placed |\n"
    "|---|---|---|---|\n"
    "| U024BE7LH | Ola Berg | $4,318.07 | 2024-03-17 |\n"
    "| KH8Q-0OlI | Sam Ilse | €12,905.50 | 07/11/2025 |\n"
    "| 9f3a6c1e2b7d | Bo Lind | $90,210.55 | 2024-03-17 |"
)
_VALUES = (
    "Codes to copy exactly: 0O1l-I5S8B, B8S5-O0lI1 and S5B8-1lI0O. The commit was 0x7f3a9c1e "
    "and the build d00d1e5e0b1e. Call +1 (415) 555-0182 or +44 20 7946 0958, write to "
    "ola.b8@mail.example.com, see https://ex.io/r/O0l1I."
)
#: The calibration pages: (name, text), each short enough to fill one page at every mode.
CALIBRATION_PAGES: tuple[tuple[str, str], ...] = (
    ("prose", _PROSE),
    ("code", _CODE),
    ("table", _TABLE),
    ("exact values", _VALUES),
)


@dataclass(frozen=True)
class Calibration:
    """One calibration run: the table per mode, the readings, and what the run cost."""

    model_key: str
    target: str
    table: dict[Mode, ModeLegibility]
    readings: dict[tuple[str, Mode], str]
    input_tokens: int
    output_tokens: int


def calibrate(
    reader: Reader,
    renderer: Renderer,
    *,
    model_key: str,
    target: str,
    modes: Sequence[Mode] = tuple(Mode),
    store: Store | None = None,
) -> Calibration:
    """Have ``reader`` transcribe every calibration page at every mode in ``modes``; score
    it; keep the table in ``store`` (when given) under ``model_key``."""
    table: dict[Mode, ModeLegibility] = {}
    readings: dict[tuple[str, Mode], str] = {}
    for mode in modes:
        accuracies, found = [], 0
        for name, text in CALIBRATION_PAGES:
            turn = Turn(role="user", content=text)
            pages = renderer.render([turn], mode)
            reading = reader.read(pages[0].image, mode)
            readings[(name, mode)] = reading
            expected = normalize_whitespace(turn_text(turn.role, turn.content))
            read = normalize_whitespace(reading)
            accuracies.append(character_accuracy(expected, read))
            found += sum(normalize_whitespace(v) in read for v in CALIBRATION_VALUES if v in text)
        table[mode] = ModeLegibility(
            character_accuracy=sum(accuracies) / len(accuracies),
            exact_accuracy=found / _printed_values(),
            pages=len(CALIBRATION_PAGES),
        )
    if store is not None:
        save_calibration(store, model_key, table)
    counted = reader if isinstance(reader, ChatModelReader) else None
    return Calibration(
        model_key=model_key,
        target=target,
        table=table,
        readings=readings,
        input_tokens=counted.input_tokens if counted else 0,
        output_tokens=counted.output_tokens if counted else 0,
    )


def _printed_values() -> int:
    """Exact values the calibration pages print, counting a value once per page it is on."""
    return sum(v in text for _, text in CALIBRATION_PAGES for v in CALIBRATION_VALUES)


def report_lines(
    result: Calibration,
    page_sizes: dict[Mode, tuple[int, int]],
    input_price: float | None = None,
    output_price: float | None = None,
) -> list[str]:
    """The table, the run's cost and what the planner now does, as markdown lines. Prices are
    in money per million tokens (none given: the cost is in tokens only)."""
    lines = [
        f"Calibration of {result.model_key} (target {result.target}):",
        "",
        "| mode | page px | tokens a page | characters read | exact values read "
        "| prior (Fox, exact) | exact values as text |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for mode, row in result.table.items():
        width, height = page_sizes[mode]
        prior_exact = exact_value_prior(result.target, mode)
        measured = mode in (Mode.TINY, Mode.SMALL)  # the only modes Fox has columns for
        fox = f"{expected_precision(950, mode):.0%}" if measured else "unknown"
        lines.append(
            f"| {mode.value} | {width}x{height} "
            f"| {vision_tokens(width, height, result.target, mode):,} "
            f"| {row.character_accuracy:.1%} | {row.exact_accuracy:.1%} "
            f"| {fox}, {'unknown' if prior_exact is None else f'{prior_exact:.0%}'} "
            f"| {'no' if row.exact_accuracy >= EXACT_ACCURACY_NEEDED else 'yes'} |"
        )
    cost = f"{result.input_tokens:,} input and {result.output_tokens:,} output tokens"
    if input_price is not None:
        money = result.input_tokens * input_price / 1e6
        money += result.output_tokens * (output_price or 0.0) / 1e6
        cost += f", {money:.4f} at the given prices"
    lines += ["", f"The run cost {cost}."]
    exact = [m.value for m, r in result.table.items() if r.exact_accuracy >= EXACT_ACCURACY_NEEDED]
    lines.append(
        "The planner now weighs each mode by the characters read above; pages at "
        + (", ".join(exact) if exact else "no mode")
        + " go without their exact values as text, every other image page carries them."
    )
    return lines
