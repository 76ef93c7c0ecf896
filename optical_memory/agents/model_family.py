"""Which target family a LangChain chat model belongs to, read from its class and model name.

The middleware counts a request as the model it wraps will bill it: ``ChatOpenAI(model="gpt-4o")``
pays OpenAI's tile rule, ``ChatAnthropic`` Anthropic's, and so on (the rules themselves are in
:data:`optical_memory.targets.TARGET_SPECS`).
"""

from __future__ import annotations

from optical_memory.targets import TARGETS

#: Chat model class name -> (model-name prefix -> target), longest prefix first; "" matches all.
_TARGET_OF_MODEL: dict[str, tuple[tuple[str, str], ...]] = {
    "ChatOpenAI": (
        ("gpt-4o-mini", "openai-gpt-4o-mini"),
        ("gpt-4.1-mini", "openai-patches-mini"),
        ("gpt-4.1-nano", "openai-patches-nano"),
        ("gpt-5-mini", "openai-patches-mini"),
        ("gpt-5-nano", "openai-patches-nano"),
        ("o4-mini", "openai-o4-mini"),
        ("gpt-5", "openai-gpt-5"),
        ("o1", "openai-o-series"),
        ("o3", "openai-o-series"),
        ("gpt-4", "openai"),
        ("deepseek-ai/deepseek-ocr", "deepseek-ocr-vllm"),
        ("qwen/qwen2.5-vl", "qwen2.5-vl"),
        ("qwen/qwen3-vl", "qwen3-vl"),
    ),
    "AzureChatOpenAI": (("", "openai"),),
    "ChatAnthropic": (("", "anthropic"),),
    "ChatGoogleGenerativeAI": (("gemini-3", "gemini-3"), ("gemini", "gemini")),
    "ChatVertexAI": (("gemini-3", "gemini-3"), ("gemini", "gemini")),
    "ChatDeepSeekOCR": (("", "deepseek-ocr"),),
}


#: LangChain's stand-in chat models: they read nothing, so the memory's own target stands.
_STAND_INS = ("GenericFakeChatModel", "FakeListChatModel", "FakeMessagesListChatModel")


def target_for_model(model: object) -> str | None:
    """The target family of a LangChain chat model, from its class and model name.

    Looks through ``RunnableBinding`` s (``model.bind_tools(...)``). ``None`` when ``model`` is
    not a chat model (any other Runnable) or is one of LangChain's fake models: then the
    memory's target stands. Raises ``ValueError`` naming the model and listing the targets for
    a chat model of unknown family: pass ``target=``.
    """
    seen = 0
    while hasattr(model, "bound") and seen < 8:  # a RunnableBinding around the chat model
        model = model.bound
        seen += 1
    classes = [cls.__name__ for cls in type(model).__mro__]
    if "BaseChatModel" not in classes or any(name in _STAND_INS for name in classes):
        return None
    name = str(getattr(model, "model_name", None) or getattr(model, "model", None) or "")
    name = name.lower().removeprefix("models/")
    for cls_name in classes:
        for prefix, target in _TARGET_OF_MODEL.get(cls_name, ()):
            if name.startswith(prefix):
                return target
    raise ValueError(
        f"no known image cost rule for {type(model).__name__}(model={name!r}): pass "
        f"target= one of {', '.join(TARGETS)}"
    )
