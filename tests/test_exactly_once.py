"""Every character of a thread reaches the model once: pages plus the caller's messages, in order.

Random conversations (messages of 1 to 200,000 characters, tool calls with long results,
images) go through ``wrap`` and through a real ``create_agent`` graph with a checkpointer; for
every recorded request, the pages' exact spans (read from the store by the page ids on the
image blocks, or matched by their text when sent as text) and the verbatim messages (whole, or
a tail that must equal the end of the stored turn) must cover each stored turn exactly once,
in order, and no tool result may come without its call.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any

import pytest

pytest.importorskip("langchain")

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from PIL import Image
from recording_model import RecordingChatModel

from optical_memory import OpticalMemory
from optical_memory.agents import OpticalMemoryMiddleware, wrap
from optical_memory.agents.identity import MESSAGE_KEY_NAMESPACE, TURN_MESSAGE_ID_PREFIX
from optical_memory.agents.window import MEMORY_MESSAGE_SOURCE, TOOL_CALL_SOURCE
from optical_memory.messages import tool_call_lines

SIZES = st.one_of(st.integers(1, 400), st.integers(1, 6000), st.integers(1, 200_000))


@dataclass
class Step:
    question: int
    image: bool
    tool_result: int | None
    answer: int


STEPS = st.lists(
    st.builds(Step, SIZES, st.booleans(), st.none() | SIZES, st.integers(1, 3000)),
    min_size=1,
    max_size=5,
)


def _text(size: int, seed: str) -> str:
    words = (f"{seed}{n} " for n in range(size))
    return "".join(words)[:size].rstrip() or seed


def _png(n: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (40 + n, 30), (n * 40 % 256, 90, 160)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _question(step: Step, n: int) -> HumanMessage:
    text = _text(step.question, f"q{n}w")
    if not step.image:
        return HumanMessage(text)
    image = {"type": "image", "base64": _png(n), "mime_type": "image/png"}
    return HumanMessage(content_blocks=[{"type": "text", "text": text}, image])  # type: ignore[list-item]


def _answers(steps: list[Step]) -> list[AIMessage]:
    script = []
    for n, step in enumerate(steps):
        if step.tool_result is not None:
            call = {"name": "archive", "args": {"size": step.tool_result, "n": n}, "id": f"c{n}"}
            script.append(AIMessage("", tool_calls=[call]))
        script.append(AIMessage(_text(step.answer, f"a{n}w")))
    return script


@tool
def archive(size: int, n: int) -> str:
    """Read the archive."""
    return _text(size, f"t{n}w")


# --- reading a request back against the store ---------------------------------------------------


def _turn_id(memory: OpticalMemory, thread: str, message: BaseMessage) -> int:
    assert message.id is not None
    if message.id.startswith(TURN_MESSAGE_ID_PREFIX):  # a copy of a message that had no id
        return int(message.id.removeprefix(TURN_MESSAGE_ID_PREFIX))
    key = memory.store.get_blob(MESSAGE_KEY_NAMESPACE, thread, "", message.id)
    assert key is not None, "every verbatim message is a stored turn"
    return int(key.decode())


def _sent_text(message: BaseMessage) -> str:
    """A tail message's text as stored: its text, then its tool calls."""
    text = message.text + tool_call_lines(message)
    return text.lstrip("\n") if not message.text else text


def check_request(
    memory: OpticalMemory,
    thread: str,
    request: list[BaseMessage],
    caller: list[BaseMessage],
    *,
    caller_holds_all: bool = True,
) -> int:
    """Every stored turn up to the newest sent is in ``request`` once, in order; returns how
    many tool-call envelopes it has (calls re-sent for their results, arguments left out).
    Unless ``caller_holds_all``, the turns the caller did not send may come as the memory
    message's "Latest turns" text."""
    store = memory.store
    sent = [m for m in request if m.type != "system" and "lc_source" not in m.additional_kwargs]
    newest = max(_turn_id(memory, thread, m) for m in sent)  # later turns: the answer
    stored = [t for t in store.iter_turns(thread) if t.id is not None and t.id <= newest]
    turns = {t.id: t.content for t in stored if t.id is not None}
    records = store.pages(thread, after_seq=-1)
    page_texts = {r.id: memory.recall(r.id) for r in records}  # memory: the thread's own
    by_id = {r.id: r for r in records}
    # The caller's own messages, sent as they are or as copies given the id of their turn.
    caller_ids = {id(m) for m in caller}
    caller_without_ids = [m.model_copy(update={"id": None}) for m in caller if m.id is None]
    pieces: list[tuple[int, int, int]] = []  # (turn, start, end) in the order sent
    envelopes = 0
    for message in request:
        if message.type == "system":
            continue
        if message.additional_kwargs.get("lc_source") == MEMORY_MESSAGE_SOURCE:
            for block in message.content_blocks:
                if block["type"] == "image":
                    for page_id in block["extras"]["page_ids"]:
                        pieces.extend((s.turn_id, s.start, s.end) for s in by_id[page_id].spans)
                elif block["type"] == "text":
                    text = str(block["text"])
                    if text.startswith("Latest turns, not yet on a page:\n"):
                        assert not caller_holds_all, "the caller holds every turn"
                        rest = text.removeprefix("Latest turns, not yet on a page:\n")
                        for turn in stored:
                            line = f"{turn.role}: {turn.content}"
                            if rest.startswith(line):
                                assert turn.id is not None
                                pieces.append((turn.id, 0, len(turn.content)))
                                rest = rest[len(line) + 1 :]
                        assert rest == "", "the latest turns are stored turns, in order"
                        continue
                    for page_id, page_text in page_texts.items():
                        if text.endswith("\n" + page_text):
                            pieces.extend((s.turn_id, s.start, s.end) for s in by_id[page_id].spans)
            continue
        if message.additional_kwargs.get("lc_source") == TOOL_CALL_SOURCE:
            # An envelope re-sends calls written out on a page: their arguments are not sent
            # again; its text, if any, is the end of the written-out calls.
            calls = message.tool_calls  # type: ignore[attr-defined]
            assert calls and all(call["args"] == {} for call in calls)
            envelopes += 1
            if message.text:
                turn_id = _turn_id(memory, thread, message)
                content = turns[turn_id]
                assert content.endswith(message.text) and len(message.text) < len(content)
                pieces.append((turn_id, len(content) - len(message.text), len(content)))
            continue
        turn_id = _turn_id(memory, thread, message)
        content = turns[turn_id]
        own = id(message) in caller_ids or (
            str(message.id).startswith(TURN_MESSAGE_ID_PREFIX)
            and message.model_copy(update={"id": None}) in caller_without_ids
        )
        if own:  # the caller's own message: the whole turn
            pieces.append((turn_id, 0, len(content)))
        else:  # a tail: the end of the stored turn, with the images its placeholders name
            tail = _sent_text(message)
            assert content.endswith(tail) and len(tail) < len(content)
            pieces.append((turn_id, len(content) - len(tail), len(content)))
            images = [b for b in message.content_blocks if b["type"] == "image"]
            assert len(images) == tail.count("[image ")
    assert pieces == sorted(pieces), "sent in the thread's order"
    covered: dict[int, list[tuple[int, int]]] = {}
    for turn_id, start, end in pieces:
        covered.setdefault(turn_id, []).append((start, end))
    assert sorted(covered) == sorted(turns), "every turn is sent"
    for turn_id, spans in covered.items():
        position = 0
        for start, end in spans:
            assert start == position, f"turn {turn_id}: a gap or a repeat at {start}"
            position = end
        assert position == len(turns[turn_id]), f"turn {turn_id} is sent whole"
    # No tool result without its call before it.
    called: set[str] = set()
    for message in request:
        if isinstance(message, AIMessage):
            called.update(str(c["id"]) for c in message.tool_calls if c.get("id"))
        if isinstance(message, ToolMessage):
            assert message.tool_call_id in called
    return envelopes


SETTINGS = settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],  # shrinking a 200k-character case takes minutes
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@SETTINGS
@given(STEPS)
def test_wrap_sends_every_character_once(steps: list[Step]) -> None:
    memory = OpticalMemory(None)
    model = RecordingChatModel(messages=iter(_answers(steps)))
    chat = wrap(memory, model)
    config: Any = {"configurable": {"thread_id": "t"}}
    history: list[BaseMessage] = []
    for n, step in enumerate(steps):
        history.append(_question(step, n))
        answer = chat.invoke(history, config)
        check_request(chat.memory("t"), "t", model.requests[-1], history)
        history.append(answer)
        if step.tool_result is not None:
            call = answer.tool_calls[0]
            history.append(ToolMessage(archive.invoke(call["args"]), tool_call_id=call["id"]))
            answer = chat.invoke(history, config)
            check_request(chat.memory("t"), "t", model.requests[-1], history)
            history.append(answer)


@SETTINGS
@given(STEPS)
def test_an_agent_sends_every_character_once(steps: list[Step]) -> None:
    memory = OpticalMemory(None)
    model = RecordingChatModel(messages=iter(_answers(steps)))
    middleware = OpticalMemoryMiddleware(memory)
    agent = create_agent(model, [archive], middleware=[middleware], checkpointer=InMemorySaver())
    config: Any = {"configurable": {"thread_id": "t"}}
    seen = 0
    for n, step in enumerate(steps):
        state = agent.invoke({"messages": [_question(step, n)]}, config)
        for request in model.requests[seen:]:
            # The request's verbatim messages are the state's own objects (checkpointed copies).
            caller = [m for m in request if m in state["messages"]]
            check_request(middleware.memory("t"), "t", request, caller)
        seen = len(model.requests)


def test_a_long_tool_call_on_a_page_is_not_sent_again_before_its_result() -> None:
    keep = 1  # the result alone is recent: its call's head lies on pages
    words = " ".join(f"clause{n}" for n in range(2500))
    call = {"name": "file_contract", "args": {"text": words}, "id": "c1"}
    history: list[BaseMessage] = [
        HumanMessage("File the contract below, please."),
        AIMessage("Filing it now.", tool_calls=[call]),
        ToolMessage("Filed as contract 77.", tool_call_id="c1"),
    ]
    memory = OpticalMemory(None, keep_recent_turns=keep)
    model = RecordingChatModel(messages=iter(["Done: contract 77."]))
    chat = wrap(memory, model, keep_recent_turns=keep)
    chat.invoke(history, {"configurable": {"thread_id": "t"}})
    request = model.requests[-1]
    assert memory.store.pages("t"), "the call is on pages"
    assert check_request(chat.memory("t"), "t", request, history) == 1
    # The arguments are on the pages only: no message of the request repeats a word of them.
    sent_text = " ".join(m.text + str(getattr(m, "tool_calls", "")) for m in request[1:])
    assert "clause1234" not in sent_text
