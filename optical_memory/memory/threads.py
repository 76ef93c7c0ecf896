"""A thread as plain JSON, and back: what ``OpticalMemory.export()`` and ``import_thread()`` do.

The exported form (``FORMAT``, version 1) holds the turns with their ids, numbers and timestamps,
the frozen pages as spans of those ids, and the recalls rehearsal counts (by page ``seq``), so an
import rebuilds exactly the same pages (same breaks, same fading), numbers and search index in
any store; ids are assigned anew there and the spans follow them. ``number`` and ``recalls`` are
optional (exports written before them import too)::

    {"format": "optical-memory/thread", "version": 1, "thread_id": "...",
     "turns": [{"id": 7, "number": 1, "role": "user", "content": "...",
                "timestamp": "2026-01-02T03:04:05"}],
     "pages": [{"seq": 0, "spans": [[7, 0, 1200], [8, 0, 40]]}],
     "recalls": [{"seq": 0, "page_count": 5}]}
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
    pages = store.pages(thread_id)
    seq_of = {page.id: page.seq for page in pages}
    recalls = store.recalls(thread_id)
    return {
        "format": FORMAT,
        "version": VERSION,
        "thread_id": thread_id,
        "turns": [
            {
                "id": turn.id,
                "number": turn.number,
                "role": turn.role,
                "content": turn.content,
                "timestamp": turn.timestamp.isoformat() if turn.timestamp else None,
            }
            for turn in store.iter_turns(thread_id)
        ],
        "pages": [
            {"seq": page.seq, "spans": [[s.turn_id, s.start, s.end] for s in page.spans]}
            for page in pages
        ],
        "recalls": [
            {"seq": seq_of[page_id], "page_count": count}
            for page_id, count in sorted(recalls.items())
            if page_id in seq_of
        ],
    }


def import_thread(store: Store, thread_id: str, data: object) -> list[Turn]:
    """Store an exported thread as ``thread_id`` (which must be empty), its pages exactly as
    exported; returns the new turns. Everything is checked before anything is written."""
    turns, pages = _checked(data)
    recalls = _checked_recalls(data, len(pages))
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
    if recalls:
        ids = [page.id for page in store.pages(thread_id)]
        by_count: dict[int, list[int]] = {}
        for seq, count in recalls:
            by_count.setdefault(count, []).append(ids[seq])
        for count, page_ids in sorted(by_count.items()):
            store.record_recall(thread_id, page_ids, count)
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
        number = turn.get("number", index + 1)
        if number != index + 1 or isinstance(number, bool):
            raise ValueError(f"turn {index} must have 'number' {index + 1}, not {number!r}")
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


def _checked_recalls(data: object, page_count: int) -> list[tuple[int, int]]:
    """The ``(page seq, page count)`` recalls of an export already :func:`_checked` (none
    when it has no list)."""
    raw = data.get("recalls", []) if isinstance(data, dict) else []
    if not isinstance(raw, list):
        raise ValueError("an exported thread's 'recalls' must be a list")
    recalls = []
    for recall in raw:
        seq = recall.get("seq") if isinstance(recall, dict) else None
        count = recall.get("page_count") if isinstance(recall, dict) else None
        if (
            not isinstance(seq, int)
            or not isinstance(count, int)
            or isinstance(seq, bool)
            or isinstance(count, bool)
            or not 0 <= seq < page_count
            or count < 0
        ):
            raise ValueError(
                f"recall {recall!r} needs 'seq' of an exported page and a 'page_count' >= 0"
            )
        recalls.append((seq, count))
    return recalls


__all__ = ["FORMAT", "VERSION", "export_thread", "import_thread"]
