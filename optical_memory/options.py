"""The options of a memory, checked once, and the tuning knobs every layer reads from them.

:class:`MemoryOptions` is what :class:`~optical_memory.memory.OpticalMemory` and every
LangChain entry point (:class:`~optical_memory.agents.OpticalMemoryMiddleware`,
:func:`~optical_memory.agents.wrap`, :class:`~optical_memory.agents.OpticalChatMessageHistory`
and the request builder under them) take as ``options=MemoryOptions(...)``, or as the same
names given as keywords (keywords override the object's fields). :class:`Tuning`, its
``tuning`` field, holds the numbers an experiment or a careful user tunes (search ranking,
planning and request limits); it flows down with the options, from the memory to its planner
and from the agents layer to its request builder, recall tool and calibration, so no layer
keeps its own copy of a knob.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from optical_memory.store.ranking import CANDIDATES, RANKING, Ranking
from optical_memory.targets import RequestLimits, target_spec
from optical_memory.verbatim import MAX_VERBATIM_TOKENS

#: The model a memory counts tokens for when no target is given.
DEFAULT_TARGET = "deepseek-ocr"


def is_count(value: object, least: int) -> bool:
    """Whether ``value`` is an int (not a bool) of at least ``least``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _check_count(owner: str, name: str, value: object, least: int) -> None:
    if not is_count(value, least):
        raise ValueError(f"{owner}{name} must be an int >= {least}, not {value!r}")


@dataclass(frozen=True)
class Tuning:
    """The numbers that tune ranking, planning and request limits, in one place.

    Attributes:
        ranking: Every weight of a search's ranking (:class:`~optical_memory.store.ranking.
            Ranking`; the default's weights were chosen by leave-one-conversation-out).
        candidates: Turns the store ranks before the memory reranks them with the query's other
            clues (the rerank reorders only these).
        knapsack_cells: Cost cells of the budget planner's table
            (:meth:`~optical_memory.schedule.DecaySchedule.fit`): above this many tokens of page
            budget, costs are rounded up to units of ``budget / cells`` tokens (never over
            budget). More cells plan closer to the budget, in more time.
        max_recalled_turns: Turns one ``recall_memory`` call returns at most; a longer range is
            cut, and the answer says where to ask again.
        url_image_size: ``(width, height)`` a caller's image given only by URL is priced at: it
            is never fetched, so its size is unknown.
        max_threads: Threads the agents layer holds open (each with its memory and marks); the
            least recently used is let go beyond it.
        calibration_window: Latest bills the image-cost calibration fits over
            (:mod:`optical_memory.agents.calibration`).
        calibration_max_step: Largest relative change of a learnt image cost on one bill: a
            new level is reached over several bills.
        calibration_outlier: A bill whose relative residual exceeds this many robust
            deviations of the fit is logged as an outlier.
    """

    ranking: Ranking = RANKING
    candidates: int = CANDIDATES
    knapsack_cells: int = 4096
    max_recalled_turns: int = 50
    url_image_size: tuple[int, int] = (1024, 1024)
    max_threads: int = 64
    calibration_window: int = 48
    calibration_max_step: float = 0.08
    calibration_outlier: float = 6.0

    def __post_init__(self) -> None:
        if not isinstance(self.ranking, Ranking):
            raise TypeError(
                f"Tuning.ranking must be a Ranking, not {type(self.ranking).__name__}: "
                "e.g. dataclasses.replace(RANKING, phrase=2.0)"
            )
        for name, least in (
            ("candidates", 1),
            ("knapsack_cells", 1),
            ("max_recalled_turns", 1),
            ("max_threads", 1),
            ("calibration_window", 3),
        ):
            _check_count("Tuning.", name, getattr(self, name), least)
        size = self.url_image_size
        if not (
            isinstance(size, tuple) and len(size) == 2 and all(is_count(side, 1) for side in size)
        ):
            raise ValueError(
                f"Tuning.url_image_size must be (width, height) in pixels >= 1, not {size!r}"
            )
        for name in ("calibration_max_step", "calibration_outlier"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not value > 0
                or math.isinf(value)
            ):
                raise ValueError(f"Tuning.{name} must be a finite number > 0, not {value!r}")


#: The tuning used where none is given.
DEFAULT_TUNING = Tuning()


@dataclass(frozen=True)
class MemoryOptions:
    """How a memory keeps old turns and puts them in front of a model.

    Attributes:
        keep_recent_turns: Newest turns always kept as text, and sent as the caller's own
            messages, verbatim (at least 1: the newest message, a request's question, is never
            printed on a page). Older turns wait as text until enough of them fill a page.
        budget_tokens: Most tokens one request may cost the target (system prompt, tool
            schemas, captions, images and recent text together); ``None``: no limit. Old pages
            fade and are forgotten first, a batch at a time when a batch of pages settles
            (so a prompt cache keeps what was sent), then the recent window shrinks; a newest
            message larger than the budget is sent as its tail, with a note.
        target: The model that reads the pages, for token accounting and request limits (one
            of :data:`optical_memory.targets.TARGETS`). ``None``: for the agents layer, taken
            from the wrapped chat model, else the memory's; for a memory, ``"deepseek-ocr"``.
        register_recall_tool: Give the agent the ``recall_memory`` tool. ``None`` (default):
            when the model can bind tools; ``True``: always; ``False``: never.
        calibrate: Learn what images really cost from each response's ``usage_metadata``
            (fitted with the provider's own text count over a window of bills, robust to wild
            bills: :mod:`optical_memory.agents.calibration`) and use that instead of the
            published formula (kept in the store per model and size).
        request_limits: Images and bytes one request may carry; ``None``: the target's
            documented limits (e.g. set ``max_images`` to vLLM's ``--limit-mm-per-prompt``).
        cache_control: Put on the memory message's last page block, a prompt-cache breakpoint.
            ``"auto"``: Anthropic's ``{"type": "ephemeral"}`` for the ``anthropic`` target and
            none for the others, whose caches need no marker (the memory message already
            precedes everything that changes per call); ``None``: never; or a dict such as
            ``{"type": "ephemeral", "ttl": "1h"}``.
        image_cache_bytes: Most base64 characters of page images kept encoded between calls
            (:mod:`optical_memory.agents.encoded`), so a call encodes only the pages new to it
            or shown at a new mode; ``0``: encode every page on every call.
        verbatim_tokens: Most tokens of exact values (codes, ids, amounts, phone numbers,
            URLs...) a page sent at a size its reader may misread carries as text beside its
            image (:mod:`optical_memory.verbatim`); 0 sends none. Fixed per page when frozen.
        render_ahead: A memory draws, in a background thread after each ``add``, the pages the
            next contexts will show (:mod:`optical_memory.memory.render_ahead`). The memories
            the agents layer opens for other threads always do.
        tuning: The ranking, planning and limit knobs (:class:`Tuning`).
    """

    keep_recent_turns: int = 6
    budget_tokens: int | None = None
    target: str | None = None
    register_recall_tool: bool | None = None
    calibrate: bool = True
    request_limits: RequestLimits | None = None
    cache_control: Mapping[str, str] | Literal["auto"] | None = "auto"
    image_cache_bytes: int = 64 * 2**20
    verbatim_tokens: int = MAX_VERBATIM_TOKENS
    render_ahead: bool = False
    tuning: Tuning = field(default=DEFAULT_TUNING)

    def __post_init__(self) -> None:
        _check_count("", "keep_recent_turns", self.keep_recent_turns, 1)
        budget = self.budget_tokens
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int)):
            raise TypeError(f"budget_tokens must be an int or None, not {budget!r}")
        if budget is not None and budget <= 0:
            raise ValueError(f"budget_tokens must be positive or None, not {budget}")
        if self.target is not None:
            target_spec(self.target)  # a ValueError listing the targets for an unknown one
        _check_count("", "image_cache_bytes", self.image_cache_bytes, 0)
        _check_count("", "verbatim_tokens", self.verbatim_tokens, 0)
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
        for name in ("calibrate", "render_ahead"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False, not {getattr(self, name)!r}")
        if not isinstance(self.tuning, Tuning):
            raise TypeError(f"tuning must be a Tuning, not {type(self.tuning).__name__}")
        if self.request_limits is not None and not isinstance(self.request_limits, RequestLimits):
            raise TypeError(
                f"request_limits must be a RequestLimits or None, not {self.request_limits!r}"
            )

    @classmethod
    def of(cls, options: MemoryOptions | None, overrides: Mapping[str, Any]) -> MemoryOptions:
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
        if not overrides and options is not None:
            return options
        return dataclasses.replace(options or cls(), **overrides)


class OptionValues(TypedDict, total=False):
    """:class:`MemoryOptions`' fields, as keywords (for typing ``**overrides``)."""

    keep_recent_turns: int
    budget_tokens: int | None
    target: str | None
    register_recall_tool: bool | None
    calibrate: bool
    request_limits: RequestLimits | None
    cache_control: Mapping[str, str] | Literal["auto"] | None
    image_cache_bytes: int
    verbatim_tokens: int
    render_ahead: bool
    tuning: Tuning


__all__ = [
    "DEFAULT_TARGET",
    "DEFAULT_TUNING",
    "MemoryOptions",
    "OptionValues",
    "Tuning",
    "is_count",
]
