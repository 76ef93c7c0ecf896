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
neighbour's times that neighbour's weight (:func:`rank_turns`, in arrays over the thread's
turn numbers: :func:`fused_scores`).

The memory then reranks the best :data:`CANDIDATES` with the query's other clues (phrases,
speakers, dates, a question asking when, who spoke: :mod:`optical_memory.memory.search`); its
weights are here too, so one :class:`Ranking` is the whole ranking. :data:`RANKING`'s values
were chosen by leave-one-conversation-out over LoCoMo's development conversations, stored both
with the speakers' names as roles and as an agent stores turns (``optical_memory.experiments.
retrieval``, which prints the recall they give and how the choice varies between folds).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

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
        (-3, 0.4),
        (-4, 0.3),
        (1, 0.6),
        (2, 0.4),
        (3, 0.2),
        (4, 0.1),
    )
    k1: float = 1.6
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


def own_scores(found: TermHits, ranking: Ranking = RANKING) -> np.ndarray:
    """The BM25 score of each query term in each turn's own text, over the thread's
    statistics: one row per term (in the query's order), one column per turn number (column 0
    and turns without the term: 0)."""
    terms = sorted({term for term, _, _, _ in found.hits})
    last = max([found.turns, *(number for _, number, _, _ in found.hits)])
    own = np.zeros((len(terms), last + 1))
    if not terms:
        return own
    hits = np.array(found.hits, dtype=np.int64).reshape(-1, 4)
    term, number, count, length = hits.T
    row = np.searchsorted(terms, term)
    matched = np.bincount(row, minlength=len(terms))  # turns holding each term
    lengths = dict(zip(number.tolist(), length.tolist(), strict=True))
    mean = max(sum(lengths.values()) / len(lengths), 1.0)
    total = max(found.turns, len(lengths))
    idf = np.array([math.log(1 + (total - n + 0.5) / (n + 0.5)) for n in matched.tolist()])
    k1, b = ranking.k1, ranking.b
    tf = np.maximum(count, 1)  # a match counts once at least, whatever the index's count says
    score = idf[row] * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / mean))
    np.add.at(own, (row, number), score)
    return own


def rank_turns(found: TermHits, limit: int, ranking: Ranking = RANKING) -> list[RankedTurn]:
    """The ``limit`` best turns of the thread for the query, best first (ties: older first).

    A turn scores, for each query term, the best of the term's score in its own text and in
    each neighbour's times that neighbour's weight: a question's words split between a turn
    and the one it answers both count, while a term the turn holds itself is not counted again
    from a neighbour that repeats it (an answer echoing a code does not outrank the turn that
    first said it)."""
    own = own_scores(found, ranking)
    numbers, scores = best_turns(fused_scores(own, ranking), found.turns, limit)
    phrased = {n for term, n, _, _ in found.hits if term in found.phrase_terms}
    matched = np.any(own[:, numbers], axis=0).tolist()  # the turn's own text holds a term
    return [
        RankedTurn(number, score, number in phrased, bool(own_match))
        for number, score, own_match in zip(numbers.tolist(), scores.tolist(), matched, strict=True)
    ]


def fused_scores(own: np.ndarray, ranking: Ranking = RANKING) -> np.ndarray:
    """Each turn number's score from :func:`own_scores`: for each term, the best of the turn's
    own score and each neighbour's times its weight, summed over the terms in their order (in
    arrays: a thread's turns are ranked in a few passes whatever their number)."""
    best = own.copy()
    for offset, weight in ranking.neighbours:
        # Turn n: the best of its own score and weight times its neighbour n + offset's.
        if offset > 0:
            np.maximum(best[:, :-offset], weight * own[:, offset:], out=best[:, :-offset])
        elif offset < 0:
            np.maximum(best[:, -offset:], weight * own[:, :offset], out=best[:, -offset:])
    fused = np.zeros(own.shape[1])
    for row in best:  # term by term, so sums round as they always have
        fused += row
    return fused


def best_turns(fused: np.ndarray, last: int, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Turn numbers (1 to ``last``) with a score in :func:`fused_scores`, the ``limit`` best,
    best first (ties: older first), and their scores."""
    scores = fused[1 : last + 1]
    numbers = np.flatnonzero(scores > 0)
    if limit < 1 or not len(numbers):
        return numbers[:0] + 1, scores[numbers[:0]]
    kept = scores[numbers]
    if len(numbers) > limit:
        # Every turn scoring at least the limit-th best (ties at the edge all kept), then sorted.
        edge = np.partition(kept, len(kept) - limit)[len(kept) - limit]
        numbers = numbers[kept >= edge]
        kept = scores[numbers]
    order = np.lexsort((numbers, -kept))[:limit]
    return numbers[order] + 1, kept[order]
