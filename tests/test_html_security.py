"""HtmlRenderer with hostile message content: nothing is fetched, no script runs, and the
payload is printed as text. Runs the real Chromium; a listener on 127.0.0.1 counts every
connection and request that would leak out of the page."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from optical_memory.modes import Mode
from optical_memory.renderers.html import HtmlRenderer
from optical_memory.turns import Turn

# A script that runs writes this into the page; no payload contains it literally.
SCRIPT_MARK = "SCRIPT_RAN"
RUN = "document.body.append('SCRIPT'+'_RAN')"


class _Listener(ThreadingHTTPServer):
    """An HTTP server that records every connection and request, and answers 200."""

    daemon_threads = True

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[str] = []
        super().__init__(("127.0.0.1", 0), _CountingHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def verify_request(self, request: Any, client_address: Any) -> bool:
        self.connections += 1
        return True


class _CountingHandler(BaseHTTPRequestHandler):
    server: _Listener

    def parse_request(self) -> bool:
        ok = super().parse_request()
        self.server.requests.append(f"{self.command} {self.path}")
        return ok

    def do_GET(self) -> None:
        body = f"<script>{RUN}</script>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_HEAD = do_OPTIONS = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass(frozen=True)
class Payload:
    name: str
    template: str  # "{u}" is the listener's URL
    #: Text that must show on the page; None: the payload itself.
    visible: tuple[str, ...] | None = None

    def content(self, url: str) -> str:
        return self.template.replace("{u}", url)


PAYLOADS = [
    Payload("script", f"<script>{RUN}; fetch('{{u}}/script')</script>"),
    Payload("external script", '<script src="{u}/external.js"></script>'),
    Payload("img onerror", f'<img src="{{u}}/img.png" onerror="{RUN}">'),
    Payload("img file url", '<img src="file:///etc/passwd"> and <img src=file:///etc/passwd>'),
    Payload("body onload", f'<body onload="{RUN}">hello</body>'),
    Payload("svg script", f"<svg onload=\"fetch('{{u}}/svg')\"><script>{RUN}</script></svg>"),
    Payload("svg image", '<svg><image href="{u}/svg-image.png" /></svg>'),
    Payload("iframe", '<iframe src="{u}/iframe"></iframe>'),
    Payload("iframe srcdoc", f'<iframe srcdoc="<script>parent.{RUN}</script>"></iframe>'),
    Payload(
        "object", '<object data="{u}/object.swf" type="application/x-shockwave-flash"></object>'
    ),
    Payload("embed", '<embed src="{u}/embed.swf">'),
    Payload("link stylesheet", '<link rel="stylesheet" href="{u}/style.css">'),
    Payload("link prefetch", '<link rel="prefetch" href="{u}/prefetch">'),
    Payload("link preconnect", '<link rel="preconnect dns-prefetch preload" href="{u}/pre">'),
    Payload("meta refresh", '<meta http-equiv="refresh" content="0; url={u}/refresh">'),
    Payload("base href", '<base href="{u}/base/"><img src="relative.png">'),
    Payload(
        "css import and url",
        '<style>@import url("{u}/import.css"); body { background: url("{u}/bg.png") }</style>',
    ),
    Payload("inline style url", "<div style=\"background-image: url('{u}/inline.png')\">x</div>"),
    Payload("javascript markdown link", "[click me](javascript:fetch('{u}/js-link'))"),
    Payload("javascript html link", f'<a href="javascript:{RUN}">js link</a>'),
    Payload(
        "markdown image",
        "![tracking pixel]({u}/markdown-image.png)",
        visible=("tracking pixel", "/markdown-image.png"),
    ),
    Payload(
        "markdown reference image",
        "![logo][ref]\n\n[ref]: {u}/reference.png",
        visible=("logo", "/reference.png"),
    ),
    Payload("markdown autolink", "<{u}/autolink>", visible=("/autolink",)),
    Payload("video and audio", '<video src="{u}/v.mp4" autoplay></video><audio src="{u}/a.mp3">'),
    Payload("form autofocus", f'<form action="{{u}}/form"><input autofocus onfocus="{RUN}">'),
    Payload("noscript image", '<noscript><img src="{u}/noscript.png"></noscript>'),
    Payload("srcset", '<img srcset="{u}/srcset.png 1x, {u}/srcset2.png 2x">'),
    Payload("legacy background", '<table background="{u}/table-bg.png"><tr><td>cell</td></tr>'),
    Payload(
        "mutation xss",
        f'<math><mtext><table><mglyph><style><img src="{{u}}/mx.png" onerror="{RUN}">',
    ),
    Payload(
        "html in code fence",
        '```html\n<img src="{u}/fence.png">\n<script>x()</script>\n```',
        visible=('<img src="{u}/fence.png">', "<script>x()</script>"),
    ),
    Payload(
        "data url image",
        '![d](data:image/png;base64,iVBORw0KGgo=) <img src="data:x">',
        visible=("data:image/png;base64,iVBORw0KGgo=", '<img src="data:x">'),
    ),
]


@pytest.fixture(scope="module")
def listener() -> Iterator[_Listener]:
    server = _Listener()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def renderer() -> Iterator[HtmlRenderer]:
    with HtmlRenderer() as shared:
        yield shared


def test_the_listener_counts_a_real_request(listener: _Listener) -> None:
    """The listener is live: a plain request from this process reaches it."""
    import urllib.request

    before = len(listener.requests)
    with urllib.request.urlopen(f"{listener.url}/probe", timeout=5) as response:
        assert response.status == 200
    assert listener.requests[before:] == ["GET /probe"]
    del listener.requests[before:]
    listener.connections -= 1


def test_there_are_at_least_twenty_distinct_payloads() -> None:
    assert len({p.name for p in PAYLOADS}) == len(PAYLOADS) >= 20


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: p.name)
def test_hostile_payload_is_printed_as_text_and_fetches_nothing(
    payload: Payload, renderer: HtmlRenderer, listener: _Listener
) -> None:
    content = payload.content(listener.url)
    turns = [Turn(role="user", content=content)]
    connections = listener.connections

    pages = renderer.render(turns, Mode.TINY)
    shown = renderer.page_text(turns)
    time.sleep(0.05)  # a request in flight would land now

    assert listener.requests == []
    assert listener.connections == connections
    assert len(pages) == len(shown) == 1
    assert pages[0].spans[0].end == len(content)
    text = " ".join(shown[0].split())
    assert SCRIPT_MARK not in text
    for expected in payload.visible or (payload.template,):
        assert " ".join(expected.replace("{u}", listener.url).split()) in text


def test_sanitized_pages_leave_the_router_nothing_to_block(
    renderer: HtmlRenderer, listener: _Listener
) -> None:
    """The sanitizer is the first wall: no payload even attempts a request."""
    before = renderer.blocked_requests
    turns = [Turn(role="user", content=p.content(listener.url)) for p in PAYLOADS]
    renderer.render(turns, Mode.TINY)
    assert renderer.blocked_requests == before
    assert listener.requests == []


def test_the_browser_sandbox_alone_blocks_fetches_and_scripts(
    renderer: HtmlRenderer, listener: _Listener
) -> None:
    """Second wall: raw hostile HTML loaded straight into a fresh page of the renderer's
    sandboxed browser context (no sanitizer, no CSP) still fetches nothing and runs nothing;
    the router aborts the attempts."""
    u = listener.url
    raw = (
        f"<html><head><link rel=stylesheet href='{u}/raw.css'>"
        f"<style>@import url('{u}/raw-import.css');</style></head><body>"
        f"<img src='{u}/raw.png' onerror=\"{RUN}\"><script>{RUN}</script>"
        f"<iframe src='{u}/raw-frame'></iframe><div style=\"background:url('{u}/raw-bg.png')\">"
        "raw page</div></body></html>"
    )
    before = renderer.blocked_requests

    def load_raw() -> str:
        # A fresh page: render()'s own page keeps the CSP of the documents it has shown.
        page = renderer.sandbox.page(1.0).context.new_page()
        try:
            page.set_content(raw)
            time.sleep(0.2)
            return str(page.evaluate("() => document.body.innerText"))
        finally:
            page.close()

    text = renderer.sandbox.run(load_raw, "loading raw HTML")  # on the browser thread

    assert "raw page" in text
    assert SCRIPT_MARK not in text
    assert listener.requests == []
    assert renderer.blocked_requests > before
