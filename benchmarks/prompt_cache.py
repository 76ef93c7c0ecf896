"""Prompt caching: what one call's input is billed, for full text, a window and optical memory.

    .venv/bin/python benchmarks/prompt_cache.py [--exchanges 100 300 3000] [--targets ...]

A conversation of the synthetic dialogue (``generate_dialogue``, repeated and numbered past its
600 turns; one exchange is a user turn and the assistant's answer) is sent to each target four
ways, one call per exchange:

- ``full text + cache``: the system prompt and every turn so far, as messages, under the
  provider's prompt cache (for Anthropic: breakpoints on the system prompt and on the last
  block, as ``AnthropicPromptCachingMiddleware`` places them);
- ``last-N window + cache``: the same with only the newest ``--window-turns`` turns: it forgets
  the rest, and its prefix moves on every call, so the cache rarely helps;
- ``optical, no cache``: the requests ``wrap(OpticalMemory(None), model, target=...)`` builds
  (pages, their captions, the recent window), every token at the uncached price;
- ``optical + cache``: those requests under the provider's cache (for Anthropic: the memory
  message's own breakpoint too, as the memory builder sets it for that target).

The cost of a call is in uncached-token equivalents: ``uncached + read * r + written * w``,
with each provider's read and write prices ``r`` and ``w`` relative to its uncached input price
(``PRICES``, each with its source). A row gives the mean over the last tenth of the calls up
to that many exchanges, at least 20 (the calls "at" that length of conversation); ``*`` marks
a request larger than the model's context window, which the provider would refuse. Calls are
assumed to come closer together than the cache TTL (an active conversation). Images are counted with
:func:`optical_memory.tokens.vision_tokens`, text with o200k (an approximation for the
non-OpenAI tokenizers), per-message overheads left out for every strategy alike.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableLambda
from PIL import Image

from optical_memory.agents import wrap
from optical_memory.agents.request import MEMORY_MESSAGE_SOURCE, message_tokens
from optical_memory.experiments.synthetic import generate_dialogue
from optical_memory.memory import OpticalMemory
from optical_memory.tokens import count_text_tokens, vision_tokens

SYSTEM_PROMPT = "You help the user plan a busy year. Answer briefly and keep track of the facts."
STRATEGIES = ("full text + cache", "last-N window + cache", "optical, no cache", "optical + cache")
LOOKBACK_BLOCKS = 20  # Anthropic checks this many block boundaries before a breakpoint


@dataclass(frozen=True)
class CachePrices:
    """A provider's prompt cache, prices relative to its uncached input price (1.0)."""

    model: str
    read: float
    """A token read from the cache."""
    write: float
    """A token written to the cache (Anthropic bills writes above the input price)."""
    min_prefix: int
    """Shorter prefixes are not cached."""
    step: int
    """A cached prefix counts ``min_prefix`` plus whole multiples of ``step`` tokens."""
    explicit: bool
    """Only prefixes ending at a breakpoint are cached (Anthropic); else every prefix is."""
    context_window: int
    source: str


PRICES: dict[str, CachePrices] = {
    "anthropic": CachePrices(
        model="claude-sonnet-4-6",
        read=0.1,
        write=1.25,
        min_prefix=1024,
        step=1,
        explicit=True,
        context_window=200_000,
        source="https://platform.claude.com/docs/en/build-with-claude/prompt-caching "
        "(5-minute cache writes 1.25x base input, cache hits 0.1x; 1,024-token minimum for "
        "Sonnet; up to 4 breakpoints, 20-block lookback)",
    ),
    "openai": CachePrices(
        model="gpt-4.1",
        read=0.25,
        write=1.0,
        min_prefix=1024,
        step=128,
        explicit=False,
        context_window=1_047_576,
        source="https://openai.com/api/pricing/ (gpt-4.1: input $2.00, cached input $0.50 per "
        "1M tokens); https://openai.com/index/api-prompt-caching/ (automatic from 1,024 "
        "tokens, in 128-token increments, no write charge)",
    ),
    "gemini": CachePrices(
        model="gemini-2.5-flash",
        read=0.1,
        write=1.0,
        min_prefix=2048,
        step=1,
        explicit=False,
        context_window=1_048_576,
        source="https://ai.google.dev/gemini-api/docs/caching (implicit caching, 2,048-token "
        "minimum for 2.5 Flash); https://cloud.google.com/vertex-ai/generative-ai/docs/"
        "context-cache/context-cache-overview (90% discount on implicit hits, no storage cost)",
    ),
    "deepseek-ocr": CachePrices(
        model="DeepSeek-OCR on vLLM --enable-prefix-caching --max-model-len 8192",
        read=0.0,
        write=1.0,
        min_prefix=16,
        step=16,
        explicit=False,
        context_window=8192,
        source="https://docs.vllm.ai/en/latest/design/prefix_caching.html (hashed 16-token "
        "KV blocks; a hit skips the prefill, and the vision encoder, of those tokens: no "
        "compute, the blocks stay in GPU memory until evicted)",
    ),
    "qwen2.5-vl": CachePrices(
        model="Qwen2.5-VL on vLLM (prefix caching on by default)",
        read=0.0,
        write=1.0,
        min_prefix=16,
        step=16,
        explicit=False,
        context_window=32_768,
        source="https://docs.vllm.ai/en/latest/design/prefix_caching.html",
    ),
}


# --- requests as blocks ----------------------------------------------------------------------


@dataclass
class Request:
    """One call's prompt as blocks: the running digest and token total through each block."""

    digests: list[bytes] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    breakpoints: list[int] = field(default_factory=list)
    """Blocks that carry an Anthropic breakpoint (indices into ``digests``)."""

    def add(self, key: bytes, tokens: int, *, breakpoint: bool = False) -> None:
        running = hashlib.sha256((self.digests[-1] if self.digests else b"") + key).digest()
        self.digests.append(running)
        self.ends.append((self.ends[-1] if self.ends else 0) + tokens)
        if breakpoint:
            self.breakpoints.append(len(self.digests) - 1)

    @property
    def tokens(self) -> int:
        return self.ends[-1] if self.ends else 0


@dataclass(frozen=True)
class Bill:
    uncached: int
    read: int
    written: int

    def cost(self, prices: CachePrices) -> float:
        return self.uncached + self.read * prices.read + self.written * prices.write


class PrefixCache:
    """A provider's prompt cache over a sequence of requests (no expiry: calls within TTL)."""

    def __init__(self, prices: CachePrices) -> None:
        self.prices = prices
        self.seen: set[bytes] = set()

    def bill(self, request: Request) -> Bill:
        if self.prices.explicit:
            return self._explicit(request)
        return self._automatic(request)

    def _explicit(self, request: Request) -> Bill:
        ends, digests, minimum = request.ends, request.digests, self.prices.min_prefix
        read_end = -1
        for point in request.breakpoints:
            for i in range(point, max(-1, point - LOOKBACK_BLOCKS - 1), -1):
                if digests[i] in self.seen:
                    read_end = max(read_end, i)
                    break
        written_end = read_end
        for point in request.breakpoints:
            if ends[point] >= minimum:
                self.seen.add(digests[point])
                written_end = max(written_end, point)
        read = ends[read_end] if read_end >= 0 else 0
        written = ends[written_end] - read if written_end > read_end else 0
        return Bill(request.tokens - read - written, read, written)

    def _automatic(self, request: Request) -> Bill:
        # Every prefix of a request is cached, so the cached set is closed under prefixes and
        # the longest cached prefix is found by bisection.
        low, high = 0, len(request.digests)  # blocks [0, low) are cached
        while low < high:
            middle = (low + high + 1) // 2
            if request.digests[middle - 1] in self.seen:
                low = middle
            else:
                high = middle - 1
        self.seen.update(request.digests[low:])
        matched = request.ends[low - 1] if low else 0
        prices = self.prices
        if matched < prices.min_prefix:
            return Bill(request.tokens, 0, 0)
        read = prices.min_prefix + (matched - prices.min_prefix) // prices.step * prices.step
        return Bill(request.tokens - read, read, 0)


# --- the four ways to send a conversation ----------------------------------------------------


def _turn_key(role: str, content: str) -> bytes:
    return json.dumps([role, content]).encode()


def text_requests(
    turns: Sequence[tuple[str, str]], calls: Sequence[int], window_turns: int | None
) -> Iterator[tuple[int, Request]]:
    """Call ``k`` (1-based) of each of ``calls``: the system prompt and turns ``[0, 2k - 1)``
    (``window_turns``: only the newest of them), breakpoints on the system prompt and the last
    block."""
    system = Request()
    system.add(_turn_key("system", SYSTEM_PROMPT), count_text_tokens(SYSTEM_PROMPT))
    chain = Request(list(system.digests), list(system.ends))  # full text: one running chain
    for k in calls:
        end = 2 * k - 1
        while len(chain.digests) <= end:
            role, content = turns[len(chain.digests) - 1]
            chain.add(_turn_key(role, content), count_text_tokens(content))
        if window_turns is None:
            request = Request(chain.digests[: end + 1], chain.ends[: end + 1], [0, end])
        else:
            request = Request(list(system.digests), list(system.ends), [0])
            for i in range(max(0, end - window_turns), end):
                request.add(_turn_key(*turns[i]), chain.ends[i + 1] - chain.ends[i])
            request.breakpoints.append(len(request.digests) - 1)
        yield k, request


def optical_requests(
    turns: Sequence[tuple[str, str]], calls: Sequence[int], target: str
) -> Iterator[tuple[int, Request]]:
    """The requests ``wrap(OpticalMemory(None), model, target=target)`` sends at each of
    ``calls`` (1-based exchange numbers), with the memory builder's own breakpoint and one on
    the last block. Exchanges in between are stored without building a request."""
    sent: list[list[BaseMessage]] = []
    wanted = set(calls)
    answers = (content for role, content in turns if role == "assistant")

    def model(messages: list[BaseMessage]) -> AIMessage:
        sent.append(messages)
        return AIMessage(next(answers))

    tokens_of: dict[tuple[Any, ...], int] = {}
    with OpticalMemory(None, thread_id="prompt-cache") as memory:
        chat = wrap(memory, RunnableLambda(model), target=target)
        history: list[BaseMessage] = [SystemMessage(SYSTEM_PROMPT)]
        for k in range(1, max(calls) + 1):
            question = HumanMessage(turns[2 * k - 2][1])
            history.append(question)
            if k in wanted:
                history.append(chat.invoke(history))
                yield k, _as_request(sent.pop(), target, tokens_of)
            else:
                answer = AIMessage(next(answers))
                history.append(answer)
                chat.builder.remember(None, [question, answer])


def _as_request(
    messages: list[BaseMessage], target: str, tokens_of: dict[tuple[Any, ...], int]
) -> Request:
    request = Request()
    for n, message in enumerate(messages):
        if message.additional_kwargs.get("lc_source") != MEMORY_MESSAGE_SOURCE:
            key = _turn_key(message.type, message.text)
            if isinstance(message, AIMessage) and message.tool_calls:
                key += json.dumps(message.tool_calls, sort_keys=True, default=str).encode()
            marked = n == len(messages) - 1 or isinstance(message, SystemMessage)
            request.add(key, message_tokens(message), breakpoint=marked)
            continue
        blocks: list[dict[str, Any]] = [dict(block) for block in message.content_blocks]
        for block in blocks:
            # An image is keyed by its mode and a hash of its PNG (a request can carry tens
            # of MB of them); a text block by its text.
            if block["type"] == "image":
                data = str(block["base64"])
                mode = block.get("extras", {}).get("mode")
                identity: tuple[Any, ...] = ("image", mode, len(data), hash(data))
            else:
                identity = ("text", block["text"])
            if identity not in tokens_of:
                tokens_of[identity] = _block_tokens(block, target)
            key = repr(identity).encode()
            request.add(key, tokens_of[identity], breakpoint="cache_control" in block)
    return request


def _block_tokens(block: Any, target: str) -> int:
    if block["type"] == "text":
        return count_text_tokens(block["text"])
    image = Image.open(io.BytesIO(base64.b64decode(block["base64"])))
    return vision_tokens(*image.size, target, block.get("extras", {}).get("mode"))


# --- the table ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CostRow:
    target: str
    exchanges: int
    strategy: str
    cost: float
    """Mean billed input per call, in uncached-token equivalents."""
    tokens: float
    """Mean input tokens per call (what it costs with no cache)."""
    read_share: float
    """Share of those tokens read from the cache."""
    over_context: bool
    """The call at ``exchanges`` is larger than the model's context window."""


def conversation(turns: int, *, seed: int = 0) -> list[tuple[str, str]]:
    """``turns`` turns of the synthetic dialogue, its 600 turns repeated as often as needed,
    each turn numbered (as ``benchmarks/memory_scale.py`` does), so no two are equal."""
    dialogue = generate_dialogue(600, seed=seed).turns
    return [
        (dialogue[i % len(dialogue)][0], f"[{i + 1}] {dialogue[i % len(dialogue)][1]}")
        for i in range(turns)
    ]


def measured_calls(exchanges: Sequence[int]) -> dict[int, range]:
    """The calls each length is read at: the last tenth (at least 20 calls) up to it."""
    return {n: range(max(1, n - max(20, n // 10)) + 1, n + 1) for n in exchanges}


def cost_table(
    exchanges: Sequence[int] = (100, 300, 3000),
    targets: Sequence[str] = tuple(PRICES),
    *,
    window_turns: int = 20,
    seed: int = 0,
) -> list[CostRow]:
    """Rows for every target, conversation length and strategy (``STRATEGIES``).

    Each length ``n`` is read at the calls of :func:`measured_calls`; the call before them is
    sent first to warm the cache (the conversation is stored up to there, not sent, which
    keeps 3,000 exchanges to minutes). A cache hit in practice is on the previous call's
    prefix, so the warm-up stands for the calls left out.
    """
    unknown = [t for t in targets if t not in PRICES]
    if unknown:
        raise ValueError(f"no cache prices for {unknown}: choose from {', '.join(PRICES)}")
    if not exchanges or min(exchanges) < 1:
        raise ValueError(f"exchanges must be positive counts, not {list(exchanges)}")
    windows = measured_calls(exchanges)
    calls = sorted({k for window in windows.values() for k in (window.start - 1, *window)} - {0})
    turns = conversation(2 * max(exchanges), seed=seed)
    rows = []
    for target in targets:
        prices = PRICES[target]
        runs = {
            "full text + cache": text_requests(turns, calls, None),
            "last-N window + cache": text_requests(turns, calls, window_turns),
            "optical + cache": optical_requests(turns, calls, target),
        }
        bills: dict[str, dict[int, tuple[Bill, int]]] = {}
        for strategy, requests in runs.items():
            cache = PrefixCache(prices)
            bills[strategy] = {k: (cache.bill(r), r.tokens) for k, r in requests}
        bills["optical, no cache"] = {
            k: (Bill(tokens, 0, 0), tokens) for k, (_, tokens) in bills["optical + cache"].items()
        }
        for n, window in windows.items():
            for strategy in STRATEGIES:
                measured = [bills[strategy][k] for k in window]
                total = sum(tokens for _, tokens in measured)
                rows.append(
                    CostRow(
                        target=target,
                        exchanges=n,
                        strategy=strategy,
                        cost=sum(bill.cost(prices) for bill, _ in measured) / len(measured),
                        tokens=total / len(measured),
                        read_share=sum(bill.read for bill, _ in measured) / max(1, total),
                        over_context=measured[-1][1] > prices.context_window,
                    )
                )
    return rows


def format_table(rows: Sequence[CostRow]) -> str:
    """Per target and length: each strategy's cost per call, and optical + cache against full
    text + cache (below 1.00: optical memory is cheaper)."""
    lines = [
        f"{'target':<13}{'exchanges':>10}"
        + "".join(f"{s:>24}" for s in STRATEGIES)
        + f"{'optical+cache / text+cache':>28}"
    ]
    cells: dict[tuple[str, int], dict[str, CostRow]] = {}
    for row in rows:
        cells.setdefault((row.target, row.exchanges), {})[row.strategy] = row
    for (target, n), by_strategy in cells.items():
        line = f"{target:<13}{n:>10,}"
        for strategy in STRATEGIES:
            row = by_strategy[strategy]
            mark = "*" if row.over_context else " "
            line += f"{row.cost:>14,.0f}{mark} ({row.read_share:>4.0%})"
        ratio = by_strategy["optical + cache"].cost / by_strategy["full text + cache"].cost
        line += f"{ratio:>28.2f}"
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exchanges", type=int, nargs="+", default=[100, 300, 3000])
    parser.add_argument("--targets", nargs="+", default=list(PRICES), choices=list(PRICES))
    parser.add_argument("--window-turns", type=int, default=20)
    args = parser.parse_args(argv)
    rows = cost_table(args.exchanges, args.targets, window_turns=args.window_turns)
    print("Billed input per call, in uncached-token equivalents (share read from the cache);")
    print(f"mean over the last tenth of the calls; last-N window: {args.window_turns} turns;")
    print("* the request exceeds the model's context window.\n")
    print(format_table(rows))
    print()
    for target in args.targets:
        prices = PRICES[target]
        print(
            f"{target}: {prices.model}: read {prices.read}, write {prices.write}; {prices.source}"
        )
    cheaper = [
        (row.target, row.exchanges)
        for row in rows
        if row.strategy == "optical + cache"
        and row.cost
        >= next(
            r.cost
            for r in rows
            if (r.target, r.exchanges, r.strategy)
            == (row.target, row.exchanges, "full text + cache")
        )
    ]
    if cheaper:
        print("\nOptical memory with caching is NOT cheaper than cached full text for: ", end="")
        print(", ".join(f"{t} at {n:,} exchanges" for t, n in cheaper))
    return 0


if __name__ == "__main__":
    sys.exit(main())
