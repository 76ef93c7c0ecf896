"""Prompt caching: what one call's input is billed, for full text, a window, LangChain's
summaries and optical memory, without and with a token budget.

    .venv/bin/python benchmarks/prompt_cache.py [--exchanges 100 300] [--targets ...]
        [--budget 8000] [--results docs/results/prompt_cache.md]

A conversation of the synthetic dialogue (``generate_dialogue``, repeated and numbered past its
600 turns; one exchange is a user turn and the assistant's answer) is sent to each target these
ways, one call per exchange, each without a budget and within ``--budget`` tokens:

- ``full text + cache``: the system prompt and every turn so far, as messages, under the
  provider's prompt cache (for Anthropic: breakpoints on the system prompt and on the last
  block, as ``AnthropicPromptCachingMiddleware`` places them); within a budget, the newest
  turns that fit;
- ``last-N window + cache``: the same with only the newest ``--window-turns`` turns: it forgets
  the rest, and its prefix moves on every call, so the cache rarely helps;
- ``summary + cache``: LangChain's ``SummarizationMiddleware`` with its defaults (keeps the
  newest 20 messages, summarizes at most 4,000 tokens), triggered at 80% of the model's
  context window, or at the budget; the summarizer is a stub that answers
  ``SUMMARY_TOKENS`` tokens, and each summary call is billed too (its input uncached, its
  output counted as input tokens: an under-estimate, as output costs more), spread over the
  calls so far;
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
:func:`optical_memory.targets.vision_tokens`, text with o200k (an approximation for the
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
from pathlib import Path
from typing import Any

from langchain.agents.middleware import SummarizationMiddleware
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
)
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import RunnableLambda
from PIL import Image
from pydantic import Field

from optical_memory.agents import wrap
from optical_memory.agents.window import MEMORY_MESSAGE_SOURCE, message_tokens
from optical_memory.experiments.results_file import benchmark_command, write_results
from optical_memory.experiments.synthetic import generate_dialogue
from optical_memory.legibility import page_legibility
from optical_memory.memory import OpticalMemory, RequestOverhead
from optical_memory.targets import vision_tokens
from optical_memory.tokens import count_text_tokens

SYSTEM_PROMPT = "You help the user plan a busy year. Answer briefly and keep track of the facts."
STRATEGIES = (
    "full text + cache",
    "last-N window + cache",
    "summary + cache",
    "optical, no cache",
    "optical + cache",
)
#: What the stub summarizer answers, in tokens.
SUMMARY_TOKENS = 400
#: ``SummarizationMiddleware``'s trigger without a budget: this share of the context window.
SUMMARY_TRIGGER_FRACTION = 0.8
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
    turns: Sequence[tuple[str, str]],
    calls: Sequence[int],
    window_turns: int | None,
    budget: int | None = None,
) -> Iterator[tuple[int, Request]]:
    """Call ``k`` (1-based) of each of ``calls``: the system prompt and turns ``[0, 2k - 1)``
    (``window_turns``: only the newest of them; ``budget``: only the newest that fit it),
    breakpoints on the system prompt and the last block."""
    system = Request()
    system.add(_turn_key("system", SYSTEM_PROMPT), count_text_tokens(SYSTEM_PROMPT))
    chain = Request(list(system.digests), list(system.ends))  # full text: one running chain
    for k in calls:
        end = 2 * k - 1
        while len(chain.digests) <= end:
            role, content = turns[len(chain.digests) - 1]
            chain.add(_turn_key(role, content), count_text_tokens(content))
        first = 0 if window_turns is None else max(0, end - window_turns)
        if budget is not None:  # the newest turns that fit, at least the newest one
            while first < end - 1 and system.tokens + chain.ends[end] - chain.ends[first] > budget:
                first += 1
        if first == 0:
            request = Request(chain.digests[: end + 1], chain.ends[: end + 1], [0, end])
        else:
            request = Request(list(system.digests), list(system.ends), [0])
            for i in range(first, end):
                request.add(_turn_key(*turns[i]), chain.ends[i + 1] - chain.ends[i])
            request.breakpoints.append(len(request.digests) - 1)
        yield k, request


class StubSummarizer(BaseChatModel):
    """Answers every summary request with the same ``SUMMARY_TOKENS``-token text, and records
    the input tokens of each request (they are billed)."""

    inputs: list[int] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "stub-summarizer"

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self.inputs.append(sum(count_text_tokens(m.text) for m in messages))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(SUMMARY_TEXT))])


def _summary_text(tokens: int) -> str:
    sentence = "The user is planning a busy year; the facts stated so far are these. "
    text = ""
    while count_text_tokens(text) < tokens:
        text += sentence
    return text


SUMMARY_TEXT = _summary_text(SUMMARY_TOKENS)


def summary_requests(
    turns: Sequence[tuple[str, str]],
    calls: Sequence[int],
    trigger: int,
    tokens_of: dict[tuple[Any, ...], int],
) -> Iterator[tuple[int, Request, int]]:
    """Call ``k`` of each of ``calls`` as LangChain's ``SummarizationMiddleware`` (defaults,
    triggered at ``trigger`` tokens) leaves it, and the tokens billed for summaries so far
    (input and output). Every exchange is run: a summary depends on all that came before."""
    summarizer = StubSummarizer()
    middleware = SummarizationMiddleware(summarizer, trigger=("tokens", trigger))
    wanted = set(calls)
    messages: list[AnyMessage] = []
    for k in range(1, max(calls) + 1):
        messages.append(HumanMessage(turns[2 * k - 2][1]))
        update = middleware.before_model({"messages": messages}, None)  # type: ignore[arg-type]
        if update is not None:
            messages = [m for m in update["messages"] if not isinstance(m, RemoveMessage)]
        if k in wanted:
            billed = sum(summarizer.inputs) + SUMMARY_TOKENS * len(summarizer.inputs)
            request = _as_request([SystemMessage(SYSTEM_PROMPT), *messages], "", tokens_of)
            yield k, request, billed
        messages.append(AIMessage(turns[2 * k - 1][1]))


def optical_requests(
    turns: Sequence[tuple[str, str]],
    calls: Sequence[int],
    target: str,
    budget: int | None = None,
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
        chat = wrap(memory, RunnableLambda(model), target=target, budget_tokens=budget)
        config: Any = {"configurable": {"thread_id": memory.thread_id}}
        history: list[BaseMessage] = [SystemMessage(SYSTEM_PROMPT)]
        for k in range(1, max(calls) + 1):
            question = HumanMessage(turns[2 * k - 2][1])
            history.append(question)
            if k in wanted:
                history.append(chat.invoke(history, config))
                yield k, _as_request(sent.pop(), target, tokens_of)
            else:
                answer = AIMessage(next(answers))
                history.append(answer)
                chat.builder.remember(memory.thread_id, [question, answer])


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
    budget: int | None
    """The request budget in tokens (None: no budget)."""
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
    exchanges: Sequence[int] = (100, 300),
    targets: Sequence[str] = tuple(PRICES),
    *,
    budgets: Sequence[int | None] = (None,),
    window_turns: int = 20,
    seed: int = 0,
) -> list[CostRow]:
    """Rows for every target, budget, conversation length and strategy (``STRATEGIES``).

    Each length ``n`` is read at the calls of :func:`measured_calls`; the call before them is
    sent first to warm the cache (the conversation is stored up to there, not sent, which
    keeps 3,000 exchanges to minutes; the summaries need every call and are made for every
    one). A cache hit in practice is on the previous call's prefix, so the warm-up stands for
    the calls left out. Summary calls are spread over all the calls up to ``n``.
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
    # The summaries' requests are text alone: the same for every target with one trigger.
    summary_runs: dict[int, list[tuple[int, Request, int]]] = {}
    for target in targets:
        prices = PRICES[target]
        for budget in budgets:
            tokens_of: dict[tuple[Any, ...], int] = {}
            trigger = budget or int(prices.context_window * SUMMARY_TRIGGER_FRACTION)
            if trigger not in summary_runs:
                summary_runs[trigger] = list(summary_requests(turns, calls, trigger, tokens_of))
            summaries = summary_runs[trigger]
            summary_billed = {k: billed for k, _, billed in summaries}
            runs: dict[str, Iterator[tuple[int, Request]]] = {
                "full text + cache": text_requests(turns, calls, None, budget),
                "last-N window + cache": text_requests(turns, calls, window_turns),
                "summary + cache": iter([(k, r) for k, r, _ in summaries]),
                "optical + cache": optical_requests(turns, calls, target, budget),
            }
            bills: dict[str, dict[int, tuple[Bill, int]]] = {}
            for strategy, requests in runs.items():
                cache = PrefixCache(prices)
                bills[strategy] = {k: (cache.bill(r), r.tokens) for k, r in requests}
            bills["optical, no cache"] = {
                k: (Bill(tokens, 0, 0), tokens)
                for k, (_, tokens) in bills["optical + cache"].items()
            }
            for n, window in windows.items():
                for strategy in STRATEGIES:
                    measured = [bills[strategy][k] for k in window]
                    total = sum(tokens for _, tokens in measured)
                    cost = sum(bill.cost(prices) for bill, _ in measured) / len(measured)
                    if strategy == "summary + cache":
                        cost += summary_billed[window[-1]] / n
                    rows.append(
                        CostRow(
                            target=target,
                            exchanges=n,
                            strategy=strategy,
                            budget=budget,
                            cost=cost,
                            tokens=total / len(measured),
                            read_share=sum(bill.read for bill, _ in measured) / max(1, total),
                            over_context=measured[-1][1] > prices.context_window,
                        )
                    )
    return rows


def _cells(rows: Sequence[CostRow]) -> dict[tuple[str, int | None, int], dict[str, CostRow]]:
    cells: dict[tuple[str, int | None, int], dict[str, CostRow]] = {}
    for row in rows:
        cells.setdefault((row.target, row.budget, row.exchanges), {})[row.strategy] = row
    return cells


def _best_other(by_strategy: dict[str, CostRow]) -> tuple[str, float]:
    """The cheapest strategy that is not optical memory and fits the context window."""
    others = [
        (row.cost, strategy)
        for strategy, row in by_strategy.items()
        if not strategy.startswith("optical") and not row.over_context
    ]
    cost, strategy = min(others) if others else (float("inf"), "none")
    return strategy, cost


def format_table(rows: Sequence[CostRow]) -> str:
    """Per target, budget and length: each strategy's cost per call (share read from the
    cache), and optical + cache against full text + cache (below 1.00: optical memory is
    cheaper)."""
    lines = [
        f"{'target':<13}{'budget':>7}{'exchanges':>10}"
        + "".join(f"{s:>24}" for s in STRATEGIES)
        + f"{'optical+cache / text+cache':>28}"
    ]
    for (target, budget, n), by_strategy in _cells(rows).items():
        line = f"{target:<13}{budget or '-':>7}{n:>10,}"
        for strategy in STRATEGIES:
            row = by_strategy[strategy]
            mark = "*" if row.over_context else " "
            line += f"{row.cost:>14,.0f}{mark} ({row.read_share:>4.0%})"
        ratio = by_strategy["optical + cache"].cost / by_strategy["full text + cache"].cost
        line += f"{ratio:>28.2f}"
        lines.append(line)
    return "\n".join(lines)


def format_markdown(rows: Sequence[CostRow]) -> str:
    """The table as Markdown, with a column naming the cheapest other strategy."""
    head = ["target", "budget", "exchanges", *STRATEGIES, "optical + cache vs cheapest other"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (target, budget, n), by_strategy in _cells(rows).items():
        cells = [target, f"{budget:,}" if budget else "none", f"{n:,}"]
        for strategy in STRATEGIES:
            row = by_strategy[strategy]
            mark = "\\*" if row.over_context else ""
            cells.append(f"{row.cost:,.0f}{mark} ({row.read_share:.0%})")
        other, cost = _best_other(by_strategy)
        optical = by_strategy["optical + cache"].cost
        verdict = "cheaper" if optical < cost else "**not cheaper**"
        cells.append(f"{optical / cost:.2f} ({verdict} than {other})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_markdown(rows: Sequence[CostRow]) -> str:
    """The README's view: per target and budget, at the longest conversation measured, what
    a call's input costs with optical memory against the whole history and the cheapest other
    strategy (all with their caches)."""
    longest = max(row.exchanges for row in rows)
    head = (
        "| target | budget | optical + cache | full text + cache | cheapest other | optical vs it |"
    )
    lines = [
        f"Billed input per call after {longest:,} exchanges, in uncached-token equivalents:",
        "",
        head,
        "|---|---|---|---|---|---|",
    ]
    for (target, budget, n), by_strategy in _cells(rows).items():
        if n != longest:
            continue
        other, cost = _best_other(by_strategy)
        optical = by_strategy["optical + cache"].cost
        full = by_strategy["full text + cache"]
        verdict = "cheaper" if optical < cost else "**not cheaper**"
        lines.append(
            f"| {target} | {f'{budget:,}' if budget else 'none'} | {optical:,.0f} | "
            f"{full.cost:,.0f}{' (over the window)' if full.over_context else ''} | "
            f"{other}: {cost:,.0f} | {optical / cost:.2f}, {verdict} |"
        )
    return "\n".join(lines)


def not_cheaper(rows: Sequence[CostRow]) -> list[tuple[str, int | None, int, str]]:
    """Where optical memory with caching costs at least the cheapest other strategy:
    (target, budget, exchanges, that strategy)."""
    found = []
    for (target, budget, n), by_strategy in _cells(rows).items():
        other, cost = _best_other(by_strategy)
        if by_strategy["optical + cache"].cost >= cost:
            found.append((target, budget, n, other))
    return found


@dataclass(frozen=True)
class TradeRow:
    """One way of planning under a budget, over every call of a conversation."""

    planning: str
    legible_per_token: float
    """Page text tokens expected legible (:func:`~optical_memory.legibility.page_legibility`)
    plus recent text tokens, per token of pages and recent text sent."""
    rewrites: int
    """Calls on which a page already sent changed or went (the cache re-writes from there)."""
    calls: int


def budget_trade(exchanges: int, budget: int, target: str = "anthropic") -> list[TradeRow]:
    """What planning a budget a batch at a time trades: the request plan (pages fade or go a
    batch at a time, on the call that settles a batch, with headroom) against planning each
    call afresh page by page (``OpticalMemory.context(budget)``), on the same conversation."""
    turns = conversation(2 * exchanges)
    rows = []
    for planning in ("a batch at a time", "page by page, every call"):
        with OpticalMemory(None, thread_id="trade", target=target) as memory:
            legible = tokens = 0.0
            rewrites = 0
            before: list[tuple[int, str]] = []
            for role, content in turns:
                memory.add(role, content)
                if role != "user":
                    continue
                if planning == "a batch at a time":
                    context = memory.context(budget, overhead=RequestOverhead())
                else:
                    context = memory.context(budget)
                shown = [(p.page_id, p.mode.value) for p in context.memory]
                rewrites += shown[: len(before)] != before
                before = shown
                recent = context.text_tokens - sum(p.text_tokens for p in context.text_pages)
                legible += recent + sum(p.text_tokens for p in context.text_pages)
                legible += sum(
                    p.text_tokens * page_legibility(p.text_tokens, p.mode, p.vision_tokens)
                    for p in context.pages
                )
                tokens += context.total_tokens
        rows.append(TradeRow(planning, legible / tokens, rewrites, exchanges))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exchanges", type=int, nargs="+", default=[100, 300])
    parser.add_argument("--targets", nargs="+", default=list(PRICES), choices=list(PRICES))
    parser.add_argument("--window-turns", type=int, default=20)
    parser.add_argument("--budget", type=int, default=8000, help="0: only without a budget")
    parser.add_argument("--results", type=Path, help="also write the table here (Markdown)")
    parser.add_argument(
        "--summary", type=Path, help="also write the short table (the README's) here"
    )
    parser.add_argument(
        "--trade",
        type=int,
        metavar="EXCHANGES",
        help="also measure what planning the budget a batch at a time trades, over this many",
    )
    args = parser.parse_args(argv)
    budgets: list[int | None] = [None, args.budget] if args.budget else [None]
    rows = cost_table(args.exchanges, args.targets, budgets=budgets, window_turns=args.window_turns)
    legend = [
        "Billed input per call, in uncached-token equivalents (share read from the cache);",
        f"mean over the last tenth of the calls; last-N window: {args.window_turns} turns;",
        f"summaries: {SUMMARY_TOKENS}-token stub answers, their calls billed and spread;",
        "* the request exceeds the model's context window.",
    ]
    print("\n".join(legend) + "\n")
    print(format_table(rows))
    print()
    sources = []
    for target in args.targets:
        prices = PRICES[target]
        sources.append(
            f"{target}: {prices.model}: read {prices.read}, write {prices.write}; {prices.source}"
        )
    print("\n".join(sources))
    worse = not_cheaper(rows)
    verdict = (
        "Optical memory with caching is NOT cheaper than the cheapest other strategy for: "
        + "; ".join(
            f"{t} at {n:,} exchanges ({f'budget {b:,}' if b else 'no budget'}: {other})"
            for t, b, n, other in worse
        )
        if worse
        else "Optical memory with caching is the cheapest strategy in every row."
    )
    print("\n" + verdict)
    trade: list[str] = []
    if args.trade and args.budget:
        trade = [
            f"Planning budget_tokens={args.budget:,} over {args.trade:,} exchanges (anthropic "
            "costs; pages and recent text only):",
            "",
            "| planning | legible tokens per token | calls that re-write sent pages |",
            "|---|---|---|",
        ]
        for row in budget_trade(args.trade, args.budget):
            trade.append(
                f"| {row.planning} | {row.legible_per_token:.3f} | {row.rewrites} of {row.calls} |"
            )
        print("\n" + "\n".join(trade))
    if args.results is not None:
        text = [*legend, "", format_markdown(rows), "", verdict, "", *trade, ""]
        text += [f"- {line}" for line in sources]
        command = benchmark_command("benchmarks/prompt_cache.py", argv)
        write_results(args.results, "\n".join(text), command)
    if args.summary is not None:
        command = benchmark_command("benchmarks/prompt_cache.py", argv)
        write_results(args.summary, summary_markdown(rows), command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
