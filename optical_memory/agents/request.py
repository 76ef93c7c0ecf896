"""The outgoing model request: old turns as memory pages, the newest as the caller's messages.

Shared by :class:`~optical_memory.agents.OpticalMemoryMiddleware` (``create_agent``) and
:func:`~optical_memory.agents.wrap` (any chat model or Runnable). For one model call:

1. every message the caller holds is added to its thread's memory once, recognised by its
   LangChain ``id`` (remembered in the store) or by lining the messages up with the thread's
   stored turns (:mod:`optical_memory.agents.identity`), so repeated calls of one run,
   re-invocations, whole histories rebuilt from dicts, checkpoint replays, retries and new
   processes add nothing twice; images in messages are kept with their turn;
2. the thread's :meth:`~optical_memory.OpticalMemory.context` gives the pages (oldest first)
   and the turns not on a page (the recent window and the turns waiting to fill a page);
3. the request becomes ``[one memory message] + [the caller's messages for those turns]``, and
   every character of the thread is sent once: a turn whose head is on the newest page is sent
   as its tail only. The memory message holds, per page, a caption (page id, turn numbers,
   dates, how it is shown: see :mod:`optical_memory.agents.captions`) and the page as a v1
   image block (``extras``: its ``mode`` and ``page_ids``; the encoded images are kept between
   calls, :mod:`optical_memory.agents.encoded`), or the page's exact text when the
   profitability gate kept it as text; turns not on a page that the caller no longer holds
   follow as text (with their images). Pages beyond the target's per-request limits are tiled
   into mosaics or forgotten (:mod:`optical_memory.memory.limits`). The caller's messages are
   sent as they are (images included), and a tool result whose call is on a page is preceded by
   that call alone (no text, its ``tool_calls``), so providers accept the pair;
4. the request is planned once, whole: with ``budget_tokens`` the memory is given what the
   request adds besides pages and recent text (system prompt, tool schemas, header, notes,
   the caller's images, a caption per page: a
   :class:`~optical_memory.memory.RequestOverhead`) and fits all of it, fading or forgetting
   whole batches of pages only on the call that settles a batch; a newest message that
   cannot fit is sent as much of its tail as fits, with a note (it is stored whole).
5. the memory message is laid out for prompt caches: a header that never changes, then the
   pages, oldest first, so a newly frozen page is appended after those already sent; what
   changes per call (the turns not on a page, the note that the newest page ends inside a
   message) comes after the pages. With ``cache_control`` (the default for the ``anthropic``
   target) the last page block carries an Anthropic cache breakpoint, placed within the
   API's lookback of the last one (:mod:`optical_memory.agents.breakpoints`).

Nothing here edits the caller's list: only the request changes.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import warnings
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from optical_memory.agents.breakpoints import BreakpointTrail, min_cacheable_tokens, ttl_seconds
from optical_memory.agents.calibration import ImageCostTable, SentImage, reset_costs
from optical_memory.agents.captions import Captions
from optical_memory.agents.encoded import EncodedImages
from optical_memory.agents.messages import ImageRef
from optical_memory.agents.model_family import target_for_model
from optical_memory.agents.options import MemoryOptions
from optical_memory.agents.threads import ThreadMemories, ThreadState
from optical_memory.agents.usage import CallUsage
from optical_memory.agents.window import (
    MEMORY_MESSAGE_SOURCE,
    images_in,
    images_sent,
    instruction_chars,
    instruction_tokens,
    is_call_envelope,
    is_memory_message,
    message_chars,
    message_tokens,
    model_key,
    tail_of,
    with_tool_calls,
)
from optical_memory.extras import import_extra
from optical_memory.modes import Mode
from optical_memory.targets import target_spec, vision_tokens
from optical_memory.tokens import count_text_tokens

import_extra("langchain_core", "langchain")

from langchain_core.messages import (  # noqa: E402
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
)

from optical_memory.memory import (  # noqa: E402
    MemoryContext,
    MemoryPage,
    OpticalMemory,
    RequestOverhead,
)
from optical_memory.memory.limits import Mosaic, bound_pages  # noqa: E402
from optical_memory.memory.optical import DEFAULT_THREAD_ID  # noqa: E402
from optical_memory.memory.render_ahead import release_idle_workers  # noqa: E402

logger = logging.getLogger("optical_memory")

#: The text that follows the pages when the newest page ends inside a message.
SPLIT_NOTE = (
    "The newest page ends inside a message; the rest of that message is the first one below."
)
#: Heads the turns not on a page that the caller no longer holds.
LATEST_TURNS = "Latest turns, not yet on a page:"
#: A long caption, for pricing captions before the pages are known.
_CAPTION_SAMPLE = (
    "pages 99999–99999 · turns 99999–99999 · 30 Dec 2026 – 2 Jan 2027 · very low resolution"
)
#: The breakpoint an ``anthropic`` target gets after the memory message: Anthropic's
#: ``cache_control`` with its default 5-minute TTL (``{"type": "ephemeral", "ttl": "1h"}``
#: keeps it an hour at a higher write price).
ANTHROPIC_BREAKPOINT: dict[str, str] = {"type": "ephemeral"}
#: The size an image given by URL is counted at: it is never fetched, so its size is unknown.
URL_IMAGE_SIZE = (1024, 1024)


class BudgetTooSmallError(ValueError):
    """The request cannot fit ``budget_tokens``: the system prompt and tool schemas alone
    (plus a note and one character of the newest message) exceed it."""


class MemoryRequestBuilder:
    """Builds the request a model is sent, for any thread of ``memory``'s store.

    Each (thread, target) gets an :class:`~optical_memory.OpticalMemory` on the same store,
    with ``memory``'s schedule and renderer and these options (``memory`` itself serves its own
    thread when they agree). ``recall_tool`` names the recall tool in the memory message's
    header, when the model has one. Options: :class:`~optical_memory.agents.MemoryOptions`, or
    the same names as keywords.
    """

    def __init__(
        self,
        memory: OpticalMemory,
        options: MemoryOptions | None = None,
        *,
        recall_tool: str | None = None,
        **overrides: Any,
    ) -> None:
        self.options = MemoryOptions.of(options, overrides)
        self.memory = memory
        self.recall_tool = recall_tool
        self.target = self.options.target or memory.target
        self._threads = ThreadMemories(memory, self.options.keep_recent_turns)
        self._costs: dict[tuple[str, str], ImageCostTable] = {}
        #: Per (thread, target, model): where the memory's cache breakpoint was last put.
        self._trails: dict[tuple[str, str, str], BreakpointTrail] = {}
        self._warned_no_thread = False
        #: Page images as sent, shared by every thread and target (keys fix their bytes).
        self.images = EncodedImages(self.options.image_cache_bytes)
        # One call at a time per builder: async runs reach it from worker threads.
        self._lock = threading.RLock()

    # --- target and model ------------------------------------------------------------------

    def target_for(self, model: Any) -> str:
        """The target for requests to ``model``: the options' target, else the model's family
        (see :func:`.model_family.target_for_model`), else the memory's target when
        the model is one of LangChain's stand-in fakes or no model is known."""
        if self.options.target is not None or model is None:
            return self.target
        found = target_for_model(model)
        return self.memory.target if found is None else found

    def reset_calibration(self) -> int:
        """Forget every learnt cost in the store (every model and target): back to the
        published formulas. Returns how many tables were reset."""
        with self._lock:
            reset = reset_costs(self.memory.store)
            for learnt in self._costs.values():
                learnt.reset()
            for (_, target, key), thread in self._threads.items():
                table = self._costs.get((target, key))
                if table is not None and self.options.calibrate:
                    thread.memory.set_image_costs(table.cost)  # forget what it priced
            return reset

    def cost_table(self, target: str, model: Any) -> ImageCostTable:
        """The learnt image costs of ``model`` for ``target`` (shared by every thread)."""
        key = (target, model_key(model))
        table = self._costs.get(key)
        if table is None:
            table = self._costs[key] = ImageCostTable(self.memory.store, *key)
        return table

    # --- memory per thread ---------------------------------------------------------------------

    def memory_for(self, thread_id: str | None, model: Any = None) -> OpticalMemory:
        """The memory of ``thread_id`` (``None``: the memory's own thread), priced for
        ``model`` (default: the options' or memory's target)."""
        with self._lock:
            return self._thread(thread_id, model).memory

    def _thread(self, thread_id: str | None, model: Any = None) -> ThreadState:
        # A memory opened with its own thread_id names the thread; only the default is a slip.
        unnamed = thread_id is None and self.memory.thread_id == DEFAULT_THREAD_ID
        if unnamed and not self._warned_no_thread:
            self._warned_no_thread = True
            warnings.warn(
                f"no thread_id in the run's config: every such run shares the memory's thread "
                f"{self.memory.thread_id!r}; pass config={{'configurable': {{'thread_id': ...}}}}",
                UserWarning,
                stacklevel=5,
            )
        target = self.target_for(model)
        costs = self.cost_table(target, model).cost if self.options.calibrate else None
        return self._threads.get(
            thread_id or self.memory.thread_id, target, model_key(model), costs
        )

    @property
    def open_threads(self) -> int:
        """Threads whose memory is held in this process now (at most
        :data:`~optical_memory.agents.threads.MAX_THREADS`)."""
        return len(self._threads)

    def close(self) -> None:
        """Let every thread's memory go (those made here stop drawing ahead), forget the
        encoded images, and end the process's idle render threads. The caller's memory and
        its store stay open; the builder may still be used (memories are made again)."""
        with self._lock:
            self._threads.close()
            self.images.clear()
        release_idle_workers()

    # --- adding --------------------------------------------------------------------------------

    def remember(self, thread_id: str | None, messages: Sequence[BaseMessage]) -> None:
        """Store the messages that are not stored turns yet, in order (recognised by id or by
        lining them up with the thread's turns: :mod:`optical_memory.agents.identity`); system
        messages are instructions, not turns, and are never stored. ``messages`` are not
        changed."""
        with self._lock:
            thread = self._thread(thread_id)
            with _quiet(thread.memory):
                thread.remember(messages)

    # --- building ------------------------------------------------------------------------------

    def breakpoint(self, target: str) -> dict[str, str] | None:
        """The ``cache_control`` the memory message ends with for ``target``, if any."""
        cache_control = self.options.cache_control
        if cache_control == "auto":
            return dict(ANTHROPIC_BREAKPOINT) if target == "anthropic" else None
        return None if cache_control is None else dict(cache_control)

    def _with_breakpoint(
        self, request: list[BaseMessage], composer: _Composer, key: tuple[str, str, str]
    ) -> list[BaseMessage]:
        breakpoint = self.breakpoint(composer.target)
        cacheable = composer.cacheable
        if not breakpoint or not cacheable.keys or not is_memory_message(request[0]):
            return request
        trail = self._trails.setdefault(key, BreakpointTrail())
        at = trail.place(
            cacheable.keys,
            cacheable.ends,
            min_cacheable_tokens(composer.model_name),
            ttl_seconds(breakpoint),
        )
        if at is not None:
            request[0] = with_cache_breakpoint(request[0], breakpoint, at)
        return request

    def build(
        self,
        thread_id: str | None,
        messages: Sequence[BaseMessage],
        *,
        system_messages: Sequence[SystemMessage] = (),
        tools: Sequence[Any] = (),
        model: Any = None,
        offers_recall: bool = True,
    ) -> tuple[list[BaseMessage], CallUsage]:
        """Store ``messages`` and return the request to send instead, with its accounting.

        ``system_messages`` are not part of the returned list (send them first, unchanged);
        they and ``tools`` (as their JSON schemas) are counted. ``model`` (the chat model the
        request goes to) picks the target and the learnt image costs; ``offers_recall``: the
        model has the recall tool this call (the header names it). Raises
        :class:`BudgetTooSmallError` when the system prompt and tools alone exceed the budget.
        """
        with self._lock:
            return self._build(thread_id, messages, system_messages, tools, model, offers_recall)

    def _build(
        self,
        thread_id: str | None,
        messages: Sequence[BaseMessage],
        system_messages: Sequence[SystemMessage],
        tools: Sequence[Any],
        model: Any,
        offers_recall: bool,
    ) -> tuple[list[BaseMessage], CallUsage]:
        thread = self._thread(thread_id, model)
        with _quiet(thread.memory):
            return self._fit(thread, messages, system_messages, tools, model, offers_recall)

    def _fit(
        self,
        thread: ThreadState,
        messages: Sequence[BaseMessage],
        system_messages: Sequence[SystemMessage],
        tools: Sequence[Any],
        model: Any,
        offers_recall: bool,
    ) -> tuple[list[BaseMessage], CallUsage]:
        live = thread.remember(messages)
        fixed = instruction_tokens(system_messages, tools)
        budget = self.options.budget_tokens
        recall = self.recall_tool if offers_recall else None
        composer = _Composer(self, thread, live, fixed, model, recall)
        composer.fixed_chars = instruction_chars(system_messages, tools)
        key = (thread.memory.thread_id, composer.target, composer.model_name)
        if budget is None:
            request, usage = composer.compose(thread.memory.context())
            return self._with_breakpoint(request, composer, key), usage
        overhead = composer.overhead()
        if overhead.fixed < budget:
            request, usage = composer.compose(thread.memory.context(budget, overhead=overhead))
            if usage.total_tokens > budget:
                # Only what the overhead could not know before the plan (a tool call's
                # envelope, a caption longer than most) is left: plan once more without it.
                missed = usage.total_tokens - budget
                overhead = dataclasses.replace(overhead, fixed=overhead.fixed + missed)
                context = thread.memory.context(budget, overhead=overhead)
                request, usage = composer.compose(context)
            if usage.total_tokens <= budget:
                return self._with_breakpoint(request, composer, key), usage
        return composer.tail_only()

    def record_bill(self, usage: CallUsage, response: BaseMessage | None, model: Any) -> CallUsage:
        """``usage`` with what the model reported it billed (``usage_metadata``); with
        ``calibrate``, the images' share of the bill is learnt for later requests."""
        metadata = getattr(response, "usage_metadata", None) or {}
        billed = metadata.get("input_tokens") if isinstance(metadata, Mapping) else None
        if billed is None:
            return usage
        if self.options.calibrate:
            with self._lock:
                table = self.cost_table(usage.target, model)
                kept = table.observe(
                    usage.sent_images,
                    billed,
                    text=usage.text_tokens,
                    chars=usage.text_chars,
                    messages=usage.messages,
                )
                if kept:
                    for (_, target, key), thread in self._threads.items():
                        if (target, key) == (table.target, table.model_key):
                            thread.memory.set_image_costs(table.cost)
        if not isinstance(billed, int) or isinstance(billed, bool) or not 0 <= billed < 2**63:
            return usage  # not a token count: reported nowhere (calibration logged it)
        return dataclasses.replace(usage, billed_input_tokens=billed)


@dataclass(frozen=True)
class Cacheable:
    """The memory message's blocks up to its last page: what fixes each one's bytes, and the
    request's tokens through it (system prompt and tools first)."""

    keys: list[str]
    ends: list[int]


def _image_key(mosaic: Mosaic) -> str:
    return "mosaic:" + ",".join(page.image_key for page in mosaic.pages)


class _Composer:
    """Turns one context into the request (see the module docstring, step 3)."""

    def __init__(
        self,
        builder: MemoryRequestBuilder,
        thread: ThreadState,
        live: list[BaseMessage],
        fixed: int,
        model: Any,
        recall_tool: str | None,
    ) -> None:
        self.builder = builder
        self.recall_tool = recall_tool
        self.thread = thread
        self.memory = thread.memory
        self.live = live
        self.fixed = fixed
        self.fixed_chars = 0  # characters of the same, for calibration
        self.target = thread.memory.target
        self.model_name = model_key(model)
        self.spec = target_spec(self.target)
        self.images = builder.images
        self.costs = (
            builder.cost_table(self.target, model).cost if builder.options.calibrate else None
        )
        #: The last composed memory message's blocks up to its last page (see compose).
        self.cacheable = Cacheable([], [])

    def image_cost(self, width: int, height: int, mode: Mode | None) -> int:
        if self.costs is not None:
            return self.costs(width, height, mode)
        return vision_tokens(width, height, self.target, mode)

    def compose(self, context: MemoryContext) -> tuple[list[BaseMessage], CallUsage]:
        info = self.thread.info
        recent = {turn.id: turn for turn in context.recent}
        verbatim: list[BaseMessage] = []
        held: set[int] = set()
        for message in self.live:
            known = info.get(message.id or "")
            if known is None or known.turn_id not in recent:
                continue
            held.add(known.turn_id)
            piece = recent[known.turn_id]
            offset = known.length - len(piece.content)
            verbatim.extend(tail_of(message, offset, known) if offset > 0 else [message])
        verbatim = with_tool_calls(verbatim, self.live)
        earlier = [turn for turn in context.recent if turn.id not in held]

        message_images: list[ImageRef] = []
        for message in verbatim:
            known = info.get(message.id or "")
            if known is not None and not is_call_envelope(message):
                message_images.extend(images_sent(message, known))
        earlier_images = {
            turn.id: images_in(turn.content, self.memory.turn_images(turn.id))
            for turn in earlier
            if turn.id is not None and "[image " in turn.content
        }
        own_images = message_images + [i for images in earlier_images.values() for i in images]
        bounded = bound_pages(
            context.pages,
            self.builder.options.request_limits or self.spec.limits,
            self.image_cost,
            self.memory.store,
            reserved_images=len(own_images),
            reserved_bytes=sum(len(i.data or b"") for i in own_images),
            size=self.images.size,
        )

        captions = Captions(context, self.thread.marks)
        blocks: list[dict[str, Any]] = []
        keys: list[str] = []  # what fixes each page block's bytes, for the cache breakpoint
        images: list[int] = []  # tokens of each page block
        sent_images: list[SentImage] = []

        def add(block: dict[str, Any], key: str, tokens: int) -> None:
            blocks.append(block)
            keys.append(key)
            images.append(tokens)

        if context.memory:
            add({"type": "text", "text": self._header()}, "header", 0)
        shown = sorted([*bounded.images, *context.text_pages], key=lambda item: item.seq)
        for item in shown:
            if isinstance(item, Mosaic):
                lines = "\n".join(filter(None, (captions.caption(page) for page in item.pages)))
                text = f"{len(item.pages)} pages on one image, left to right, top to bottom:\n"
                add({"type": "text", "text": text + lines}, "text", 0)
                add(self.images.block(item), _image_key(item), item.vision_tokens)
                sent_images.append(SentImage(item.width, item.height, item.mode))
                for block in verbatim_blocks(item.pages):
                    add(block, "text", 0)
            elif isinstance(item, MemoryPage):
                caption = captions.caption(item)
                if caption:  # "" continues a run of pages of one long turn
                    add({"type": "text", "text": caption}, "text", 0)
                add(self.images.block(item), item.image_key, item.vision_tokens)
                sent_images.append(SentImage(item.width, item.height, item.mode))
                for block in verbatim_blocks([item]):
                    add(block, "text", 0)
            else:
                caption = captions.caption(item)
                text = f"{caption}\n{item.text}".lstrip("\n")
                add({"type": "text", "text": text}, "text", 0)
        # Each text block is its own key: its text.
        keys = [b["text"] if k == "text" else k for b, k in zip(blocks, keys, strict=True)]
        block_tokens = [
            count_text_tokens(b["text"]) if b["type"] == "text" else t
            for b, t in zip(blocks, images, strict=True)
        ]
        ends, total = [], self.fixed
        for tokens in block_tokens:
            total += tokens
            ends.append(total)
        self.cacheable = Cacheable(keys, ends)
        # What changes per call comes after the pages, behind the cache breakpoint.
        if earlier:
            lines = "\n".join(f"{turn.role}: {turn.content}" for turn in earlier)
            if not blocks:
                blocks.append({"type": "text", "text": self._header()})
            blocks.append({"type": "text", "text": f"{LATEST_TURNS}\n{lines}"})
            for turn in earlier:
                blocks.extend(image.block() for image in earlier_images.get(turn.id or 0, []))
        if verbatim and context.recent and verbatim[0] is not self.live[0]:
            first = info.get(verbatim[0].id or "")
            if first is not None and len(context.recent[0].content) < first.length:
                if not blocks:
                    blocks.append({"type": "text", "text": self._header()})
                blocks.append({"type": "text", "text": SPLIT_NOTE})

        request: list[BaseMessage] = []
        if blocks:
            request.append(
                HumanMessage(
                    content_blocks=blocks,  # type: ignore[arg-type]
                    additional_kwargs={"lc_source": MEMORY_MESSAGE_SOURCE},
                )
            )
        request.extend(verbatim)
        for image in own_images:
            width, height = (image.width, image.height)
            sized = image.data is not None and bool(width) and bool(height)
            if not sized:
                width, height = URL_IMAGE_SIZE
            assert width is not None and height is not None
            sent_images.append(SentImage(width, height, None, known=sized))
        text_tokens = self.fixed + sum(
            count_text_tokens(block["text"]) for block in blocks if block["type"] == "text"
        )
        text_tokens += sum(message_tokens(m) for m in verbatim)
        text_chars = self.fixed_chars + sum(
            len(block["text"]) for block in blocks if block["type"] == "text"
        )
        text_chars += sum(message_chars(m) for m in verbatim)
        vision = sum(page.vision_tokens for page in bounded.images)
        own = sent_images[len(bounded.images) :]
        vision += sum(self.image_cost(i.width, i.height, i.mode) for i in own)
        page_count = sum(len(i.pages) if isinstance(i, Mosaic) else 1 for i in bounded.images)
        usage = CallUsage(
            thread_id=self.memory.thread_id,
            text_tokens=text_tokens,
            vision_tokens=vision,
            replaced_text_tokens=sum(i.text_tokens for i in bounded.images),
            pages=page_count,
            text_pages=len(context.text_pages),
            messages=len(verbatim),
            budget_tokens=self.builder.options.budget_tokens,
            target=self.target,
            model=self.model_name,
            images=len(bounded.images) + len(own_images),
            image_bytes=sum(self.images.size(i) for i in bounded.images)
            + sum(len(i.data or b"") for i in own_images),
            mosaics=sum(isinstance(i, Mosaic) for i in bounded.images),
            forgotten_for_limits=len(bounded.forgotten),
            sent_images=tuple(sent_images),
            text_chars=text_chars,
        )
        return request, usage

    def _header(self) -> str:
        # Nothing in it changes from call to call (no page count): it opens the cached prefix.
        header = "Earlier in this conversation (optical memory, pages oldest first"
        if self.recall_tool:
            header += (
                f"; each turn is labelled with its number, and the {self.recall_tool} tool "
                "returns the exact text of a turn or a page"
            )
        return header + "):"

    def overhead(self) -> RequestOverhead:
        """What the request adds to the memory's pages and recent text, priced before they
        are planned: instructions, header, the caller's images, and a caption per page (a
        long one, so the plan errs on the safe side). The notes that only some calls carry
        are left to the plan's headroom (a tight budget keeps a turn rather than room for a
        note it may not need)."""
        fixed = self.fixed + count_text_tokens(self._header())
        for message in self.live:
            known = self.thread.info.get(message.id or "")
            if known is not None and known.images:
                for image in images_sent(message, known):
                    width, height = image.width, image.height
                    if image.data is None or not width or not height:
                        width, height = URL_IMAGE_SIZE
                    fixed += self.image_cost(width, height, None)
        return RequestOverhead(fixed=fixed, per_page=count_text_tokens(_CAPTION_SAMPLE))

    def tail_only(self) -> tuple[list[BaseMessage], CallUsage]:
        """The newest message alone, as much of its tail as fits the budget, with a note."""
        budget = self.builder.options.budget_tokens
        assert budget is not None
        newest = self.live[-1] if self.live else None
        known = None if newest is None else self.thread.info.get(newest.id or "")
        if newest is None or known is None:
            raise self._too_small()
        text = newest.text
        envelope = with_tool_calls([newest], self.live)[:-1]
        fixed = self.fixed + sum(message_tokens(m) for m in envelope)

        tool = self.recall_tool
        search = f"; the {tool} tool searches them" if tool else ""
        count = len(known.images)
        pictures = f"{count} image{'s' if count != 1 else ''}" if count else ""

        def request_for(keep: int) -> tuple[list[BaseMessage], int]:
            cut = len(text) - keep
            left = " and ".join(
                part for part in (f"first {cut} characters" if cut else "", pictures) if part
            )
            note = (
                f"The newest message is too long for this request's budget: its {left} are "
                f"left out here (stored in memory whole{search}). The rest follows."
            )
            memory_message = HumanMessage(
                content=note, additional_kwargs={"lc_source": MEMORY_MESSAGE_SOURCE}
            )
            tail = newest.model_copy(update={"content": text[cut:]})
            if isinstance(tail, AIMessage):
                tail.tool_calls = []
            tokens = fixed + count_text_tokens(note) + count_text_tokens(text[cut:])
            return [memory_message, *envelope, tail], tokens

        low, high = 0, len(text)
        while low < high:  # the longest tail that fits
            middle = (low + high + 1) // 2
            if request_for(middle)[1] <= budget:
                low = middle
            else:
                high = middle - 1
        request, tokens = request_for(low)
        if low == 0 or tokens > budget:
            raise self._too_small()
        usage = CallUsage(
            thread_id=self.memory.thread_id,
            text_tokens=tokens,
            vision_tokens=0,
            replaced_text_tokens=0,
            pages=0,
            text_pages=0,
            messages=len(request) - 1,
            budget_tokens=budget,
            target=self.target,
            model=self.model_name,
            truncated_chars=len(text) - low,
        )
        return request, usage

    def _too_small(self) -> BudgetTooSmallError:
        return BudgetTooSmallError(
            f"thread {self.memory.thread_id!r}: the system prompt and tool schemas alone "
            f"exceed budget_tokens={self.builder.options.budget_tokens}: raise the budget, or "
            "shorten the system prompt or the tools' descriptions"
        )


def verbatim_blocks(pages: Sequence[MemoryPage]) -> list[dict[str, Any]]:
    """The text block of exact values that follows a page's image (one per page that has
    them): fixed when the page was frozen, so it never changes a cached prefix."""
    return [{"type": "text", "text": page.verbatim} for page in pages if page.verbatim]


def _quiet(memory: OpticalMemory) -> AbstractContextManager[None]:
    """Render-ahead held back while a request is built (see
    :meth:`~optical_memory.memory.render_ahead.RenderAhead.hold`)."""
    ahead = memory.render_ahead
    return nullcontext() if ahead is None else ahead.hold()


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
