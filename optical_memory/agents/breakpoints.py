"""Where the memory message's Anthropic cache breakpoint goes, call after call.

Anthropic caches a prompt prefix only where a block carries ``cache_control`` (a breakpoint),
at most 4 per request (``AnthropicPromptCachingMiddleware`` already places 3: the last tool,
the system prompt and the conversation's tail), and only a prefix of at least the model's
minimum cacheable length. A later request reads a cached prefix when its breakpoint lies on
it or at most 20 blocks after it (the lookback): a page event that appends more than 20 blocks
and moves the breakpoint to the new end would find nothing and write the whole memory again.

So the memory takes one breakpoint, on the last block of its pages (what follows, the turns not
on a page and the notes, changes per call), and :class:`BreakpointTrail` remembers, per thread,
the prefix its last breakpoint cached: when the pages sent then are still the start of the new
request but lie more than 20 blocks back, the breakpoint goes 20 blocks past them instead. That
call reads the old prefix and caches 20 blocks more; the next ones catch up the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

#: Block boundaries Anthropic looks back over, from a breakpoint, for a cached prefix.
LOOKBACK_BLOCKS = 20
#: The shortest prefix Anthropic caches, per model name prefix (the prompt-caching guide's
#: table); other models: ``DEFAULT_MIN_CACHEABLE_TOKENS``.
MIN_CACHEABLE_TOKENS: tuple[tuple[str, int], ...] = (
    ("claude-opus-4-6", 4096),
    ("claude-opus-4-5", 4096),
    ("claude-haiku-4-5", 4096),
    ("claude-3-5-haiku", 2048),
    ("claude-3-haiku", 2048),
)
DEFAULT_MIN_CACHEABLE_TOKENS = 1024
#: Seconds a cache entry lives after its last use, by ``cache_control`` ``ttl``.
TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}


def min_cacheable_tokens(model: str) -> int:
    """The shortest prefix ``model`` (e.g. ``"claude-sonnet-4-6"``) caches."""
    for prefix, tokens in MIN_CACHEABLE_TOKENS:
        if model.startswith(prefix):
            return tokens
    return DEFAULT_MIN_CACHEABLE_TOKENS


def ttl_seconds(cache_control: Mapping[str, str]) -> float:
    """How long an entry written under ``cache_control`` lives unused."""
    return TTL_SECONDS.get(cache_control.get("ttl", "5m"), TTL_SECONDS["5m"])


@dataclass(frozen=True)
class _Cached:
    keys: tuple[str, ...]
    expires: float


class BreakpointTrail:
    """One thread's last cached memory prefix, and where the next breakpoint goes."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._cached: _Cached | None = None

    def place(
        self, keys: Sequence[str], ends: Sequence[int], min_tokens: int, ttl: float
    ) -> int | None:
        """The index of the block to mark, of the memory's blocks up to its last page.

        ``keys`` name those blocks' contents (equal keys, equal bytes), ``ends[i]`` is the
        request's tokens through block ``i`` (system prompt and tools included); ``None``
        when there is nothing to mark."""
        if not keys:
            return None
        now = self.clock()
        end = len(keys) - 1
        cached = self._cached
        if cached is not None and cached.expires > now:
            known = len(cached.keys)
            if known <= len(keys) and tuple(keys[:known]) == cached.keys:
                end = min(end, known - 1 + LOOKBACK_BLOCKS)
        if ends[end] >= min_tokens:
            self._cached = _Cached(tuple(keys[: end + 1]), now + ttl)
        else:  # too short to be cached: nothing to come back to
            self._cached = None
        return end
