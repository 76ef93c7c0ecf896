"""Which of a call's messages are turns the thread already stores: identity from the conversation.

A caller may send the whole history on every call or only the new messages; as LangChain
messages with ids, as ``{"role", "content"}`` dicts, or rebuilt from text (``AIMessage(text)``
without an id). A message is recognised as a stored turn

1. as the same object sent before in this process (:class:`SeenMessages`);
2. by its id: a LangChain id remembered with its turn (store blob :data:`MESSAGE_KEY_NAMESPACE`),
   or ``optical-memory-turn-N`` (:data:`TURN_MESSAGE_ID_PREFIX`), the id of a message read back
   from stored turn ``N``;
3. else by lining the call's messages up with the thread's newest stored turns, by what each
   message is stored as (role and text, tool calls and image placeholders included): the latest
   run of messages that ends with the thread's newest turn, reaching back as far as messages and
   turns agree, is the past when it is trustworthy: it holds a message recognised by id, or
   reaches the call's first message or the thread's first turn, or is at least
   :data:`MIN_PARTIAL_RUN` long. The messages after it are new; those before it that match no
   turn are older context the caller holds (:attr:`Identified.past`).

So re-sending the whole history, rebuilding it each call, and retrying a call whose write did
commit although an error said otherwise all store each message once. The caller's messages
are never changed; :func:`with_turn_id` gives a message without an id a copy whose id names
its turn, for the request.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from optical_memory.store import MESSAGE_KEY_NAMESPACE, Store
from optical_memory.turns import Turn

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage

#: Id prefix of messages read back from stored turns (``OpticalChatMessageHistory``) or sent
#: as copies of messages that had no id: such a message is that turn, never stored again.
TURN_MESSAGE_ID_PREFIX = "optical-memory-turn-"
#: A run of this many messages matching the thread's newest turns is accepted even when it
#: stops at a message that differs (e.g. a reply rebuilt without its tool calls further back).
MIN_PARTIAL_RUN = 4


@dataclass(frozen=True)
class Identified:
    """What :func:`identify` found for one message.

    ``turn_id``: the stored turn it is (``None``: new, store it); ``past``: it lies before the
    run that lines up with the stored turns and matches none of them (older context the caller
    holds, e.g. a summary: neither stored nor sent); ``keyed``: it was recognised by its id
    (no key to write)."""

    turn_id: int | None
    past: bool = False
    keyed: bool = False


class SeenMessages:
    """Message objects already matched to turns in this process, held weakly and by identity:
    the same objects sent again (a fixed preamble before only the new messages, say) are
    their turns, ids or not, wherever they sit in the call."""

    def __init__(self) -> None:
        self._seen: dict[int, tuple[weakref.ref[BaseMessage], int]] = {}

    def turn_of(self, message: BaseMessage) -> int | None:
        entry = self._seen.get(id(message))
        return entry[1] if entry is not None and entry[0]() is message else None

    def remember(self, message: BaseMessage, turn_id: int) -> None:
        key, seen = id(message), self._seen

        def forget(ref: weakref.ref[BaseMessage]) -> None:
            entry = seen.get(key)
            if entry is not None and entry[0] is ref:
                del seen[key]

        seen[key] = (weakref.ref(message, forget), turn_id)

    def __len__(self) -> int:
        return len(self._seen)


def turn_of_id(store: Store, thread_id: str, message_id: str | None) -> int | None:
    """The turn a message id names in the thread: a remembered key or a turn-message id."""
    if not message_id:
        return None
    stored = store.get_blob(MESSAGE_KEY_NAMESPACE, thread_id, "", message_id)
    if stored is not None:
        return int(stored.decode())
    if message_id.startswith(TURN_MESSAGE_ID_PREFIX):
        number = message_id.removeprefix(TURN_MESSAGE_ID_PREFIX)
        if number.isdigit() and store.get_turns(thread_id, [int(number)]):
            return int(number)
    return None


def identify(
    store: Store,
    thread_id: str,
    messages: Sequence[BaseMessage],
    stored_as: Callable[[int], tuple[str, str]],
    known: Callable[[BaseMessage], int | None],
) -> list[Identified]:
    """Each message's turn in ``thread_id``, or ``None`` where it is new (see the module doc).

    ``stored_as(i)`` is the ``(role, content)`` message ``i`` is stored as; ``known(message)``
    is its turn when already known in this process (else the store is asked by id).
    """
    count = len(messages)
    by_id: list[int | None] = []
    for message in messages:
        turn_id = known(message)
        by_id.append(turn_id if turn_id is not None else turn_of_id(store, thread_id, message.id))
    found = list(by_id)
    run_start = 0
    if None in found:
        tail = store.newest_turns(thread_id, count)
        run = _newest_run(by_id, stored_as, tail, whole_thread=len(tail) < count)
        if run is not None:
            run_start, run_end = run
            for back, index in enumerate(range(run_end - 1, run_start - 1, -1), start=1):
                found[index] = tail[-back].id
    return [
        Identified(
            turn_id=found[index],
            past=found[index] is None and index < run_start,
            keyed=by_id[index] is not None,
        )
        for index in range(count)
    ]


def _newest_run(
    by_id: list[int | None],
    stored_as: Callable[[int], tuple[str, str]],
    tail: Sequence[Turn],
    *,
    whole_thread: bool,
) -> tuple[int, int] | None:
    """``(start, end)``: messages ``start..end-1`` are the thread's newest turns, the last of
    them the newest; the latest such end that is trusted (module doc), or ``None``."""
    if not tail:
        return None
    last = len(tail) - 1

    def same(index: int, position: int) -> bool:
        turn = tail[position]
        if by_id[index] is not None:
            return by_id[index] == turn.id
        return stored_as(index) == (turn.role, turn.content)

    for end in range(len(by_id), 0, -1):
        if not same(end - 1, last):
            continue
        index, position, anchored = end - 1, last, False
        while index >= 0 and position >= 0 and same(index, position):
            anchored = anchored or by_id[index] is not None  # an id confirms where it sits
            index, position = index - 1, position - 1
        reaches_start = index < 0 or (position < 0 and whole_thread)
        if anchored or reaches_start or end - 1 - index >= MIN_PARTIAL_RUN:
            return index + 1, end
    return None


def with_turn_id(message: BaseMessage, turn_id: int) -> BaseMessage:
    """``message`` if it has an id, else a copy whose id names its stored turn."""
    if message.id:
        return message
    return message.model_copy(update={"id": f"{TURN_MESSAGE_ID_PREFIX}{turn_id}"})
