"""The outgoing model request: old turns as memory pages, the newest as the caller's messages.

Shared by :class:`~optical_memory.agents.OpticalMemoryMiddleware` (``create_agent``) and
:func:`~optical_memory.agents.wrap` (any chat model or Runnable). :class:`MemoryRequestBuilder`
holds a memory per thread (:mod:`optical_memory.agents.threads`) and, for one model call:

1. adds every message the caller holds to its thread's memory once, recognised by its
   LangChain ``id`` (remembered in the store) or by lining the messages up with the thread's
   stored turns (:mod:`optical_memory.agents.identity`), so repeated calls of one run,
   re-invocations, whole histories rebuilt from dicts, checkpoint replays, retries and new
   processes add nothing twice; images in messages are kept with their turn;
2. plans the request once, whole, within ``budget_tokens`` (:mod:`optical_memory.agents.fit`):
   the thread's :meth:`~optical_memory.OpticalMemory.context` gives the pages (oldest first)
   and the turns not on a page;
3. composes ``[one memory message] + [the caller's messages for those turns]``, every
   character of the thread sent once (:mod:`optical_memory.agents.composer`); a newest message
   that cannot fit is sent as much of its tail as fits, with a note
   (:mod:`optical_memory.agents.truncation`);
4. lays the memory message out for prompt caches: a header that never changes, then the pages,
   oldest first, then what changes per call. With ``cache_control`` (the default for the
   ``anthropic`` target) a page block carries an Anthropic cache breakpoint, placed within the
   API's lookback of the last one (:mod:`optical_memory.agents.breakpoints`).

Nothing here edits the caller's list: only the request changes.
"""

from __future__ import annotations

import dataclasses
import threading
import warnings
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from optical_memory.agents.breakpoints import (
    BreakpointTrail,
    breakpoint_for,
    with_memory_breakpoint,
)
from optical_memory.agents.calibration import ImageCostTable, reset_costs
from optical_memory.agents.composer import RequestComposer
from optical_memory.agents.encoded import EncodedImages
from optical_memory.agents.fit import fit_request
from optical_memory.agents.model_family import target_for_model
from optical_memory.agents.threads import ThreadMemories, ThreadState
from optical_memory.agents.truncation import tail_only
from optical_memory.agents.usage import CallUsage
from optical_memory.agents.window import (
    instruction_chars,
    instruction_tokens,
    is_memory_message,
    model_key,
)
from optical_memory.extras import import_extra
from optical_memory.options import MemoryOptions, OptionValues

if TYPE_CHECKING:
    from typing import Unpack

import_extra("langchain_core", "langchain")

from langchain_core.messages import BaseMessage, SystemMessage  # noqa: E402

from optical_memory.memory import OpticalMemory  # noqa: E402
from optical_memory.memory.optical import DEFAULT_THREAD_ID  # noqa: E402
from optical_memory.memory.render_ahead import release_idle_workers  # noqa: E402


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
        **overrides: Unpack[OptionValues],
    ) -> None:
        self.options = MemoryOptions.of(options or memory.options, overrides)
        self.memory = memory
        self.recall_tool = recall_tool
        self.target = self.options.target or memory.target
        self._threads = ThreadMemories(memory, self.options)
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
            table = self._costs[key] = ImageCostTable(
                self.memory.store, *key, tuning=self.options.tuning
            )
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
                stacklevel=4,
            )
        target = self.target_for(model)
        costs = self.cost_table(target, model).cost if self.options.calibrate else None
        return self._threads.get(
            thread_id or self.memory.thread_id, target, model_key(model), costs
        )

    @property
    def open_threads(self) -> int:
        """Threads whose memory is held in this process now (at most
        :attr:`~optical_memory.options.Tuning.max_threads`)."""
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

    def _with_breakpoint(
        self, request: list[BaseMessage], composer: RequestComposer
    ) -> list[BaseMessage]:
        cache_control = breakpoint_for(self.options.cache_control, composer.target)
        if not cache_control or not composer.cacheable.keys or not is_memory_message(request[0]):
            return request
        key = (composer.memory.thread_id, composer.target, composer.model_name)
        trail = self._trails.setdefault(key, BreakpointTrail())
        request[0] = with_memory_breakpoint(
            request[0], cache_control, composer.cacheable, trail, composer.model_name
        )
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
        :class:`~optical_memory.agents.BudgetTooSmallError` when the system prompt and tools
        alone exceed the budget.
        """
        with self._lock:
            thread = self._thread(thread_id, model)
            with _quiet(thread.memory):
                live = thread.remember(messages)
                composer = RequestComposer(
                    thread,
                    live,
                    options=self.options,
                    images=self.images,
                    costs=self.cost_table(thread.memory.target, model).cost
                    if self.options.calibrate
                    else None,
                    fixed=instruction_tokens(system_messages, tools),
                    fixed_chars=instruction_chars(system_messages, tools),
                    model=model,
                    recall_tool=self.recall_tool if offers_recall else None,
                )
                fitted = fit_request(composer, self.options.budget_tokens)
                if fitted is None:
                    return tail_only(composer)
                request, usage = fitted
                return self._with_breakpoint(request, composer), usage

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


def _quiet(memory: OpticalMemory) -> AbstractContextManager[None]:
    """Render-ahead held back while a request is built (see
    :meth:`~optical_memory.memory.render_ahead.RenderAhead.hold`)."""
    ahead = memory.render_ahead
    return nullcontext() if ahead is None else ahead.hold()
