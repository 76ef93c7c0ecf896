"""Renderers print turns onto page images: ``PillowRenderer`` (fast default) and
``HtmlRenderer`` (Chromium, needs the ``html`` extra)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from optical_memory.renderers.page import RenderedPage, Renderer, Span

if TYPE_CHECKING:
    from optical_memory.renderers.html import HtmlRenderer
    from optical_memory.renderers.pil import PillowRenderer

__all__ = ["HtmlRenderer", "PillowRenderer", "RenderedPage", "Renderer", "Span"]


def __getattr__(name: str) -> Any:
    # Lazy: the HTML renderer pulls in Playwright only when asked for.
    if name == "PillowRenderer":
        from optical_memory.renderers.pil import PillowRenderer

        return PillowRenderer
    if name == "HtmlRenderer":
        from optical_memory.renderers.html import HtmlRenderer

        return HtmlRenderer
    raise AttributeError(name)
