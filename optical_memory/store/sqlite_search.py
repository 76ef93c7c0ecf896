"""Turn numbers and the full-text index of the SQLite store.

The index is an FTS5 table (porter stemmer) over each turn's own text, read from the ``turns``
table itself (an external-content table), so no text is stored twice; it is kept in the
transaction that adds a turn. :meth:`SQLiteSearch.term_hits` asks it, term by term, which of
the thread's turns hold the term, counted over the thread's turns alone (FTS5's ``bm25()``
would count every thread in the file); how a turn's neighbours add to its score, and
everything else a search shares with PostgreSQL, is :mod:`optical_memory.store.ranking` and
:mod:`optical_memory.store.search`.

Stores before schema version 4 indexed each turn with the text of six neighbours beside its
own, which no search read; opening one rebuilds the index over the turns' own text
(:func:`upgrade_index`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from optical_memory.store import TextQuery
from optical_memory.store.ranking import TermHits
from optical_memory.store.search import SNIPPET_WORDS, SQLSearch
from optical_memory.store.sql import TurnRow


def search_schema() -> list[str]:
    """The turn numbers' index and the FTS5 table over the turns' text (``IF NOT EXISTS``)."""
    return [
        "CREATE UNIQUE INDEX IF NOT EXISTS turns_by_number ON turns (thread_id, number)",
        "CREATE VIRTUAL TABLE IF NOT EXISTS turn_index USING fts5(content, content='turns', "
        "content_rowid='id', tokenize='porter unicode61')",
    ]


def upgrade_from_version_1(db: sqlite3.Connection) -> None:
    """Number every thread's turns in id order (inside the caller's transaction, after the
    version-2 tables exist; :func:`upgrade_index` then builds the index)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(turns)")}
    if "number" not in columns:
        db.execute("ALTER TABLE turns ADD COLUMN number INTEGER")
    db.execute(
        "UPDATE turns SET number = ranked.n FROM (SELECT id, ROW_NUMBER() OVER "
        "(PARTITION BY thread_id ORDER BY id) AS n FROM turns) AS ranked "
        "WHERE turns.id = ranked.id"
    )


def upgrade_index(db: sqlite3.Connection) -> None:
    """Replace an index older than schema version 4 (each turn with its neighbours' text, read
    through a view), or none, with the index over the turns' own text, built from every turn
    (inside the caller's transaction)."""
    db.execute("DROP TABLE IF EXISTS turn_index")
    db.execute("DROP VIEW IF EXISTS turn_documents")
    for statement in search_schema():
        db.execute(statement)
    db.execute("INSERT INTO turn_index(turn_index) VALUES ('rebuild')")


def fts_match(query: TextQuery) -> tuple[str, list[str]]:
    """The FTS5 query matching any of ``query``'s words or phrases, and its phrases."""
    words = [_fts_phrase([word]) for word in query.words]
    phrases = [phrase for phrase in (_fts_phrase(p) for p in query.phrases) if phrase]
    return " OR ".join(term for term in (*words, *phrases) if term), phrases


def _fts_phrase(words: Sequence[str]) -> str:
    """An FTS5 phrase of ``words`` (each quoted, so no word is read as an operator)."""
    # Quotes doubled; NUL would end the query string early: it separates words anyway.
    quoted = [w.replace('"', '""').replace("\x00", " ").strip() for w in words]
    quoted = [word for word in quoted if word]
    return f'"{" ".join(quoted)}"' if quoted else ""


class SQLiteSearch(SQLSearch):
    """The FTS5 index of :class:`~optical_memory.store.SQLiteStore`: writing it with each turn,
    and the term counts and snippets a search reads off it."""

    if TYPE_CHECKING:
        _lock: threading.RLock

    def _insert_turn(self, db: sqlite3.Connection, row: TurnRow) -> int:
        cursor = db.execute(
            "INSERT INTO turns (thread_id, number, role, content, timestamp, text_tokens) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            row,
        )
        turn_id = cursor.lastrowid
        assert turn_id is not None
        db.execute("INSERT INTO turn_index(rowid, content) VALUES (?, ?)", (turn_id, row[3]))
        return turn_id

    def _unindex_thread(self, db: sqlite3.Connection, thread_id: str) -> None:
        # While the turns exist: FTS5 takes an entry out with the very text it was written with.
        db.execute(
            "INSERT INTO turn_index(turn_index, rowid, content) "
            "SELECT 'delete', id, content FROM turns WHERE thread_id = ?",
            (thread_id,),
        )
        # Merge the index's segments, so no deleted entry lingers in them.
        db.execute("INSERT INTO turn_index(turn_index) VALUES ('optimize')")

    def term_hits(self, thread_id: str, query: TextQuery) -> TermHits:
        words = [_fts_phrase([word]) for word in query.words]
        phrases = [phrase for phrase in map(_fts_phrase, query.phrases) if phrase]
        terms = [*(word for word in words if word), *phrases]
        if not terms:
            return TermHits(0, ())
        # Each term counted in the turns of this thread alone: the statistics are the
        # thread's, whatever other threads the file holds. A one-token
        # term is read off the index's positions (fts5vocab); a phrase's count is the marks
        # highlight() puts in the text (slower, and phrases are few). CROSS JOIN keeps the
        # index first: the planner would otherwise scan the thread and ask the index per turn.
        t = "turn_index"
        by_token = (
            "SELECT {k}, turns.number, count(*), length(CAST(turns.content AS BLOB)) "
            "FROM temp.turn_tokens v CROSS JOIN turns ON turns.id = v.doc "
            "WHERE v.term = ? AND turns.thread_id = ? GROUP BY v.doc"
        )
        by_phrase = (
            f"SELECT {{k}}, turns.number, "
            f"length(highlight({t}, 0, char(1), '')) - length(turns.content), "
            f"length(CAST(turns.content AS BLOB)) FROM {t} "
            f"CROSS JOIN turns ON turns.id = {t}.rowid WHERE {t} MATCH ? AND turns.thread_id = ?"
        )
        selects: list[str] = []
        params: list[object] = []
        with self._lock:
            for k, tokens in enumerate(self._tokens(terms)):
                if len(tokens) == 1:
                    selects.append(by_token.format(k=k))
                    params += [tokens[0], thread_id]
                elif tokens:
                    selects.append(by_phrase.format(k=k))
                    params += [terms[k], thread_id]
            hits = self._read(" UNION ALL ".join(selects), params) if selects else []
        total = self._read("SELECT MAX(number) FROM turns WHERE thread_id = ?", (thread_id,))
        phrase_terms = frozenset(range(len(terms) - len(phrases), len(terms)))
        return TermHits(int(total[0][0] or 0), [tuple(hit) for hit in hits], phrase_terms)

    def _tokens(self, terms: Sequence[str]) -> list[list[str]]:
        """Each FTS5 phrase of ``terms`` as the index's tokenizer splits and stems it (read off
        a scratch FTS5 table in this connection's temp schema, so they match the index's own
        tokens exactly)."""
        for statement in (
            "CREATE VIRTUAL TABLE IF NOT EXISTS temp.query_text USING fts5(body, "
            "tokenize='porter unicode61')",
            "CREATE VIRTUAL TABLE IF NOT EXISTS temp.query_tokens USING "
            "fts5vocab(temp, query_text, 'instance')",
            "CREATE VIRTUAL TABLE IF NOT EXISTS temp.turn_tokens USING "
            "fts5vocab(main, turn_index, 'instance')",
        ):
            self._read(statement)
        values = ", ".join("(?, ?)" for _ in terms)
        self._read(
            f"INSERT INTO temp.query_text (rowid, body) VALUES {values}",
            [item for k, term in enumerate(terms) for item in (k, term.replace('""', '"'))],
        )
        tokens: list[list[str]] = [[] for _ in terms]
        try:
            for k, token in self._read(
                "SELECT doc, term FROM temp.query_tokens ORDER BY doc, offset"
            ):
                tokens[int(k)].append(str(token))
        finally:
            self._read("DELETE FROM temp.query_text")
        return tokens

    def snippets(self, thread_id: str, query: TextQuery, turn_ids: Sequence[int]) -> dict[int, str]:
        match, _ = fts_match(query)
        if not match or not turn_ids:
            return {}
        t = "turn_index"
        ids = ",".join(str(int(turn_id)) for turn_id in turn_ids)
        rows = self._read(
            f"SELECT turns.id, snippet({t}, 0, '**', '**', '…', {SNIPPET_WORDS}) "
            f"FROM {t} JOIN turns ON turns.id = {t}.rowid "
            f"WHERE {t} MATCH ? AND {t}.rowid IN ({ids}) AND turns.thread_id = ?",
            (match, thread_id),
        )
        return {int(turn_id): text for turn_id, text in rows}
