"""Image costs learnt from bills: against a provider that counts and prices its own way.

The provider here bills text as characters / 4 plus 4 tokens per message and 40 per request
(not the library's tokenizer), and images from its own per-size table (not proportional to any
published formula). Requests mix page sizes, text lengths and message counts.
"""

from __future__ import annotations

import logging
import math
import random
from typing import Any

import pytest

from optical_memory.agents.calibration import ImageCostTable, SentImage, reset_costs
from optical_memory.apps.cli import main
from optical_memory.store.sqlite import SQLiteStore
from optical_memory.targets import vision_tokens
from optical_memory.tokens import count_text_tokens

#: The provider's own price of one image, by its side in pixels (square pages).
PROVIDER_IMAGE_TOKENS = {512: 170, 640: 305, 1024: 610, 1280: 1010}
SIDES = tuple(PROVIDER_IMAGE_TOKENS)
TARGET = "openai"


def _provider_bill(texts: list[str], sides: list[int]) -> int:
    """What the provider bills: its own text rule and its own image table."""
    text = sum(len(t) // 4 + 4 for t in texts) + 40
    return text + sum(PROVIDER_IMAGE_TOKENS[side] for side in sides)


def _request(rng: random.Random) -> tuple[int, int, int, list[SentImage], int]:
    words = ["harbour", "ledger", "crate", "pier", "tide", "keeper", "lantern", "north"]
    texts = [
        " ".join(rng.choice(words) for _ in range(rng.randint(5, 400)))
        for _ in range(rng.randint(1, 9))
    ]
    sides = [rng.choice(SIDES) for _ in range(rng.randint(0, 8))]
    counted = sum(count_text_tokens(t) for t in texts)
    images = [SentImage(side, side) for side in sides]
    chars = sum(len(t) for t in texts)
    return counted, chars, len(texts), images, _provider_bill(texts, sides)


def _learn(table: ImageCostTable, bills: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    for _ in range(bills):
        text, chars, messages, images, billed = _request(rng)
        assert table.observe(images, billed, text=text, chars=chars, messages=messages)


def _costs(table: ImageCostTable) -> dict[int, int]:
    return {side: table.cost(side, side) for side in SIDES}


def test_the_formula_is_not_the_providers_price() -> None:
    """The premise: learning is needed (the formula is off by more than 3% for some size)."""
    formula = {side: vision_tokens(side, side, TARGET) for side in SIDES}
    assert any(abs(formula[s] / PROVIDER_IMAGE_TOKENS[s] - 1) > 0.03 for s in SIDES)


def test_twenty_bills_of_mixed_sizes_learn_each_size_within_3_percent() -> None:
    table = ImageCostTable(SQLiteStore(None), TARGET, "stub-model")
    _learn(table, 20)
    for side, cost in _costs(table).items():
        assert cost == pytest.approx(PROVIDER_IMAGE_TOKENS[side], rel=0.03), side


def _paged_threads(rng: random.Random, count: int) -> list[tuple[list[int], list[str]]]:
    """Threads of pages, each page with the text block of the exact values it prints: a
    thread's text grows with its pages."""
    threads = []
    for _ in range(count):
        sides = [rng.choice(SIDES) for _ in range(rng.randint(1, 24))]
        values = [
            "; ".join(f"{rng.choice('ABCDEFGHK')}-{rng.randint(10**4, 10**9)}" for _ in range(n))
            for n in (rng.randint(0, 20) for _ in sides)
        ]
        blocks = [f"Exact values printed on this page: {v}" for v in values if v]
        threads.append((sides, blocks))
    return threads


def _paged_request(
    rng: random.Random, thread: tuple[list[int], list[str]]
) -> tuple[int, int, int, list[SentImage], int]:
    """A question on ``thread``'s pages, billed by another provider rule: each text part
    rounded up to a quarter of its characters, 3 tokens a message, 7 a request."""
    words = ["harbour", "ledger", "crate", "pier", "tide", "keeper", "lantern", "north"]
    sides, blocks = thread
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 12))), *blocks]
    billed = sum(math.ceil(len(t) / 4) for t in texts) + 3 + 7
    billed += sum(PROVIDER_IMAGE_TOKENS[side] for side in sides)
    counted = sum(count_text_tokens(t) for t in texts)
    chars = sum(len(t) for t in texts)
    return counted, chars, 1, [SentImage(side, side) for side in sides], billed


def test_text_that_grows_with_the_pages_is_not_booked_to_the_images() -> None:
    """The exact values beside each page make a request's text nearly proportional to its
    pages: the direction where a prior of "text billed as counted" can shift cost onto the
    images, though precise bills say otherwise."""
    table = ImageCostTable(SQLiteStore(None), TARGET, "stub-model")
    rng = random.Random(11)
    threads = _paged_threads(rng, 7)
    for n in range(24):
        text, chars, messages, images, billed = _paged_request(rng, threads[n % 7])
        assert table.observe(images, billed, text=text, chars=chars, messages=messages)
    for side, cost in _costs(table).items():
        assert cost == pytest.approx(PROVIDER_IMAGE_TOKENS[side], rel=0.03), side
    text, chars, messages, images, billed = _paged_request(rng, threads[3])
    predicted = table.predict(images, text=text, chars=chars, messages=messages)
    assert predicted == pytest.approx(billed, rel=0.01)


@pytest.mark.parametrize("factor", [1.5, 0.5, 10**12, 10**400])
def test_one_wild_bill_moves_no_cost_by_more_than_10_percent(
    factor: float, caplog: pytest.LogCaptureFixture
) -> None:
    table = ImageCostTable(SQLiteStore(None), TARGET, "stub-model")
    _learn(table, 20)
    before = _costs(table)
    text, chars, messages, images, billed = _request(random.Random(99))
    wild: Any = billed * factor if isinstance(factor, int) else round(billed * factor)
    with caplog.at_level(logging.WARNING, logger="optical_memory"):
        table.observe(images, wild, text=text, chars=chars, messages=messages)
    after = _costs(table)
    for side in SIDES:
        assert abs(after[side] / before[side] - 1) <= 0.10, side
    assert "bill" in caplog.text  # logged, not silently adopted
    # Honest bills go on being learnt from afterwards.
    _learn(table, 20, seed=8)
    for side, cost in _costs(table).items():
        assert cost == pytest.approx(PROVIDER_IMAGE_TOKENS[side], rel=0.03), side


def test_a_request_with_an_image_of_unknown_size_teaches_nothing() -> None:
    table = ImageCostTable(SQLiteStore(None), TARGET, "stub-model")
    url_image = SentImage(1024, 1024, known=False)
    assert not table.observe([url_image, SentImage(512, 512)], 5000, text=100, messages=2)
    assert table.bills == 0
    # OpenAI's published price of a 1024 x 1024 image: 85 + 4 tiles x 170.
    assert table.cost(1024, 1024) == 765


def test_learnt_costs_persist_and_reset_returns_to_the_formula(tmp_path: Any) -> None:
    path = tmp_path / "memory.sqlite"
    with SQLiteStore(path) as store:
        _learn(ImageCostTable(store, TARGET, "stub-model"), 20)
    with SQLiteStore(path) as store:
        again = ImageCostTable(store, TARGET, "stub-model")
        assert again.cost(640, 640) == pytest.approx(PROVIDER_IMAGE_TOKENS[640], rel=0.03)
        assert reset_costs(store) == 1
        fresh = ImageCostTable(store, TARGET, "stub-model")
        assert fresh.bills == 0
        assert fresh.cost(640, 640) == 765  # OpenAI's rule: 2 x 2 tiles of 512 px


def test_the_cli_shows_and_resets_learnt_costs(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "memory.sqlite"
    with SQLiteStore(path) as store:
        _learn(ImageCostTable(store, TARGET, "stub-model"), 5)
    assert main(["image-costs", "show", "--db", str(path)]) == 0
    assert "stub-model (openai): 5 bills" in capsys.readouterr().out
    assert main(["image-costs", "reset", "--db", str(path)]) == 0
    assert "reset 1 learnt cost table" in capsys.readouterr().out
    with SQLiteStore(path) as store:
        assert ImageCostTable(store, TARGET, "stub-model").bills == 0


@pytest.mark.parametrize("billed", [10**12, 10**400, -5])
def test_a_wild_bill_from_the_model_fails_no_run(billed: Any) -> None:
    pytest.importorskip("langchain_core")
    from langchain_core.messages import AIMessage, HumanMessage
    from recording_model import RecordingChatModel

    from optical_memory import OpticalMemory
    from optical_memory.agents import wrap

    memory = OpticalMemory(None)
    for n in range(40):
        memory.add("user", f"Note {n}: the harbour ledger lists crate {n * 7}. " * 6)
    metadata: Any = {"input_tokens": billed, "output_tokens": 1, "total_tokens": 1}
    answers = [AIMessage("noted", usage_metadata=metadata), AIMessage("again")]
    chat = wrap(memory, RecordingChatModel(messages=iter(answers)))
    config: Any = {"configurable": {"thread_id": "default"}}
    chat.invoke([HumanMessage("Crate 14?")], config)
    first = chat.last_usage
    assert first is not None
    # Reported as the model said it, where it is a token count at all; learnt from: no.
    assert first.billed_input_tokens == (billed if 0 <= billed < 2**63 else None)
    chat.invoke([HumanMessage("Crate 21?")], config)
    second = chat.last_usage
    assert second is not None and second.vision_tokens == first.vision_tokens  # nothing learnt
