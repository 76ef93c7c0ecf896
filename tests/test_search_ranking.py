"""Search ranking over a thread's own statistics, the same on both stores."""

from __future__ import annotations

import math

import pytest

from optical_memory.store import TextQuery, open_store


def _ranking(store_location: str, words: tuple[str, ...]) -> list[tuple[int | None, float]]:
    with open_store(store_location) as store:
        hits = store.search_turns("a", TextQuery(words=words), 50)
    return [(hit.turn.number, hit.score) for hit in hits]


def test_another_threads_turns_leave_a_threads_ranking_unchanged(store_location: str) -> None:
    with open_store(store_location) as store:
        store.add_turn("a", "user", "I drink tea every morning, green tea mostly.", None, 9)
        store.add_turn("a", "assistant", "Tea is a fine habit.", None, 5)
        store.add_turn("a", "user", "My sister prefers tea to anything.", None, 7)
        for n in range(15):
            store.add_turn("a", "user", f"Small talk about the weather, part {n}.", None, 7)
        for n in range(3):
            store.add_turn("a", "user", f"Coffee at the station, coffee at work ({n}).", None, 8)
    before = _ranking(store_location, ("coffee", "tea"))
    assert {1, 2, 3, 19, 20, 21} <= {number for number, _ in before}
    with open_store(store_location) as store:
        store.add_turns("b", [("user", f"coffee number {n}", None, 3) for n in range(300)])
    # Thread b's coffee makes "coffee" common in the file, not in thread a: a's turns keep
    # their order and their scores.
    assert _ranking(store_location, ("coffee", "tea")) == before


def test_a_term_in_one_turn_of_four_scores_its_inverse_document_frequency(
    store_location: str,
) -> None:
    # BM25 (k1 = 1.2, b = 0.75): one occurrence in a turn of the matching turns' mean length
    # scores idf = ln(1 + (N - n + 0.5) / (n + 0.5)); N = 4 turns, n = 1: ln(10 / 3).
    with open_store(store_location) as store:
        for text in ("hello there", "we saw a zebra", "how nice", "indeed"):
            store.add_turn("a", "user", text, None, 2)
        store.add_turns("b", [("user", "zebra zebra", None, 2)] * 5)
    own = dict(_ranking(store_location, ("zebra",)))
    assert own[2] == pytest.approx(1.2040, abs=1e-4)
    assert math.isclose(own[2], math.log(10 / 3))
