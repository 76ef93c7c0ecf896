"""The memory viewer of ``optical-memory serve``: a FastAPI app with a plain HTML+JS page.

Needs the ``demo`` extra (FastAPI, uvicorn); importing this package does not import them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optical_memory.web.app import create_app, serve

__all__ = ["create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from optical_memory.web import app

        return getattr(app, name)
    raise AttributeError(f"module 'optical_memory.web' has no attribute {name!r}")
