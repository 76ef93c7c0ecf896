"""Agent traffic: what each request carries after 300 / 3,000 exchanges, and what the memory
costs a call.

    .venv/bin/python benchmarks/agent_traffic.py [--exchanges 300,3000] [--latency-ms 50]

One conversation (a user question and an answer of a few hundred characters per exchange) runs
through ``wrap(OpticalMemory(file), model)`` with the default options, the caller sending only
each new message, as a chat loop with a checkpointer does. The model is LangChain's fake, made
to take ``--latency-ms`` to answer (a hosted model takes longer): the middleware's work between
calls (storing the answer, render-ahead) overlaps it as it would a real model's. At each
checkpoint it prints, per target, the next request's counted tokens, images and image bytes
(each target's own request over the same store: its prices, gate and limits), and for the run's
target the memory's overhead per call (wall time spent building the request, storing messages
and reading the bill), p50/p95 over the last ``--window`` calls. Goal: p95 <= 50 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from timing import percentile

from optical_memory.agents import wrap
from optical_memory.agents.request import MemoryRequestBuilder
from optical_memory.experiments.results_file import benchmark_command, write_results
from optical_memory.memory import OpticalMemory

TARGETS = ("deepseek-ocr", "deepseek-ocr-vllm", "openai", "anthropic", "gemini", "qwen2.5-vl")


class SlowFake(GenericFakeChatModel):
    """LangChain's fake chat model, answering after ``latency`` seconds."""

    latency: float = 0.05

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        time.sleep(self.latency)
        return super()._generate(messages, *args, **kwargs)


def question(n: int) -> str:
    return (
        f"Question {n}: my order {n * 7 % 1000} for the harbour-town history series has not "
        f"arrived; could you check whether volume {n % 12 + 1} shipped, and to which address?"
    )


def answer(n: int) -> str:
    return (
        f"Answer {n}: volume {n % 12 + 1} of order {n * 7 % 1000} left the warehouse on day "
        f"{n % 28 + 1} for 14 Quay Street; tracking number HT-{n:05d}. It should arrive in "
        "three working days; I have noted that you asked."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exchanges", default="300,3000", help="checkpoints, comma-separated")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--target", default="deepseek-ocr", help="the run's target")
    parser.add_argument("--window", type=int, default=200, help="calls in the p50/p95")
    parser.add_argument("--path", type=Path, help="SQLite file (default: a temporary one)")
    parser.add_argument("--results", type=Path, help="also write the table here, for the docs")
    args = parser.parse_args(argv)
    cells: dict[str, dict[int, str]] = {}  # target -> checkpoint -> "tokens · images · MB"
    timings: dict[int, str] = {}
    checkpoints = sorted(int(x) for x in args.exchanges.split(","))
    with tempfile.TemporaryDirectory() as scratch:
        path = args.path or Path(scratch) / "traffic.sqlite"
        memory = OpticalMemory(path)
        model = SlowFake(
            messages=iter(AIMessage(answer(n)) for n in range(checkpoints[-1] + 1)),
            latency=args.latency_ms / 1000,
        )
        chat = wrap(memory, model, target=args.target)
        config: Any = {"configurable": {"thread_id": "bench"}}
        overhead: list[float] = []
        spent = [0.0]  # seconds inside the wrapper's own work during the current call

        def timed(method: Any) -> Any:
            def run(*a: Any, **k: Any) -> Any:
                start = time.perf_counter()
                try:
                    return method(*a, **k)
                finally:
                    spent[0] += time.perf_counter() - start

            return run

        chat.builder.build = timed(chat.builder.build)  # type: ignore[method-assign]
        chat.builder.remember = timed(chat.builder.remember)  # type: ignore[method-assign]
        chat.builder.record_bill = timed(chat.builder.record_bill)  # type: ignore[method-assign]
        print(
            f"{'exchanges':>9} {'target':<18} {'tokens':>7} {'images':>6} {'MB':>6} "
            f"{'p50 ms':>7} {'p95 ms':>7}"
        )
        for n in range(checkpoints[-1]):
            spent[0] = 0.0
            chat.invoke([HumanMessage(question(n))], config)
            overhead.append(spent[0] * 1000)
            if n + 1 in checkpoints:
                recent = overhead[-args.window :]
                for target in TARGETS:
                    builder = MemoryRequestBuilder(memory, target=target, calibrate=False)
                    _, usage = builder.build("bench", [HumanMessage(question(n + 1))])
                    timing = (
                        f"{statistics.median(recent):7.1f} {percentile(recent, 0.95):7.1f}"
                        if target == args.target
                        else f"{'':>7} {'':>7}"
                    )
                    print(
                        f"{n + 1:>9} {target:<18} {usage.total_tokens:>7} {usage.images:>6} "
                        f"{usage.image_bytes / 1e6:>6.2f} {timing}",
                        flush=True,
                    )
                    cells.setdefault(target, {})[n + 1] = (
                        f"{usage.total_tokens:,} · {usage.images} · {usage.image_bytes / 1e6:.2f}"
                    )
                timings[n + 1] = (
                    f"{statistics.median(recent):.0f} ms · {percentile(recent, 0.95):.0f} ms"
                )
        memory.close()
    if args.results is not None:
        head = " | ".join(f"{c:,} exchanges: tokens · images · MB" for c in checkpoints)
        rows = [f"| target | {head} |", "|---|" + "---|" * len(checkpoints)]
        rows += [f"| {t} | " + " | ".join(cells[t][c] for c in checkpoints) + " |" for t in TARGETS]
        rows.append(
            f"| memory's own time per call ({args.target}), p50 · p95 | "
            + " | ".join(timings[c] for c in checkpoints)
            + " |"
        )
        rows += [
            "",
            f"The model answers in {args.latency_ms:.0f} ms; the memory's time is wall time spent "
            "building requests, storing messages and reading bills, over the last "
            f"{args.window} calls before each checkpoint (load average at the end: "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores).",
        ]
        write_results(
            args.results,
            "\n".join(rows),
            benchmark_command("benchmarks/agent_traffic.py", argv),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
