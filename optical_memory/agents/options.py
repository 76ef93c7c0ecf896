"""``MemoryOptions``: the one set of options every LangChain entry point takes.

:class:`~optical_memory.agents.OpticalMemoryMiddleware`, :func:`~optical_memory.agents.wrap`,
:class:`~optical_memory.agents.OpticalChatMessageHistory` and the request builder under them all
take ``options=MemoryOptions(...)`` or the same names as keywords (keywords override the
object's fields), checked here once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from optical_memory.targets import TARGETS, RequestLimits


@dataclass(frozen=True)
class MemoryOptions:
    """How old turns are put in front of a model.

    Attributes:
        keep_recent_turns: Newest turns always sent as the caller's own messages, verbatim
            (at least 1). Older turns go the same way until enough of them fill a page.
        budget_tokens: Most tokens one request may cost the target (system prompt, tool
            schemas, captions, images and recent text together); ``None``: no limit. Old pages
            fade and are forgotten first, a batch at a time when a batch of pages settles
            (so a prompt cache keeps what was sent), then the recent window shrinks; a newest
            message larger than the budget is sent as its tail, with a note.
        target: The model that reads the pages, for token accounting and request limits (one
            of :data:`optical_memory.targets.TARGETS`); ``None``: taken from the wrapped chat
            model, else the memory's target.
        register_recall_tool: Give the agent the ``recall_memory`` tool. ``None`` (default):
            when the model can bind tools; ``True``: always; ``False``: never.
        request_limits: Images and bytes one request may carry; ``None``: the target's
            documented limits (e.g. set ``max_images`` to vLLM's ``--limit-mm-per-prompt``).
        calibrate: Learn what images really cost from each response's ``usage_metadata``
            (fitted with the provider's own text count over a window of bills, robust to wild
            bills: :mod:`optical_memory.agents.calibration`) and use that instead of the
            published formula (kept in the store per model and size).
        cache_control: Put on the memory message's last page block, a prompt-cache breakpoint.
            ``"auto"``: Anthropic's ``{"type": "ephemeral"}`` for the ``anthropic`` target and
            none for the others, whose caches need no marker (the memory message already
            precedes everything that changes per call); ``None``: never; or a dict such as
            ``{"type": "ephemeral", "ttl": "1h"}``.
        image_cache_bytes: Most base64 characters of page images kept encoded between calls
            (:mod:`optical_memory.agents.encoded`), so a call encodes only the pages new to it
            or shown at a new mode; ``0``: encode every page on every call.
    """

    keep_recent_turns: int = 6
    budget_tokens: int | None = None
    target: str | None = None
    register_recall_tool: bool | None = None
    calibrate: bool = True
    request_limits: RequestLimits | None = None
    cache_control: Mapping[str, str] | Literal["auto"] | None = "auto"
    image_cache_bytes: int = 64 * 2**20

    def __post_init__(self) -> None:
        keep = self.keep_recent_turns
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"keep_recent_turns must be an int >= 1, got {keep!r}")
        budget = self.budget_tokens
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int)):
            raise TypeError(f"budget_tokens must be an int or None, not {budget!r}")
        if budget is not None and budget <= 0:
            raise ValueError(f"budget_tokens must be positive or None, got {budget}")
        if self.target is not None and self.target not in TARGETS:
            raise ValueError(f"unknown target {self.target!r}: choose one of {', '.join(TARGETS)}")
        cache_bytes = self.image_cache_bytes
        if isinstance(cache_bytes, bool) or not isinstance(cache_bytes, int) or cache_bytes < 0:
            raise ValueError(f"image_cache_bytes must be an int >= 0, got {cache_bytes!r}")
        cache_control = self.cache_control
        if cache_control not in (None, "auto") and not isinstance(cache_control, Mapping):
            raise TypeError(
                "cache_control must be 'auto', None or a dict such as {'type': 'ephemeral'}, "
                f"not {cache_control!r}"
            )
        if self.register_recall_tool not in (None, True, False):
            raise TypeError(
                "register_recall_tool must be None, True or False, not "
                f"{self.register_recall_tool!r}"
            )

    @classmethod
    def of(cls, options: MemoryOptions | None, overrides: dict[str, Any]) -> MemoryOptions:
        """``options`` (default: ``MemoryOptions()``) with ``overrides`` applied; an unknown
        name is a ``TypeError`` listing the known ones."""
        if options is not None and not isinstance(options, MemoryOptions):
            raise TypeError(f"options must be a MemoryOptions, not {type(options).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(
                f"unknown option(s) {', '.join(unknown)}: the options are "
                f"{', '.join(sorted(known))}"
            )
        return dataclasses.replace(options or cls(), **overrides)
