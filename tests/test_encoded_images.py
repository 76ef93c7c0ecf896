"""Encoded page images kept between calls: the requests are the same, byte for byte, with and
without the cache, while pages freeze, change mode, are tiled into mosaics and are forgotten;
a page is re-encoded when its mode changes; the cache stays within its bound."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

pytest.importorskip("langchain")

from langchain_core.messages import BaseMessage, HumanMessage
from recording_model import RecordingChatModel

from optical_memory import DecaySchedule, Mode, OpticalMemory
from optical_memory.agents import wrap
from optical_memory.agents.runnable import OpticalMemoryRunnable
from optical_memory.targets import RequestLimits

CONFIG: Any = {"configurable": {"thread_id": "t"}}
# Pages change mode every page or two and are forgotten at age 8, and at most seven images fit
# a request: five TINY pages or more are tiled into a mosaic.
SCHEDULE = DecaySchedule(
    tiers=[(Mode.BASE, 1), (Mode.SMALL, 2), (Mode.TINY, 5)], batch=1, forget_after=8
)
LIMITS = RequestLimits(max_images=7, max_bytes=64 * 2**20)
EXCHANGES = 45


def _message(n: int) -> str:
    return f"Note {n}: the harbour master counted {n * 7} barrels of herring on pier {n % 5}. " * 9


def _converse(image_cache_bytes: int) -> tuple[OpticalMemoryRunnable, RecordingChatModel]:
    memory = OpticalMemory(None, schedule=SCHEDULE, keep_recent_turns=2)
    model = RecordingChatModel(messages=iter([_message(1000 + n) for n in range(EXCHANGES)]))
    chat = wrap(memory, model, request_limits=LIMITS, image_cache_bytes=image_cache_bytes)
    return chat, model


def _wire(request: list[BaseMessage]) -> str:
    """What a provider is sent of a request: each message's type and content."""
    return json.dumps([(m.type, m.content) for m in request], sort_keys=True)


def _images(request: list[BaseMessage]) -> list[Any]:
    return [b for b in request[0].content_blocks if b["type"] == "image"]


def test_requests_are_the_same_with_and_without_the_cache_across_page_events() -> None:
    cached, cached_model = _converse(image_cache_bytes=64 * 2**20)
    uncached, uncached_model = _converse(image_cache_bytes=0)
    page_bytes = 40_000  # base64 of a few pages: the least recently used are evicted
    bounded, bounded_model = _converse(image_cache_bytes=page_bytes)
    memory = cached.builder.memory_for("t", cached_model)
    previous: list[dict[str, Any]] = []
    sent = 0
    modes_of: dict[int, set[str]] = {}
    for n in range(EXCHANGES):
        before = cached.builder.images.encoded
        for chat in (cached, uncached, bounded):
            chat.invoke([HumanMessage(_message(n))], CONFIG)
        request = cached_model.requests[-1]
        assert _wire(request) == _wire(uncached_model.requests[-1])
        assert _wire(request) == _wire(bounded_model.requests[-1])
        assert cached.last_usage == uncached.last_usage == bounded.last_usage
        assert bounded.builder.images.cached_bytes <= page_bytes
        # Each page image sent is the page at the mode it is shown at now.
        images = _images(request)
        for block in images:
            ids, mode = block["extras"]["page_ids"], block["extras"]["mode"]
            if len(ids) == 1:
                modes_of.setdefault(ids[0], set()).add(mode)
                png = memory.page_image(ids[0], mode).png()
                assert base64.b64decode(block["base64"]) == png
        if images == previous:  # no page event: nothing read or encoded again
            assert cached.builder.images.encoded == before
        previous, sent = images, sent + len(images)
    usage = cached.last_usage
    assert usage is not None and usage.mosaics > 0 and usage.images <= LIMITS.max_images
    assert any(len(modes) >= 2 for modes in modes_of.values())  # pages did change mode
    assert cached.builder.images.encoded < sent / 3
    assert uncached.builder.images.cached_bytes == 0
    assert bounded.builder.images.encoded > cached.builder.images.encoded  # evictions


def test_the_cache_bound_is_checked() -> None:
    with pytest.raises(ValueError, match="image_cache_bytes"):
        wrap(OpticalMemory(None), RecordingChatModel(messages=iter([])), image_cache_bytes=-1)


def test_render_ahead_draws_nothing_while_held_and_catches_up_after() -> None:
    memory = OpticalMemory(None, keep_recent_turns=2, render_ahead=True)
    ahead = memory.render_ahead
    assert ahead is not None
    with ahead.hold():
        for n in range(30):
            memory.add("user", _message(n))
        time.sleep(0.3)
        assert ahead.drawn == 0
    ahead.wait()
    assert ahead.drawn > 0
    before = memory.renders
    memory.context()
    assert memory.renders == before  # the context found every page drawn
    memory.close()
