"""Who owns each derived blob of a store, which says what deletes it (schema version 3).

A store's ``blobs`` table keeps derived data beside the turns: encoded visual tokens of a page,
mosaics, the images that came with a turn, message keys, learnt image costs. Each row names its
owner in three columns (``owner_kind``, ``owner_thread``, ``owner_page``), so a thread's delete
and retention find exactly what they must remove, and never what belongs to a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

OwnerKind = Literal["page", "thread", "model"]


@dataclass(frozen=True)
class BlobOwner:
    """Who a derived blob belongs to, which says what deletes it.

    * ``page``: made from one page's content (``page_hash``), e.g. its encoded visual tokens
      or a mosaic (owned by its newest page); retention drops it once no page of that content
      can show at its mode again, and a thread's delete when the last thread holding that page
      goes. With ``thread_id`` it also goes with that thread.
    * ``thread``: a thread's own data (its turns' images, message keys): goes with the thread.
    * ``model``: per model, not per thread (learnt image costs): no thread's delete or retention
      reaches it, whatever its key.
    """

    kind: OwnerKind
    thread_id: str | None = None
    page_hash: str | None = None

    @classmethod
    def page(cls, content_hash: str, thread_id: str | None = None) -> BlobOwner:
        return cls("page", thread_id, content_hash)

    @classmethod
    def thread(cls, thread_id: str) -> BlobOwner:
        return cls("thread", thread_id)

    @classmethod
    def model(cls) -> BlobOwner:
        return cls("model")


#: Owners of blobs written without one, by namespace: a thread's message keys and turn images
#: are keyed by the thread id, learnt image costs by the model; any other blob by a page's
#: content hash. (Also how a version-2 store's blobs get their owners.)
#: LangChain message id -> the id of the turn it was stored as (identity: the message id).
MESSAGE_KEY_NAMESPACE = "langchain-message-id"
THREAD_NAMESPACES = ("turn-images", MESSAGE_KEY_NAMESPACE)
MODEL_NAMESPACES = ("image-costs", "legibility")


#: The owners a version-2 store's blobs get (``{s}``: the schema holding the tables). Mosaics
#: name no owner there; they are dropped (a cache: drawn again when next sent).
OWNER_BACKFILL = f"""
UPDATE {{s}}.blobs SET owner_kind = 'thread', owner_thread = content_hash, owner_page = NULL
    WHERE namespace IN ({", ".join(f"'{n}'" for n in THREAD_NAMESPACES)});
UPDATE {{s}}.blobs SET owner_kind = 'model', owner_thread = NULL, owner_page = NULL
    WHERE namespace IN ({", ".join(f"'{n}'" for n in MODEL_NAMESPACES)});
UPDATE {{s}}.blobs SET owner_kind = 'page', owner_thread = NULL, owner_page = content_hash
    WHERE owner_page IS NULL AND owner_kind = 'page';
DELETE FROM {{s}}.blobs WHERE namespace = 'mosaics'
"""


def blob_owner(namespace: str, content_hash: str, owner: BlobOwner | None) -> BlobOwner:
    """``owner``, or the owner a blob written without one gets (see :data:`THREAD_NAMESPACES`)."""
    if owner is not None:
        if not isinstance(owner, BlobOwner):
            raise TypeError(f"owner must be a BlobOwner, not {type(owner).__name__}")
        return owner
    if namespace in THREAD_NAMESPACES:
        return BlobOwner.thread(content_hash)
    if namespace in MODEL_NAMESPACES:
        return BlobOwner.model()
    return BlobOwner.page(content_hash)


__all__ = [
    "MESSAGE_KEY_NAMESPACE",
    "MODEL_NAMESPACES",
    "OWNER_BACKFILL",
    "THREAD_NAMESPACES",
    "BlobOwner",
    "OwnerKind",
    "blob_owner",
]
