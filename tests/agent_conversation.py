"""A scripted shop conversation for the LangChain tests, and readers for what the model was sent.

Not a test module: the middleware, wrap and recall tests import it (as ``tiny_deepseek`` is).
"""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.tools import tool
from PIL import Image

from optical_memory.modes import MODE_WORDS, Mode
from optical_memory.targets import vision_tokens
from optical_memory.tokens import count_text_tokens

SYSTEM_PROMPT = "You are the order desk of a small bookshop. Answer briefly."
# "page 12 · turns 308–335 · 3 Nov 2026 · low resolution"; "pages 12–14 · turn 308 · ..."
CAPTION = re.compile(
    r"^pages? ([\d, –]+) · turns? (\d+)(?:–(\d+))?(?: · ([^·\n]+?))? · ([a-z ]+)$", re.M
)
MODE_OF_WORDS = {**{words: mode.value for mode, words in MODE_WORDS.items()}, "as text": "as text"}


@dataclass
class Exchange:
    """One user message and the model's scripted answers to it (a tool call, then text)."""

    thread_id: str
    question: str
    answers: list[AIMessage]


def shop_plan(thread_id: str, count: int, *, tool_every: int = 4, tag: str = "") -> list[Exchange]:
    """``count`` exchanges; every ``tool_every``-th asks about an order and gets a tool call.

    Turns per exchange: 2, or 4 with a tool call. ``tag`` is planted in every message so a test
    can tell which thread a text came from.
    """
    plan = []
    for n in range(1, count + 1):
        question = (
            f"{tag} Question {n}: I am looking for a book about the history of harbour town "
            f"number {n}, ideally a hardback with maps, and I would like it before the {n}th."
        )
        answer = AIMessage(
            f"{tag} Answer {n}: we have 'Harbour {n}, a history' in hardback with {n % 9 + 2} "
            "maps; it can be reserved for you at the front desk."
        )
        if n % tool_every == 0:
            call = AIMessage(
                "",
                tool_calls=[
                    {"name": "lookup_order", "args": {"order_id": n}, "id": f"{thread_id}-call-{n}"}
                ],
            )
            plan.append(Exchange(thread_id, question, [call, answer]))
        else:
            plan.append(Exchange(thread_id, question, [answer]))
    return plan


def script(plan: list[Exchange]) -> Iterator[AIMessage]:
    """The model's answers in the order the plan's invocations will ask for them."""
    for exchange in plan:
        yield from (answer.model_copy(deep=True) for answer in exchange.answers)


@tool
def lookup_order(order_id: int) -> str:
    """Look up the status of a customer's order by its number."""
    LOOKUPS.append(order_id)
    return f"Order {order_id}: packed, ships on day {order_id % 7 + 1}."


#: Every order number ``lookup_order`` was called with, in order.
LOOKUPS: list[int] = []


# --- reading a recorded request -----------------------------------------------------------------


@dataclass
class SentPage:
    page_id: int
    first_turn: int
    last_turn: int
    date: str | None
    mode: str
    image: Image.Image | None = None
    png: bytes | None = None


@dataclass
class SentRequest:
    """A recorded request taken apart: the memory message's pages, the verbatim messages."""

    system: list[BaseMessage]
    pages: list[SentPage] = field(default_factory=list)
    memory_texts: list[str] = field(default_factory=list)
    verbatim: list[BaseMessage] = field(default_factory=list)

    @property
    def images(self) -> list[SentPage]:
        return [page for page in self.pages if page.image is not None]


def read_request(messages: list[BaseMessage]) -> SentRequest:
    system = [m for m in messages if m.type == "system"]
    rest = [m for m in messages if m.type != "system"]
    sent = SentRequest(system=system)
    if rest and rest[0].additional_kwargs.get("lc_source") == "optical_memory":
        page: SentPage | None = None
        run: list[int] = []  # page ids a caption names that images have not used yet
        for block in rest[0].content_blocks:
            if block["type"] == "text":
                text = str(block["text"])
                sent.memory_texts.append(text)
                match = CAPTION.match(text)
                if match:
                    run = _page_ids(match[1])
                    first = int(match[2])
                    caption = (first, int(match[3] or first), match[4], MODE_OF_WORDS[match[5]])
                    if caption[3] == "as text":
                        sent.pages.append(SentPage(run.pop(0), *caption))
            elif block["type"] == "image":
                assert run, "an image block without a caption naming its page"
                page = SentPage(run.pop(0), *caption)
                sent.pages.append(page)
                assert block.get("mime_type") == "image/png"
                assert block.get("extras", {}).get("mode") == page.mode, "block names its mode"
                page.png = base64.b64decode(str(block.get("base64")))
                page.image = Image.open(io.BytesIO(page.png))  # reads the header; load() decodes
        rest = rest[1:]
    sent.verbatim = rest
    return sent


def _page_ids(text: str) -> list[int]:
    """``"12"`` → [12]; ``"12–14"`` → [12, 13, 14]; ``"12, 15"`` → [12, 15]."""
    if "–" in text:
        first, last = (int(part) for part in text.split("–"))
        return list(range(first, last + 1))
    return [int(part) for part in text.split(",")]


def recount_tokens(messages: list[BaseMessage], tools: list[dict[str, Any]], target: str) -> int:
    """What a request costs the target, counted from the request alone."""
    sent = read_request(messages)
    total = sum(count_text_tokens(m.text) for m in sent.system)
    if tools:
        total += count_text_tokens(json.dumps(tools, sort_keys=True))
    total += sum(count_text_tokens(text) for text in sent.memory_texts)
    for page in sent.images:
        assert page.image is not None
        total += vision_tokens(*page.image.size, target, Mode.parse(page.mode))
    for message in sent.verbatim:
        total += count_text_tokens(message.text)
        for call in getattr(message, "tool_calls", None) or []:
            arguments = json.dumps(call["args"], ensure_ascii=False, sort_keys=True)
            total += count_text_tokens(f"{call['name']}({arguments})")
    return total
