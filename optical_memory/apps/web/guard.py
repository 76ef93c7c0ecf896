"""What every request to the viewer passes through, before any route (a pure ASGI middleware).

- ``Host`` must name the viewer: ``127.0.0.1``, ``localhost``, ``[::1]`` or the host it was
  started with, any port; anything else is refused with 400 (a page on another site that
  rebinds its name to 127.0.0.1 would otherwise read and write every thread).
- A request that changes state (anything but GET, HEAD, OPTIONS) whose ``Origin`` is not the
  viewer's own (``http://`` + its ``Host``) is refused with 403.
- Request bodies are limited to ``max_body`` bytes (413), whether announced by
  ``Content-Length`` or streamed.
- ``HEAD`` is answered as ``GET`` without the body.
- Every response, errors and crashes included, carries the security headers; API responses
  are never cached (``Cache-Control: no-store``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Names the viewer always answers to, whatever address it listens on.
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
#: A ``Host`` header (RFC 9110): a name or a bracketed IPv6 address, then at most a port.
_HOST = re.compile(r"(?P<name>\[[0-9a-f:.]+\]|[a-z0-9_.-]+)(?::[0-9]{1,5})?")
_log = logging.getLogger(__name__)


def host_name(host: str) -> str:
    """A ``Host`` header's name without its port, lower case: ``[::1]:8000`` -> ``[::1]``;
    ``""`` when the header is anything but a name or bracketed address with an optional port
    (``localhost:8000@evil.com``, ``[::1]evil``), which no viewer name matches."""
    match = _HOST.fullmatch(host.strip().lower())
    return match.group("name") if match else ""


class ViewerGuard:
    """Wraps the viewer's ASGI ``app``; ``hosts`` are the names it answers to besides
    :data:`LOOPBACK_NAMES` (an IPv6 address given bare or in brackets), ``headers`` go on every
    response."""

    def __init__(
        self,
        app: App,
        *,
        hosts: Iterable[str] = (),
        max_body: int,
        headers: dict[str, str],
    ) -> None:
        self.app = app
        extra = {f"[{h}]" if ":" in h and not h.startswith("[") else h for h in hosts}
        self.hosts = {name.lower() for name in (*LOOPBACK_NAMES, *extra)}
        self.max_body = max_body
        self.headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path = str(scope.get("path", ""))
        refusal = self._refusal(scope["method"], headers)
        if refusal is not None:
            await self._reply(send, *refusal, path=path)
            return
        head = scope["method"] == "HEAD"
        if head:
            scope = {**scope, "method": "GET"}
        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = self._with_headers(message.get("headers", []), path)
            elif message["type"] == "http.response.body" and head:
                message = {**message, "body": b""}
            await send(message)

        if scope["method"] not in _SAFE_METHODS:
            # Read the body here, at most max_body bytes, whatever Content-Length said.
            body = await self._read_body(receive)
            if body is None:
                await self._reply(send, 413, self._too_large(), path=path)
                return
            receive = _replay(body, receive)
        try:
            await self.app(scope, receive, guarded_send)
        except Exception:
            _log.exception("the viewer failed on %s %s", scope["method"], path)
            if not started:
                detail = "the viewer failed on this request; its log says why"
                await self._reply(send, 500, detail, path=path)

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole request body, or None once it passes ``max_body`` bytes."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks)  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _refusal(self, method: str, headers: dict[str, str]) -> tuple[int, str] | None:
        host = headers.get("host", "")
        if host_name(host) not in self.hosts:
            names = ", ".join(sorted(self.hosts))
            return 400, (
                f"unknown Host header {host!r}: this viewer answers only to {names}; open it "
                "at http://127.0.0.1:PORT/ (serve --host NAME adds a name)"
            )
        origin = headers.get("origin")
        if method not in _SAFE_METHODS and origin is not None:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or parts.netloc.lower() != host.lower():
                return 403, (
                    f"refused a {method} from the page at {origin!r}: only the viewer's own "
                    "page may change its memory"
                )
        length = headers.get("content-length", "0")
        if not length.isdigit() or int(length) > self.max_body:
            return 413, self._too_large()
        return None

    def _too_large(self) -> str:
        return f"request body over {self.max_body:,} bytes: send a shorter message"

    def _with_headers(self, headers: Iterable[Any], path: str) -> list[Any]:
        ours = {name for name, _ in self.headers}
        kept = [(k, v) for k, v in headers if bytes(k).lower() not in ours]
        if path.startswith("/api/"):
            kept = [(k, v) for k, v in kept if bytes(k).lower() != b"cache-control"]
            kept.append((b"cache-control", b"no-store"))
        return [*kept, *self.headers]

    async def _reply(self, send: Send, status: int, detail: str, *, path: str) -> None:
        body = json.dumps({"detail": detail}).encode()
        start = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        headers = self._with_headers(start, path)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once, then waits on the real one (for a disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed
