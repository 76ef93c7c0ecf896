"""The conversations a request builder holds in process: one memory per thread, bounded.

Each (thread, target, model) the builder serves has a :class:`ThreadState`: the thread's
:class:`~optical_memory.OpticalMemory` (the caller's own memory for its own thread; others made
on the same store, drawing pages ahead), what the thread's messages were stored as, and its turn
marks. At most :attr:`~optical_memory.options.Tuning.max_threads` are held: the least recently
used is let go (everything it knew is in the store, and it is made again when its thread comes
back).
:meth:`ThreadState.remember` adds a call's messages to the thread, each once
(:mod:`optical_memory.agents.identity`).
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from optical_memory import renderers
from optical_memory.agents.captions import TurnMarks
from optical_memory.agents.identity import (
    MESSAGE_KEY_NAMESPACE,
    SeenMessages,
    identify,
    with_turn_id,
)
from optical_memory.agents.messages import sendable
from optical_memory.agents.window import MessageInfo, is_memory_message
from optical_memory.extras import import_extra
from optical_memory.geometry import calibrated_cells, level_sides
from optical_memory.legibility import ModeLegibility, load_calibration
from optical_memory.messages import MessageTurn, message_to_turn
from optical_memory.modes import Mode
from optical_memory.options import MemoryOptions
from optical_memory.renderers.page import Renderer
from optical_memory.store import logger

import_extra("langchain_core", "langchain")

from langchain_core.messages import BaseMessage, SystemMessage  # noqa: E402

from optical_memory.memory import OpticalMemory  # noqa: E402

ImageCosts = Callable[[int, int, Mode | None], int]


@dataclass
class ThreadState:
    """One thread as a builder holds it: its memory, and its messages as stored turns."""

    memory: OpticalMemory
    info: dict[str, MessageInfo]
    marks: TurnMarks
    seen: SeenMessages = dataclasses.field(default_factory=SeenMessages)

    def remember(self, messages: Sequence[BaseMessage]) -> list[BaseMessage]:
        """Store the messages that are not stored turns yet, in order (system messages are
        instructions, never stored); return the conversation's messages as the request sends
        them (a message without an id as a copy whose id names its turn; malformed images as
        their placeholders). ``messages`` are not changed."""
        store, name = self.memory.store, self.memory.thread_id
        self._forget_if_deleted()
        live = [m for m in messages if not isinstance(m, SystemMessage)]
        live = [m for m in live if not is_memory_message(m)]
        turns: dict[int, MessageTurn] = {}

        def turn(index: int) -> MessageTurn:
            if index not in turns:
                turns[index] = message_to_turn(live[index], index)
            return turns[index]

        def turn_known(message: BaseMessage) -> int | None:
            info = self.info.get(message.id or "")
            return self.seen.turn_of(message) if info is None else info.turn_id

        found = identify(store, name, live, lambda i: turn(i)[:2], turn_known)
        sent: list[BaseMessage] = []
        for index, (message, identified) in enumerate(zip(live, found, strict=True)):
            if identified.past:
                continue
            turn_id = identified.turn_id
            known = self.info.get(message.id or "")
            if turn_id is not None and known is not None:
                sent.append(sendable(message, known.images))
                continue
            stored = turn(index)
            if turn_id is None:
                added = self.memory.add(
                    stored.role,
                    stored.content,
                    timestamp=stored.timestamp,
                    images=stored.images,
                    key=message.id or None,  # committed with the turn
                )
                assert added.id is not None
                turn_id = added.id
            elif message.id and not identified.keyed:  # recognised by its text: remember the id
                store.put_blob(MESSAGE_KEY_NAMESPACE, name, "", message.id, str(turn_id).encode())
            if not message.id:
                self.seen.remember(message, turn_id)  # the same object again: this turn
            message = with_turn_id(sendable(message, stored.images), turn_id)
            assert message.id is not None
            self.info[message.id] = MessageInfo(turn_id, len(stored.content), stored.images)
            sent.append(message)
        return sent

    def _forget_if_deleted(self) -> None:
        """Forget which messages were stored when the newest turn known is gone: the thread
        was deleted (by this process or another), so the caller's messages are stored again
        and the memory goes on from an empty thread instead of leaving them out."""
        if not self.info:
            return
        name = self.memory.thread_id
        newest = max(known.turn_id for known in self.info.values())
        if not self.memory.store.get_turns(name, [newest]):
            logger.info("thread %r was deleted: its messages are stored anew", name)
            self.info.clear()
            self.seen = SeenMessages()


class ThreadMemories:
    """The :class:`ThreadState` of each (thread, target, model key), most recently used last,
    at most ``options.tuning.max_threads``. A memory opened here has ``options`` (the agents
    layer's), with ``base``'s target-independent settings: its verbatim tokens, schedule and
    renderer."""

    def __init__(self, base: OpticalMemory, options: MemoryOptions) -> None:
        self.base = base
        self.options = options
        self.keep_recent_turns = options.keep_recent_turns
        self._states: OrderedDict[tuple[str, str, str], ThreadState] = OrderedDict()
        self._info: dict[str, dict[str, MessageInfo]] = {}  # per thread, shared by targets
        self._renderers: dict[tuple[str, str], Renderer] = {}  # per target and calibrated model

    def get(self, name: str, target: str, model_key: str, costs: ImageCosts | None) -> ThreadState:
        """The state of thread ``name`` priced for ``target`` (``costs``: learnt image costs
        to price with, when calibrating)."""
        key = (name, target, model_key)
        state = self._states.get(key)
        if state is not None:
            self._states.move_to_end(key)
            return state
        base = self.base
        # What `optical-memory calibrate` measured this model to read ({}: never calibrated).
        table = load_calibration(base.store, model_key) if model_key else {}
        renderer = self._renderer_for(target, model_key, table)
        if (name, self.keep_recent_turns, target, renderer, self.options.tuning) == (
            base.thread_id,
            base.keep_recent_turns,
            base.target,
            base.renderer,
            base.tuning,
        ):
            memory = base  # the caller's memory serves its own thread
        else:
            memory = OpticalMemory(
                base.store,
                thread_id=name,
                schedule=base.schedule,
                renderer=renderer,
                options=self.options,
                target=target,
                render_ahead=True,  # pages drawn between calls, not on them
                verbatim_tokens=base.verbatim_tokens,
            )
        if costs is not None:
            memory.set_image_costs(costs)
        if table:
            memory.set_legibility(table)
        info = self._info.setdefault(name, {})
        state = self._states[key] = ThreadState(memory, info, TurnMarks(memory))
        while len(self._states) > self.options.tuning.max_threads:
            self._let_go(self._states.popitem(last=False)[1])
            names = {held for held, _, _ in self._states}
            self._info = {held: info for held, info in self._info.items() if held in names}
        return state

    def items(self) -> Iterator[tuple[tuple[str, str, str], ThreadState]]:
        return iter(list(self._states.items()))

    def _renderer_for(
        self, target: str, model_key: str, table: dict[Mode, ModeLegibility]
    ) -> Renderer:
        """The base memory's renderer, or, when that is only the default for the base's target,
        one drawing ``target``'s own page geometry (shared by that target's threads): the
        sides :func:`~optical_memory.geometry.level_sides` chooses from what ``model_key`` was
        calibrated to read (``table``) when it was, else from the priors."""
        base = self.base
        if not base.default_renderer:
            return base.renderer
        if target == base.target and not table:
            return base.renderer
        key = (target, model_key if table else "")
        if key not in self._renderers:
            cells = calibrated_cells(target, table) if table else None
            self._renderers[key] = renderers.create("pil", sides=level_sides(target, cells))
        return self._renderers[key]

    def close(self) -> None:
        """Let every state go (memories made here stop drawing ahead; stores stay open)."""
        while self._states:
            self._let_go(self._states.popitem()[1])
        self._info.clear()

    def __len__(self) -> int:
        return len(self._states)

    def _let_go(self, state: ThreadState) -> None:
        if state.memory is not self.base and state.memory.render_ahead is not None:
            state.memory.render_ahead.close()  # the store is shared: not closed
