"""Turn numbers, ranked full-text search and recalls of the PostgreSQL store.

Each turn carries a ``tsvector`` of its own text (``english`` configuration: stop words, Snowball
stemming; column ``turns.search`` with a GIN index), written with the turn in the transaction
that adds it, under the thread's advisory lock, and never updated: turns stay append-only and
the index never churns. The index has no pending list (``fastupdate = off``): each turn's words
go straight into its compressed posting lists, where a pending list would hold them uncompressed
(several times the size) until the next ``VACUUM`` and make every search scan it.

A search asks the index, term by term, which of the thread's turns hold the term, and ranks
them as the SQLite store does, with the thread's own statistics
(:mod:`optical_memory.store.ranking`). :class:`PostgresSearch` is a part of
:class:`~optical_memory.store.postgres.PostgresStore`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from optical_memory.store import SNIPPET_WORDS, TextQuery, TurnMatch
from optical_memory.store.ranking import TermHits, rank_turns
from optical_memory.turns import Turn

if TYPE_CHECKING:
    import psycopg

#: Characters of a turn's text that are indexed (a ``tsvector`` holds at most 1 MB).
INDEX_CHARS = 100_000

#: What schema version 2 adds to version 1 (``{s}``: the store's PostgreSQL schema).
SEARCH_SCHEMA = """
ALTER TABLE {s}.turns ADD COLUMN IF NOT EXISTS number INTEGER;
ALTER TABLE {s}.turns ADD COLUMN IF NOT EXISTS search TSVECTOR;
CREATE UNIQUE INDEX IF NOT EXISTS turns_by_number ON {s}.turns (thread_id, number);
CREATE INDEX IF NOT EXISTS turns_search ON {s}.turns USING GIN (search) WITH (fastupdate = off);
CREATE TABLE IF NOT EXISTS {s}.recalls (
    thread_id  TEXT    NOT NULL,
    page_id    BIGINT  NOT NULL,
    page_count INTEGER NOT NULL,
    PRIMARY KEY (thread_id, page_id)
)
"""

#: SQL of a turn's ``search`` value from its text (one parameter: :func:`index_text`).
SEARCH_VALUE = "to_tsvector('english', %s)"


def index_text(text: str) -> str:
    """What the index reads of a turn's text (see :func:`_clean`)."""
    return _clean(text[:INDEX_CHARS])


def _clean(text: str) -> str:
    """Text as the index reads it: punctuation (and NUL) split words, as FTS5's ``unicode61``
    tokenizer does, so ``pine-653`` is the words ``pine`` and ``653`` (PostgreSQL's parser
    would read ``-653`` as a signed number)."""
    return _SEPARATORS.sub(" ", text)


def _shown(text: str) -> str:
    """Text for ``ts_headline``: other punctuation than a sentence's blanked out character for
    character (so offsets still match ``text``), words split as in :func:`_clean`."""
    return _INNER.sub(lambda match: " " * len(match.group()), text)


_SEPARATORS = re.compile(r"[\W_]+")
_INNER = re.compile(r"[^\w\s.,;:!?'\"()]+|_+")


_ONE = "phraseto_tsquery('english', %s)"


def _tsquery(query: TextQuery) -> tuple[str, list[str], str, list[str]]:
    """SQL for the ``tsquery`` matching any of ``query``'s words or phrases with its
    parameters, and the same for its phrases alone (empty SQL when there are none)."""
    words = [text for text in (_clean(word).strip() for word in query.words) if text]
    phrases = [text for text in (_clean(" ".join(p)).strip() for p in query.phrases) if text]
    one = _ONE
    return (
        " || ".join([one] * (len(words) + len(phrases))),
        [*words, *phrases],
        " || ".join([one] * len(phrases)),
        phrases,
    )


class PostgresSearch:
    """Numbers, search and recalls of :class:`~optical_memory.store.postgres.PostgresStore`."""

    if TYPE_CHECKING:
        schema: str

        def _sql(self, text: str) -> str: ...

        def _read(
            self, sql: str, params: Sequence[object] | dict[str, object] = ()
        ) -> list[Any]: ...

        def _thread_write(
            self, thread_id: str
        ) -> AbstractContextManager[psycopg.Connection[Any]]: ...

        def _turns(self, sql: str, params: Sequence[object]) -> list[Turn]: ...

        def get_turns(self, thread_id: str, turn_ids: Sequence[int]) -> list[Turn]: ...

    def turns_by_number(self, thread_id: str, first: int, last: int) -> list[Turn]:
        first, last = max(first, -(2**31)), min(last, 2**31 - 1)
        return self._turns(
            "WHERE thread_id = %s AND number >= %s AND number <= %s ORDER BY number",
            (thread_id, first, last),
        )

    def term_hits(self, thread_id: str, query: TextQuery) -> TermHits:
        match, params, _, phrase_params = _tsquery(query)
        if not match:
            return TermHits(0, ())
        terms = ", ".join(f"({k}, {_ONE})" for k in range(len(params)))
        hits = self._read(
            f"WITH q AS (SELECT k, q FROM (VALUES {terms}) AS v(k, q) WHERE numnode(q) > 0) "
            # A term's count in a turn: cover density of a one-term query is 0.1 per occurrence.
            "SELECT q.k, i.number, round(10 * ts_rank_cd(i.search, q.q, 0))::int, "
            "octet_length(i.content) FROM {s}.turns i "
            "JOIN q ON i.search @@ q.q WHERE i.thread_id = %s",
            [*params, thread_id],
        )
        total = self._read(
            "SELECT coalesce(max(number), 0) FROM {s}.turns WHERE thread_id = %s", (thread_id,)
        )
        phrases = frozenset(range(len(params) - len(phrase_params), len(params)))
        return TermHits(int(total[0][0]), [tuple(hit) for hit in hits], phrases)

    def search_turns(self, thread_id: str, query: TextQuery, limit: int) -> list[TurnMatch]:
        if limit < 1:
            return []
        ranked = rank_turns(self.term_hits(thread_id, query), limit)
        if not ranked:
            return []
        turns = {
            turn.number: turn
            for turn in self._turns(
                "WHERE thread_id = %s AND number = ANY(%s)",
                (thread_id, [r.number for r in ranked]),
            )
        }
        return [
            TurnMatch(turns[r.number], r.score, r.phrase_match, r.own_match)
            for r in ranked
            if r.number in turns
        ]

    def snippets(self, thread_id: str, query: TextQuery, turn_ids: Sequence[int]) -> dict[int, str]:
        match, params, _, _ = _tsquery(query)
        if not match or not turn_ids:
            return {}
        turns = self.get_turns(thread_id, turn_ids)
        if not turns:
            return {}
        options = (
            f"StartSel=**, StopSel=**, MaxWords={SNIPPET_WORDS}, "
            f"MinWords={max(1, SNIPPET_WORDS // 2)}"
        )
        rows = self._read(
            f"SELECT u.id, ts_headline('english', u.body, q.q, %s) "
            f"FROM unnest(%s::bigint[], %s::text[]) AS u(id, body), (SELECT {match} AS q) q",
            [
                options,
                [turn.id for turn in turns],
                [_shown(turn.content[:INDEX_CHARS]) for turn in turns],
                *params,
            ],
        )
        bodies = {turn.id: turn.content[:INDEX_CHARS] for turn in turns}
        return {int(turn_id): _excerpt(bodies[turn_id], text) for turn_id, text in rows}

    def record_recall(self, thread_id: str, page_ids: Sequence[int], page_count: int) -> None:
        with self._thread_write(thread_id) as db, db.cursor() as cursor:
            cursor.executemany(
                self._sql(
                    "INSERT INTO {s}.recalls VALUES (%s, %s, %s) ON CONFLICT (thread_id, page_id) "
                    "DO UPDATE SET page_count = EXCLUDED.page_count"
                ),
                [(thread_id, page_id, page_count) for page_id in sorted(set(page_ids))],
            )

    def recalls(self, thread_id: str) -> dict[int, int]:
        rows = self._read(
            "SELECT page_id, page_count FROM {s}.recalls WHERE thread_id = %s", (thread_id,)
        )
        return {int(page_id): int(count) for page_id, count in rows}


def _excerpt(body: str, headline: str) -> str:
    """A ``ts_headline`` of ``_shown(body)`` written as SQLite's snippets are: on ``body``'s own
    characters, adjacent marked words marked as one run, ``…`` where the excerpt cuts it."""
    marked = re.sub(r"\*\*(\s+)\*\*", r"\1", headline).strip()
    pieces = marked.split("**")
    plain = "".join(pieces)
    start = _shown(body).find(plain)
    if not plain or start < 0:
        return marked
    text, at = "", start
    for index, piece in enumerate(pieces):  # odd pieces are the marked ones
        text += ("**" if index else "") + body[at : at + len(piece)]
        at += len(piece)
    prefix = "…" if body[:start].strip() else ""
    return prefix + text + ("…" if body[at:].strip() else "")


def upgrade_from_version_1(db: psycopg.Connection[Any], schema: str) -> int:
    """Number every thread's turns in id order and index them all (inside the caller's
    transaction, after :data:`SEARCH_SCHEMA`); return how many turns were indexed."""
    db.execute(
        f"UPDATE {schema}.turns t SET number = ranked.n FROM (SELECT id, ROW_NUMBER() OVER "
        f"(PARTITION BY thread_id ORDER BY id) AS n FROM {schema}.turns) ranked "
        "WHERE t.id = ranked.id"
    )
    rows = db.execute(f"SELECT id, content FROM {schema}.turns WHERE search IS NULL").fetchall()
    with db.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {schema}.turns SET search = {SEARCH_VALUE} WHERE id = %s",
            [(index_text(bytes(content).decode("utf-8")), turn_id) for turn_id, content in rows],
        )
    return len(rows)
