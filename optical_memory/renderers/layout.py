"""The Pillow renderer's default layout: the committed result of the density search.

``data/density.json`` beside this module is written by ``optical-memory density`` (the density
search, research code in a layer above this one); this module only reads it, so the renderer
does not depend on the code that produced its defaults.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

#: The committed result of the density search.
DENSITY_FILE = Path(__file__).resolve().parent / "data" / "density.json"
#: Used when no search result is installed (the renderer's historical defaults).
FALLBACK = (20.0, 1.2)


@dataclass(frozen=True)
class Density:
    """A layout density of the Pillow renderer: font size (px on the 1024-px reference page)
    and line spacing (line height as a multiple of the font size)."""

    font_size: float
    line_spacing: float


@cache
def chosen_density() -> Density:
    """The density the search chose as the renderer's default (``data/density.json``)."""
    try:
        chosen = json.loads(DENSITY_FILE.read_text(encoding="utf-8"))["default"]
        return Density(float(chosen["font_size"]), float(chosen["line_spacing"]))
    except (OSError, KeyError, ValueError, TypeError):
        return Density(*FALLBACK)
