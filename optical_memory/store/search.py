"""What both stores' searches share: turn numbers, ranked search, snippets' length, recalls.

A search asks the store's full-text index, term by term, which of the thread's turns hold each
term in their own text (:meth:`SQLSearch.term_hits`, FTS5 in ``sqlite_search.py``,
``tsvector`` in ``postgres_search.py``), ranks them with the thread's own statistics
(:func:`~optical_memory.store.ranking.rank_turns`, where every weight lives), then reads the
best turns back. On both stores the statistics are counted over the thread's own turns alone,
so another thread never changes how a thread's turns rank.
"""

from __future__ import annotations

from collections.abc import Sequence

from optical_memory.store import TextQuery, TurnMatch, check_thread_id
from optical_memory.store.dialect import MAX_INT
from optical_memory.store.ranking import RANKING, Ranking, TermHits, rank_turns
from optical_memory.store.sql import RECALL_UPSERT, SQLBase
from optical_memory.turns import Turn

#: Words in a search hit's snippet.
SNIPPET_WORDS = 24


class SQLSearch(SQLBase):
    """Numbers, ranked search and recalls of a store on SQL; its index gives :meth:`term_hits`
    and :meth:`snippets`."""

    def term_hits(self, thread_id: str, query: TextQuery) -> TermHits:
        raise NotImplementedError

    def turns_by_number(self, thread_id: str, first: int, last: int) -> list[Turn]:
        first, last = max(first, -MAX_INT - 1), min(last, MAX_INT)
        return self._turns(
            "WHERE thread_id = ? AND number >= ? AND number <= ? ORDER BY number",
            (thread_id, first, last),
        )

    def search_turns(
        self, thread_id: str, query: TextQuery, limit: int, ranking: Ranking = RANKING
    ) -> list[TurnMatch]:
        if limit < 1:
            return []
        ranked = rank_turns(self.term_hits(thread_id, query), limit, ranking)
        if not ranked:
            return []
        among, params = self.dialect.any_of("number", [r.number for r in ranked])
        turns = {
            turn.number: turn
            for turn in self._turns(f"WHERE thread_id = ? AND {among}", [thread_id, *params])
        }
        return [
            TurnMatch(turns[r.number], r.score, r.phrase_match, r.own_match)
            for r in ranked
            if r.number in turns
        ]

    def record_recall(self, thread_id: str, page_ids: Sequence[int], page_count: int) -> None:
        rows = [(thread_id, page_id, page_count) for page_id in sorted(set(page_ids))]
        with self._transaction(check_thread_id(thread_id)) as db:
            self._run_many(db, RECALL_UPSERT, rows)

    def recalls(self, thread_id: str) -> dict[int, int]:
        rows = self._read(
            "SELECT page_id, page_count FROM {s}.recalls WHERE thread_id = ?", (thread_id,)
        )
        return {int(page_id): int(count) for page_id, count in rows}


__all__ = ["SNIPPET_WORDS", "SQLSearch"]
