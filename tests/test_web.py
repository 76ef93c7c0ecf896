"""The memory viewer, driven in real headless Chromium against a real server on 127.0.0.1.

Set ``OPTICAL_MEMORY_SCREENSHOT=docs/viewer.png`` to save the README's screenshot.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from hostile_payloads import ViewerRequest, viewer_requests
from playwright.sync_api import Dialog, Page, sync_playwright

from optical_memory.apps.backends import EchoModel
from optical_memory.apps.demo import DEMO_TURNS
from optical_memory.apps.web.app import (
    CONTENT_SECURITY_POLICY,
    SECURITY_HEADERS,
    create_app,
    is_loopback,
)
from optical_memory.experiments.synthetic import generate_dialogue
from optical_memory.memory import MemoryContext, MemoryPage, OpticalMemory
from optical_memory.modes import Mode
from optical_memory.renderers.html import CHROMIUM_LAUNCH_ARGS
from optical_memory.schedule import DecaySchedule

REPO_ROOT = Path(__file__).resolve().parent.parent
KEEP_RECENT = 2
# Compact tiers, so a dozen pages show every mode from sharp to tiny.
SCHEDULE = DecaySchedule(
    tiers=[(Mode.GUNDAM, 1), (Mode.LARGE, 1), (Mode.BASE, 2), (Mode.SMALL, 2), (Mode.TINY, 2)]
)


@dataclass
class Viewer:
    url: str
    db: Path

    def memory(self, thread: str) -> OpticalMemory:
        """The same memory the viewer serves, opened independently of it."""
        return OpticalMemory(
            self.db, thread_id=thread, keep_recent_turns=KEEP_RECENT, schedule=SCHEDULE
        )


@pytest.fixture(scope="module")
def viewer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Viewer]:
    db = tmp_path_factory.mktemp("viewer") / "memory.db"
    app = create_app(db, model=EchoModel(), keep_recent_turns=KEEP_RECENT, schedule=SCHEDULE)
    yield from _serve(app, db)


def _serve(app: Any, db: Path) -> Generator[Viewer, None, None]:
    """Run ``app`` with uvicorn on an ephemeral loopback port until the generator is closed."""
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))  # an ephemeral port on loopback only
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start within 10 s"
        time.sleep(0.02)
    host, port = sock.getsockname()
    yield Viewer(f"http://{host}:{port}", db)
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(scope="module")
def browsers() -> Iterator[dict[str, Any]]:
    """One Playwright and, once a test asks for it, one Chromium for the whole module."""
    with sync_playwright() as playwright:
        running: dict[str, Any] = {"playwright": playwright}
        yield running
        if "browser" in running:
            running["browser"].close()


@pytest.fixture
def page(browsers: dict[str, Any], chromium_path: str) -> Iterator[Page]:
    """A fresh browser context (no shared cookies or storage) on the module's Chromium."""
    if "browser" not in browsers:
        browsers["browser"] = browsers["playwright"].chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_LAUNCH_ARGS
        )
    # bypass_csp: the page must be safe through escaping alone, so the test does not lean on
    # the Content-Security-Policy header (checked on its own below).
    context = browsers["browser"].new_context(
        viewport={"width": 1400, "height": 900}, bypass_csp=True
    )
    try:
        yield context.new_page()
    finally:
        context.close()


def _send(page: Page, text: str) -> None:
    """Type ``text`` into the chat box, send it, and wait until the answer has been shown."""
    page.fill("#message", text)
    page.click("#send")
    page.wait_for_function(
        "document.getElementById('message').value === ''"
        " && !document.getElementById('send').disabled"
    )


def _fill_thread(memory: OpticalMemory, turns: int) -> None:
    """The bundled synthetic dialogue: a user planning a busy year, with facts planted in it."""
    memory.add_messages(generate_dialogue(turns, seed=7).messages())


def _tiers(context: MemoryContext) -> list[tuple[str, str]]:
    """(page id, tier) of every page in ``context``, newest first, as the viewer labels them."""
    return [
        (str(p.page_id), p.mode.value if isinstance(p, MemoryPage) else "text")
        for p in reversed(context.memory)
    ]


def _shown_tiers(page: Page) -> list[tuple[str | None, str]]:
    thumbs = page.locator(".page-thumb")
    return [
        (
            thumbs.nth(i).get_attribute("data-page-id"),
            thumbs.nth(i).locator(".tier-label").inner_text(),
        )
        for i in range(thumbs.count())
    ]


def test_a_page_forms_with_its_tier_and_a_click_shows_its_exact_text(
    viewer: Viewer, page: Page
) -> None:
    page.goto(f"{viewer.url}/#thread=facts")
    fact = "My locker code is 4817-QX and my sister Inês lives in Valparaíso."
    stories = [
        f"Message {i}: " + "a long story about the harbour and its boats. " * 60 for i in range(12)
    ]
    image_thumbs = page.locator(".page-thumb:not([data-mode=text])")
    for message in [fact, *stories]:
        _send(page, message)
        if image_thumbs.count():
            break
    assert image_thumbs.count() >= 1, f"no page image after {len(stories) + 1} messages"

    memory = viewer.memory("facts")
    context = memory.context()
    assert _shown_tiers(page) == _tiers(context)
    newest_image = context.pages[-1]
    thumb = image_thumbs.first
    assert thumb.get_attribute("data-page-id") == str(newest_image.page_id)
    assert thumb.locator(".tier-label").inner_text() == newest_image.mode.value
    page.wait_for_function(
        "document.querySelector('.page-thumb:not([data-mode=text]) img').complete"
    )
    natural = thumb.locator("img").evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert tuple(natural) == (newest_image.width, newest_image.height)  # as rendered at its mode

    page.locator(".page-thumb").last.click()  # the oldest page
    page.wait_for_function("document.getElementById('page-text').textContent.length > 0")
    shown = page.locator("#page-text").text_content()
    oldest = context.memory[0]
    assert shown == memory.recall(oldest.page_id)
    assert shown is not None and shown.startswith(f"#1 user: {fact}\n")


def test_the_search_box_lists_numbered_hits_marks_their_pages_and_shows_the_exact_turn(
    viewer: Viewer, page: Page
) -> None:
    memory = viewer.memory("search")
    _fill_thread(memory, 120)
    (fact, *_) = [f for f in generate_dialogue(120, seed=7).facts if f.turn < 60]
    page.goto(f"{viewer.url}/#thread=search")
    page.wait_for_selector(".page-thumb")
    page.fill("#search-query", fact.question)
    page.click("#search button")
    page.wait_for_selector("#search-hits .hit")
    expected = memory.search(fact.question, limit=10)
    first = page.locator("#search-hits .hit").first
    where = f"page {expected[0].page_id} ({expected[0].mode.value})" if expected[0].mode else ""
    assert first.locator(".role").inner_text().startswith(f"#{expected[0].number} user · {where}")
    assert expected[0].number == fact.turn + 1  # the planted fact, found first
    assert first.locator("mark").count() >= 1  # matched words marked (as nodes, not markup)
    marked = {
        int(x)
        for x in page.eval_on_selector_all(
            ".page-thumb.hit", "els => els.map(e => e.dataset.pageId)"
        )
    }
    assert marked == {h.page_id for h in expected if h.page_id is not None}
    first.click()
    assert page.locator("#page-text").text_content() == (
        f"#{expected[0].number} user: {expected[0].turn.content}"
    )
    api = httpx.get(f"{viewer.url}/api/search", params={"thread": "search", "q": fact.question})
    assert [hit["number"] for hit in api.json()["hits"]] == [h.number for h in expected]
    for bad in ("", " ", "x" * 1001):
        status = httpx.get(f"{viewer.url}/api/search", params={"thread": "search", "q": bad})
        assert status.status_code == 422


def test_a_message_holding_a_script_shows_as_text_and_runs_nothing(
    viewer: Viewer, page: Page
) -> None:
    dialogs: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto(f"{viewer.url}/#thread=markup")
    payload = (
        "<script>window.__pwned = 1; alert('script')</script>"
        "<img src=x onerror=\"window.__pwned = 2; alert('img')\"> <b>bold?</b>"
    )
    _send(page, payload)

    contents = page.locator("#recent .turn .content").all_text_contents()
    assert contents[0] == payload
    assert contents[1].endswith(f"you said: {payload}")
    assert page.locator("#recent script, #recent img, #recent b").count() == 0
    assert page.evaluate("window.__pwned") is None
    assert dialogs == []


def test_the_viewer_lists_threads_and_shows_memory_fading_newest_first(
    viewer: Viewer, page: Page
) -> None:
    memory = viewer.memory("dialogue")
    _fill_thread(memory, 180)
    context = memory.context()
    page.goto(f"{viewer.url}/#thread=dialogue")
    page.wait_for_selector(".page-thumb")

    assert "dialogue" in page.locator("#threads a").all_text_contents()
    shown = _shown_tiers(page)
    assert shown == _tiers(context)
    assert shown[-1][1] == "tiny" and {"large", "base", "small"} <= {tier for _, tier in shown}
    accounting = dict(
        zip(
            page.locator("#accounting dt").all_text_contents(),
            page.locator("#accounting dd").all_text_contents(),
            strict=True,
        )
    )
    assert accounting["in context"] == f"{context.total_tokens} tokens"
    assert accounting["vision"] == (
        f"{context.vision_tokens} tokens in {len(context.pages)} page images"
    )
    assert accounting["text"].startswith(f"{context.text_tokens} tokens in ")


def test_the_viewer_opens_the_thread_written_last_when_none_is_named(
    viewer: Viewer, page: Page
) -> None:
    with viewer.memory("older") as older, viewer.memory("written-last") as last:
        older.add("user", "an early note")
        last.add("user", "the newest note")
    page.goto(f"{viewer.url}/")
    page.wait_for_function("document.getElementById('thread-name').textContent.length > 0")
    assert page.locator("#thread-name").text_content() == "written-last"
    assert "default" not in page.locator("#threads a").all_text_contents()


def test_a_memory_with_the_default_settings_shows_small_then_tiny_pages(
    tmp_path: Path, page: Page
) -> None:
    """What a user sees after `make demo` and `optical-memory serve --db out/demo/memory.db`
    (the README's screenshot, written when $OPTICAL_MEMORY_SCREENSHOT names a file)."""
    db = tmp_path / "memory.db"
    with OpticalMemory(db, thread_id="demo") as memory:
        memory.add_messages(generate_dialogue(DEMO_TURNS, seed=0).messages())
        context = memory.context()
    served = _serve(create_app(db, model=EchoModel()), db)
    defaults = next(served)
    try:
        page.goto(f"{defaults.url}/")  # no thread named: the demo's, the only one
        page.wait_for_selector(".page-thumb")
        assert page.locator("#thread-name").text_content() == "demo"
        shown = {tier for _, tier in _shown_tiers(page)}
        assert shown == {tier for _, tier in _tiers(context)} and {"small", "tiny"} <= shown
        screenshot = os.environ.get("OPTICAL_MEMORY_SCREENSHOT")
        if screenshot:
            page.locator(".page-thumb").nth(2).click()
            page.wait_for_function("document.getElementById('page-text').textContent.length > 0")
            page.evaluate("document.fonts.ready")
            target = REPO_ROOT / screenshot
            target.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(target), full_page=True)
    finally:
        served.close()


def test_the_api_sends_a_strict_csp_and_rejects_unknown_pages_and_nameless_threads(
    viewer: Viewer,
) -> None:
    index = httpx.get(f"{viewer.url}/")
    assert index.status_code == 200
    assert index.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert '<script src="/static/app.js"' in index.text
    missing = httpx.get(f"{viewer.url}/api/page-text", params={"thread": "nobody", "page_id": 9})
    assert missing.status_code == 404
    nameless = httpx.get(f"{viewer.url}/api/memory", params={"thread": ""})
    assert nameless.status_code == 422


def test_only_loopback_hosts_count_as_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")


def test_a_host_header_is_a_name_and_at_most_a_port() -> None:
    from optical_memory.apps.web.guard import host_name

    assert host_name("LocalHost:8000") == "localhost" and host_name("[::1]:80") == "[::1]"
    assert host_name("127.0.0.1") == "127.0.0.1"
    for forged in ("localhost:8000@evil.com", "[::1]evil", "localhost:80:81", "localhost:x"):
        assert host_name(forged) == ""


def test_the_viewer_checks_its_store_once_when_it_opens_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    from optical_memory.store import SQLiteStore, StoreError

    db = tmp_path / "memory.db"
    with OpticalMemory(db, thread_id="t") as memory:
        memory.add("user", "hello")
    checks: list[str] = []
    check = SQLiteStore._quick_check

    def counted(store: SQLiteStore, where: str) -> None:
        checks.append(where)  # each check reads the whole file
        check(store, where)

    monkeypatch.setattr(SQLiteStore, "_quick_check", counted)
    app = create_app(db, model=EchoModel())
    assert checks == [str(db)]
    with TestClient(app, base_url="http://127.0.0.1") as client:
        for _ in range(5):
            assert client.get("/api/memory", params={"thread": "t"}).status_code == 200
        assert client.get("/api/threads").json()["threads"] == ["t"]
    assert checks == [str(db)]
    assert app.state.store._closed  # closed when the viewer shut down
    (tmp_path / "other.db").write_bytes(b"not a database at all " * 200)
    with pytest.raises(StoreError, match="not an SQLite database"):
        create_app(tmp_path / "other.db", model=EchoModel())  # refused at start, not per request


class _BrokenModel:
    name = "broken"

    def respond(
        self, memory: OpticalMemory, message: str, *, budget_tokens: int | None = None
    ) -> str:
        raise ConnectionError("connection refused by 127.0.0.1:9")


def test_a_failing_model_gives_502_with_its_error(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    app = create_app(tmp_path / "m.db", model=_BrokenModel())
    client = TestClient(app, base_url="http://127.0.0.1")
    response = client.post("/api/messages", json={"thread": "t", "content": "hello"})
    assert response.status_code == 502
    assert response.json() == {
        "detail": "the model failed: ConnectionError: connection refused by 127.0.0.1:9"
    }


def _body(request: ViewerRequest) -> bytes | Iterator[bytes] | None:
    if request.raw is not None:
        return request.raw.encode()
    if not request.body_bytes:
        return None
    if not request.chunked:
        return b"x" * request.body_bytes
    chunk = b"x" * 1_000_000
    return (chunk for _ in range(request.body_bytes // len(chunk)))


@pytest.mark.parametrize("hostile", viewer_requests(), ids=lambda r: r.name)
def test_each_hostile_request_gets_its_status_with_the_security_headers(
    viewer: Viewer, hostile: ViewerRequest
) -> None:
    port = int(viewer.url.rsplit(":", 1)[1])
    response = httpx.request(
        hostile.method,
        viewer.url + hostile.path,
        headers=hostile.with_port(port),
        json=hostile.json,
        content=_body(hostile),
        timeout=60,
    )
    assert response.status_code == hostile.status, response.text
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    if hostile.path.startswith("/api/"):
        assert response.headers["cache-control"] == "no-store"
    if hostile.method == "HEAD":
        assert response.content == b"" and int(response.headers["content-length"]) > 0
    elif response.status_code in (400, 403, 413, 422):
        assert response.json()["detail"]  # one error that says what went wrong
    with viewer.memory("hostile") as memory:
        assert memory.stats().turns == 0


def test_a_page_image_is_drawn_from_the_stored_page_without_building_the_context(
    viewer: Viewer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with viewer.memory("images") as memory:
        _fill_thread(memory, 60)
        page = memory.context().pages[0]
        expected = memory.page_image(page.page_id, Mode.TINY).png()

    def no_context(self: OpticalMemory, budget_tokens: int | None = None) -> MemoryContext:
        raise AssertionError("the page image request built the whole context")

    monkeypatch.setattr(OpticalMemory, "context", no_context)
    params: dict[str, str | int] = {"thread": "images", "page_id": page.page_id, "mode": "tiny"}
    response = httpx.get(f"{viewer.url}/api/page.png", params=params)
    assert response.status_code == 200
    assert response.content == expected
    params["page_id"] = 10**9
    assert httpx.get(f"{viewer.url}/api/page.png", params=params).status_code == 404
