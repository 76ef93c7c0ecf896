"""The retrieval benchmark: does ``memory.search(question)`` find the turns that answer it?

For every LoCoMo question of categories 1–4 that names evidence turns, each conversation is
stored in an :class:`~optical_memory.OpticalMemory` (one thread) and asked the question as it
is written; a question counts as found at ``k`` when one of its evidence turns is among the
first ``k`` hits. A conversation is stored in one of two settings (:data:`SETTINGS`): with the
speakers' names as roles (``names``, as LoCoMo writes it), or as an agent stores turns
(``agent``: the first speaker is the ``user``, the second the ``assistant``; the session times
stamp the turns in both). The baseline, measured in the same run on the same turns, is a plain
SQLite FTS5 index of the turns' text (porter stemmer) asked the OR of the question's content words
(:data:`~optical_memory.memory.search.STOP_WORDS` removed), in bm25 order. No OCR is involved:
this measures finding, not reading.
"""

from __future__ import annotations

import re
import sqlite3
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from optical_memory.experiments.locomo import LocomoConversation, read_locomo
from optical_memory.memory import OpticalMemory
from optical_memory.memory.search import STOP_WORDS
from optical_memory.turns import Turn

#: Ranks at which recall is reported.
RECALL_AT = (1, 5, 10)
#: LoCoMo categories with evidence a search can find (5, adversarial, asks about what was not
#: said).
CATEGORIES = (1, 2, 3, 4)
CATEGORY_NAMES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
#: How a conversation is stored: speakers' names as roles, or user and assistant.
SETTINGS = ("names", "agent")
SETTING_NAMES = {"names": "with the speakers' names as roles", "agent": "as an agent stores turns"}
_WORD = re.compile(r"\w+")


def stored_turns(conversation: LocomoConversation, setting: str) -> list[Turn]:
    """The conversation's turns as ``setting`` (one of :data:`SETTINGS`) stores them."""
    if setting not in SETTINGS:
        raise ValueError(f"unknown setting {setting!r}: pass one of {', '.join(SETTINGS)}")
    if setting == "names":
        return list(conversation.turns)
    roles = dict(zip(conversation.speakers, ("user", "assistant"), strict=True))
    return [
        turn.model_copy(update={"role": roles.get(turn.role, turn.role)})
        for turn in conversation.turns
    ]


@dataclass
class RecallCounts:
    """Questions asked and, per rank k, how many found an evidence turn in the first k."""

    questions: int = 0
    found: dict[int, int] = field(default_factory=lambda: dict.fromkeys(RECALL_AT, 0))

    def add(self, ranked: Sequence[int], evidence: set[int]) -> None:
        self.questions += 1
        for k in RECALL_AT:
            if evidence & set(ranked[:k]):
                self.found[k] += 1

    def recall(self, k: int) -> float:
        """Share of questions found at ``k`` (0 when there were none)."""
        return self.found[k] / self.questions if self.questions else 0.0


@dataclass
class RetrievalResult:
    """Recall per category (and ``"all"``) for ``search`` and the ``baseline``; query
    latency of ``search`` in milliseconds."""

    search: dict[str, RecallCounts]
    baseline: dict[str, RecallCounts]
    latency_ms: list[float]
    conversations: int
    turns: int

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape written to ``results.json``: recall as fractions."""

        def table(counts: dict[str, RecallCounts]) -> dict[str, Any]:
            return {
                name: {
                    "questions": c.questions,
                    **{f"recall@{k}": round(c.recall(k), 4) for k in RECALL_AT},
                }
                for name, c in counts.items()
            }

        latencies = sorted(self.latency_ms)
        return {
            "conversations": self.conversations,
            "turns": self.turns,
            "search": table(self.search),
            "baseline_fts5_bm25": table(self.baseline),
            "search_latency_ms": {
                "p50": round(statistics.median(latencies), 3) if latencies else None,
                "p95": round(_percentile(latencies, 0.95), 3) if latencies else None,
            },
        }


def run_retrieval(
    conversations: Sequence[LocomoConversation],
    location: str | None = None,
    *,
    setting: str = "names",
) -> RetrievalResult:
    """The benchmark over ``conversations`` (see the module docstring), each stored as
    ``setting`` says (one of :data:`SETTINGS`) as a thread named by its sample id (with
    ``:agent`` after it as an agent stores it) in the store at ``location`` (a SQLite path or a
    ``postgresql://`` address without those threads; None, the default, a temporary SQLite
    store per conversation)."""
    stored = [stored_turns(conversation, setting) for conversation in conversations]
    keys = [str(c) for c in CATEGORIES] + ["all"]
    search = {key: RecallCounts() for key in keys}
    baseline = {key: RecallCounts() for key in keys}
    latency: list[float] = []
    turns = 0
    deepest = max(RECALL_AT)
    for conversation, its_turns in zip(conversations, stored, strict=True):
        turns += len(its_turns)
        thread = conversation.sample_id + ("" if setting == "names" else f":{setting}")
        with OpticalMemory(location, thread_id=thread) as memory:
            for turn in its_turns:
                memory.store.add_turn(memory.thread_id, turn.role, turn.content, turn.timestamp, 0)
            memory.stats()  # packs the pages (as adding turn by turn would have), untimed
            with _Baseline(conversation) as plain:
                for question in conversation.questions:
                    if question.category not in CATEGORIES:
                        continue
                    evidence = evidence_numbers(conversation, question.evidence)
                    if not evidence:
                        continue
                    start = time.perf_counter()
                    hits = memory.search(question.question, limit=deepest)
                    latency.append((time.perf_counter() - start) * 1000)
                    ranked = [hit.number for hit in hits]
                    plain_ranked = plain.search(question.question, deepest)
                    for key in (str(question.category), "all"):
                        search[key].add(ranked, evidence)
                        baseline[key].add(plain_ranked, evidence)
    return RetrievalResult(search, baseline, latency, len(conversations), turns)


def evidence_numbers(conversation: LocomoConversation, evidence: Sequence[str]) -> set[int]:
    """Turn numbers (1 = the conversation's first turn) of the evidence ids that exist."""
    from optical_memory.experiments.run import evidence_ids  # run imports this module

    numbers = set()
    for dia_id in (normal for raw in evidence for normal in evidence_ids(raw)):
        try:
            numbers.add(conversation.turn_index(dia_id) + 1)
        except KeyError:
            continue  # a few LoCoMo evidence ids name no turn
    return numbers


def locomo_retrieval(data: str, samples: Sequence[str] | None) -> dict[str, Any] | None:
    """The benchmark's ``results.json`` part for the experiment's data: the LoCoMo file's
    conversations (``samples`` of them, or all), whole, in both settings (``settings``), and
    with two or more conversations the ranking weights' leave-one-out (``leave_one_out``, see
    :mod:`optical_memory.experiments.tuning`); None for data without questions."""
    if data == "synthetic":
        return None
    conversations = read_locomo(data)
    if samples:
        conversations = [c for c in conversations if c.sample_id in set(samples)]
    if not any(q.category in CATEGORIES for c in conversations for q in c.questions):
        return None
    result: dict[str, Any] = {
        "settings": {s: run_retrieval(conversations, setting=s).as_dict() for s in SETTINGS}
    }
    if len(conversations) > 1:
        from optical_memory.experiments.tuning import leave_one_out  # it imports this module

        result["leave_one_out"] = leave_one_out(conversations).as_dict()
    return result


def retrieval_section(result: dict[str, Any] | None) -> list[str]:
    """The report's retrieval section (empty without a result)."""
    if not result:
        return []
    lines = [
        "",
        "## Finding it again: search recall of evidence turns",
        "",
        "Each question of categories 1–4 asked as written to `memory.search(question)`, over",
        "the whole conversation (no OCR involved); found at k when an evidence turn is among",
        "the first k hits. Baseline: plain SQLite FTS5 (porter), OR of the question's content",
        "words, bm25 order, measured in the same run.",
    ]
    settings = result.get("settings", {"names": result})  # results written before settings
    for setting, table in settings.items():
        lines += ["", f"### Stored {SETTING_NAMES.get(setting, setting)}", ""]
        lines += retrieval_table(table)
    if result.get("leave_one_out"):
        from optical_memory.experiments.tuning import leave_one_out_lines

        lines += ["", "### Ranking weights chosen by leave-one-conversation-out", ""]
        lines += leave_one_out_lines(result["leave_one_out"])
    return lines


class _Baseline:
    """Plain FTS5 over the turns' text: porter stemmer, OR of content words, bm25 order."""

    def __init__(self, conversation: LocomoConversation) -> None:
        self.db = sqlite3.connect(":memory:")
        self.db.execute("CREATE VIRTUAL TABLE turns USING fts5(content, tokenize='porter')")
        self.db.executemany(
            "INSERT INTO turns (rowid, content) VALUES (?, ?)",
            [(n, turn.content) for n, turn in enumerate(conversation.turns, start=1)],
        )

    def search(self, question: str, limit: int) -> list[int]:
        words = [w for w in _WORD.findall(question.casefold()) if w not in STOP_WORDS]
        if not words:
            return []
        match = " OR ".join(f'"{word}"' for word in dict.fromkeys(words))
        rows = self.db.execute(
            "SELECT rowid FROM turns WHERE turns MATCH ? ORDER BY bm25(turns) LIMIT ?",
            (match, limit),
        ).fetchall()
        return [row[0] for row in rows]

    def __enter__(self) -> _Baseline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.db.close()


def _percentile(values: Sequence[float], share: float) -> float:
    """The ``share`` quantile of sorted ``values`` (nearest rank)."""
    index = min(len(values) - 1, max(0, round(share * len(values) + 0.5) - 1))
    return values[index]


def retrieval_table(result: dict[str, Any]) -> list[str]:
    """Markdown lines of the report's retrieval section, from :meth:`RetrievalResult.as_dict`."""
    lines = [
        "| category | questions | "
        + " | ".join(f"search@{k}" for k in RECALL_AT)
        + " | "
        + " | ".join(f"FTS5 bm25@{k}" for k in RECALL_AT)
        + " |",
        "|---" * (2 + 2 * len(RECALL_AT)) + "|",
    ]
    for key, counts in result["search"].items():
        plain = result["baseline_fts5_bm25"][key]
        name = "1–4" if key == "all" else f"{key} {CATEGORY_NAMES.get(int(key), '')}".strip()
        cells = [f"{100 * counts[f'recall@{k}']:.1f}%" for k in RECALL_AT]
        cells += [f"{100 * plain[f'recall@{k}']:.1f}%" for k in RECALL_AT]
        lines.append(f"| {name} | {counts['questions']} | " + " | ".join(cells) + " |")
    latency = result["search_latency_ms"]
    lines.append("")
    lines.append(
        f"{result['conversations']} conversations, {result['turns']} turns; search latency "
        f"p50 {latency['p50']} ms, p95 {latency['p95']} ms per question."
    )
    return lines
