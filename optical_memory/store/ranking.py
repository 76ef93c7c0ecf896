"""How a search ranks a thread's turns, with every weight it uses in one place.

Both stores rank the same way, here, from what their index says about the query
(:class:`TermHits`): which of the thread's turns hold each query term (a word or a phrase) in
their own text, how often, and how long each such turn is. A turn's own score is BM25 over the
thread's statistics alone: a term weighs by its rarity among the thread's turns (inverse
document frequency), its count in the turn saturates, and long turns count less (length against
the mean of the turns that match). So
another thread never changes how a thread's turns rank. Each turn is then read with its
neighbours (:attr:`Ranking.neighbours`): a question's words are often split between a turn and
the one it answers, so for each term a turn scores the best of its own score and each
neighbour's times that neighbour's weight (:func:`rank_turns`).

The memory then reranks the best :data:`CANDIDATES` with the query's other clues (phrases,
speakers, dates, a question asking when, who spoke: :mod:`optical_memory.memory.search`); its
weights are here too, so one :class:`Ranking` is the whole ranking. :data:`RANKING`'s values
were chosen by leave-one-conversation-out over LoCoMo's development conversations, stored both
with the speakers' names as roles and as an agent stores turns (``optical_memory.experiments.
retrieval``, which prints the recall they give and how the choice varies between folds).
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

#: Candidates the store ranks before the memory's rerank (the rerank reorders only these).
CANDIDATES = 200


@dataclass(frozen=True)
class Ranking:
    """Every weight of a search's ranking.

    ``neighbours``: ``(offset, weight)``: a turn scores ``weight`` times the own score of the
    turn ``offset`` numbers away (``-1``: the turn before). ``k1``, ``b``: BM25's saturation
    and length normalisation.
    The rerank multiplies a candidate's score by ``phrase`` when its own text holds one of the
    query's phrases, ``speaker`` when the query names its speaker, ``date`` when it is stamped
    within a date the query names, ``when`` when the query asks when and the turn says when,
    ``assistant`` for the assistant's turns and ``tool`` for tool results and turns that only
    call tools.
    """

    neighbours: tuple[tuple[int, float], ...] = (
        (-1, 0.8),
        (-2, 0.6),
        (-3, 0.3),
        (-4, 0.2),
        (1, 0.6),
        (2, 0.4),
        (3, 0.2),
    )
    k1: float = 1.2
    b: float = 0.3
    phrase: float = 3.0
    speaker: float = 1.5
    date: float = 3.0
    when: float = 1.5
    assistant: float = 1.0
    tool: float = 0.3


#: The ranking a search uses (see the module docstring for how it was chosen).
RANKING = Ranking()


@dataclass(frozen=True)
class TermHits:
    """What a store's index says about a query's terms in one thread.

    ``turns``: how many turns the thread holds (its highest number); ``hits``: one
    ``(term, number, count, length)`` per term and turn whose own text holds it (``term``
    indexes the query's terms, ``count`` is how often the turn holds it, ``length`` the turn's
    text in bytes); ``phrase_terms``: the terms that are phrases.
    """

    turns: int
    hits: Sequence[tuple[int, int, int, int]]
    phrase_terms: frozenset[int] = frozenset()


@dataclass(frozen=True)
class RankedTurn:
    """A turn's number in its thread, its score (higher is better), whether its own text holds
    one of the query's phrases, and whether it holds any of the query's terms (False: it ranks
    through its neighbours alone)."""

    number: int
    score: float
    phrase_match: bool
    own_match: bool


def term_scores(found: TermHits, ranking: Ranking = RANKING) -> dict[int, dict[int, float]]:
    """Query term → turn number → BM25 score of the term in the turn's own text, over the
    thread's statistics (terms in their order in the query)."""
    if not found.hits:
        return {}
    matched: defaultdict[int, int] = defaultdict(int)
    lengths: dict[int, int] = {}
    for term, number, _, length in found.hits:
        matched[term] += 1
        lengths[number] = length
    mean = max(sum(lengths.values()) / len(lengths), 1.0)
    total = max(found.turns, len(lengths))
    idf = {term: math.log(1 + (total - n + 0.5) / (n + 0.5)) for term, n in matched.items()}
    k1, b = ranking.k1, ranking.b
    scores: dict[int, dict[int, float]] = {term: {} for term in sorted(matched)}
    for term, number, count, length in found.hits:
        tf = max(count, 1)  # a match counts once at least, whatever the index's count says
        score = idf[term] * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / mean))
        scores[term][number] = scores[term].get(number, 0.0) + score
    return scores


def rank_turns(found: TermHits, limit: int, ranking: Ranking = RANKING) -> list[RankedTurn]:
    """The ``limit`` best turns of the thread for the query, best first (ties: older first).

    A turn scores, for each query term, the best of the term's score in its own text and in
    each neighbour's times that neighbour's weight: a question's words split between a turn
    and the one it answers both count, while a term the turn holds itself is not counted again
    from a neighbour that repeats it (an answer echoing a code does not outrank the turn that
    first said it)."""
    return fuse(found, term_scores(found, ranking), limit, ranking)


def fuse(
    found: TermHits, per_term: dict[int, dict[int, float]], limit: int, ranking: Ranking = RANKING
) -> list[RankedTurn]:
    """:func:`rank_turns` from the :func:`term_scores` (which depend on ``k1`` and ``b``
    alone, so a tuner varying the other weights computes them once)."""
    scores: dict[int, float] = {}
    for own in per_term.values():
        best = dict(own)
        for offset, weight in ranking.neighbours:
            for number, score in own.items():
                # This turn is the neighbour at ``offset`` of the turn ``number - offset``.
                near, value = number - offset, weight * score
                if value > best.get(near, 0.0):
                    best[near] = value
        for number, value in best.items():
            scores[number] = scores.get(number, 0.0) + value
    phrased = {n for term, n, _, _ in found.hits if term in found.phrase_terms}
    last = found.turns
    ranked = heapq.nsmallest(
        max(limit, 0),
        ((-score, number) for number, score in scores.items() if 1 <= number <= last),
    )
    own_match = {number for own in per_term.values() for number in own}
    return [
        RankedTurn(number, -score, number in phrased, number in own_match)
        for score, number in ranked
    ]
