"""Turns stored per message shape, image costs learnt from bills, threads per conversation.

    .venv/bin/python benchmarks/agent_accounting.py [--exchanges 300] [--conversations 300]
        [--locomo PATH]

Three tables:

1. ``wrap`` and ``create_agent`` fed the same conversation in each shape a caller may use
   (whole history or only the new message; LangChain messages kept, rebuilt from text without
   ids, or ``{"role", "content"}`` dicts): the turns stored (2 per exchange is right) and the
   median time of one call. With ``--locomo`` the exchanges are LoCoMo's dialogue turns (the
   first speaker asks, the second answers), else generated questions.
2. Calibration against a provider billing its own way (text at 4 characters a token plus 3 a
   message and 7 a request; images from its own per-size table): the largest error of a learnt
   image cost after 20 bills of mixed sizes, then how far one wild bill moves any cost.
3. OS threads of the process before, at the most during, and after ``close()`` of
   ``--conversations`` conversations through the middleware.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from optical_memory import OpticalMemory
from optical_memory.agents import OpticalMemoryMiddleware, wrap
from optical_memory.agents.calibration import ImageCostTable, SentImage
from optical_memory.memory.render_ahead import release_idle_workers
from optical_memory.store.sqlite import SQLiteStore
from optical_memory.tokens import count_text_tokens

Exchange = tuple[str, str]
PROVIDER_IMAGE_TOKENS = {512: 170, 640: 305, 1024: 610, 1280: 1010}


def exchanges(count: int, locomo: Path | None) -> list[Exchange]:
    if locomo is None:
        return [
            (f"Question {n}: which ship did keeper {n % 17} log?", f"Answer {n}: the Ada.")
            for n in range(count)
        ]
    pairs: list[Exchange] = []
    for sample in json.loads(locomo.read_text()):
        conversation = sample["conversation"]
        first = conversation["speaker_a"]
        sessions = sorted(
            (k for k in conversation if k.startswith("session_") and k[8:].isdigit()),
            key=lambda k: int(k[8:]),
        )
        turns = [turn for key in sessions for turn in conversation[key]]
        asked = [t["text"] for t in turns if t["speaker"] == first]
        answered = [t["text"] for t in turns if t["speaker"] != first]
        pairs += list(zip(asked, answered, strict=False))
    return pairs[:count]


SHAPES: dict[str, Callable[[list[Exchange], int], list[Any]]] = {
    "whole, dicts": lambda ex, n: (
        [
            {"role": role, "content": text}
            for q, a in ex[:n]
            for role, text in (("user", q), ("assistant", a))
        ]
        + [{"role": "user", "content": ex[n][0]}]
    ),
    "whole, rebuilt": lambda ex, n: (
        [m for q, a in ex[:n] for m in (HumanMessage(q), AIMessage(a))] + [HumanMessage(ex[n][0])]
    ),
    "new only, dicts": lambda ex, n: [{"role": "user", "content": ex[n][0]}],
    "new only, messages": lambda ex, n: [HumanMessage(ex[n][0])],
}


def identity_rows(pairs: list[Exchange]) -> list[tuple[str, int, int, float]]:
    rows = []
    for name, shape in SHAPES.items():
        memory = OpticalMemory(None)
        model = GenericFakeChatModel(messages=iter([a for _, a in pairs]))
        chat = wrap(memory, model)
        times = []
        for n in range(len(pairs)):
            start = time.perf_counter()
            chat.invoke(shape(pairs, n), {"configurable": {"thread_id": "t"}})
            times.append(time.perf_counter() - start)
        rows.append((f"wrap: {name}", len(pairs), memory.store.count_turns("t"), _ms(times)))
    memory = OpticalMemory(None)
    model = GenericFakeChatModel(messages=iter([a for _, a in pairs]))
    agent = create_agent(model, [], middleware=[OpticalMemoryMiddleware(memory)])
    times = []
    for question, _ in pairs:
        start = time.perf_counter()
        agent.invoke({"messages": [HumanMessage(question)]}, {"configurable": {"thread_id": "t"}})
        times.append(time.perf_counter() - start)
    rows.append(("create_agent: new only", len(pairs), memory.store.count_turns("t"), _ms(times)))
    return rows


def _ms(times: list[float]) -> float:
    return statistics.median(times) * 1000


def _bill(rng: random.Random) -> tuple[list[SentImage], int, int, int, int]:
    words = ["harbour", "ledger", "crate", "pier", "tide", "keeper", "lantern", "north"]
    texts = [" ".join(rng.choices(words, k=rng.randint(5, 400))) for _ in range(rng.randint(1, 9))]
    sides = [rng.choice(list(PROVIDER_IMAGE_TOKENS)) for _ in range(rng.randint(0, 8))]
    billed = sum(len(t) // 4 + 3 for t in texts) + 7 + sum(PROVIDER_IMAGE_TOKENS[s] for s in sides)
    counted = sum(count_text_tokens(t) for t in texts)
    chars = sum(len(t) for t in texts)
    return [SentImage(s, s) for s in sides], billed, counted, chars, len(texts)


def calibration_rows() -> list[tuple[str, float]]:
    table = ImageCostTable(SQLiteStore(None), "openai", "bench")
    rng = random.Random(7)
    for _ in range(20):
        images, billed, text, chars, messages = _bill(rng)
        table.observe(images, billed, text=text, chars=chars, messages=messages)
    costs = {side: table.cost(side, side) for side in PROVIDER_IMAGE_TOKENS}
    rows = [
        (
            "largest error after 20 bills",
            max(abs(costs[s] / PROVIDER_IMAGE_TOKENS[s] - 1) for s in costs),
        )
    ]
    state = table.fit
    for label, factor in (("1.5x", 1.5), ("0.5x", 0.5), ("10^12x", 10**12), ("10^400", None)):
        table._fit = state  # the same learnt state for each wild bill
        table._costs = {}
        images, billed, text, chars, messages = _bill(random.Random(99))
        wild: Any = 10**400 if factor is None else round(billed * factor)
        table.observe(images, wild, text=text, chars=chars, messages=messages)
        moved = max(abs(table.cost(s, s) / costs[s] - 1) for s in costs)
        rows.append((f"largest move after one bill at {label}", moved))
    return rows


def thread_rows(conversations: int) -> tuple[int, int, int]:
    release_idle_workers()
    start = peak = threading.active_count()
    memory = OpticalMemory(None)
    model = GenericFakeChatModel(messages=iter(["noted"] * (conversations * 3)))
    middleware = OpticalMemoryMiddleware(memory, keep_recent_turns=1)
    agent = create_agent(model, [], middleware=[middleware])
    for n in range(conversations):
        for k in range(3):
            message: BaseMessage = HumanMessage(f"Note {n}.{k}: crate {n * 7} at pier 3. " * 6)
            agent.invoke({"messages": [message]}, {"configurable": {"thread_id": f"c{n}"}})
        peak = max(peak, threading.active_count())
    middleware.close()
    return start, peak, threading.active_count()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exchanges", type=int, default=300)
    parser.add_argument("--conversations", type=int, default=300)
    parser.add_argument("--locomo", type=Path, help="LoCoMo JSON: its dialogue as the exchanges")
    args = parser.parse_args()
    pairs = exchanges(args.exchanges, args.locomo)
    print(f"{'shape':<32} {'exchanges':>9} {'turns':>6} {'ms/call':>8}")
    for name, count, turns, ms in identity_rows(pairs):
        print(f"{name:<32} {count:>9} {turns:>6} {ms:>8.1f}")
    print()
    for label, value in calibration_rows():
        print(f"{label:<40} {value:>7.1%}")
    print()
    start, peak, after = thread_rows(args.conversations)
    print(f"threads: {start} at start, {peak} at most, {after} after close()")


if __name__ == "__main__":
    main()
