"""Page images as a request sends them (base64 image blocks), kept between calls.

A page's bytes at a mode never change: its content hash, the mode and the renderer's settings
key fix them (:attr:`~optical_memory.memory.MemoryPage.image_key`; a mosaic's key is a hash of
its pages' keys). A long conversation sends hundreds of pages with every request and only a
few of them are new or shown at a new mode since the last one, so each image's base64 text and
PNG size are kept in a bounded in-process LRU cache under that key: a call reads from the store
and encodes only the images it has not seen, and the request is the same, byte for byte, as
without the cache.
"""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass
from typing import Any

from optical_memory.extras import import_extra
from optical_memory.memory import MemoryPage
from optical_memory.memory.limits import Mosaic

cachetools = import_extra("cachetools", "langchain")


@dataclass(frozen=True)
class EncodedImage:
    """One image as sent: ``base64`` (ASCII) of its ``size`` PNG bytes."""

    base64: str
    size: int


class EncodedImages:
    """An LRU cache of encoded page and mosaic images holding at most ``max_bytes`` base64
    characters (``0``: keep nothing, encode every time). Thread-safe.

    ``encoded`` counts the images read and encoded (cache misses), ``hits`` the others.
    """

    def __init__(self, max_bytes: int) -> None:
        # ``MemoryOptions.image_cache_bytes`` checked the value: it is not checked twice.
        self.max_bytes = max_bytes
        self._cache: Any = cachetools.LRUCache(
            maxsize=max_bytes, getsizeof=lambda image: len(image.base64)
        )
        self._lock = threading.Lock()
        self.encoded = 0
        self.hits = 0

    def get(self, image: MemoryPage | Mosaic) -> EncodedImage:
        """``image`` encoded: from the cache, else read (``png()``), encoded and kept."""
        key = image.image_key
        with self._lock:
            found: EncodedImage | None = self._cache.get(key)
            if found is not None:
                self.hits += 1
                return found
        png = image.png()
        found = EncodedImage(base64.b64encode(png).decode("ascii"), len(png))
        with self._lock:
            self.encoded += 1
            if len(found.base64) <= self.max_bytes:
                self._cache[key] = found  # evicts the least recently used beyond max_bytes
        return found

    def size(self, image: MemoryPage | Mosaic) -> int:
        """PNG bytes of ``image``."""
        return self.get(image).size

    def block(self, image: MemoryPage | Mosaic) -> dict[str, Any]:
        """``image`` as a v1 image block; ``extras`` name its mode and the pages it shows."""
        page_ids = image.page_ids if isinstance(image, Mosaic) else [image.page_id]
        return {
            "type": "image",
            "base64": self.get(image).base64,
            "mime_type": "image/png",
            # GUNDAM and LARGE pages are both 1280 px: the size alone cannot tell a local
            # DeepSeek-OCR how to encode the page, so the block names its mode.
            "extras": {"mode": image.mode.value, "page_ids": page_ids},
        }

    def clear(self) -> None:
        """Forget every encoded image."""
        with self._lock:
            self._cache.clear()

    @property
    def cached_bytes(self) -> int:
        """Base64 characters held now (at most ``max_bytes``)."""
        with self._lock:
            return int(self._cache.currsize)

    def __len__(self) -> int:
        with self._lock:
            return len(self._cache)
