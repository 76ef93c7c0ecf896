"""A reading model on 127.0.0.1 (tests only; not a test module): OpenAI's chat API, tesseract eyes.

``POST /v1/chat/completions`` resizes each image as OpenAI documents for ``detail: high``
(first within 2048 x 2048, then the shortest side brought down to 768 px; never enlarged),
reads it with tesseract at those pixels (no enlargement), and answers with everything it read,
in order: the text parts as they are and each image's reading, save the text of the last
message (the instruction or question it answers). It bills the prompt by OpenAI's
published GPT-4o rule, with its own arithmetic: o200k tokens per text part, and per image
85 + 170 per 512-px tile of the resized image. ``requests`` keeps each request body,
``bills`` each prompt's tokens.
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

import pytesseract
from http_stub import send_json, serving
from openai_encoding import text_tokens
from PIL import Image


def resized_as_openai(image: Image.Image) -> Image.Image:
    """The image as OpenAI's high-detail path sees it."""
    width, height = image.size
    scale = min(1.0, 2048 / max(width, height))
    scale *= min(1.0, 768 / (min(width, height) * scale))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = image.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    return image


def tiles_bill(image: Image.Image) -> int:
    return 85 + 170 * math.ceil(image.width / 512) * math.ceil(image.height / 512)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        if not self.path.endswith("/chat/completions"):
            self.send_error(404, f"no stub for {self.path}")
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)
        tokens, read = 0, []
        messages = body["messages"]
        for index, message in enumerate(messages):
            content = message.get("content")
            for part in [content] if isinstance(content, str) else content or []:
                if isinstance(part, str) or part.get("type") == "text":
                    text = part if isinstance(part, str) else part["text"]
                    tokens += text_tokens(text)
                    if index < len(messages) - 1:
                        read.append(text)
                elif part.get("type") == "image_url":
                    data = base64.b64decode(part["image_url"]["url"].split(";base64,", 1)[1])
                    seen = resized_as_openai(Image.open(io.BytesIO(data)))
                    tokens += tiles_bill(seen)
                    read.append(pytesseract.image_to_string(seen.convert("RGB"), config="--psm 6"))
        answer = "\n".join(read)
        self.server.bills.append(tokens)
        output = text_tokens(answer)
        send_json(
            self,
            200,
            {
                "id": "chatcmpl-reader",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answer},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": tokens,
                    "completion_tokens": output,
                    "total_tokens": tokens + output,
                },
            },
        )


class _Server(ThreadingHTTPServer):
    requests: list[dict[str, Any]]
    bills: list[int]


@contextmanager
def reader_stub() -> Iterator[_Server]:
    """The stub, listening on 127.0.0.1 (``server.server_address``) until the block ends."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.requests, server.bills = [], []
    with serving(server):
        yield server
