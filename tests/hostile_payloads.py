"""The hostile payloads of ``tests/data/hostile_payloads.json``, for the tests that iterate over
them (the renderers' layout and the HTML renderer's request blocking)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

PAYLOADS = Path(__file__).parent / "data" / "hostile_payloads.json"
# A script that runs writes this into the page; no payload contains it literally.
SCRIPT_MARK = "SCRIPT_RAN"
RUN = "document.body.append('SCRIPT'+'_RAN')"


@cache
def _data() -> dict[str, Any]:
    return dict(json.loads(PAYLOADS.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class RequestPayload:
    """Content that tries to fetch ``{u}`` (a live listener) or run a script."""

    name: str
    template: str
    #: Text that must show on the page; None: the payload itself.
    visible: tuple[str, ...] | None = None

    def content(self, url: str) -> str:
        return self.template.replace("{u}", url).replace("{run}", RUN)

    def shown(self, url: str) -> tuple[str, ...]:
        expected = self.visible if self.visible is not None else (self.template,)
        return tuple(text.replace("{u}", url).replace("{run}", RUN) for text in expected)


@dataclass(frozen=True)
class LayoutPayload:
    """Content that used to cost minutes, lose text or print it off the page."""

    name: str
    role: str
    content: str
    #: Every non-space character must show, in order.
    verbatim: bool
    #: Strings that must show.
    visible: tuple[str, ...]


def request_payloads() -> list[RequestPayload]:
    return [
        RequestPayload(p["name"], p["content"], tuple(p["visible"]) if "visible" in p else None)
        for p in _data()["requests"]
    ]


def layout_payloads() -> list[LayoutPayload]:
    return [
        LayoutPayload(
            name=p["name"],
            role=p.get("role", "tool"),
            content="".join(text * count for text, count in p["parts"]),
            verbatim=bool(p.get("verbatim", False)),
            visible=tuple(p.get("visible", ())),
        )
        for p in _data()["layout"]
    ]


@dataclass(frozen=True)
class ViewerRequest:
    """A request to the viewer and the status it must get (``{port}``: the viewer's port)."""

    name: str
    method: str
    path: str
    headers: dict[str, str]
    status: int
    #: The body: JSON, raw text, or this many bytes (streamed without a length if chunked).
    json: dict[str, str] | None = None
    raw: str | None = None
    body_bytes: int = 0
    chunked: bool = False

    def with_port(self, port: int) -> dict[str, str]:
        return {k: v.replace("{port}", str(port)) for k, v in self.headers.items()}


def viewer_requests() -> list[ViewerRequest]:
    return [
        ViewerRequest(
            name=r["name"],
            method=r["method"],
            path=r["path"],
            headers=dict(r.get("headers", {})),
            status=int(r["status"]),
            json=r.get("json"),
            raw=r.get("raw"),
            body_bytes=int(r.get("body_bytes", 0)),
            chunked=bool(r.get("chunked", False)),
        )
        for r in _data()["viewer"]
    ]
