"""A LangChain agent with one tool and optical memory, printing what every model call costs.

    python examples/langchain_agent.py                      # offline: a scripted fake model
    OPENAI_BASE_URL=http://gpu-box:8000/v1 OPENAI_MODEL=deepseek-ai/DeepSeek-OCR \\
        python examples/langchain_agent.py --target deepseek-ocr

With ``OPENAI_BASE_URL`` set the agent talks to that OpenAI-compatible server (vLLM serving a
VLM, a hosted API; key from ``OPENAI_API_KEY``, model from ``OPENAI_MODEL``); without it, to a
scripted model that records its requests, so the example always runs. Either way the old turns
reach the model as page images and each call's token accounting is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

from optical_memory import OpticalMemory
from optical_memory.agents import OpticalMemoryMiddleware

CITIES = ["Lisbon", "Oslo", "Kyoto", "Lima", "Tunis", "Perth", "Quebec", "Tbilisi"]


@tool
def weather(city: str) -> str:
    """Today's weather in a city."""
    return f"{city}: {12 + len(city) * 2} °C, {'rain' if len(city) % 2 else 'clear skies'}."


def question(n: int) -> str:
    city = CITIES[n % len(CITIES)]
    if n % 5 == 4:
        return f"What is the weather in {city} today?"
    return (
        f"Note {n}: my cousin in {city} opens a bakery on the {n % 28 + 1}th. She wants "
        f"{n % 7 + 2} ovens, a blue sign over the door, rye loaves on weekdays and cardamom "
        f"buns on Sundays; her landlord, Mr {city[:3]}ford, asks {n * 40 + 900} euros a month. "
        "Please remember all of this: I will ask about it later."
    )


def scripted_answers(turns: int) -> Iterator[AIMessage]:
    """What the offline model says: a weather tool call for weather questions, else a reply."""
    for n in range(turns):
        city = CITIES[n % len(CITIES)]
        if n % 5 == 4:
            call = {"name": "weather", "args": {"city": city}, "id": f"call-{n}"}
            yield AIMessage("", tool_calls=[call])
            yield AIMessage(f"The weather in {city}: see the tool's report above.")
        else:
            yield AIMessage(
                f"Noted: the bakery in {city} opens on the {n % 28 + 1}th with {n % 7 + 2} "
                f"ovens and a blue sign; rent {n * 40 + 900} euros a month to Mr {city[:3]}ford."
            )


class OfflineModel(GenericFakeChatModel):
    """Scripted answers (tool calls included) for running without a server."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> OfflineModel:
        return self  # the script already knows its tools


def chat_model(turns: int) -> tuple[Any, str]:
    base_url = os.environ.get("OPENAI_BASE_URL")
    if base_url:
        from langchain_openai import ChatOpenAI

        name = os.environ.get("OPENAI_MODEL", "gpt-4o-mini")
        model = ChatOpenAI(
            base_url=base_url,
            model=name,
            api_key=os.environ.get("OPENAI_API_KEY") or "EMPTY",  # type: ignore[arg-type]
            temperature=0,
        )
        return model, f"{name} at {base_url}"
    return OfflineModel(messages=scripted_answers(turns)), "the offline scripted model"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=40, help="user messages to send")
    parser.add_argument("--budget", type=int, default=3000, help="budget_tokens per request")
    parser.add_argument("--keep", type=int, default=6, help="keep_recent_turns")
    parser.add_argument("--target", default="deepseek-ocr", help="model the tokens are counted for")
    parser.add_argument("--memory", type=Path, help="SQLite file (default: a temporary one)")
    parser.add_argument("--thread", default="demo", help="thread_id of the conversation")
    args = parser.parse_args(argv)

    folder = tempfile.mkdtemp(prefix="optical-memory-agent-")
    path = args.memory or Path(folder) / "memory.sqlite"
    model, model_name = chat_model(args.turns)
    memory = OpticalMemory(path, thread_id=args.thread, target=args.target)
    middleware = OpticalMemoryMiddleware(
        memory, keep_recent_turns=args.keep, budget_tokens=args.budget
    )
    agent = create_agent(
        model,
        [weather],
        system_prompt="You are a helpful assistant with a long memory.",
        middleware=[middleware],
        checkpointer=InMemorySaver(),  # the agent's state keeps text; only requests carry pages
    )
    print(f"model: {model_name}; memory: {path}; thread: {args.thread}; target: {args.target}")
    print(" call  text  vision  replaced  pages  text-pages  msgs   total / budget")
    config: RunnableConfig = {"configurable": {"thread_id": args.thread}}
    for n in range(args.turns):
        shown = len(middleware.usage)
        result = agent.invoke({"messages": [HumanMessage(question(n))]}, config)
        for number, call in enumerate(middleware.usage[shown:], start=shown + 1):
            print(
                f"{number:5d} {call.text_tokens:5d} {call.vision_tokens:7d} "
                f"{call.replaced_text_tokens:9d} {call.pages:6d} {call.text_pages:11d} "
                f"{call.messages:5d} {call.total_tokens:7d} / {args.budget}"
            )
    answer = result["messages"][-1].text
    last = middleware.usage[-1]
    stats = memory.stats()
    print(f"last answer: {answer}")
    print(
        f"{len(middleware.usage)} model calls, {stats.turns} turns stored, {stats.pages} pages; "
        f"last call sent {last.total_tokens} tokens where its turns as text would have "
        f"cost {last.total_tokens + last.saved_tokens} "
        f"({last.pages} images standing for {last.replaced_text_tokens} text tokens)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
