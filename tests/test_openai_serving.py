"""Memory pages through langchain-openai's ChatOpenAI to an OpenAI-compatible server.

The server is real HTTP on 127.0.0.1 (stdlib ``http.server`` in a thread) answering in the
chat-completions shape, as vLLM's OpenAI-compatible server does for DeepSeek-OCR. It records
every request and refuses (HTTP 400) one whose image parts are not decodable PNG data URLs.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from http_stub import send_json
from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI
from PIL import Image
from pydantic import SecretStr

from optical_memory import DecaySchedule, Mode, OpticalMemory
from optical_memory.agents.openai_pages import page_image_for_mode, pages_to_openai_content

ANSWER = "The hotel was Seaview, booking 4417."


def _decode_png(url: str) -> Image.Image:
    prefix = "data:image/png;base64,"
    if not url.startswith(prefix):
        raise ValueError(f"not a PNG data URL: {url[:30]}")
    image = Image.open(io.BytesIO(base64.b64decode(url[len(prefix) :], validate=True)))
    if image.format != "PNG":
        raise ValueError(f"not a PNG: {image.format}")
    image.load()
    return image


class ChatCompletionsStub(BaseHTTPRequestHandler):
    requests: ClassVar[list[dict[str, Any]]] = []

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "body": body})
        if self.path != "/v1/chat/completions":
            return self._reply(404, {"error": {"message": f"no route {self.path}"}})
        try:
            images = 0
            for message in body["messages"]:
                content = message["content"]
                for part in [] if isinstance(content, str) else content:
                    if part["type"] == "image_url":
                        _decode_png(part["image_url"]["url"])
                        images += 1
        except (KeyError, TypeError, ValueError) as error:
            return self._reply(400, {"error": {"message": f"bad request: {error}"}})
        self._reply(
            200,
            {
                "id": "chatcmpl-stub",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": ANSWER},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": 100 * images,
                    "completion_tokens": 9,
                    "total_tokens": 100 * images + 9,
                },
            },
        )

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        send_json(self, status, payload)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    ChatCompletionsStub.requests = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ChatCompletionsStub)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def memory(tmp_path: Path) -> Iterator[OpticalMemory]:
    schedule = DecaySchedule(
        tiers=[(Mode.GUNDAM, 1), (Mode.LARGE, 1), (Mode.BASE, 1), (Mode.SMALL, 1), (Mode.TINY, 1)],
        batch=1,
    )
    with OpticalMemory(tmp_path / "m.db", keep_recent_turns=1, schedule=schedule) as memory:
        for i in range(40):
            memory.add("user", f"Turn {i}: we booked the Seaview hotel, number {4400 + i}. " * 12)
        yield memory


def test_chat_openai_sends_each_page_at_its_modes_size(server: str, memory: OpticalMemory) -> None:
    pages = memory.context().pages
    assert {page.mode for page in pages} == set(Mode)
    llm = ChatOpenAI(
        base_url=server, api_key=SecretStr("EMPTY"), model="deepseek-ai/DeepSeek-OCR", max_retries=0
    )
    content = pages_to_openai_content(pages, "Which hotel did we book?")
    answer = llm.invoke([HumanMessage(content=content)])  # type: ignore[arg-type]

    assert answer.content == ANSWER
    assert answer.usage_metadata is not None
    assert answer.usage_metadata["input_tokens"] == 100 * len(pages)
    (request,) = ChatCompletionsStub.requests
    assert request["body"]["model"] == "deepseek-ai/DeepSeek-OCR"
    (message,) = request["body"]["messages"]
    assert message["role"] == "user"
    parts = message["content"]
    assert [p["type"] for p in parts] == ["image_url"] * len(pages) + ["text"]
    assert parts[-1]["text"] == "Which hotel did we book?"
    for page, part in zip(pages, parts, strict=False):
        image = _decode_png(part["image_url"]["url"])
        if page.mode is Mode.GUNDAM:
            assert image.size == page.image.size  # the server cuts the tiles itself
        else:
            assert image.size == (page.mode.size, page.mode.size)
        assert image.mode == "RGB"
        # The memory renders each page at its mode's size already: sent pixel for pixel.
        assert image.tobytes() == page.image.convert("RGB").tobytes()


def test_tiny_and_small_pages_are_squashed_and_large_ones_padded() -> None:
    page = Image.new("RGB", (800, 1200), "white")
    tiny = page_image_for_mode(page, Mode.TINY)
    assert tiny.size == (512, 512) and tiny.getpixel((0, 0)) == (255, 255, 255)
    large = page_image_for_mode(page, Mode.LARGE)
    assert large.size == (1280, 1280)
    assert large.getpixel((0, 640)) == (127, 127, 127)  # left margin: grey padding
    assert large.getpixel((640, 640)) == (255, 255, 255)  # the page, centred
    assert page_image_for_mode(page, Mode.GUNDAM).size == (800, 1200)


def test_detail_is_passed_on_and_text_is_optional() -> None:
    class Page:
        image = Image.new("RGB", (300, 300), "white")
        mode = Mode.SMALL

    parts = pages_to_openai_content([Page()], detail="high")
    assert len(parts) == 1 and parts[0]["image_url"]["detail"] == "high"
    assert _decode_png(parts[0]["image_url"]["url"]).size == (640, 640)
