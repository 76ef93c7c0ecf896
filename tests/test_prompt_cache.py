"""Prompt caching: the memory is a prefix providers' caches hit.

Anthropic is tested on the wire: ``ChatAnthropic`` (langchain-anthropic, the real client) talks
to ``AnthropicStub``, a local Messages API that bills prefix caching as the API documents it.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import itertools
import json
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("langchain_anthropic")

import anthropic
from agent_conversation import SYSTEM_PROMPT, lookup_order, read_request, shop_plan
from anthropic_stub import AnthropicStub, StubCall
from conftest import REPO_ROOT
from langchain.agents import create_agent
from langchain_anthropic import ChatAnthropic
from langchain_anthropic.middleware import AnthropicPromptCachingMiddleware
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import Runnable, RunnableLambda
from langgraph.checkpoint.memory import InMemorySaver
from PIL import Image
from recording_model import RecordingChatModel

from optical_memory import DecaySchedule, Mode, OpticalMemory
from optical_memory.agents import OpticalMemoryMiddleware, wrap
from optical_memory.memory import MemoryContext, MemoryPage
from optical_memory.verbatim import VERBATIM_LEAD

LONG_SYSTEM = "You are the archivist of a harbour town. " * 200  # about 1,800 tokens


def _anthropic(stub: AnthropicStub, **kwargs: Any) -> ChatAnthropic:
    return ChatAnthropic(  # type: ignore[call-arg]
        model="claude-sonnet-4-6",
        base_url=stub.url,
        api_key="stub",  # type: ignore[arg-type]
        max_retries=0,
        max_tokens=64,
        **kwargs,
    )


def _usage(call: StubCall) -> tuple[int, int, int]:
    u = call.usage
    return u["cache_read_input_tokens"], u["cache_creation_input_tokens"], u["input_tokens"]


def _has_memory(call: StubCall) -> bool:
    content = call.body["messages"][0]["content"]
    return not isinstance(content, str) and str(content[0].get("text", "")).startswith(
        "Earlier in this conversation"
    )


def _marked(message: dict[str, Any]) -> list[int]:
    content = message["content"]
    return (
        []
        if isinstance(content, str)
        else [i for i, block in enumerate(content) if "cache_control" in block]
    )


# --- the stub bills as the API documents -------------------------------------------------------


def test_stub_reads_a_breakpoints_prefix_seen_within_its_ttl() -> None:
    now = [0.0]
    with AnthropicStub(clock=lambda: now[0]) as stub:
        model = _anthropic(stub)
        system = SystemMessage(
            [{"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral"}}]
        )
        model.invoke([system, HumanMessage("Who kept the light in 1901?")])
        prefix = stub.calls[-1].prefix_tokens(0)
        assert prefix > 1024
        assert _usage(stub.calls[-1])[:2] == (0, prefix)  # written
        answer = model.invoke([system, HumanMessage("And in 1902?")])
        assert _usage(stub.calls[-1])[:2] == (prefix, 0)  # read, whatever follows
        assert answer.usage_metadata is not None  # the client reports what the stub billed
        assert answer.usage_metadata["input_token_details"]["cache_read"] == prefix
        now[0] += 299  # a read refreshes the 5-minute TTL ...
        model.invoke([system, HumanMessage("And in 1903?")])
        assert _usage(stub.calls[-1])[:2] == (prefix, 0)
        now[0] += 301  # ... and expires without one
        model.invoke([system, HumanMessage("And in 1904?")])
        assert _usage(stub.calls[-1])[:2] == (0, prefix)
        changed = SystemMessage(
            [{"type": "text", "text": LONG_SYSTEM + ".", "cache_control": {"type": "ephemeral"}}]
        )
        model.invoke([changed, HumanMessage("And in 1905?")])
        assert _usage(stub.calls[-1])[0] == 0  # one more byte: another prefix
        short = SystemMessage(
            [{"type": "text", "text": "Short.", "cache_control": {"type": "ephemeral"}}]
        )
        model.invoke([short, HumanMessage("Hi")])
        assert _usage(stub.calls[-1])[:2] == (0, 0)  # under 1,024 tokens: never cached
        five = [
            {"type": "text", "text": f"{n}", "cache_control": {"type": "ephemeral"}}
            for n in range(5)
        ]
        with pytest.raises(anthropic.BadRequestError, match="maximum of 4 blocks"):
            model.invoke([HumanMessage(five)])  # type: ignore[arg-type]


def _png(width: int, height: int) -> str:
    buffer = io.BytesIO()
    Image.new("L", (width, height), 255).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_stub_bills_images_by_the_vision_guides_figures() -> None:
    """Mixed sizes in one prompt, each billed as the guide's examples say: 200 x 200 px is
    about 54 tokens, 1000 x 1000 about 1,334, 1092 x 1092 (the largest square not scaled
    down) about 1,590; a larger image is scaled to about 1,600 at most."""
    sizes = [(200, 200), (1000, 1000), (1092, 1092), (3000, 2000)]
    images = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": _png(*s)}}
        for s in sizes
    ]
    with AnthropicStub() as stub:
        message = {"role": "user", "content": images}
        stub.answer({"model": "claude-sonnet-4-6", "messages": [message]})
    billed = stub.calls[-1].block_tokens
    assert billed[:3] == [54, 1334, 1590]
    assert 1500 < billed[3] <= 1600
    assert stub.calls[-1].usage["input_tokens"] == sum(billed)


def _notes(count: int) -> HumanMessage:
    """``count`` text blocks, the last a breakpoint."""
    blocks: list[dict[str, Any]] = [{"type": "text", "text": f"note {n}"} for n in range(count)]
    blocks[-1]["cache_control"] = {"type": "ephemeral"}
    return HumanMessage(blocks)  # type: ignore[arg-type]


@pytest.mark.parametrize(("later", "read"), [(25, True), (26, False)])
def test_stub_looks_back_20_blocks_from_a_breakpoint(later: int, read: bool) -> None:
    """The guide: a breakpoint's lookup also tries about 20 block boundaries before it."""
    with AnthropicStub() as stub:
        model = _anthropic(stub)
        model.invoke([SystemMessage(LONG_SYSTEM), _notes(5)])  # cached through note 4
        cached = stub.calls[-1].usage["cache_creation_input_tokens"]
        assert cached > 1024
        model.invoke([SystemMessage(LONG_SYSTEM), _notes(later)])  # 20 or 21 blocks on
        assert stub.calls[-1].usage["cache_read_input_tokens"] == (cached if read else 0)


@pytest.mark.parametrize(
    ("model_name", "cached"),
    [("claude-sonnet-4-6", True), ("claude-opus-4-6", False), ("claude-haiku-4-5", False)],
)
def test_stub_caches_only_what_the_model_minimum_allows(model_name: str, cached: bool) -> None:
    """About 1,800 tokens: over Sonnet's 1,024-token minimum, under Opus 4.6's and Haiku
    4.5's 4,096."""
    with AnthropicStub() as stub:
        model = _anthropic(stub).model_copy(update={"model": model_name})
        model.invoke([SystemMessage(LONG_SYSTEM), _notes(1)])
        written = stub.calls[-1].usage["cache_creation_input_tokens"]
        assert (written > 1024) is cached and (written == 0) is not cached


# --- breakpoints per target -------------------------------------------------------------------


def _paged_history(count: int) -> list[BaseMessage]:
    history: list[BaseMessage] = [SystemMessage(SYSTEM_PROMPT)]
    for exchange in shop_plan("t", count, tool_every=10**6):
        history += [HumanMessage(exchange.question), exchange.answers[-1]]
    return history[:-1]


@pytest.mark.parametrize("target", ["anthropic", "openai", "gemini", "deepseek-ocr"])
def test_the_memory_message_comes_before_everything_that_changes_per_call(target: str) -> None:
    model = RecordingChatModel(messages=iter(["ok"]))
    history = _paged_history(60)
    wrap(OpticalMemory(None), model, target=target).invoke(history)
    (request,) = model.requests
    sent = read_request(request)
    assert sent.pages, "the history fills pages"
    assert request[0].type == "system"
    memory = request[1]
    assert memory.additional_kwargs.get("lc_source") == "optical_memory"
    assert [m.text for m in sent.verbatim] == [m.text for m in history[-len(sent.verbatim) :]]
    marked = [i for i, block in enumerate(memory.content_blocks) if "cache_control" in block]
    if target == "anthropic":  # a breakpoint on the memory message's last block
        assert marked == [len(memory.content_blocks) - 1]
        assert memory.content_blocks[-1]["cache_control"] == {"type": "ephemeral"}  # type: ignore[typeddict-item]
    else:  # automatic caches need no marker, and their APIs would refuse an unknown key
        assert marked == []
    for message in sent.verbatim:
        assert "cache_control" not in json.dumps(message.content)


def test_the_breakpoint_can_be_changed_or_left_out() -> None:
    for cache_control, expected in [(None, []), ({"type": "ephemeral", "ttl": "1h"}, [-1])]:
        model = RecordingChatModel(messages=iter(["ok"]))
        wrap(OpticalMemory(None), model, target="anthropic", cache_control=cache_control).invoke(
            _paged_history(60)
        )
        blocks = model.requests[0][1].content_blocks
        marked = [i - len(blocks) for i, b in enumerate(blocks) if "cache_control" in b]
        assert marked == expected
        if expected:
            assert blocks[-1]["cache_control"] == cache_control  # type: ignore[typeddict-item]
    with pytest.raises(TypeError, match="cache_control must be 'auto', None or a dict"):
        wrap(OpticalMemory(None), RecordingChatModel(messages=iter([])), cache_control="yes")


def test_with_anthropic_prompt_caching_middleware_in_one_agent() -> None:
    """The documented order: optical memory first, then LangChain's caching middleware. The
    API gets four breakpoints (its limit): last tool, system prompt, memory, conversation tail."""
    plan = shop_plan("shop", 48, tool_every=4)
    with AnthropicStub() as stub:
        for exchange in plan:
            for answer in exchange.answers:
                stub.replies.append(_as_anthropic_content(answer))
        memory = OpticalMemory(None)
        agent = create_agent(
            _anthropic(stub),
            [lookup_order],
            system_prompt=SYSTEM_PROMPT,
            middleware=[
                OpticalMemoryMiddleware(memory, target="anthropic"),
                AnthropicPromptCachingMiddleware(),
            ],
            checkpointer=InMemorySaver(),
        )
        config: Any = {"configurable": {"thread_id": "shop"}}
        for exchange in plan:
            agent.invoke({"messages": [HumanMessage(exchange.question)]}, config)
    paged = [call for call in stub.calls if _has_memory(call)]
    assert len(paged) > 10, "the conversation fills pages"
    for call in paged:
        body = call.body
        assert body["cache_control"] == {"type": "ephemeral", "ttl": "5m"}  # the tail
        assert "cache_control" in body["tools"][-1]
        assert "cache_control" in body["system"][-1]
        memory_message = body["messages"][0]
        assert memory_message["content"][0]["text"].startswith("Earlier in this conversation")
        # Our breakpoint is the memory's last block; what follows is the conversation.
        assert _marked(memory_message) == [_memory_blocks(body) - 1]
        assert all(not _marked(m) for m in body["messages"][1:])
        assert len(call.breakpoints) == 4


def _as_anthropic_content(message: AIMessage) -> list[dict[str, Any]]:
    if message.tool_calls:
        return [
            {"type": "tool_use", "id": f"toolu_{c['id']}", "name": c["name"], "input": c["args"]}
            for c in message.tool_calls
        ]
    return [{"type": "text", "text": message.text}]


def _memory_blocks(body: dict[str, Any]) -> int:
    """Blocks of the memory message, which ChatAnthropic may have merged with the next user
    turn (consecutive user messages become one)."""
    content = body["messages"][0]["content"]
    ends = [i for i, block in enumerate(content) if "cache_control" in block]
    return ends[0] + 1 if ends else len(content)


# --- a long run: a prefix that only grows between batch events ---------------------------------


@dataclass
class LongRun:
    calls: list[StubCall]
    requests: list[list[BaseMessage]]
    plans: list[tuple[int, list[tuple[int, str]]]] = field(default_factory=list)
    """Per plan made: the thread's page count and the pages shown as (page id, how shown)."""


EXCHANGES = 400
BUDGET = 8000


def _long_run(budget_tokens: int | None) -> LongRun:
    """400 exchanges through ``wrap`` with the defaults (and ``budget_tokens``), to
    ChatAnthropic with automatic caching of the tail (the documented composition), the stub
    billing."""
    plan = shop_plan("t", EXCHANGES, tool_every=10**6)
    requests: list[list[BaseMessage]] = []
    with AnthropicStub(
        replies=deque([{"type": "text", "text": e.answers[-1].text}] for e in plan)
    ) as stub:
        model = _anthropic(stub).bind(cache_control={"type": "ephemeral"})

        def send(messages: list[BaseMessage]) -> BaseMessage:
            requests.append(messages)
            return model.invoke(messages)

        run = LongRun(stub.calls, requests)
        chat = wrap(
            OpticalMemory(None), _recording(send), target="anthropic", budget_tokens=budget_tokens
        )
        memory = chat.memory()
        context = memory.context

        def spy(budget_tokens: int | None = None, **options: Any) -> MemoryContext:
            result = context(budget_tokens, **options)
            shown = [
                (page.page_id, page.mode.value if isinstance(page, MemoryPage) else "text")
                for page in result.memory
            ]
            run.plans.append((len(memory.store.pages(memory.thread_id)), shown))
            return result

        memory.context = spy  # type: ignore[method-assign]
        history: list[BaseMessage] = [SystemMessage(SYSTEM_PROMPT)]
        config: Any = {"configurable": {"thread_id": memory.thread_id}}
        for exchange in plan:
            history.append(HumanMessage(exchange.question))
            history.append(chat.invoke(history, config))
    assert len(run.calls) == EXCHANGES
    return run


@pytest.fixture(scope="module")
def long_run() -> LongRun:
    return _long_run(None)


@pytest.fixture(scope="module")
def budget_run() -> LongRun:
    return _long_run(BUDGET)


def _recording(send: Any) -> Runnable[Any, Any]:
    return RunnableLambda(send)


def _reused_share(run: LongRun) -> tuple[float, float]:
    """Of the cached part of each request (every block through its last breakpoint), the share
    of tokens that repeat the previous request's prefix, and the share the stub billed as read
    of what it read or wrote."""
    cached = reused = read = stored = 0
    for earlier, call in itertools.pairwise(run.calls):
        end = call.prefix_tokens(call.breakpoints[-1])
        cached += end
        reused += min(end, call.shared_tokens(earlier))
        read += call.usage["cache_read_input_tokens"]
        stored += call.usage["cache_read_input_tokens"] + call.usage["cache_creation_input_tokens"]
    assert cached > 500_000, "the requests are long enough to matter"
    return reused / cached, read / stored


@pytest.mark.parametrize(("run_name", "least"), [("long_run", 0.97), ("budget_run", 0.95)])
def test_over_400_exchanges_the_cached_part_is_mostly_the_previous_prefix(
    run_name: str, least: float, request: pytest.FixtureRequest
) -> None:
    """No budget: at least 97% of the cached part's tokens repeat the previous request's
    prefix; with ``budget_tokens=8000``, at least 95% (and every request within it)."""
    run: LongRun = request.getfixturevalue(run_name)
    reused, read = _reused_share(run)
    assert reused >= least, f"{reused:.1%} of the cached part repeats the previous prefix"
    assert read >= least, f"the stub read {read:.1%} of what it cached"
    if run_name == "budget_run":
        largest = max(sum(call.block_tokens) for call in run.calls)
        assert largest <= BUDGET, f"a request of {largest} tokens crossed budget_tokens={BUDGET}"


def test_what_changes_per_call_follows_the_breakpoint(long_run: LongRun) -> None:
    """No page count in the header; the latest turns and the note that the newest page ends
    inside a message come after the last page, behind the breakpoint."""
    after_breakpoint: list[str] = []
    for request in long_run.requests:
        memory = request[1]
        if memory.additional_kwargs.get("lc_source") != "optical_memory":
            continue
        blocks = memory.content_blocks
        marked = [i for i, block in enumerate(blocks) if "cache_control" in block]
        assert len(marked) == 1
        header = str(blocks[0].get("text"))
        assert header.startswith("Earlier in this conversation") and not any(
            c.isdigit() for c in header
        )
        # The last page, or the exact values printed on it (sent right after it, fixed when
        # the page was frozen, so part of the cached prefix).
        last = blocks[marked[0]]
        assert last["type"] == "image" or (
            str(last.get("text")).startswith(VERBATIM_LEAD)
            and blocks[marked[0] - 1]["type"] == "image"
        )
        assert all(block["type"] != "image" for block in blocks[marked[0] + 1 :])
        after_breakpoint += [str(block.get("text"))[:40] for block in blocks[marked[0] + 1 :]]
    assert any(text.startswith("The newest page ends inside") for text in after_breakpoint)


def _memory_end(call: StubCall) -> int:
    """The block that ends the memory's pages: the first breakpoint (the tail's is last)."""
    return call.breakpoints[0] if len(call.breakpoints) > 1 else -1


@pytest.mark.parametrize("run_name", ["long_run", "budget_run"])
def test_anything_but_an_append_happens_only_when_a_batch_settles(
    run_name: str, request: pytest.FixtureRequest
) -> None:
    run: LongRun = request.getfixturevalue(run_name)
    batch = DecaySchedule().batch
    assert len(run.plans) == len(run.calls), "one plan per call"
    settles = rewrites = appends = 0
    for k in range(1, len(run.calls)):
        before, after = run.calls[k - 1], run.calls[k]
        (count_before, shown_before), (count_after, shown_after) = run.plans[k - 1], run.plans[k]
        settled = count_after // batch != count_before // batch
        settles += settled
        end = _memory_end(before)
        if end < 0:
            continue
        if after.digests[: end + 1] == before.digests[: end + 1]:
            appends += _memory_end(after) > end
            continue
        rewrites += 1
        assert settled, (
            f"call {k}: the memory sent before changed ({count_before} -> {count_after} "
            f"pages) though no batch settled"
        )
        assert shown_after[: len(shown_before)] != shown_before
    assert settles >= 3 and appends >= 20, "the run freezes pages and settles batches"
    assert rewrites <= settles
    if run is request.getfixturevalue("budget_run"):
        pages = run.plans[-1][0]
        assert len(run.plans[-1][1]) < pages, "the budget forgets pages"


def test_a_long_paste_moves_the_breakpoint_within_the_lookback() -> None:
    """A message that fills many pages at once: each call's breakpoint lies at most 20 blocks
    past the prefix the previous call cached, so every call reads it back."""
    schedule = DecaySchedule(tiers=[(Mode.SMALL, 10_000)])  # pages never fade: appends only
    paste = "The ledger of the harbour master, line by line, ship by ship. " * 4000
    question = "what does the ledger say of the ships, " * 40
    with AnthropicStub() as stub:
        chat = wrap(OpticalMemory(None, schedule=schedule), _anthropic(stub), target="anthropic")
        config: Any = {"configurable": {"thread_id": "paste"}}
        history: list[BaseMessage] = [SystemMessage(LONG_SYSTEM)]
        for n in range(24):
            history.append(HumanMessage(paste if n == 10 else f"Question {n}: {question}"))
            history.append(chat.invoke(history, config))
    pages = [call for call in stub.calls if call.breakpoints]
    jumps = [b.breakpoints[0] - a.breakpoints[0] for a, b in itertools.pairwise(pages)]
    assert pages[-1].breakpoints[0] - pages[0].breakpoints[0] > 40, "the paste fills pages"
    assert max(jumps) <= 20
    assert max(jumps) == 20, "the breakpoint catches up in steps"
    for earlier, call in itertools.pairwise(pages):
        assert call.usage["cache_read_input_tokens"] == earlier.prefix_tokens(
            earlier.breakpoints[0]
        )


# --- the cost model agrees with the stub ------------------------------------------------------


def _benchmark() -> ModuleType:
    path = REPO_ROOT / "benchmarks" / "prompt_cache.py"
    spec = importlib.util.spec_from_file_location("prompt_cache_benchmark", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_benchmarks_anthropic_bill_is_the_stubs(long_run: LongRun) -> None:
    bench = _benchmark()
    cache = bench.PrefixCache(bench.PRICES["anthropic"])
    tokens: dict[Any, int] = {}
    for request, call in zip(long_run.requests, long_run.calls, strict=True):
        bill = cache.bill(bench._as_request(request, "anthropic", tokens))
        assert (bill.read, bill.written, bill.uncached) == _usage(call)


def test_cost_table_prices_every_strategy() -> None:
    bench = _benchmark()
    rows = bench.cost_table(exchanges=(40,), targets=("anthropic", "openai"), budgets=(None, 900))
    assert {(r.target, r.budget, r.strategy) for r in rows} == {
        (t, b, s) for t in ("anthropic", "openai") for b in (None, 900) for s in bench.STRATEGIES
    }
    by = {(r.target, r.budget, r.strategy): r for r in rows}
    for target in ("anthropic", "openai"):
        uncached = by[target, None, "optical, no cache"]
        assert uncached.cost == uncached.tokens and uncached.read_share == 0
        full = by[target, None, "full text + cache"]
        assert full.read_share > 0.8  # a growing transcript is one long cached prefix
        assert full.cost < full.tokens
        for strategy in ("full text + cache", "optical, no cache"):
            assert by[target, 900, strategy].tokens <= 900  # each request within the budget
    # 40 exchanges pass 900 tokens: summaries are made, and their calls billed (the prompt
    # with the turns summarized, and the stub's fixed answer).
    runs = list(bench.summary_requests(bench.conversation(80), range(1, 41), 900, {}))
    assert runs[-1][2] >= bench.SUMMARY_TOKENS + 200
    with pytest.raises(ValueError, match="no cache prices"):
        bench.cost_table(exchanges=(10,), targets=("mystery",))


# --- the local model reuses the prefix's KV ----------------------------------------------------


def test_the_local_model_prefills_only_what_follows_the_pages_it_has(tmp_path: Path) -> None:
    """``DeepSeekOCR`` keeps the last prompt's KV cache: when a page is appended, the pages
    sent before are read from it and only the new page and the turns after it are computed.

    Pages are encoded one at a time here: the encoder's float results for a page differ in
    the last bits between a batch of one page and a batch of two, and reuse compares visual
    tokens bit for bit, so the model's default (one batch per mode) loses the prefix when
    a second page joins the batch."""
    pytest.importorskip("torch")
    from tiny_deepseek import tiny_model

    from optical_memory.agents.chat_model import ChatDeepSeekOCR
    from optical_memory.model.prompt import encode_by_mode

    model = tiny_model(tmp_path)
    encoder = model.encoder
    assert encoder is not None
    model.page_encoder = lambda pages: [encode_by_mode(encoder.encode, [page])[0] for page in pages]
    memory = OpticalMemory(None, schedule=DecaySchedule(tiers=[(Mode.TINY, 10_000)]))
    chat_model = ChatDeepSeekOCR(model=model, max_new_tokens=2)
    requests: list[list[BaseMessage]] = []
    answers: list[AIMessage] = []

    def send(messages: list[BaseMessage]) -> BaseMessage:
        requests.append(messages)
        answers.append(chat_model.invoke(messages))
        return answers[-1]

    # Costs by the target's rule: the tiny test model's bills are no guide to image costs.
    chat = wrap(memory, _recording(send), target="deepseek-ocr", calibrate=False)
    config: Any = {"configurable": {"thread_id": memory.thread_id}}
    history: list[BaseMessage] = []
    appended = 0
    for n in range(12):
        history.append(HumanMessage(f"Note {n}: the ferry timetable changed on day {n}. " * 40))
        history.append(chat.invoke(history, config))
        if len(requests) < 2:
            continue
        before, after = (model.prepare(chat_model.prompt_parts(r)) for r in requests[-2:])
        if len(after.image_spans) != len(before.image_spans) + 1 or not before.image_spans:
            continue
        appended += 1
        old_pages_end = before.image_spans[-1][1]  # the last page sent before, in both prompts
        assert after.image_spans[: len(before.image_spans)] == before.image_spans
        usage = answers[-1].usage_metadata
        assert usage is not None
        cache_read = usage.get("input_token_details", {}).get("cache_read", 0)
        assert old_pages_end <= cache_read < after.image_spans[-1][0]
    assert appended >= 2, "the conversation froze pages one after another"
