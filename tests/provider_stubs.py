"""Local stand-ins of the OpenAI, Anthropic and Gemini HTTP APIs (tests only; not a test module).

One ``ThreadingHTTPServer`` on 127.0.0.1 answers ``POST /v1/chat/completions`` (OpenAI),
``POST /v1/messages`` (Anthropic) and ``POST /v1beta/models/MODEL:generateContent`` (Gemini)
with a fixed answer, and bills the prompt by its own rules, none of them the library's: text at
one token per 4 characters (rounded up, part by part; OpenAI's tool schemas as sorted JSON),
:data:`PER_MESSAGE` tokens per message and :data:`PER_REQUEST` per request; each image from its
own table by its longest side (:data:`IMAGE_TOKENS`, not proportional to any target's formula),
else ``ceil(width * height / PIXELS)``. A client must learn all this from the bills.
``requests`` keeps each request body, newest last.
"""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from http_stub import send_json, serving
from PIL import Image

#: The stub's price of an image by its longest side, in pixels.
IMAGE_TOKENS = {512: 140, 640: 260, 768: 410, 1024: 700, 1280: 1050}
#: Pixels per billed image token, for sizes not in the table.
PIXELS = 2500
#: Tokens of framing per message and per request.
PER_MESSAGE = 3
PER_REQUEST = 7


def image_bill(width: int, height: int) -> int:
    """What the stub bills for one ``width x height`` image."""
    return IMAGE_TOKENS.get(max(width, height)) or math.ceil(width * height / PIXELS)


class Bill:
    def __init__(self) -> None:
        self.tokens = PER_REQUEST
        self.images = 0
        self.sizes: list[tuple[int, int]] = []

    def message(self) -> None:
        self.tokens += PER_MESSAGE

    def text(self, text: object) -> None:
        if isinstance(text, str):
            self.tokens += math.ceil(len(text) / 4)

    def image(self, data: bytes) -> None:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
        self.images += 1
        self.sizes.append((width, height))
        self.tokens += image_bill(width, height)


def _bill_openai(body: dict[str, Any]) -> Bill:
    bill = Bill()
    for message in body["messages"]:
        bill.message()
        content = message.get("content")
        parts = [content] if isinstance(content, str) else content or []
        for part in parts:
            if isinstance(part, str):
                bill.text(part)
            elif part.get("type") == "text":
                bill.text(part["text"])
            elif part.get("type") == "image_url":
                url = part["image_url"]["url"]
                bill.image(base64.b64decode(url.split(";base64,", 1)[1]))
    return bill


def _bill_anthropic(body: dict[str, Any]) -> Bill:
    bill = Bill()
    system = body.get("system")
    for block in [system] if isinstance(system, str) else system or []:
        bill.text(block if isinstance(block, str) else block.get("text"))
    for message in body["messages"]:
        bill.message()
        content = message["content"]
        for block in [content] if isinstance(content, str) else content:
            if isinstance(block, str):
                bill.text(block)
            elif block["type"] == "text":
                bill.text(block["text"])
            elif block["type"] == "image":
                bill.image(base64.b64decode(block["source"]["data"]))
    return bill


def _bill_gemini(body: dict[str, Any]) -> Bill:
    bill = Bill()
    contents = list(body.get("contents", []))
    if body.get("systemInstruction"):
        contents.append(body["systemInstruction"])
    for content in contents:
        bill.message()
        for part in content.get("parts", []):
            if "text" in part:
                bill.text(part["text"])
            inline = part.get("inlineData") or part.get("inline_data")
            if inline:
                data = inline["data"]  # the genai client sends URL-safe base64, maybe unpadded
                bill.image(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
    return bill


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)
        if self.path.endswith("/chat/completions"):
            bill = _bill_openai(body)
            if body.get("tools"):  # tool schemas are part of the prompt
                bill.text(json.dumps(body["tools"], sort_keys=True))
            reply: dict[str, Any] = {
                "id": "chatcmpl-stub",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "noted"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": bill.tokens,
                    "completion_tokens": 1,
                    "total_tokens": bill.tokens + 1,
                },
            }
        elif self.path.endswith("/messages"):
            bill = _bill_anthropic(body)
            reply = {
                "id": "msg_stub",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": [{"type": "text", "text": "noted"}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": bill.tokens, "output_tokens": 1},
            }
        elif ":generateContent" in self.path:
            bill = _bill_gemini(body)
            reply = {
                "candidates": [
                    {
                        "content": {"role": "model", "parts": [{"text": "noted"}]},
                        "finishReason": "STOP",
                        "index": 0,
                    }
                ],
                "usageMetadata": {
                    "promptTokenCount": bill.tokens,
                    "candidatesTokenCount": 1,
                    "totalTokenCount": bill.tokens + 1,
                },
                "modelVersion": "stub",
            }
        else:
            self.send_error(404, f"no stub for {self.path}")
            return
        self.server.bills.append(bill)
        send_json(self, 200, reply)


class _Server(ThreadingHTTPServer):
    requests: list[dict[str, Any]]
    bills: list[Bill]


@contextmanager
def provider_stubs() -> Iterator[_Server]:
    """The stub server, listening on 127.0.0.1 (``server.server_address``) until the block ends."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.requests, server.bills = [], []
    with serving(server):
        yield server
