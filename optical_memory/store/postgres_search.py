"""Turn numbers and the full-text index of the PostgreSQL store.

Each turn carries a ``tsvector`` of its own text (``english`` configuration: stop words, Snowball
stemming; column ``turns.search`` with a GIN index), written with the turn in the transaction
that adds it, under the thread's advisory lock, and never updated: turns stay append-only and
the index never churns. The index has no pending list (``fastupdate = off``): each turn's words
go straight into its compressed posting lists, where a pending list would hold them uncompressed
until the next ``VACUUM`` and make every search scan it.

:meth:`PostgresSearch.term_hits` asks the index, term by term, which of the thread's turns hold
the term, counted over the thread's turns alone; the ranking and everything else a search
shares with SQLite is :mod:`optical_memory.store.search`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from optical_memory.store import TextQuery
from optical_memory.store.ranking import TermHits
from optical_memory.store.search import SNIPPET_WORDS, SQLSearch
from optical_memory.store.sql import TurnRow

if TYPE_CHECKING:
    import psycopg

#: Characters of a turn's text that are indexed (a ``tsvector`` holds at most 1 MB).
INDEX_CHARS = 100_000

#: What schema version 2 adds to version 1's turns (``{s}``: the store's PostgreSQL schema;
#: the recalls it also adds are among the shared tables).
SEARCH_SCHEMA = """
ALTER TABLE {s}.turns ADD COLUMN IF NOT EXISTS number INTEGER;
ALTER TABLE {s}.turns ADD COLUMN IF NOT EXISTS search TSVECTOR;
CREATE UNIQUE INDEX IF NOT EXISTS turns_by_number ON {s}.turns (thread_id, number);
CREATE INDEX IF NOT EXISTS turns_search ON {s}.turns USING GIN (search) WITH (fastupdate = off)
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


class PostgresSearch(SQLSearch):
    """The ``tsvector`` index of :class:`~optical_memory.store.postgres.PostgresStore`: writing
    it with each turn, and the term counts and snippets a search reads off it."""

    def _insert_turn(self, db: psycopg.Connection[Any], row: TurnRow) -> int:
        thread_id, number, role, content, stamp, text_tokens = row
        text = self.dialect.text
        inserted = self._run(
            db,
            "INSERT INTO {s}.turns (thread_id, number, role, content, timestamp, text_tokens, "
            f"search) VALUES (?, ?, ?, ?, ?, ?, {SEARCH_VALUE}) RETURNING id",
            (thread_id, number, text(role), text(content), stamp, text_tokens, index_text(content)),
        ).fetchone()
        return int(inserted[0])

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
