"""Each message is stored once whatever shape the caller sends it in.

Whole history or only the new messages; LangChain messages with ids, without ids, rebuilt from
text each call, or ``{"role", "content"}`` dicts: 300 exchanges store exactly 600 turns, the
caller's objects are left as they were, and the newest request carries every stored character
once (checked against the store, as in ``test_exactly_once``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("langchain")

from langchain.agents import create_agent
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.messages.utils import convert_to_messages
from langgraph.checkpoint.memory import InMemorySaver
from recording_model import RecordingChatModel
from test_exactly_once import check_request

from optical_memory import OpticalMemory
from optical_memory.agents import OpticalMemoryMiddleware, wrap
from optical_memory.store import MESSAGE_KEY_NAMESPACE, StoreUnavailableError

EXCHANGES = 300
CONFIG: Any = {"configurable": {"thread_id": "t"}}


def _question(n: int) -> str:
    return f"Question {n}: which ship did keeper {n % 17} log on day {n}?"


def _answer(n: int) -> str:
    return f"Answer {n}: the {['Ada', 'Brig', 'Cora'][n % 3]} on day {n}, at dawn."


def _model(count: int = EXCHANGES) -> RecordingChatModel:
    return RecordingChatModel(messages=iter([_answer(n) for n in range(count)]))


Shape = Callable[[list[tuple[str, str]], int], list[Any]]


def _whole_dicts(history: list[tuple[str, str]], n: int) -> list[Any]:
    return [{"role": role, "content": text} for role, text in history]


def _whole_rebuilt(history: list[tuple[str, str]], n: int) -> list[Any]:
    kinds = {"user": HumanMessage, "assistant": AIMessage}
    return [kinds[role](text) for role, text in history]


def _new_dicts(history: list[tuple[str, str]], n: int) -> list[Any]:
    return [{"role": "user", "content": history[-1][1]}]


def _new_messages(history: list[tuple[str, str]], n: int) -> list[Any]:
    return [HumanMessage(history[-1][1])]


def _window_rebuilt(history: list[tuple[str, str]], n: int) -> list[Any]:
    """The last few messages only, rebuilt each call (a trimmed chat loop)."""
    return _whole_rebuilt(history[-5:], n)


@pytest.mark.parametrize(
    "shape",
    [_whole_dicts, _whole_rebuilt, _new_dicts, _new_messages, _window_rebuilt],
    ids=["whole-dicts", "whole-rebuilt", "new-dicts", "new-messages", "window-rebuilt"],
)
def test_wrap_stores_300_exchanges_as_600_turns_whatever_the_shape(shape: Shape) -> None:
    memory = OpticalMemory(None)
    model = _model()
    chat = wrap(memory, model)
    history: list[tuple[str, str]] = []
    sent: list[Any] = []
    for n in range(EXCHANGES):
        history.append(("user", _question(n)))
        sent = shape(history, n)
        answer = chat.invoke(sent, CONFIG)
        history.append(("assistant", answer.text))
    stored = [(t.role, t.content) for t in memory.store.iter_turns("t")]
    assert len(stored) == 2 * EXCHANGES
    assert stored == history
    caller = convert_to_messages(sent)
    whole = shape in (_whole_dicts, _whole_rebuilt)
    check_request(chat.memory("t"), "t", model.requests[-1], caller, caller_holds_all=whole)
    # The caller's messages were not given ids.
    assert all(getattr(m, "id", None) is None for m in sent)


def test_wrap_with_the_same_objects_and_the_models_answers_stores_each_once() -> None:
    memory = OpticalMemory(None)
    model = _model()
    chat = wrap(memory, model)
    history: list[BaseMessage] = []
    for n in range(EXCHANGES):
        history.append(HumanMessage(_question(n)))
        history.append(chat.invoke(history, CONFIG))
    assert memory.store.count_turns("t") == 2 * EXCHANGES
    check_request(chat.memory("t"), "t", model.requests[-1], history[:-1])
    assert all(m.id is None for m in history[::2])


def test_a_reply_rebuilt_without_its_id_is_not_stored_again() -> None:
    memory = OpticalMemory(None)
    chat = wrap(memory, _model(20))
    history: list[BaseMessage] = []
    for n in range(10):
        history.append(HumanMessage(_question(n)))
        history.append(AIMessage(chat.invoke(history, CONFIG).text))  # the id is dropped
    assert memory.store.count_turns("t") == 20


def test_a_preamble_object_sent_before_each_new_message_is_stored_once() -> None:
    memory = OpticalMemory(None)
    chat = wrap(memory, _model(10))
    preamble = [HumanMessage("You help keepers."), AIMessage("Understood.")]
    for n in range(10):
        chat.invoke([*preamble, HumanMessage(_question(n))], CONFIG)
    stored = [t.content for t in memory.store.iter_turns("t")]
    assert stored[:2] == ["You help keepers.", "Understood."]
    assert len(stored) == 2 + 20
    assert all(m.id is None for m in preamble)


def test_the_agent_stores_300_exchanges_as_600_turns() -> None:
    memory = OpticalMemory(None)
    model = _model()
    middleware = OpticalMemoryMiddleware(memory)
    agent = create_agent(model, [], middleware=[middleware], checkpointer=InMemorySaver())
    state: dict[str, Any] = {}
    for n in range(EXCHANGES):
        state = agent.invoke({"messages": [HumanMessage(_question(n))]}, CONFIG)
    stored = [t.content for t in memory.store.iter_turns("t")]
    assert stored == [text for n in range(EXCHANGES) for text in (_question(n), _answer(n))]
    caller = state["messages"][:-1]  # what the last model call was given
    check_request(middleware.memory("t"), "t", model.requests[-1], caller)


def test_an_agent_given_the_whole_history_as_dicts_each_run_stores_it_once() -> None:
    memory = OpticalMemory(None)
    model = _model(30)
    agent = create_agent(model, [], middleware=[OpticalMemoryMiddleware(memory)])
    history: list[dict[str, str]] = []
    for n in range(30):
        history.append({"role": "user", "content": _question(n)})
        result = agent.invoke({"messages": list(history)}, CONFIG)
        history.append({"role": "assistant", "content": result["messages"][-1].text})
    assert memory.store.count_turns("t") == 60


class _FlakyStore:
    """Wraps a store: the chosen turn write commits, then reports the server gone."""

    def __init__(self, store: Any, fail_on: int) -> None:
        self._store = store
        self._calls = 0
        self._fail_on = fail_on

    def add_turn(self, *args: Any, **kwargs: Any) -> Any:
        added = self._store.add_turn(*args, **kwargs)
        self._calls += 1
        if self._calls == self._fail_on:
            raise StoreUnavailableError("connection lost after COMMIT (simulated)")
        return added

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


@pytest.mark.parametrize(("fail_on", "message_id"), [(1, None), (1, "q0"), (2, "q0")])
def test_a_retry_after_an_error_that_hid_a_commit_stores_nothing_twice(
    fail_on: int, message_id: str | None, store_location: str
) -> None:
    """The question (1st write) or the answer (2nd) commits but the call reports an error.

    A question without an id is recognised by its text only while it is the thread's newest
    turn; once an answer follows it, the same text again is a new message ("yes", "go on").
    """
    memory = OpticalMemory(store_location)
    memory.store = _FlakyStore(memory.store, fail_on)
    chat = wrap(memory, _model(3))
    question = HumanMessage(_question(0), id=message_id)
    with pytest.raises(StoreUnavailableError):
        chat.invoke([question], CONFIG)
    if message_id is not None:  # the message's key committed with its turn
        assert memory.store.get_blob(MESSAGE_KEY_NAMESPACE, "t", "", message_id) is not None
    chat.invoke([question], CONFIG)  # the caller retries the same call
    roles = [t.role for t in memory.store.iter_turns("t")]
    assert roles.count("user") == 1
    assert roles == ["user", "assistant"] if fail_on == 1 else ["user", "assistant", "assistant"]
