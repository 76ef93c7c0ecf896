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
:func:`with_memory_breakpoint` puts it there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage

#: The breakpoint an ``anthropic`` target gets after the memory message: Anthropic's
#: ``cache_control`` with its default 5-minute TTL (``{"type": "ephemeral", "ttl": "1h"}``
#: keeps it an hour at a higher write price).
ANTHROPIC_BREAKPOINT: dict[str, str] = {"type": "ephemeral"}

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


@dataclass(frozen=True)
class Cacheable:
    """The memory message's blocks up to its last page: what fixes each one's bytes, and the
    request's tokens through it (system prompt and tools first)."""

    keys: list[str]
    ends: list[int]


def breakpoint_for(
    cache_control: Mapping[str, str] | Literal["auto"] | None, target: str
) -> dict[str, str] | None:
    """The ``cache_control`` the memory message ends with for ``target``, if any: ``"auto"``
    gives :data:`ANTHROPIC_BREAKPOINT` to the ``anthropic`` target only."""
    if cache_control == "auto":
        return dict(ANTHROPIC_BREAKPOINT) if target == "anthropic" else None
    return None if cache_control is None else dict(cache_control)


def with_memory_breakpoint(
    message: BaseMessage,
    cache_control: Mapping[str, str],
    cacheable: Cacheable,
    trail: BreakpointTrail,
    model: str,
) -> BaseMessage:
    """The memory ``message`` with ``cache_control`` on the page block ``trail`` picks for
    ``model``; ``message`` itself when it has no page block."""
    at = trail.place(
        cacheable.keys, cacheable.ends, min_cacheable_tokens(model), ttl_seconds(cache_control)
    )
    return message if at is None else with_cache_breakpoint(message, cache_control, at)


def with_cache_breakpoint(
    message: BaseMessage, cache_control: Mapping[str, str], at: int = -1
) -> BaseMessage:
    """A copy of ``message`` whose content block ``at`` (default: the last) carries
    ``cache_control``.

    For Anthropic's prompt cache that block ends a breakpoint: the request up to it (tools,
    system prompt, this message's blocks so far) is cached and read back at a tenth of the
    input price while it stays byte-identical. ``langchain-anthropic`` sends the key as it is,
    on text and image blocks alike; other providers' converters do not know it, so only
    Anthropic targets get it.
    """
    blocks = [dict(block) for block in message.content_blocks]
    if not blocks:
        raise ValueError("the message has no content block to carry a cache breakpoint")
    blocks[at]["cache_control"] = dict(cache_control)
    return message.model_copy(update={"content": blocks})
