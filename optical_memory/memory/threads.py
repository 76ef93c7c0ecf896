"""A thread as plain JSON, and back: what ``OpticalMemory.export()`` and ``import_thread()`` do.

The exported form (``FORMAT``, version 1) holds everything the thread owns: the turns with their
ids, numbers, timestamps and images (bytes as base64, or the URL only), the frozen pages as spans
of those ids, and the recalls rehearsal counts (by page ``seq``), so an import rebuilds exactly
the same pages (same breaks, same fading), numbers, images and search index in any store; ids
are assigned anew there and the spans follow them. ``message_keys`` say which LangChain message
each turn was stored from, so an agent resuming the thread from its checkpoints, in the new
store too, stores none of them twice. ``number``, ``images``, ``recalls`` and ``message_keys``
are optional (exports written before them import too)::

    {"format": "optical-memory/thread", "version": 1, "thread_id": "...",
     "turns": [{"id": 7, "number": 1, "role": "user", "content": "... [image 1: ...]",
                "timestamp": "2026-01-02T03:04:05",
                "images": [{"mime_type": "image/png", "url": null, "width": 4, "height": 4,
                            "bytes": 75, "data": "iVBORw0KGgo..."}]}],
     "pages": [{"seq": 0, "spans": [[7, 0, 1200], [8, 0, 40]]}],
     "recalls": [{"seq": 0, "page_count": 5}],
     "message_keys": [{"message_id": "run-1a2b", "turn_id": 7}]}

An import checks the whole export before it writes anything (:func:`checked_export`), then
writes it in one transaction under the thread's lock (:meth:`~optical_memory.store.Store.
import_thread`): bad data, or a thread another import filled first, stores nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeGuard

from optical_memory.memory.packing import Piece, new_page
from optical_memory.store import ImportedParts, Store
from optical_memory.store.owners import MESSAGE_KEY_NAMESPACE
from optical_memory.tokens import count_text_tokens
from optical_memory.turns import Turn, check_turn, turn_text

FORMAT = "optical-memory/thread"
VERSION = 1
#: Store blob namespace of the images that came with turns (identity: turn id / number).
TURN_IMAGE_NAMESPACE = "turn-images"
#: Longest role an import accepts (roles are names such as ``user`` or a speaker's name).
MAX_ROLE_CHARS = 200
#: Longest turn an import accepts, in characters.
MAX_TURN_CHARS = 4_000_000
#: Largest image an import accepts, in bytes.
MAX_IMAGE_BYTES = 32 * 2**20
#: Images one imported turn may carry.
MAX_TURN_IMAGES = 64
#: Longest LangChain message id an import accepts.
MAX_MESSAGE_ID_CHARS = 1000
#: Ids, offsets and counts are whole numbers in this range (the stores' 64-bit integers).
_INT_RANGE = range(-(2**63), 2**63)
#: Recall page counts are stored as 32-bit integers.
_MAX_PAGE_COUNT = 2**31 - 1


@dataclass(frozen=True)
class _Exported:
    """An export after :func:`checked_export`: turns, page spans, recalls and images."""

    turns: list[dict[str, Any]]
    pages: list[list[tuple[int, int, int]]]
    recalls: list[tuple[int, int]]
    images: dict[int, list[dict[str, Any]]]  # turn index -> manifest entries with "data"
    message_keys: list[tuple[str, int]]  # (LangChain message id, exported turn id)


def export_thread(store: Store, thread_id: str) -> dict[str, Any]:
    """Everything the thread owns as JSON-serializable data (see the module docstring)."""
    pages = store.pages(thread_id)
    seq_of = {page.id: page.seq for page in pages}
    recalls = store.recalls(thread_id)
    turns = []
    for turn in store.iter_turns(thread_id):
        entry: dict[str, Any] = {
            "id": turn.id,
            "number": turn.number,
            "role": turn.role,
            "content": turn.content,
            "timestamp": turn.timestamp.isoformat() if turn.timestamp else None,
        }
        images = stored_images(store, thread_id, turn.id or 0)
        if images:
            entry["images"] = [
                {**image, "data": None if image["data"] is None else _base64(image["data"])}
                for image in images
            ]
        turns.append(entry)
    return {
        "format": FORMAT,
        "version": VERSION,
        "thread_id": thread_id,
        "turns": turns,
        "pages": [
            {"seq": page.seq, "spans": [[s.turn_id, s.start, s.end] for s in page.spans]}
            for page in pages
        ],
        "recalls": [
            {"seq": seq_of[page_id], "page_count": count}
            for page_id, count in sorted(recalls.items())
            if page_id in seq_of
        ],
        "message_keys": _message_keys(store, thread_id, {t["id"] for t in turns}),
    }


def _message_keys(store: Store, thread_id: str, turn_ids: set[int]) -> list[dict[str, Any]]:
    """Which LangChain message each turn was stored from (an agent resuming the thread from its
    checkpoints then stores none of them again)."""
    keys = []
    for message_id, data in store.thread_blobs(thread_id, MESSAGE_KEY_NAMESPACE).items():
        text = data.decode("ascii", "replace")
        if text.isdigit() and int(text) in turn_ids:
            keys.append({"message_id": message_id, "turn_id": int(text)})
    return keys


def stored_images(store: Store, thread_id: str, turn_id: int) -> list[dict[str, Any]]:
    """The manifest entries of a turn's images, in order, each with its bytes as ``data``
    (None for an image kept by URL only)."""
    manifest = store.get_blob(TURN_IMAGE_NAMESPACE, thread_id, "", str(turn_id))
    if manifest is None:
        return []
    entries = []
    for number, entry in enumerate(json.loads(manifest), start=1):
        data = None
        if entry.get("url") is None:
            data = store.get_blob(TURN_IMAGE_NAMESPACE, thread_id, "", f"{turn_id}/{number}")
        entries.append({**entry, "data": data})
    return entries


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def turn_image_blobs(turn_id: int, entries: list[dict[str, Any]]) -> list[tuple[str, str, bytes]]:
    """The blobs ``(namespace, identity, data)`` that keep a turn's images: each image's bytes,
    then the manifest (entries without their bytes)."""
    blobs = []
    manifest = []
    for number, entry in enumerate(entries, start=1):
        data = entry.get("data")
        if data is not None:
            blobs.append((TURN_IMAGE_NAMESPACE, f"{turn_id}/{number}", data))
        manifest.append({k: v for k, v in entry.items() if k != "data"})
    blobs.append((TURN_IMAGE_NAMESPACE, str(turn_id), json.dumps(manifest).encode()))
    return blobs


def import_thread(store: Store, thread_id: str, data: object) -> list[Turn]:
    """Store an exported thread as ``thread_id`` (which must be empty), its pages and images
    exactly as exported; returns the new turns. The whole export is checked first, then written
    in one transaction: a ValueError stores nothing."""
    exported = checked_export(data)
    rows = [
        (
            t["role"],
            t["content"],
            t["timestamp"],
            count_text_tokens(turn_text(t["role"], t["content"])),
        )
        for t in exported.turns
    ]

    def derive(added: list[Turn]) -> ImportedParts:
        by_old_id = {t["id"]: turn for t, turn in zip(exported.turns, added, strict=True)}
        pages = [
            new_page([Piece(by_old_id[i], start, end) for i, start, end in spans])
            for spans in exported.pages
        ]
        blobs = []
        for index, entries in exported.images.items():
            blobs.extend(turn_image_blobs(added[index].id or 0, entries))
        for message_id, old_id in exported.message_keys:
            blobs.append((MESSAGE_KEY_NAMESPACE, message_id, str(by_old_id[old_id].id).encode()))
        return ImportedParts(pages=pages, recalls=exported.recalls, blobs=blobs)

    return store.import_thread(thread_id, rows, derive)


def checked_export(data: object) -> _Exported:
    """The turns (timestamps parsed), page spans, recalls and images of an export, or a
    one-line ValueError saying what is wrong with it."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"not an exported thread: expected a dict with format {FORMAT!r}")
    if data.get("version") != VERSION:
        raise ValueError(
            f"exported thread version {_shown(data.get('version'))} is not {VERSION}: "
            "import it with the optical-memory that exported it"
        )
    raw_turns, raw_pages = data.get("turns"), data.get("pages")
    if not isinstance(raw_turns, list) or not isinstance(raw_pages, list):
        raise ValueError("an exported thread needs 'turns' and 'pages' lists")
    turns: list[dict[str, Any]] = []
    images: dict[int, list[dict[str, Any]]] = {}
    index_of: dict[int, int] = {}
    for index, turn in enumerate(raw_turns):
        if not isinstance(turn, dict):
            raise ValueError(f"turn {index} is not an object")
        turns.append(_checked_turn(index, turn, index_of))
        if turn.get("images") is not None:
            images[index] = _checked_images(index, turn["images"])
    pages = _checked_pages(raw_pages, turns, index_of)
    keys = _checked_message_keys(data, index_of)
    return _Exported(turns, pages, _checked_recalls(data, len(pages)), images, keys)


def _shown(value: object) -> str:
    """``repr`` of a value from an export, cut short (it may be huge)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value in _INT_RANGE


def _checked_turn(index: int, turn: dict[str, Any], index_of: dict[int, int]) -> dict[str, Any]:
    turn_id, role, content, stamp = (turn.get(k) for k in ("id", "role", "content", "timestamp"))
    number = turn.get("number", index + 1)
    if number != index + 1 or isinstance(number, bool):
        raise ValueError(f"turn {index} must have 'number' {index + 1}, not {_shown(number)}")
    if not _is_int(turn_id) or turn_id in index_of:
        raise ValueError(f"turn {index} needs a unique 64-bit integer 'id', not {_shown(turn_id)}")
    if index_of and turn_id < max(index_of):
        raise ValueError("exported turns must be in id order (oldest first)")
    if not isinstance(role, str) or not role.strip() or not isinstance(content, str):
        raise ValueError(f"turn {index} needs a non-empty 'role' and a 'content' string")
    if len(role) > MAX_ROLE_CHARS or not role.isprintable():
        raise ValueError(
            f"turn {index} has a role of {len(role)} characters {_shown(role)}: a role is one "
            f"line of at most {MAX_ROLE_CHARS} printable characters (a name such as 'user')"
        )
    if len(content) > MAX_TURN_CHARS:
        raise ValueError(
            f"turn {index} holds {len(content):,} characters, over the {MAX_TURN_CHARS:,} an "
            "import accepts: split it, or store it with add()"
        )
    try:
        check_turn(role, content, None)
    except (TypeError, ValueError) as error:
        raise ValueError(f"turn {index}: {error}") from None
    if stamp is not None and (not isinstance(stamp, str) or len(stamp) > 64):
        raise ValueError(f"turn {index} has a bad timestamp {_shown(stamp)}")
    try:
        timestamp = None if stamp is None else datetime.fromisoformat(stamp)
    except ValueError as error:
        raise ValueError(f"turn {index} has a bad timestamp {_shown(stamp)}: {error}") from None
    index_of[turn_id] = index
    return {"id": turn_id, "role": role, "content": content, "timestamp": timestamp}


def _checked_images(index: int, raw: object) -> list[dict[str, Any]]:
    """A turn's exported images with their bytes decoded (``data`` None for a URL)."""
    if not isinstance(raw, list) or len(raw) > MAX_TURN_IMAGES:
        raise ValueError(f"turn {index}'s 'images' must be a list of at most {MAX_TURN_IMAGES}")
    entries = []
    for number, image in enumerate(raw, start=1):
        where = f"turn {index}'s image {number}"
        if not isinstance(image, dict):
            raise ValueError(f"{where} is not an object")
        mime, url, data = image.get("mime_type"), image.get("url"), image.get("data")
        if not isinstance(mime, str) or not mime.isprintable() or len(mime) > 100:
            raise ValueError(f"{where} needs a 'mime_type' such as 'image/png'")
        if (url is None) == (data is None):
            raise ValueError(f"{where} needs either 'data' (base64) or a 'url', not both")
        if url is not None and (not isinstance(url, str) or len(url) > 100_000):
            raise ValueError(f"{where} has a bad 'url' {_shown(url)}")
        decoded = None
        if data is not None:
            if not isinstance(data, str) or len(data) > MAX_IMAGE_BYTES * 4 // 3 + 4:
                raise ValueError(f"{where} is over {MAX_IMAGE_BYTES // 2**20} MB or not base64")
            try:
                decoded = base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(f"{where} has 'data' that is not base64") from None
        for key in ("width", "height", "bytes"):
            value = image.get(key)
            if value is not None and (not _is_int(value) or value < 0):
                raise ValueError(f"{where} has a bad {key!r} {_shown(value)}")
        entries.append(
            {
                "mime_type": mime,
                "url": url,
                "width": image.get("width"),
                "height": image.get("height"),
                "bytes": image.get("bytes"),
                "data": decoded,
            }
        )
    return entries


def _checked_pages(
    raw_pages: list[Any], turns: list[dict[str, Any]], index_of: dict[int, int]
) -> list[list[tuple[int, int, int]]]:
    """Page spans that cover the turns from the first one on, each piece exactly once and in
    order (what packing writes): the pages print a prefix of the thread, the rest is text."""
    pages: list[list[tuple[int, int, int]]] = []
    at_turn, at_char = 0, 0  # where the next span must start
    for index, page in enumerate(raw_pages):
        spans = page.get("spans") if isinstance(page, dict) else None
        if not isinstance(page, dict) or page.get("seq") != index or not isinstance(spans, list):
            raise ValueError(f"page {index} needs 'seq': {index} and a 'spans' list")
        if not spans:
            raise ValueError(f"page {index} has no spans")
        checked = []
        for span in spans:
            if (
                not isinstance(span, list)
                or len(span) != 3
                or not all(_is_int(v) for v in span)
                or span[0] not in index_of
                or not 0 <= span[1] <= span[2] <= len(turns[index_of[span[0]]]["content"])
            ):
                raise ValueError(
                    f"page {index} has a span {_shown(span)} outside the exported turns"
                )
            if at_turn < len(turns) and at_char == len(turns[at_turn]["content"]) and at_char:
                at_turn, at_char = at_turn + 1, 0  # the previous turn ended on the last span
            turn_index, start, end = index_of[span[0]], span[1], span[2]
            empty_turn = not turns[turn_index]["content"]
            if (turn_index, start) != (at_turn, at_char) or (start == end and not empty_turn):
                raise ValueError(
                    f"page {index} has a span {_shown(span)} that does not continue the pages "
                    "before it: pages must print the turns in order, each piece once"
                )
            at_turn, at_char = (turn_index + 1, 0) if start == end else (turn_index, end)
            checked.append((span[0], span[1], span[2]))
        pages.append(checked)
    return pages


def _checked_message_keys(data: dict[str, Any], index_of: dict[int, int]) -> list[tuple[str, int]]:
    """The ``(message id, turn id)`` keys of an export (none when it has no list)."""
    raw = data.get("message_keys", [])
    if not isinstance(raw, list):
        raise ValueError("an exported thread's 'message_keys' must be a list")
    keys: dict[str, int] = {}
    for key in raw:
        message_id = key.get("message_id") if isinstance(key, dict) else None
        turn_id = key.get("turn_id") if isinstance(key, dict) else None
        if (
            not isinstance(message_id, str)
            or not 0 < len(message_id) <= MAX_MESSAGE_ID_CHARS
            or not message_id.isprintable()
            or message_id in keys
            or not _is_int(turn_id)
            or turn_id not in index_of
        ):
            raise ValueError(
                f"message key {_shown(key)} needs a unique 'message_id' (1 to "
                f"{MAX_MESSAGE_ID_CHARS} printable characters) and the 'turn_id' of an "
                "exported turn"
            )
        keys[message_id] = turn_id
    return list(keys.items())


def _checked_recalls(data: dict[str, Any], page_count: int) -> list[tuple[int, int]]:
    """The ``(page seq, page count)`` recalls of an export (none when it has no list)."""
    raw = data.get("recalls", [])
    if not isinstance(raw, list):
        raise ValueError("an exported thread's 'recalls' must be a list")
    recalls: dict[int, int] = {}
    for recall in raw:
        seq = recall.get("seq") if isinstance(recall, dict) else None
        count = recall.get("page_count") if isinstance(recall, dict) else None
        if (
            not _is_int(seq)
            or not _is_int(count)
            or not 0 <= seq < page_count
            or not 0 <= count <= _MAX_PAGE_COUNT
        ):
            raise ValueError(
                f"recall {_shown(recall)} needs 'seq' of an exported page and a 'page_count' "
                f"from 0 to {_MAX_PAGE_COUNT}"
            )
        recalls[seq] = count
    return sorted(recalls.items())


__all__ = [
    "FORMAT",
    "MAX_ROLE_CHARS",
    "MAX_TURN_CHARS",
    "TURN_IMAGE_NAMESPACE",
    "VERSION",
    "checked_export",
    "export_thread",
    "import_thread",
    "stored_images",
    "turn_image_blobs",
]
