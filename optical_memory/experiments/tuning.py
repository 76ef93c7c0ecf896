"""Choosing the search's ranking weights by leave-one-conversation-out over LoCoMo.

Every weight of a :class:`~optical_memory.store.ranking.Ranking` (the neighbours', BM25's ``k1``
and ``b``, and the rerank's phrase, speaker, date, when and assistant factors) is chosen to find
the most evidence in the first five hits over the training conversations *in both settings at once*:
stored with the speakers' names as roles and as an agent stores turns
(:data:`~optical_memory.experiments.retrieval.SETTINGS`). Each conversation is held out in turn:
weights fitted on the others are scored on it, so the pooled held-out recall says what the
weights give on conversations they were not chosen on, and the weights chosen per fold say how
much the choice depends on which conversations it saw.

The search is asked once per question (:meth:`~optical_memory.store.Store.term_hits`, the clues
of :func:`~optical_memory.memory.search.turn_clues`); each candidate ranking is then scored from
those: the store's own ranking (:func:`~optical_memory.store.ranking.fused_scores`, the
functions the store ranks with), the rerank's factors by
:meth:`~optical_memory.memory.search.TurnClues.weight` and its order in array form (the
benchmark checks that both give the same recall). The fit is coordinate descent
over a grid per weight, from the current :data:`~optical_memory.store.ranking.RANKING`.

Two weights have bounds the development conversations cannot teach: they hold no tool turns
(the tool factor stays as set), and almost no codes or quoted phrases, so the phrase factor
stays at 2 or more, which keeps ``pine-653`` above a turn that merely holds ``pine`` and
``653``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optical_memory.experiments.locomo import LocomoConversation
from optical_memory.experiments.retrieval import (
    CATEGORIES,
    CATEGORY_NAMES,
    RECALL_AT,
    SETTINGS,
    RecallCounts,
    evidence_numbers,
    stored_turns,
)
from optical_memory.memory import OpticalMemory
from optical_memory.memory.search import (
    TurnClues,
    addressed,
    named_roles,
    parse_query,
    turn_clues,
)
from optical_memory.store import TurnMatch
from optical_memory.store.ranking import (
    CANDIDATES,
    RANKING,
    Ranking,
    TermHits,
    best_turns,
    fused_scores,
    own_scores,
)

#: The values each weight may take (``neighbour:-1`` is the weight of the turn before).
GRID: dict[str, tuple[float, ...]] = {
    "neighbour:-1": (0.4, 0.6, 0.8, 1.0, 1.2),
    "neighbour:-2": (0.0, 0.2, 0.4, 0.6, 0.8),
    "neighbour:-3": (0.0, 0.1, 0.2, 0.3, 0.4, 0.5),
    "neighbour:-4": (0.0, 0.1, 0.2, 0.3, 0.4),
    "neighbour:1": (0.0, 0.2, 0.4, 0.6, 0.8),
    "neighbour:2": (0.0, 0.1, 0.2, 0.4, 0.6),
    "neighbour:3": (0.0, 0.1, 0.2, 0.3, 0.4),
    "neighbour:4": (0.0, 0.1, 0.2, 0.3),
    "k1": (0.6, 0.9, 1.2, 1.6),
    "b": (0.0, 0.15, 0.3, 0.5, 0.75),
    "phrase": (2.0, 3.0, 5.0),
    "speaker": (1.0, 1.5, 2.0, 3.0),
    "date": (1.0, 2.0, 3.0, 5.0),
    "when": (1.0, 1.5, 2.0, 3.0),
    "assistant": (0.5, 0.7, 0.85, 1.0, 1.2),
}
#: Passes of coordinate descent over :data:`GRID`.
PASSES = 2
_REACH = 4  # neighbour offsets the grid spans


def weight_of(ranking: Ranking, name: str) -> float:
    """The value of the weight called ``name`` (a :data:`GRID` key) in ``ranking``."""
    if name.startswith("neighbour:"):
        return dict(ranking.neighbours).get(int(name.split(":")[1]), 0.0)
    return float(getattr(ranking, name))


def with_weight(ranking: Ranking, name: str, value: float) -> Ranking:
    """``ranking`` with the weight called ``name`` set to ``value``."""
    if name.startswith("neighbour:"):
        offset = int(name.split(":")[1])
        neighbours = dict(ranking.neighbours)
        neighbours[offset] = value
        return dataclasses.replace(ranking, neighbours=tuple(neighbours.items()))
    changes: dict[str, Any] = {name: value}
    return dataclasses.replace(ranking, **changes)


#: Who speaks a turn, as :class:`~optical_memory.memory.search.TurnClues` says.
_SPEAKING = ("user", "assistant", "tool")
#: Every combination of clues, indexed by :func:`_code`.
_ALL_CLUES = [
    TurnClues(bool(c & 1), bool(c & 2), bool(c & 4), bool(c & 8), _SPEAKING[c >> 4])
    for c in range(16 * len(_SPEAKING))
]


def _code(clues: TurnClues) -> int:
    flags = clues.phrase | clues.speaker << 1 | clues.date << 2 | clues.when << 3
    return flags | _SPEAKING.index(clues.speaking) << 4


@dataclass
class AskedQuestion:
    """One question asked of one stored conversation: what the index said and each possible
    candidate's clues (as :func:`_code` numbers, by turn number), ready to be ranked under any
    weights."""

    conversation: str
    setting: str
    category: int
    found: TermHits
    codes: np.ndarray
    evidence: frozenset[int]
    roles: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    role_names: tuple[str, ...] = ()
    addressed: dict[int, frozenset[str]] = field(default_factory=dict)
    own: dict[tuple[float, float], np.ndarray] = field(default_factory=dict)

    def ranked(self, ranking: Ranking, factors: np.ndarray) -> list[int]:
        """Turn numbers, best first, as the search ranks them under ``ranking`` (``factors``:
        the rerank's factor of each clue code under it)."""
        key = (ranking.k1, ranking.b)
        if key not in self.own:
            self.own[key] = own_scores(self.found, ranking)
        fused = fused_scores(self.own[key], ranking)
        numbers, scores = best_turns(fused, self.found.turns, CANDIDATES)  # the store's order
        final = scores * factors[self._codes(numbers)]
        order = np.lexsort((np.arange(len(numbers)), -final))[: max(RECALL_AT)]  # the rerank's
        return [int(n) for n in numbers[order]]

    def _codes(self, candidates: np.ndarray) -> np.ndarray:
        """The candidates' clue codes, with the speaker clue of the roles the query names by
        what the other speaker calls them among these candidates (as the rerank reads it)."""
        codes = self.codes[candidates]
        if not self.addressed:
            return codes
        roles = self.roles[candidates]
        speaking = np.unique(roles[roles >= 0])
        if len(speaking) != 2:  # named_roles names none then
            return codes
        votes = [(self.role_names[r], frozenset[str]()) for r in speaking]
        said = np.fromiter(self.addressed, dtype=np.int64)
        votes += [
            (self.role_names[self.roles[n]], self.addressed[n])
            for n in said[np.isin(said, candidates)].tolist()
        ]
        named = named_roles(votes)
        if not named:
            return codes
        chosen = [k for k, role in enumerate(self.role_names) if role in named]
        return codes | np.where(np.isin(roles, chosen), 2, 0)


def ask_all(conversations: Sequence[LocomoConversation]) -> list[AskedQuestion]:
    """Every category 1–4 question with evidence, in both settings, asked once."""
    asked = []
    for setting in SETTINGS:
        for conversation in conversations:
            thread = conversation.sample_id
            with OpticalMemory(None, thread_id=thread) as memory:
                memory.store.add_turns(
                    thread,
                    [
                        (t.role, t.content, t.timestamp, 0)
                        for t in stored_turns(conversation, setting)
                    ],
                )
                turns = {turn.number: turn for turn in memory.store.iter_turns(thread)}
                for question in conversation.questions:
                    evidence = evidence_numbers(conversation, question.evidence)
                    if question.category not in CATEGORIES or not evidence:
                        continue
                    parsed = parse_query(question.question)
                    found = memory.store.term_hits(thread, parsed.text)
                    phrased = {n for k, n, _, _ in found.hits if k in found.phrase_terms}
                    near = {n + d for _, n, _, _ in found.hits for d in range(-_REACH, _REACH + 1)}
                    codes = np.zeros(found.turns + 1, dtype=np.int64)
                    roles = np.full(found.turns + 1, -1, dtype=np.int64)
                    role_names: dict[str, int] = {}
                    said: dict[int, frozenset[str]] = {}
                    for n in near & turns.keys():
                        clues = turn_clues(parsed, TurnMatch(turns[n], 0.0, n in phrased))
                        codes[n] = _code(clues)
                        if clues.speaking != "tool":  # the rerank counts no tool turn's words
                            roles[n] = role_names.setdefault(turns[n].role, len(role_names))
                            said[n] = addressed(parsed, turns[n])
                    asked.append(
                        AskedQuestion(
                            thread,
                            setting,
                            question.category,
                            found,
                            codes,
                            frozenset(evidence),
                            roles,
                            tuple(role_names),
                            {n: words for n, words in said.items() if words},
                        )
                    )
    return asked


def recall_counts(
    asked: Iterable[AskedQuestion], ranking: Ranking
) -> dict[str, dict[str, RecallCounts]]:
    """Setting → category (and ``"all"``) → counts, with the questions ranked under
    ``ranking``."""
    counts = {s: {key: RecallCounts() for key in (*map(str, CATEGORIES), "all")} for s in SETTINGS}
    factors = np.array([clues.weight(ranking) for clues in _ALL_CLUES])
    for question in asked:
        ranked = question.ranked(ranking, factors)
        for key in (str(question.category), "all"):
            counts[question.setting][key].add(ranked, set(question.evidence))
    return counts


def _objective(asked: Sequence[AskedQuestion], ranking: Ranking) -> tuple[int, int]:
    """Evidence found in the first five over both settings; then in the first one and ten."""
    counts = recall_counts(asked, ranking)
    at5 = sum(counts[s]["all"].found[5] for s in SETTINGS)
    rest = sum(counts[s]["all"].found[1] + counts[s]["all"].found[10] for s in SETTINGS)
    return at5, rest


def fit(asked: Sequence[AskedQuestion], start: Ranking = RANKING) -> Ranking:
    """The ranking :data:`GRID`'s coordinate descent finds best for ``asked``."""
    best, score = start, _objective(asked, start)
    for _ in range(PASSES):
        improved = False
        for name, values in GRID.items():
            for value in values:
                if value == weight_of(best, name):
                    continue
                trial = with_weight(best, name, value)
                trial_score = _objective(asked, trial)
                if trial_score > score:
                    best, score, improved = trial, trial_score, True
        if not improved:
            break
    return best


@dataclass
class LeaveOneOut:
    """Held-out counts pooled over folds (setting → category → counts), each fold's held-out
    conversation, its chosen ranking and its held-out recall@5 per setting, and the ranking
    fitted on every conversation."""

    held_out: dict[str, dict[str, RecallCounts]]
    folds: list[tuple[str, Ranking, dict[str, float]]]
    fitted: Ranking

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of ``results.json``: recall as fractions, each weight's value on
        every conversation and per fold, and its range over the folds."""
        names = list(GRID)
        return {
            "held_out": {
                setting: {
                    key: {
                        "questions": c.questions,
                        **{f"recall@{k}": round(c.recall(k), 4) for k in RECALL_AT},
                    }
                    for key, c in table.items()
                }
                for setting, table in self.held_out.items()
            },
            "folds": [
                {
                    "held_out": conversation,
                    "recall@5": {s: round(v, 4) for s, v in recall.items()},
                    "weights": {name: weight_of(ranking, name) for name in names},
                }
                for conversation, ranking, recall in self.folds
            ],
            "fitted": {name: weight_of(self.fitted, name) for name in names},
            "in_use": {name: weight_of(RANKING, name) for name in names},
        }


def leave_one_out(conversations: Sequence[LocomoConversation]) -> LeaveOneOut:
    """Fit on all conversations but one, score on that one, for each (see the module
    docstring); and fit on them all."""
    asked = ask_all(conversations)
    pooled = {s: {key: RecallCounts() for key in (*map(str, CATEGORIES), "all")} for s in SETTINGS}
    folds = []
    for conversation in conversations:
        name = conversation.sample_id
        chosen = fit([q for q in asked if q.conversation != name])
        held = [q for q in asked if q.conversation == name]
        counts = recall_counts(held, chosen)
        for setting, table in counts.items():
            for key, c in table.items():
                pooled[setting][key].questions += c.questions
                for k in RECALL_AT:
                    pooled[setting][key].found[k] += c.found[k]
        folds.append((name, chosen, {s: counts[s]["all"].recall(5) for s in SETTINGS}))
    return LeaveOneOut(pooled, folds, fit(asked))


def leave_one_out_lines(result: dict[str, Any]) -> list[str]:
    """Markdown lines for :meth:`LeaveOneOut.as_dict`: the held-out recall per setting and
    category, then each fold's held-out recall@5 and chosen weights, their range over the
    folds, the weights fitted on every conversation and those in use."""
    lines = [
        "Every weight fitted on all conversations but one, in both settings at once, and scored",
        "on the one held out; recall pooled over the held-out conversations.",
        "",
        "| setting | category | questions | " + " | ".join(f"@{k}" for k in RECALL_AT) + " |",
        "|---" * (3 + len(RECALL_AT)) + "|",
    ]
    for setting, table in result["held_out"].items():
        for key, counts in table.items():
            name = "1–4" if key == "all" else f"{key} {CATEGORY_NAMES.get(int(key), '')}".strip()
            cells = [f"{100 * counts[f'recall@{k}']:.1f}%" for k in RECALL_AT]
            lines.append(
                f"| {setting} | {name} | {counts['questions']} | " + " | ".join(cells) + " |"
            )
    names = list(result["fitted"])
    lines += [
        "",
        "| held out | @5 names | @5 agent | " + " | ".join(names) + " |",
        "|---" * (3 + len(names)) + "|",
    ]
    folds = result["folds"]
    for fold in folds:
        recall = " | ".join(f"{100 * fold['recall@5'][s]:.1f}%" for s in SETTINGS)
        weights = " | ".join(f"{fold['weights'][n]:g}" for n in names)
        lines.append(f"| {fold['held_out']} | {recall} | {weights} |")
    spread = []
    for s in SETTINGS:
        values = [100 * fold["recall@5"][s] for fold in folds]
        spread.append(f"{min(values):.1f}–{max(values):.1f}%")
    for n in names:
        values = [fold["weights"][n] for fold in folds]
        spread.append(
            f"{min(values):g}–{max(values):g}" if min(values) != max(values) else f"{values[0]:g}"
        )
    lines.append("| range | " + " | ".join(spread) + " |")
    for label, key in (("all", "fitted"), ("in use", "in_use")):
        lines.append(f"| {label} | | | " + " | ".join(f"{result[key][n]:g}" for n in names) + " |")
    return lines
