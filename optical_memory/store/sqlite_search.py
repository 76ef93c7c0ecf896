"""Turn numbers and the full-text index of the SQLite store.

The index is an FTS5 table (porter stemmer) whose text is read from a view of each turn with its
neighbours (:data:`INDEXED_NEIGHBOURS`), so no text is stored twice; it is kept in the
transaction that adds a turn. :meth:`SQLiteSearch.term_hits` asks it, term by term, which of
the thread's turns hold the term in their own text, counted over the thread's turns alone
(FTS5's ``bm25()`` would count every thread in the file); the ranking and everything else a
search shares with PostgreSQL is :mod:`optical_memory.store.search`.
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

#: Characters of each neighbouring turn that the search index reads with a turn.
NEIGHBOUR_CHARS = 2000
#: The neighbours (offsets in turn numbers) whose text the index reads with a turn, in its
#: columns after the turn's own. The ranking reads each turn's own text and adds its
#: neighbours' scores (:mod:`optical_memory.store.ranking`, where its weights live).
INDEXED_NEIGHBOURS: tuple[int, ...] = (-1, -2, -3, 1, 2, 3)
#: How many turns before a new one gain it as a neighbour.
REACH = max(INDEXED_NEIGHBOURS)

#: Columns a turn is read with: the turn's own text, then one per neighbour.
_COLUMNS = ["content", *(f"n{k}" for k in range(len(INDEXED_NEIGHBOURS)))]
_DOCUMENT_COLUMNS = ", ".join(_COLUMNS)


def search_schema() -> list[str]:
    """The turn numbers' index, the view of each turn with its neighbours and the FTS5 table
    reading it (all ``IF NOT EXISTS``)."""
    neighbours = _COLUMNS[1:]
    joins = "\n".join(
        f"LEFT JOIN turns {c} ON {c}.thread_id = t.thread_id AND {c}.number = t.number + {offset}"
        for c, offset in zip(neighbours, INDEXED_NEIGHBOURS, strict=True)
    )
    selected = ", ".join(f"substr({c}.content, 1, {NEIGHBOUR_CHARS}) AS {c}" for c in neighbours)
    return [
        "CREATE UNIQUE INDEX IF NOT EXISTS turns_by_number ON turns (thread_id, number)",
        f"CREATE VIEW IF NOT EXISTS turn_documents AS SELECT t.id AS id, t.content AS content, "
        f"{selected} FROM turns t {joins}",
        f"CREATE VIRTUAL TABLE IF NOT EXISTS turn_index USING fts5({_DOCUMENT_COLUMNS}, "
        "content='turn_documents', content_rowid='id', tokenize='porter unicode61')",
    ]


def upgrade_from_version_1(db: sqlite3.Connection) -> None:
    """Number every thread's turns in id order and build the index (inside the caller's
    transaction, after the version-2 tables exist)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(turns)")}
    if "number" not in columns:
        db.execute("ALTER TABLE turns ADD COLUMN number INTEGER")
    db.execute(
        "UPDATE turns SET number = ranked.n FROM (SELECT id, ROW_NUMBER() OVER "
        "(PARTITION BY thread_id ORDER BY id) AS n FROM turns) AS ranked "
        "WHERE turns.id = ranked.id"
    )
    for statement in search_schema():
        db.execute(statement)
    db.execute("INSERT INTO turn_index(turn_index) VALUES ('rebuild')")


def unindex(db: sqlite3.Connection, turn_ids: Sequence[int]) -> None:
    """Take these turns out of the index (while the turns and their neighbours still exist)."""
    _write_index(db, turn_ids, "'delete', ")


def _index(db: sqlite3.Connection, turn_ids: Sequence[int]) -> None:
    _write_index(db, turn_ids, "")


def _write_index(db: sqlite3.Connection, turn_ids: Sequence[int], command: str) -> None:
    """Write these turns' entries as the view reads them now; ``command`` ``'delete', ``
    takes them out (FTS5 needs the very text an entry was written with)."""
    into = "turn_index, " if command else ""
    for turn_id in turn_ids:
        db.execute(
            f"INSERT INTO turn_index({into}rowid, {_DOCUMENT_COLUMNS}) "
            f"SELECT {command}id, {_DOCUMENT_COLUMNS} FROM turn_documents WHERE id = ?",
            (turn_id,),
        )


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
        thread_id, number = row[0], row[1]
        # The turns before it gain it as a neighbour: their entries are taken out with the text
        # they were indexed with and put back with the new one.
        behind = [
            row[0]
            for row in db.execute(
                "SELECT id FROM turns WHERE thread_id = ? AND number >= ? AND number < ?",
                (thread_id, number - REACH, number),
            )
        ]
        unindex(db, behind)
        cursor = db.execute(
            "INSERT INTO turns (thread_id, number, role, content, timestamp, text_tokens) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            row,
        )
        turn_id = cursor.lastrowid
        assert turn_id is not None
        _index(db, [*behind, turn_id])
        return turn_id

    def _unindex_thread(self, db: sqlite3.Connection, thread_id: str) -> None:
        ids = [r[0] for r in db.execute("SELECT id FROM turns WHERE thread_id = ?", (thread_id,))]
        unindex(db, ids)  # while the turns its entries were read from still exist
        # Merge the index's segments, so no deleted entry lingers in them.
        db.execute("INSERT INTO turn_index(turn_index) VALUES ('optimize')")

    def term_hits(self, thread_id: str, query: TextQuery) -> TermHits:
        words = [_fts_phrase([word]) for word in query.words]
        phrases = [phrase for phrase in map(_fts_phrase, query.phrases) if phrase]
        terms = [*(word for word in words if word), *phrases]
        if not terms:
            return TermHits(0, ())
        # Each term counted in the turns' own text (column ``content``) of this thread alone:
        # the statistics are the thread's, whatever other threads the file holds. A one-token
        # term is read off the index's positions (fts5vocab); a phrase's count is the marks
        # highlight() puts in the text (slower, and phrases are few). CROSS JOIN keeps the
        # index first: the planner would otherwise scan the thread and ask the index per turn.
        t = "turn_index"
        by_token = (
            "SELECT {k}, turns.number, count(*), length(CAST(turns.content AS BLOB)) "
            "FROM temp.turn_tokens v CROSS JOIN turns ON turns.id = v.doc "
            "WHERE v.term = ? AND v.col = 'content' AND turns.thread_id = ? GROUP BY v.doc"
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
                    params += [f"content : {terms[k]}", thread_id]
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
