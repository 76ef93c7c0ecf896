"""The memory viewer of ``optical-memory serve``: a FastAPI app with a plain HTML+JS page.

Needs the ``demo`` extra (FastAPI, uvicorn); importing this package does not import them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from optical_memory.extras import lazy_exports

if TYPE_CHECKING:
    from optical_memory.apps.web.app import create_app, serve

__all__ = ["create_app", "serve"]
__getattr__ = lazy_exports(__name__, dict.fromkeys(__all__, "optical_memory.apps.web.app"))
