"""Renderers print turns onto page images: ``PillowRenderer`` (fast default) and
``HtmlRenderer`` (Chromium, needs the ``html`` extra). :func:`create` builds one by name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from optical_memory.extras import lazy_exports
from optical_memory.renderers.page import RenderedPage, Renderer, Span

if TYPE_CHECKING:
    from optical_memory.renderers.html import HtmlRenderer
    from optical_memory.renderers.pil import PillowRenderer

__all__ = ["HtmlRenderer", "PillowRenderer", "RenderedPage", "Renderer", "Span", "create"]

#: Renderer names :func:`create` knows.
NAMES = ("pil", "html")

# Lazy: the HTML renderer pulls in Playwright only when asked for.
__getattr__ = lazy_exports(
    __name__,
    {
        "PillowRenderer": "optical_memory.renderers.pil",
        "HtmlRenderer": "optical_memory.renderers.html",
    },
)


def create(name: str, **options: Any) -> Renderer:
    """The renderer called ``name`` (``pil`` or ``html``), built with ``options``."""
    if name == "pil":
        from optical_memory.renderers.pil import PillowRenderer

        return PillowRenderer(**options)
    if name == "html":
        from optical_memory.renderers.html import HtmlRenderer

        return HtmlRenderer(**options)
    raise ValueError(
        f"unknown renderer {name!r}: use one of {', '.join(map(repr, NAMES))} or a Renderer"
    )


def resolve(renderer: Renderer | str | None, target: str | None = None) -> Renderer:
    """``renderer`` itself, or the one :func:`create` makes for its name (None: ``pil``, its
    pages drawn at ``target``'s own sides: :func:`optical_memory.geometry.level_sides`)."""
    if renderer is None:
        if target is None:
            return create("pil")
        from optical_memory.geometry import has_own_geometry, level_sides

        if has_own_geometry(target):
            return create("pil", sides=level_sides(target))
        return create("pil")
    if isinstance(renderer, str):
        return create(renderer)
    if not isinstance(renderer, Renderer):
        raise TypeError(
            f"renderer must be a Renderer (settings_key, render, paginate), not "
            f"{type(renderer).__name__}"
        )
    return renderer
