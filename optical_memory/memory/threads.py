"""A thread as plain JSON, and back: what ``OpticalMemory.export()`` and ``import_thread()`` do.

The exported form (``FORMAT``, version 1) holds the turns with their ids and timestamps and the
frozen pages as spans of those ids, so an import rebuilds exactly the same pages (same breaks,
same fading) in any store; ids are assigned anew there and the spans follow them::

    {"format": "optical-memory/thread", "version": 1, "thread_id": "...",
     "turns": [{"id": 7, "role": "user", "content": "...", "timestamp": "2026-01-02T03:04:05"}],
     "pages": [{"seq": 0, "spans": [[7, 0, 1200], [8, 0, 40]]}]}
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from optical_memory.memory.packing import Piece, new_page
from optical_memory.store import Store
from optical_memory.tokens import count_text_tokens
from optical_memory.turns import Turn, turn_text

FORMAT = "optical-memory/thread"
VERSION = 1


def export_thread(store: Store, thread_id: str) -> dict[str, Any]:
    """The thread's turns and pages as JSON-serializable data (see the module docstring)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "thread_id": thread_id,
        "turns": [
            {
                "id": turn.id,
                "role": turn.role,
                "content": turn.content,
                "timestamp": turn.timestamp.isoformat() if turn.timestamp else None,
            }
            for turn in store.iter_turns(thread_id)
        ],
        "pages": [
            {"seq": page.seq, "spans": [[s.turn_id, s.start, s.end] for s in page.spans]}
            for page in store.pages(thread_id)
        ],
    }


def import_thread(store: Store, thread_id: str, data: object) -> list[Turn]:
    """Store an exported thread as ``thread_id`` (which must be empty), its pages exactly as
    exported; returns the new turns. Everything is checked before anything is written."""
    turns, pages = _checked(data)
    if store.count_turns(thread_id) or store.pages(thread_id):
        raise ValueError(
            f"thread {thread_id!r} already holds turns: import into a new thread_id, or call "
            "delete_thread() on it first"
        )
    added = store.add_turns(
        thread_id,
        [
            (
                t["role"],
                t["content"],
                t["timestamp"],
                count_text_tokens(turn_text(t["role"], t["content"])),
            )
            for t in turns
        ],
    )
    by_old_id = {t["id"]: turn for t, turn in zip(turns, added, strict=True)}
    new_pages = [
        new_page([Piece(by_old_id[i], start, end) for i, start, end in spans]) for spans in pages
    ]
    if new_pages and not store.append_pages(thread_id, -1, new_pages):
        raise ValueError(f"another writer packed thread {thread_id!r} during the import")
    return added


def _checked(data: object) -> tuple[list[dict[str, Any]], list[list[tuple[int, int, int]]]]:
    """The turns (timestamps parsed) and page spans of an export, or a ValueError saying what
    is wrong with it."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"not an exported thread: expected a dict with format {FORMAT!r}")
    if data.get("version") != VERSION:
        raise ValueError(
            f"exported thread version {data.get('version')!r} is not {VERSION}: "
            "import it with the optical-memory that exported it"
        )
    raw_turns, raw_pages = data.get("turns"), data.get("pages")
    if not isinstance(raw_turns, list) or not isinstance(raw_pages, list):
        raise ValueError("an exported thread needs 'turns' and 'pages' lists")
    turns: list[dict[str, Any]] = []
    lengths: dict[int, int] = {}
    for index, turn in enumerate(raw_turns):
        if not isinstance(turn, dict):
            raise ValueError(f"turn {index} is not an object")
        turn_id, role, content, stamp = (
            turn.get(k) for k in ("id", "role", "content", "timestamp")
        )
        if isinstance(turn_id, bool) or not isinstance(turn_id, int) or turn_id in lengths:
            raise ValueError(f"turn {index} needs a unique integer 'id', not {turn_id!r}")
        if not isinstance(role, str) or not role.strip() or not isinstance(content, str):
            raise ValueError(f"turn {index} needs a non-empty 'role' and a 'content' string")
        try:
            timestamp = None if stamp is None else datetime.fromisoformat(stamp)
        except (TypeError, ValueError) as error:
            raise ValueError(f"turn {index} has a bad timestamp {stamp!r}: {error}") from None
        lengths[turn_id] = len(content)
        turns.append({"id": turn_id, "role": role, "content": content, "timestamp": timestamp})
    ids = [t["id"] for t in turns]
    if ids != sorted(ids):
        raise ValueError("exported turns must be in id order (oldest first)")
    pages: list[list[tuple[int, int, int]]] = []
    for index, page in enumerate(raw_pages):
        spans = page.get("spans") if isinstance(page, dict) else None
        if not isinstance(page, dict) or page.get("seq") != index or not isinstance(spans, list):
            raise ValueError(f"page {index} needs 'seq': {index} and a 'spans' list")
        checked = []
        for span in spans:
            if (
                not isinstance(span, list)
                or len(span) != 3
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in span)
                or span[0] not in lengths
                or not 0 <= span[1] <= span[2] <= lengths[span[0]]
            ):
                raise ValueError(f"page {index} has a span {span!r} outside the exported turns")
            checked.append((span[0], span[1], span[2]))
        if not checked:
            raise ValueError(f"page {index} has no spans")
        pages.append(checked)
    return turns, pages


__all__ = ["FORMAT", "VERSION", "export_thread", "import_thread"]
