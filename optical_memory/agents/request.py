"""The outgoing model request: old turns as memory pages, the newest as the caller's messages.

Shared by :class:`~optical_memory.agents.OpticalMemoryMiddleware` (``create_agent``) and
:func:`~optical_memory.agents.wrap` (any chat model or Runnable). For one model call:

1. every message the caller holds is added to its thread's memory once: its LangChain ``id`` is
   the key, remembered in the store, so repeated calls of one run, re-invocations, checkpoint
   replays and new processes add nothing twice;
2. the thread's :meth:`~optical_memory.OpticalMemory.context` gives the pages (oldest first)
   and the turns not on a page (the recent window and the turns waiting to fill a page);
3. the request becomes ``[one memory message] + [the caller's messages for those turns]``. The
   memory message holds, per page, a one-line caption (page id, turn numbers, dates, mode: see
   ``_Captions``) and the page as a v1 image block, or the page's exact text when the memory's
   profitability gate kept it as text; turns not on a page that the caller no longer holds (an
   earlier invocation's, without a checkpointer) follow as text. The caller's messages are sent
   as they are, and the first of them is never a tool result whose call is missing: the call is
   sent with it (it may also be printed on the newest page);
4. the request is counted with :mod:`optical_memory.tokens` for the target, system prompt and
   tool schemas included; with ``budget_tokens`` the context is asked again with less room
   until the whole request fits, or :class:`BudgetTooSmallError` says it cannot;
5. with ``cache_control`` (the default for the ``anthropic`` target) the memory message's last
   block carries it: an Anthropic cache breakpoint, so the memory is one cached prefix.

Nothing here edits the caller's list: only the request changes.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from optical_memory.extras import import_extra
from optical_memory.modes import MODE_WORDS
from optical_memory.tokens import count_text_tokens

import_extra("langchain_core", "langchain")

from langchain_core.messages import (  # noqa: E402
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from optical_memory.memory import MemoryContext, MemoryPage, OpticalMemory, TextPage  # noqa: E402

#: Marks the memory message (``additional_kwargs["lc_source"]``), as LangChain marks summaries.
MEMORY_MESSAGE_SOURCE = "optical_memory"
#: Store blob namespace mapping (thread, LangChain message id) to the stored turn's id.
MESSAGE_KEY_NAMESPACE = "langchain-message-id"
#: Id prefix of messages read back from stored turns (``OpticalChatMessageHistory``): such a
#: message is that turn, never stored again.
TURN_MESSAGE_ID_PREFIX = "optical-memory-turn-"
#: Re-fits of the context before the budget is declared impossible.
_MAX_FITS = 32
#: The breakpoint an ``anthropic`` target gets after the memory message: Anthropic's
#: ``cache_control`` with its default 5-minute TTL (``{"type": "ephemeral", "ttl": "1h"}``
#: keeps it an hour at a higher write price).
ANTHROPIC_BREAKPOINT: dict[str, str] = {"type": "ephemeral"}


class BudgetTooSmallError(ValueError):
    """The request cannot fit ``budget_tokens``, even with no pages and only the newest turns."""


@dataclass(frozen=True)
class CallUsage:
    """Token accounting of one outgoing model request, for the target model."""

    thread_id: str
    text_tokens: int
    """Text the model is sent: system prompt, tool schemas, captions, text pages, turns."""
    vision_tokens: int
    """Tokens of the page images."""
    replaced_text_tokens: int
    """Text tokens of what the page images print: what they stand in for."""
    pages: int
    """Pages sent as images."""
    text_pages: int
    """Pages sent as their text, because their image would have cost more (the gate)."""
    messages: int
    """The caller's messages sent verbatim (the recent window and turns not yet on a page)."""
    budget_tokens: int | None = None

    @property
    def total_tokens(self) -> int:
        return self.text_tokens + self.vision_tokens

    @property
    def saved_tokens(self) -> int:
        """What the images saved: the text they replaced minus what they cost."""
        return self.replaced_text_tokens - self.vision_tokens


@dataclass
class _Thread:
    memory: OpticalMemory
    turn_of_message: dict[str, int] = field(default_factory=dict)


class MemoryRequestBuilder:
    """Builds the request a model is sent, for any thread of ``memory``'s store.

    Each thread gets an :class:`~optical_memory.OpticalMemory` on the same store, with
    ``memory``'s schedule and renderer and this builder's ``keep_recent_turns`` and ``target``
    (``memory`` itself serves its own thread when those agree). ``recall_tool`` names the
    recall tool in the memory message's header, when the model has one. ``cache_control`` is
    put on the memory message's last block (see :func:`with_cache_breakpoint`); ``"auto"``
    means :data:`ANTHROPIC_BREAKPOINT` for the ``anthropic`` target and none for the others,
    whose caches need no marker (the memory message already precedes everything that changes
    per call).
    """

    def __init__(
        self,
        memory: OpticalMemory,
        *,
        keep_recent_turns: int = 6,
        budget_tokens: int | None = None,
        target: str | None = None,
        recall_tool: str | None = None,
        cache_control: Mapping[str, str] | Literal["auto"] | None = "auto",
    ) -> None:
        if isinstance(keep_recent_turns, bool) or keep_recent_turns < 1:
            raise ValueError(f"keep_recent_turns must be at least 1, got {keep_recent_turns!r}")
        if budget_tokens is not None and budget_tokens <= 0:
            raise ValueError(f"budget_tokens must be positive or None, got {budget_tokens}")
        self.memory = memory
        self.keep_recent_turns = keep_recent_turns
        self.budget_tokens = budget_tokens
        self.target = target or memory.target
        self.recall_tool = recall_tool
        if cache_control not in (None, "auto") and not isinstance(cache_control, Mapping):
            raise TypeError(
                "cache_control must be 'auto', None or a dict such as {'type': 'ephemeral'}, "
                f"not {cache_control!r}"
            )
        self.cache_control = cache_control
        self._threads: dict[str, _Thread] = {}
        # One call at a time per builder: async runs reach it from worker threads.
        self._lock = threading.RLock()

    # --- memory per thread ---------------------------------------------------------------------

    def memory_for(self, thread_id: str | None) -> OpticalMemory:
        """The memory of ``thread_id`` (``None``: the memory's own thread)."""
        return self._thread(thread_id).memory

    def _thread(self, thread_id: str | None) -> _Thread:
        with self._lock:
            return self._thread_unlocked(thread_id)

    def _thread_unlocked(self, thread_id: str | None) -> _Thread:
        key = thread_id or self.memory.thread_id
        thread = self._threads.get(key)
        if thread is None:
            base = self.memory
            if (key, self.keep_recent_turns, self.target) == (
                base.thread_id,
                base.keep_recent_turns,
                base.target,
            ):
                memory = base
            else:
                memory = OpticalMemory(
                    base.store,
                    thread_id=key,
                    schedule=base.schedule,
                    renderer=base.renderer,
                    target=self.target,
                    keep_recent_turns=self.keep_recent_turns,
                )
            thread = self._threads[key] = _Thread(memory)
        return thread

    # --- adding --------------------------------------------------------------------------------

    def remember(self, thread_id: str | None, messages: Sequence[BaseMessage]) -> None:
        """Store the messages not stored yet, in order; system messages are instructions, not
        turns, and are never stored. A message without an id is given one (as LangChain's
        ``SummarizationMiddleware`` does), so sending the same object again stores nothing."""
        with self._lock:
            self._remember(thread_id, messages)

    def _remember(self, thread_id: str | None, messages: Sequence[BaseMessage]) -> None:
        thread = self._thread(thread_id)
        store, name = thread.memory.store, thread.memory.thread_id
        for message in messages:
            if isinstance(message, SystemMessage) or _is_memory_message(message):
                continue
            if message.id is None:
                message.id = str(uuid.uuid4())
            if message.id in thread.turn_of_message:
                continue
            stored = store.get_blob(MESSAGE_KEY_NAMESPACE, name, "", message.id)
            if stored is None and message.id.startswith(TURN_MESSAGE_ID_PREFIX):
                turn_id = message.id.removeprefix(TURN_MESSAGE_ID_PREFIX)
                if turn_id.isdigit() and store.get_turns(name, [int(turn_id)]):
                    stored = turn_id.encode()
            if stored is None:
                (turn,) = thread.memory.add_messages([message])
                assert turn.id is not None
                store.put_blob(MESSAGE_KEY_NAMESPACE, name, "", message.id, str(turn.id).encode())
                thread.turn_of_message[message.id] = turn.id
            else:
                thread.turn_of_message[message.id] = int(stored.decode())

    # --- building ------------------------------------------------------------------------------

    def breakpoint(self) -> dict[str, str] | None:
        """The ``cache_control`` the memory message ends with for the current target, if any."""
        if self.cache_control == "auto":
            return dict(ANTHROPIC_BREAKPOINT) if self.target == "anthropic" else None
        return None if self.cache_control is None else dict(self.cache_control)

    def build(
        self,
        thread_id: str | None,
        messages: Sequence[BaseMessage],
        *,
        system_messages: Sequence[SystemMessage] = (),
        tools: Sequence[Any] = (),
    ) -> tuple[list[BaseMessage], CallUsage]:
        """Store ``messages`` and return the request to send instead, with its accounting.

        ``system_messages`` are not part of the returned list (send them first, unchanged);
        they and ``tools`` (as their JSON schemas) are counted. Raises
        :class:`BudgetTooSmallError` when the newest turns alone exceed ``budget_tokens``.
        """
        with self._lock:
            return self._build(thread_id, messages, system_messages, tools)

    def _build(
        self,
        thread_id: str | None,
        messages: Sequence[BaseMessage],
        system_messages: Sequence[SystemMessage],
        tools: Sequence[Any],
    ) -> tuple[list[BaseMessage], CallUsage]:
        live = [m for m in messages if not isinstance(m, SystemMessage)]
        live = [m for m in live if not _is_memory_message(m)]
        self.remember(thread_id, live)
        thread = self._thread(thread_id)
        fixed = _instruction_tokens(system_messages, tools)
        room = None if self.budget_tokens is None else self.budget_tokens - fixed
        for attempt in range(_MAX_FITS):
            if room is not None and room < 0:
                break
            context = thread.memory.context(budget_tokens=room)
            request, usage = self._compose(thread, context, live, fixed)
            if self.budget_tokens is None or usage.total_tokens <= self.budget_tokens:
                breakpoint = self.breakpoint()
                if breakpoint and request and _is_memory_message(request[0]):
                    request[0] = with_cache_breakpoint(request[0], breakpoint)
                return request, usage
            assert room is not None
            # The memory fits its own part; captions and whole tool exchanges come on top.
            # Give it that much less room, doubling the cut every few tries so fitting ends.
            room -= (usage.total_tokens - self.budget_tokens) << (attempt // 4)
        raise BudgetTooSmallError(
            f"thread {thread.memory.thread_id!r}: the newest turns, system prompt and tool "
            f"schemas alone exceed budget_tokens={self.budget_tokens}: raise the budget, or "
            "shorten the system prompt or the latest messages"
        )

    def _compose(
        self, thread: _Thread, context: MemoryContext, live: list[BaseMessage], fixed: int
    ) -> tuple[list[BaseMessage], CallUsage]:
        live_turn = {id(m): thread.turn_of_message[m.id] for m in live if m.id}
        live_ids = set(live_turn.values())
        unpaged = {turn.id for turn in context.recent}
        verbatim = _with_tool_calls([m for m in live if live_turn.get(id(m)) in unpaged], live)
        earlier = [turn for turn in context.recent if turn.id not in live_ids]

        blocks: list[dict[str, Any]] = []
        captions = _Captions(context, thread.memory)
        for page in context.memory:
            caption = captions.caption(page)
            if isinstance(page, MemoryPage):
                if caption:
                    blocks.append({"type": "text", "text": caption})
                blocks.append(_image_block(page))
            else:
                blocks.append({"type": "text", "text": f"{caption}\n{page.text}".lstrip("\n")})
        if earlier:
            lines = "\n".join(f"{turn.role}: {turn.content}" for turn in earlier)
            blocks.append({"type": "text", "text": f"Latest turns, not yet on a page:\n{lines}"})

        request: list[BaseMessage] = []
        if blocks:
            header = (
                f"Earlier in this conversation (optical memory, {len(context.memory)} pages, "
                "oldest first"
            )
            if self.recall_tool:
                header += (
                    f"; each turn is labelled with its number, and the {self.recall_tool} tool "
                    "returns the exact text of a turn or a page"
                )
            header += "):"
            blocks.insert(0, {"type": "text", "text": header})
            request.append(
                HumanMessage(
                    content_blocks=blocks,  # type: ignore[arg-type]
                    additional_kwargs={"lc_source": MEMORY_MESSAGE_SOURCE},
                )
            )
        request.extend(verbatim)
        text_tokens = fixed + sum(
            count_text_tokens(block["text"]) for block in blocks if block["type"] == "text"
        )
        text_tokens += sum(message_tokens(m) for m in verbatim)
        usage = CallUsage(
            thread_id=thread.memory.thread_id,
            text_tokens=text_tokens,
            vision_tokens=sum(page.vision_tokens for page in context.pages),
            replaced_text_tokens=context.replaced_text_tokens,
            pages=len(context.pages),
            text_pages=len(context.text_pages),
            messages=len(verbatim),
            budget_tokens=self.budget_tokens,
        )
        return request, usage


class _Captions:
    """One line per page, or per run of pages that print one long turn, e.g.
    ``page 12 · turns 308–335 · 3 Nov 2026 · low resolution``: the page id (for recall), the
    turns' numbers in the thread (printed on the page too), their dates when the turns carry
    timestamps, and how the page is shown. Nothing in it depends on when it is asked: the same
    pages in the same modes get the same bytes, so a provider's prompt cache keeps them."""

    def __init__(self, context: MemoryContext, memory: OpticalMemory) -> None:
        pages = context.memory
        ends = sorted({tid for page in pages for tid in (page.turn_ids[0], page.turn_ids[-1])})
        self.turns = {t.id: t for t in memory.store.get_turns(memory.thread_id, ends)}
        # A run: consecutive pages shown alike that print nothing but one turn.
        self.runs: dict[int, list[MemoryPage | TextPage]] = {}
        run: list[MemoryPage | TextPage] = []
        for page in pages:
            if run and len(page.turn_ids) == 1 and self._key(page) == self._key(run[-1]):
                run.append(page)
                self.runs[page.page_id] = []
            else:
                run = [page]
                self.runs[page.page_id] = run

    @staticmethod
    def _key(page: MemoryPage | TextPage) -> tuple[object, ...]:
        return (tuple(page.turn_ids), type(page), page.mode)

    def caption(self, page: MemoryPage | TextPage) -> str:
        """The page's caption; ``""`` for a page that continues a run (its first page's
        caption covers it)."""
        run = self.runs.get(page.page_id, [page])
        if not run:
            return ""
        ids = [p.page_id for p in run]
        if len(ids) == 1:
            where = f"page {ids[0]}"
        elif ids == list(range(ids[0], ids[-1] + 1)):
            where = f"pages {ids[0]}–{ids[-1]}"
        else:
            where = "pages " + ", ".join(str(i) for i in ids)
        first, last = self.turns.get(page.turn_ids[0]), self.turns.get(page.turn_ids[-1])
        parts = [where]
        if first is not None and last is not None and first.number and last.number:
            parts.append(
                f"turn {first.number}"
                if first.number == last.number
                else f"turns {first.number}–{last.number}"
            )
            when = _date_range(first.timestamp, last.timestamp)
            if when:
                parts.append(when)
        parts.append(MODE_WORDS[page.mode] if isinstance(page, MemoryPage) else "as text")
        return " · ".join(parts)


def _date_range(start: datetime | None, end: datetime | None) -> str:
    """``3 Nov 2026``, ``3–5 Nov 2026``, ``30 Oct – 2 Nov 2026``, ``30 Dec 2025 – 2 Jan 2026``;
    ``""`` without timestamps."""
    start, end = start or end, end or start
    if start is None or end is None:
        return ""
    a, b = start.date(), end.date()
    if a == b:
        return f"{a.day} {a:%b %Y}"
    if (a.year, a.month) == (b.year, b.month):
        return f"{a.day}–{b.day} {b:%b %Y}"
    if a.year == b.year:
        return f"{a.day} {a:%b} – {b.day} {b:%b %Y}"
    return f"{a.day} {a:%b %Y} – {b.day} {b:%b %Y}"


def _image_block(page: MemoryPage) -> dict[str, Any]:
    return {
        "type": "image",
        "base64": base64.b64encode(page.png()).decode("ascii"),
        "mime_type": "image/png",
        # GUNDAM and LARGE pages are both 1280 px: the size alone cannot tell a local
        # DeepSeek-OCR how to encode the page, so the block names its mode.
        "extras": {"mode": page.mode.value},
    }


def with_cache_breakpoint(message: BaseMessage, cache_control: Mapping[str, str]) -> BaseMessage:
    """A copy of ``message`` whose last content block carries ``cache_control``.

    For Anthropic's prompt cache that block ends a breakpoint: the request up to it (tools,
    system prompt, this message) is cached and read back at a tenth of the input price while
    it stays byte-identical. ``langchain-anthropic`` sends the key as it is, on text and image
    blocks alike; other providers' converters do not know it, so only Anthropic targets get it.
    """
    blocks = [dict(block) for block in message.content_blocks]
    if not blocks:
        raise ValueError("the message has no content block to carry a cache breakpoint")
    blocks[-1]["cache_control"] = dict(cache_control)
    return message.model_copy(update={"content": blocks})


def _is_memory_message(message: BaseMessage) -> bool:
    return message.additional_kwargs.get("lc_source") == MEMORY_MESSAGE_SOURCE


def _with_tool_calls(selected: list[BaseMessage], live: list[BaseMessage]) -> list[BaseMessage]:
    """``selected`` (a tail of ``live``) grown back until it opens with no tool result whose
    call it lacks: a ToolMessage is only valid after the AIMessage that called it."""
    if not selected or not isinstance(selected[0], ToolMessage):
        return selected
    start = next(i for i, m in enumerate(live) if m is selected[0])
    results = {m.tool_call_id for m in selected if isinstance(m, ToolMessage)}
    for i in range(start - 1, -1, -1):
        message = live[i]
        if isinstance(message, AIMessage) and {c.get("id") for c in message.tool_calls} & results:
            return live[i:start] + selected
    return selected  # the caller's list opens with results of an unknown call: theirs to send


def message_tokens(message: BaseMessage) -> int:
    """Text tokens of one message as sent: its text blocks and its tool calls (name, args)."""
    tokens = count_text_tokens(message.text)
    for call in getattr(message, "tool_calls", None) or []:
        arguments = json.dumps(call.get("args", {}), ensure_ascii=False, sort_keys=True)
        tokens += count_text_tokens(f"{call.get('name', '')}({arguments})")
    return tokens


def _instruction_tokens(system_messages: Sequence[SystemMessage], tools: Sequence[Any]) -> int:
    """Tokens of what every request carries besides the conversation."""
    tokens = sum(count_text_tokens(message.text) for message in system_messages)
    if tools:
        from langchain_core.utils.function_calling import convert_to_openai_tool

        schemas = [t if isinstance(t, dict) else convert_to_openai_tool(t) for t in tools]
        tokens += count_text_tokens(json.dumps(schemas, sort_keys=True))
    return tokens
