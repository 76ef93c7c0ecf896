"""HtmlRenderer with hostile message content: nothing is fetched, no script runs, and the
payload is printed as text. Runs the real Chromium; a listener on 127.0.0.1 counts every
connection and request that would leak out of the page."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hostile_payloads import RUN, SCRIPT_MARK, RequestPayload, request_payloads

from optical_memory.modes import Mode
from optical_memory.renderers.html import HtmlRenderer
from optical_memory.turns import Turn


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


PAYLOADS = request_payloads()


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
    payload: RequestPayload, renderer: HtmlRenderer, listener: _Listener
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
    for expected in payload.shown(listener.url):
        assert " ".join(expected.split()) in text


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
