"""Prompt caching: the memory is a prefix providers' caches hit.

Anthropic is tested on the wire: ``ChatAnthropic`` (langchain-anthropic, the real client) talks
to ``AnthropicStub``, a local Messages API that bills prefix caching as the API documents it.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections import deque
from dataclasses import dataclass, field
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
from recording_model import RecordingChatModel

from optical_memory import OpticalMemory
from optical_memory.agents import OpticalMemoryMiddleware, wrap
from optical_memory.memory import MemoryContext, MemoryPage

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


# --- a long run: a byte-stable prefix, read from the cache ------------------------------------


@dataclass
class LongRun:
    calls: list[StubCall]
    requests: list[list[BaseMessage]]
    layouts: list[list[tuple[int, str]]] = field(default_factory=list)
    """Per call: the memory's pages as (page id, how shown), oldest first."""


EXCHANGES = 300


@pytest.fixture(scope="module")
def long_run() -> LongRun:
    """300 exchanges through ``wrap`` with the defaults, to ChatAnthropic with automatic
    caching of the tail (the documented composition), the stub billing."""
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
        chat = wrap(OpticalMemory(None), _recording(send), target="anthropic")
        memory = chat.memory()
        context = memory.context

        def spy(budget_tokens: int | None = None) -> MemoryContext:
            result = context(budget_tokens)
            run.layouts.append(
                [
                    (page.page_id, page.mode.value if isinstance(page, MemoryPage) else "text")
                    for page in result.memory
                ]
            )
            return result

        memory.context = spy  # type: ignore[method-assign]
        history: list[BaseMessage] = [SystemMessage(SYSTEM_PROMPT)]
        for exchange in plan:
            history.append(HumanMessage(exchange.question))
            history.append(chat.invoke(history))
    assert len(run.layouts) == len(run.calls) == EXCHANGES
    return run


def _recording(send: Any) -> Runnable[Any, Any]:
    return RunnableLambda(send)


def _memory_json(request: list[BaseMessage]) -> str | None:
    memory = [m for m in request if m.additional_kwargs.get("lc_source") == "optical_memory"]
    return json.dumps(memory[0].content, sort_keys=True) if memory else None


def test_the_memory_message_changes_only_when_a_page_event_happens(long_run: LongRun) -> None:
    sent = [_memory_json(request) for request in long_run.requests]
    changes = [k for k in range(1, len(sent)) if sent[k] is not None and sent[k] != sent[k - 1]]
    events = [k for k in range(1, len(sent)) if long_run.layouts[k] != long_run.layouts[k - 1]]
    assert len(events) >= 5, "the run freezes pages and fades them"
    assert changes, "a new page changes the memory message"
    assert set(changes) <= set(events), (
        f"changed without a page event at calls {sorted(set(changes) - set(events))[:10]}"
    )


def test_over_300_exchanges_90_percent_of_the_memory_is_read_from_the_cache(
    long_run: LongRun,
) -> None:
    memory_tokens = read = 0
    for call in long_run.calls:
        if not _has_memory(call):
            continue
        end = call.prefix_tokens(call.breakpoints[0])  # through the memory's breakpoint
        memory_tokens += end
        read += min(call.usage["cache_read_input_tokens"], end)
    assert memory_tokens > 100_000, "the memory is long enough to matter"
    assert read / memory_tokens >= 0.90, f"read {read / memory_tokens:.1%} of the memory's tokens"


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
    rows = bench.cost_table(exchanges=(40,), targets=("anthropic", "openai"))
    assert {(r.target, r.strategy) for r in rows} == {
        (t, s) for t in ("anthropic", "openai") for s in bench.STRATEGIES
    }
    by = {(r.target, r.strategy): r for r in rows}
    for target in ("anthropic", "openai"):
        uncached = by[target, "optical, no cache"]
        assert uncached.cost == uncached.tokens and uncached.read_share == 0
        full = by[target, "full text + cache"]
        assert full.read_share > 0.8  # a growing transcript is one long cached prefix
        assert full.cost < full.tokens
    with pytest.raises(ValueError, match="no cache prices"):
        bench.cost_table(exchanges=(10,), targets=("mystery",))
