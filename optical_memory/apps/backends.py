"""The models the chat demos talk to, behind one small interface.

A :class:`ChatModel` answers the user from the memory's context: its pages (old turns as
images, oldest first) and its recent turns as text, the user's newest message last. Three are
built in, chosen by a spec string (``--model`` or
``$OPTICAL_MEMORY_MODEL``):

- ``echo`` (the default): answers with a summary of what it was sent, so the demos run with no
  model at all;
- ``openai:URL[#MODEL]``: any OpenAI-compatible chat-completions server (vLLM serving
  DeepSeek-OCR, a hosted VLM) through ``langchain-openai``'s ``ChatOpenAI``, pages as image
  parts; the key comes from ``$OPENAI_API_KEY`` (local servers take any);
- ``deepseek-ocr:DIR``: the local DeepSeek-OCR checkpoint in ``DIR`` through
  :class:`~optical_memory.agents.ChatDeepSeekOCR`.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import TYPE_CHECKING, Any, Protocol

from optical_memory.extras import import_extra
from optical_memory.modes import FADING_ORDER

if TYPE_CHECKING:
    from optical_memory.memory import MemoryContext, OpticalMemory

#: Environment variable read when no ``--model`` is given.
MODEL_ENV = "OPTICAL_MEMORY_MODEL"
#: Served model name used when an ``openai:`` spec names none (vLLM's name for the checkpoint).
DEFAULT_OPENAI_MODEL = "deepseek-ai/DeepSeek-OCR"
#: Characters of the user's message the echo model quotes back.
ECHO_QUOTE_CHARS = 280


class ModelSpecError(ValueError):
    """A ``--model`` spec that names no known model, or one whose files are missing."""


class ChatModel(Protocol):
    """Anything the chat demos can talk to.

    ``respond`` owns one exchange: it stores the user's ``message`` in ``memory``, sends the
    model the memory's context (within ``budget_tokens`` when given), stores the answer and
    returns it.
    """

    @property
    def name(self) -> str:
        """What the demos show as the model's name (``echo``, ``openai:…``)."""
        ...

    def respond(
        self, memory: OpticalMemory, message: str, *, budget_tokens: int | None = None
    ) -> str: ...


class EchoModel:
    """Answers with a summary of what it was sent: pages, their modes, tokens, the message."""

    name = "echo"

    def respond(
        self, memory: OpticalMemory, message: str, *, budget_tokens: int | None = None
    ) -> str:
        memory.add("user", message)
        answer = self.reply(memory.context(budget_tokens))
        memory.add("assistant", answer)
        return answer

    def reply(self, context: MemoryContext) -> str:
        """The summary of ``context``; its newest recent turn is what the user said."""
        pages = list(context.pages)
        modes = Counter(page.mode for page in pages)
        tiers = ", ".join(f"{modes[m]} {m.value}" for m in FADING_ORDER if modes[m])
        as_text = len(context.text_pages)
        said = context.recent[-1].content if context.recent else ""
        if len(said) > ECHO_QUOTE_CHARS:
            said = said[:ECHO_QUOTE_CHARS] + "…"
        return (
            f"I received {_count(len(pages), 'page image')}"
            f" (modes {tiers or 'none'}, {context.vision_tokens} vision tokens)"
            + (f", {_count(as_text, 'page')} as text" if as_text else "")
            + f" and {_count(len(context.recent), 'recent turn')}"
            f" ({context.text_tokens} text tokens); you said: {said}"
        )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


class LangChainChatModel:
    """Any LangChain chat model that reads images, behind the library's own
    :func:`~optical_memory.agents.wrap`: old turns go to it as page images with captions, the
    recent ones as text, and its answer is stored in the memory."""

    def __init__(self, model: Any, name: str, target: str | None = None) -> None:
        self.model = model
        self.name = name
        #: The token-accounting target; ``None``: the model's family (``--target`` sets it).
        self.target = target
        # The wrapper of the memory last talked in: within one session it knows the earlier
        # messages as messages; a new memory (another thread, a viewer request) gets a new one.
        self._session: tuple[OpticalMemory, Any] | None = None

    def respond(
        self, memory: OpticalMemory, message: str, *, budget_tokens: int | None = None
    ) -> str:
        messages = import_extra("langchain_core.messages", "langchain")
        agents = import_extra("optical_memory.agents", "langchain")
        session = self._session
        if session is None or session[0] is not memory:
            wrapped = agents.wrap(
                memory,
                self.model,
                keep_recent_turns=max(1, memory.keep_recent_turns),
                budget_tokens=budget_tokens,
                target=self.target,
            )
            session = self._session = (memory, wrapped)
        config = {"configurable": {"thread_id": memory.thread_id}}
        answer = session[1].invoke([messages.HumanMessage(content=message)], config)
        return str(answer.text)  # the text blocks of the answer, joined


def set_target(model: ChatModel, target: str | None) -> ChatModel:
    """``model`` counting tokens for ``target`` (checked against the known targets)."""
    if target is not None:
        from optical_memory.targets import target_spec

        target_spec(target)
        if isinstance(model, LangChainChatModel):
            model.target = target
    return model


def load_model(spec: str | None = None) -> ChatModel:
    """The model a spec names; ``None`` reads ``$OPTICAL_MEMORY_MODEL``, then falls back to echo.

    Raises :class:`ModelSpecError` for a spec of no known kind and
    :class:`~optical_memory.extras.MissingExtraError` when the model's extra is not installed.
    """
    spec = (spec or os.environ.get(MODEL_ENV) or "echo").strip()
    kind, _, rest = spec.partition(":")
    if spec == "echo":
        return EchoModel()
    if kind == "openai" and rest:
        url, _, served_name = rest.partition("#")
        openai = import_extra("langchain_openai", "langchain")
        chat = openai.ChatOpenAI(
            base_url=url,
            model=served_name or DEFAULT_OPENAI_MODEL,
            api_key=os.environ.get("OPENAI_API_KEY") or "EMPTY",
            temperature=0,
        )
        return LangChainChatModel(chat, name=spec)
    if kind == "deepseek-ocr" and rest:
        return LangChainChatModel(_load_deepseek_ocr(rest), name=spec)
    raise ModelSpecError(
        f"unknown model {spec!r}: use echo, openai:URL[#MODEL] "
        "(an OpenAI-compatible server such as vLLM) or deepseek-ocr:DIR (a local checkpoint)"
    )


def _load_deepseek_ocr(directory: str) -> Any:
    if not os.path.isdir(directory):
        raise ModelSpecError(
            f"no directory {directory!r}: pass the folder that holds the DeepSeek-OCR checkpoint "
            "(config.json, model.safetensors, tokenizer files)"
        )
    torch = import_extra("torch", "model")
    chat_model = import_extra("optical_memory.agents.chat_model", "langchain")
    from optical_memory.model.checkpoint import CheckpointError

    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        return chat_model.ChatDeepSeekOCR.from_checkpoint(directory, device=device)
    except CheckpointError as error:  # says what to download and where
        raise ModelSpecError(str(error)) from error
