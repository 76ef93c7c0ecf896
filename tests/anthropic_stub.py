"""A local Anthropic Messages API with prompt caching as the API documents it (tests only).

Not a test module: the prompt-cache tests import it. ``AnthropicStub`` is a real HTTP server on
127.0.0.1 (stdlib ``http.server`` in a thread) answering ``POST /v1/messages`` in the API's
shape, so ``langchain-anthropic``'s ``ChatAnthropic`` talks to it as it talks to the API.

Caching follows Anthropic's prompt-caching guide
(https://platform.claude.com/docs/en/build-with-claude/prompt-caching):

- the prompt is the sequence of blocks ``tools``, ``system``, ``messages``, in that order;
- a block with ``cache_control`` is a breakpoint, and a top-level ``cache_control`` puts one on
  the last block (automatic caching); more than 4 breakpoints is a 400 error;
- a breakpoint's prefix (everything up to and including its block, byte for byte) that was
  written before and has not expired is read: ``cache_read_input_tokens``; the lookup also
  tries the 20 block boundaries before each breakpoint; a read refreshes the entry's TTL;
- what lies between the longest hit and the last breakpoint is written:
  ``cache_creation_input_tokens``; a prefix under the model's minimum cacheable length (the
  guide's table: 4,096 tokens for Claude Opus 4.6 and 4.5 and Haiku 4.5, 2,048 for Haiku 3.5
  and 3, 1,024 for the Sonnet models and the older Opus) is neither read nor written;
- TTL ``"5m"`` (the default) or ``"1h"``; ``input_tokens`` is the rest, after the last
  breakpoint.

Tokens are the stub's own count, none of the library's: text in tiktoken's o200k_base (Anthropic
publishes no tokenizer; GPT-4o's encoding stands in for Claude's), images by the vision guide's
rule (https://platform.claude.com/docs/en/build-with-claude/vision): an image whose long edge is
over 1,568 px or that would cost over about 1,600 tokens is first scaled down, keeping its aspect
ratio, to fit both; then it costs width x height / 750 tokens.
``clock`` (seconds) can be replaced to test expiry; ``calls`` records every request.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from http_stub import send_json
from openai_encoding import text_tokens
from PIL import Image

MAX_BREAKPOINTS = 4
LOOKBACK_BLOCKS = 20
TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
#: Minimum cacheable prompt length by model, from the prompt-caching guide.
MINIMUM_BY_MODEL = {
    "claude-opus-4-6": 4096,
    "claude-opus-4-5": 4096,
    "claude-haiku-4-5": 4096,
    "claude-3-5-haiku": 2048,
    "claude-3-haiku": 2048,
}
DEFAULT_MINIMUM = 1024
#: The vision guide's limits before an image is scaled down, and its pixels per token.
MAX_LONG_EDGE = 1568
MAX_IMAGE_TOKENS = 1600
PIXELS_PER_TOKEN = 750


def image_tokens(width: int, height: int) -> int:
    """What Claude bills for one ``width x height`` image, as the vision guide documents it
    (scaled down to whole pixels within both limits, then width x height / 750, rounded up)."""
    scale = min(
        1.0,
        MAX_LONG_EDGE / max(width, height),
        math.sqrt(MAX_IMAGE_TOKENS * PIXELS_PER_TOKEN / (width * height)),
    )
    scaled_width, scaled_height = math.floor(width * scale), math.floor(height * scale)
    return math.ceil(scaled_width * scaled_height / PIXELS_PER_TOKEN)


def minimum_for(model: str) -> int:
    """The guide's minimum for ``model`` (its dated ids, e.g. ``...-20251001``, too)."""
    for name, tokens in MINIMUM_BY_MODEL.items():
        if model == name or model.startswith(name + "-"):
            return tokens
    return DEFAULT_MINIMUM


@dataclass
class StubCall:
    """One request as the stub saw it, and what it billed."""

    body: dict[str, Any]
    block_tokens: list[int]
    """Tokens of each block of the prompt, in the order tools, system, messages."""
    breakpoints: list[int]
    """Indices (into ``block_tokens``) of the blocks that end a breakpoint."""
    usage: dict[str, int]
    digests: list[str]
    """What the cache keys the prompt through each block by (``cache_control`` left out)."""

    def prefix_tokens(self, block: int) -> int:
        """Tokens of the prompt up to and including block ``block``."""
        return sum(self.block_tokens[: block + 1])

    def shared_tokens(self, earlier: StubCall) -> int:
        """Tokens of this prompt's longest block prefix that ``earlier``'s prompt starts with."""
        same = 0
        for mine, theirs in zip(self.digests, earlier.digests, strict=False):
            if mine != theirs:
                break
            same += 1
        return self.prefix_tokens(same - 1) if same else 0


@dataclass
class AnthropicStub:
    """``with AnthropicStub() as stub: ChatAnthropic(base_url=stub.url, ...)``.

    ``replies`` holds the answers to give, each a list of content blocks (``{"type": "text",
    ...}`` or ``{"type": "tool_use", ...}``); when it is empty the stub answers ``"ok"``.
    """

    min_cacheable_tokens: int | None = None
    """Overrides the model's minimum (None: the guide's table, :func:`minimum_for`)."""
    clock: Callable[[], float] = time.monotonic
    replies: deque[list[dict[str, Any]]] = field(default_factory=deque)
    calls: list[StubCall] = field(default_factory=list)
    _cache: dict[str, tuple[float, float]] = field(default_factory=dict)  # digest: expiry, ttl
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- the server ----------------------------------------------------------------------------

    def __enter__(self) -> AnthropicStub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path.split("?")[0] != "/v1/messages":
                    return self._reply(404, _error("not_found_error", f"no route {self.path}"))
                try:
                    status, reply = 200, stub.answer(body)
                except ValueError as error:
                    status, reply = 400, _error("invalid_request_error", str(error))
                self._reply(status, reply)

            def _reply(self, status: int, payload: dict[str, Any]) -> None:
                send_json(self, status, payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # --- the API -------------------------------------------------------------------------------

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        """The API's reply to ``body``; raises ValueError for what the API refuses (400)."""
        blocks = _prompt_blocks(body)
        if not any(block[0] == "message" for block in blocks):
            raise ValueError("messages: at least one message is required")
        breakpoints = [i for i, (_, block) in enumerate(blocks) if "cache_control" in block]
        top = body.get("cache_control")
        if top is not None and (not breakpoints or breakpoints[-1] != len(blocks) - 1):
            breakpoints.append(len(blocks) - 1)
        if len(breakpoints) > MAX_BREAKPOINTS:
            raise ValueError(
                f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
                f"Found {len(breakpoints)}."
            )
        ttls = [_ttl(blocks[i][1].get("cache_control") or top) for i in breakpoints]
        tokens = [_block_tokens(kind, block) for kind, block in blocks]
        digests = _prefix_digests(str(body.get("model")), blocks)
        ends = [sum(tokens[: i + 1]) for i in range(len(tokens))]
        minimum = self.min_cacheable_tokens or minimum_for(str(body.get("model")))
        with self._lock:
            usage = self._bill(breakpoints, ttls, digests, ends, minimum)
            reply = self.replies.popleft() if self.replies else [{"type": "text", "text": "ok"}]
        self.calls.append(StubCall(body, tokens, breakpoints, usage, digests))
        stop = "tool_use" if any(block["type"] == "tool_use" for block in reply) else "end_turn"
        return {
            "id": f"msg_stub_{len(self.calls)}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model"),
            "content": reply,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {**usage, "output_tokens": 1},
        }

    def _bill(
        self,
        breakpoints: list[int],
        ttls: list[float],
        digests: list[str],
        ends: list[int],
        minimum: int,
    ) -> dict[str, int]:
        now = self.clock()
        live = {digest for digest, (expiry, _) in self._cache.items() if expiry > now}
        read_end = -1  # the last block of the longest prefix read from the cache
        for point in breakpoints:
            for i in range(point, max(-1, point - LOOKBACK_BLOCKS - 1), -1):
                if digests[i] in live and ends[i] >= minimum:
                    read_end = max(read_end, i)
                    break
        read = ends[read_end] if read_end >= 0 else 0
        if read_end >= 0:  # a read refreshes the entry for its own TTL
            ttl = self._cache[digests[read_end]][1]
            self._cache[digests[read_end]] = (now + ttl, ttl)
        written_end = read_end
        for point, ttl in zip(breakpoints, ttls, strict=True):
            if ends[point] >= minimum:
                if point > read_end or digests[point] not in live:
                    self._cache[digests[point]] = (now + ttl, ttl)
                written_end = max(written_end, point)
        write = ends[written_end] - read if written_end > read_end else 0
        return {
            "input_tokens": ends[-1] - read - write,
            "cache_read_input_tokens": read,
            "cache_creation_input_tokens": write,
        }


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


def _ttl(cache_control: Any) -> float:
    if not isinstance(cache_control, dict) or cache_control.get("type") != "ephemeral":
        raise ValueError(f"cache_control must be {{'type': 'ephemeral'}}, not {cache_control!r}")
    ttl = cache_control.get("ttl", "5m")
    if ttl not in TTL_SECONDS:
        raise ValueError(f"cache_control.ttl must be '5m' or '1h', not {ttl!r}")
    return TTL_SECONDS[ttl]


def _prompt_blocks(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The prompt as (kind, block) in cache order: tools, system, then each message's blocks
    (a message's role is part of each of its blocks, as a role change changes the prompt)."""
    blocks: list[tuple[str, dict[str, Any]]] = [("tool", tool) for tool in body.get("tools", [])]
    system = body.get("system") or []
    for block in [{"type": "text", "text": system}] if isinstance(system, str) else system:
        blocks.append(("system", block))
    for message in body.get("messages", []):
        content = message["content"]
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        for block in content:
            blocks.append(("message", {**block, "_role": message["role"]}))
    return blocks


def _prefix_digests(model: str, blocks: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """SHA-256 of the prompt up to each block, ``cache_control`` left out (it marks, it is not
    content); the model is part of the key, as caches are per model."""
    running = hashlib.sha256(model.encode())
    digests = []
    for kind, block in blocks:
        content = {key: value for key, value in block.items() if key != "cache_control"}
        running.update(json.dumps([kind, content], sort_keys=True).encode())
        digests.append(running.copy().hexdigest())
    return digests


def _block_tokens(kind: str, block: dict[str, Any]) -> int:
    if kind == "tool":
        return text_tokens(json.dumps(block, sort_keys=True))
    kind = block.get("type", "")
    if kind == "text":
        return text_tokens(block["text"])
    if kind == "image":
        source = block["source"]
        if source.get("type") != "base64":
            raise ValueError("the stub takes base64 images only")
        image = Image.open(io.BytesIO(base64.b64decode(source["data"])))
        return image_tokens(*image.size)
    if kind == "tool_use":
        return text_tokens(json.dumps([block["name"], block["input"]], sort_keys=True))
    if kind == "tool_result":
        content = block.get("content", "")
        if isinstance(content, list):
            return sum(_block_tokens("message", part) for part in content)
        return text_tokens(str(content))
    raise ValueError(f"the stub does not price {kind!r} blocks")
