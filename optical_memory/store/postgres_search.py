"""Turn numbers, ranked full-text search and recalls of the PostgreSQL store.

Each turn carries a ``tsvector`` of its own text (``english`` configuration: stop words, Snowball
stemming; column ``turns.search`` with a GIN index), written with the turn in the transaction
that adds it, under the thread's advisory lock, and never updated: turns stay append-only and
the index never churns. The index has no pending list (``fastupdate = off``): each turn's words
go straight into its compressed posting lists, where a pending list would hold them uncompressed
(several times the size) until the next ``VACUUM`` and make every search scan it.

A search reads each turn with its neighbours as the SQLite store does
(:data:`~optical_memory.store.NEIGHBOURS`): a turn's score is the BM25 score of its own text
plus each neighbour's BM25 score times that neighbour's weight (higher is better). BM25 is
computed in SQL as FTS5 computes it: each query term weighs by its rarity in the thread
(inverse document frequency over the thread's turns), its count in a turn (``ts_rank_cd`` of
the term alone) saturates, and long turns count less (length in distinct words, against the
mean of the turns that match). :class:`PostgresSearch` is a part of
:class:`~optical_memory.store.postgres.PostgresStore`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from optical_memory.store import NEIGHBOURS, SNIPPET_WORDS, TextQuery, TurnMatch
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

# (offset, weight): a match in turn h scores turn h - offset too (h is its neighbour there).
_OFFSETS = ", ".join(f"({o}, {w:g})" for o, w in ((0, 1.0), *NEIGHBOURS))


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
#: BM25's term-count saturation and length normalisation (the values SQLite's FTS5 uses).
_K1 = 1.2
_B = 0.75


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

    def search_turns(self, thread_id: str, query: TextQuery, limit: int) -> list[TurnMatch]:
        match, params, phrases, phrase_params = _tsquery(query)
        if not match or limit < 1:
            return []
        own = f"t.search @@ ({phrases})" if phrases else "false"
        terms = ", ".join(f"({k}, {_ONE})" for k in range(len(params)))
        ranked = self._read(
            f"WITH q AS (SELECT k, q FROM (VALUES {terms}) AS v(k, q) WHERE numnode(q) > 0), "
            # Each term's matches in the thread: the term count (cover density of a one-word
            # query is 0.1 per occurrence) and the turn's length in distinct words.
            "m AS (SELECT q.k, i.number, 10 * ts_rank_cd(i.search, q.q, 0) AS tf, "
            "length(i.search) AS len FROM {s}.turns i JOIN q ON i.search @@ q.q "
            "WHERE i.thread_id = %s), "
            "df AS (SELECT k, count(*) AS n FROM m GROUP BY k), "
            "total AS (SELECT coalesce(max(number), 0) AS n FROM {s}.turns WHERE thread_id = %s), "
            "mean AS (SELECT greatest(avg(len), 1) AS len FROM m), "
            f"hits AS (SELECT m.number, SUM(ln(1 + (total.n - df.n + 0.5) / (df.n + 0.5)) "
            f"* m.tf * {_K1 + 1:g} / (m.tf + {_K1:g} * ({1 - _B:g} + {_B:g} * m.len / mean.len))) "
            "AS r FROM m JOIN df USING (k), total, mean GROUP BY m.number), "
            f"scored AS (SELECT h.number - o.o AS number, SUM(o.w * h.r) AS score "
            f"FROM hits h, (VALUES {_OFFSETS}) AS o(o, w) GROUP BY 1) "
            f"SELECT t.id, s.score, {own} FROM scored s "
            "JOIN {s}.turns t ON t.thread_id = %s AND t.number = s.number "
            "ORDER BY s.score DESC, t.id LIMIT %s",
            [*params, thread_id, thread_id, *phrase_params, thread_id, min(limit, 10_000)],
        )
        if not ranked:
            return []
        turns = {turn.id: turn for turn in self.get_turns(thread_id, [r[0] for r in ranked])}
        return [
            TurnMatch(turn=turns[turn_id], score=float(rank), phrase_match=bool(phrase))
            for turn_id, rank, phrase in ranked
            if turn_id in turns
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
