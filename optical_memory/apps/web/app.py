"""The viewer's HTTP side: a JSON API over one SQLite memory file and the static page.

The store is opened, and so checked (its schema version, and on SQLite ``PRAGMA quick_check``,
which reads the whole file), once when the viewer is created, and closed when it shuts down.
Every request opens a memory for its thread on that store (it serializes its own calls; the
store's WAL lets other processes share the file), so the viewer sees what a terminal chat on
the same file writes, and the other way round.

API (all JSON except the PNG):

- ``GET  /api/threads``                       the thread ids in the file, and the one written last
- ``GET  /api/memory?thread=T``               :class:`~optical_memory.apps.chat.MemorySummary`
- ``GET  /api/page.png?thread=T&page_id=N&mode=M``   page ``N`` drawn at mode ``M`` (from the
  stored page, rendered once per mode and kept in the store; the context is not rebuilt)
- ``GET  /api/page-text?thread=T&page_id=N``  the exact text of page ``N``
- ``GET  /api/search?thread=T&q=Q``          the ten best :meth:`OpticalMemory.search` hits
- ``POST /api/messages`` ``{thread, content}``  one exchange with the model; its answer and
  the memory after it

Every request passes :class:`~optical_memory.apps.web.guard.ViewerGuard` first (Host
allow-list, same-origin writes, a body limit, security headers on every response); no API
schema is served.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, field_validator

from optical_memory.apps.chat import ChatSession
from optical_memory.apps.web.guard import ViewerGuard
from optical_memory.extras import import_extra
from optical_memory.memory.search import MAX_QUERY_CHARS
from optical_memory.modes import Mode

if TYPE_CHECKING:
    from optical_memory.apps.backends import ChatModel
    from optical_memory.memory.search import SearchHit
    from optical_memory.schedule import DecaySchedule

STATIC = Path(__file__).parent / "static"
# The page's own files only: no inline script, no other origin, nothing plugged in.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
MAX_THREAD_CHARS = 200
#: Largest request body accepted, bytes (a message box of text, with room to spare).
MAX_BODY_BYTES = 1_000_000
#: Page ids are SQLite row ids: signed 64-bit.
MAX_PAGE_ID = 2**63 - 1


def text_problem(text: str, what: str) -> str | None:
    """Why ``text`` cannot be stored (lone surrogates: not encodable as UTF-8), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return f"{what} holds a lone surrogate at character {error.start}: send valid Unicode text"
    return None


class MessageIn(BaseModel):
    thread: str = Field(min_length=1, max_length=MAX_THREAD_CHARS)
    content: str = Field(min_length=1)

    @field_validator("thread", "content")
    @classmethod
    def _valid_unicode(cls, value: str) -> str:
        problem = text_problem(value, "the text")
        if problem is not None:
            raise ValueError(problem)
        return value


def create_app(
    db: str | Path,
    *,
    model: ChatModel,
    keep_recent_turns: int = 6,
    budget_tokens: int | None = None,
    schedule: DecaySchedule | None = None,
    host: str = "127.0.0.1",
    target: str = "deepseek-ocr",
) -> Any:
    """The viewer for the memory file ``db``; the chat box talks to ``model``; ``host`` (the
    address it is served on) is a name it answers to besides the loopback names.

    ``keep_recent_turns`` and ``schedule`` configure every thread's memory as in
    :class:`~optical_memory.OpticalMemory`; ``budget_tokens`` bounds what the model is sent,
    counted for ``target``.
    """
    fastapi = import_extra("fastapi", "demo")
    responses = import_extra("fastapi.responses", "demo")
    staticfiles = import_extra("fastapi.staticfiles", "demo")
    from optical_memory.memory import OpticalMemory
    from optical_memory.store import open_store

    store = open_store(db)  # checked here once, not on every request

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            store.close()

    @contextmanager
    def session(thread: str) -> Iterator[ChatSession]:
        if not 1 <= len(thread) <= MAX_THREAD_CHARS:
            raise fastapi.HTTPException(
                422, f"a thread name has 1 to {MAX_THREAD_CHARS} characters"
            )
        problem = text_problem(thread, "the thread name")
        if problem is not None:
            raise fastapi.HTTPException(422, problem)
        memory = OpticalMemory(
            store,
            thread_id=thread,
            keep_recent_turns=keep_recent_turns,
            schedule=schedule,
            target=target,
        )
        yield ChatSession(memory, model, budget_tokens=budget_tokens)  # the store stays open

    app = fastapi.FastAPI(
        title="optical-memory viewer",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.store = store
    app.add_middleware(ViewerGuard, hosts=[host], max_body=MAX_BODY_BYTES, headers=SECURITY_HEADERS)
    page_id_query = fastapi.Query(ge=0, le=MAX_PAGE_ID)

    @app.exception_handler(import_extra("fastapi.exceptions", "demo").RequestValidationError)
    async def invalid_request(request: Any, error: Any) -> Any:
        # What was wrong where, never the input itself (it may be huge or not encodable).
        problems = "; ".join(
            f"{'.'.join(map(str, problem['loc']))}: {problem['msg']}" for problem in error.errors()
        )
        return responses.JSONResponse({"detail": problems}, status_code=422)

    @app.get("/", include_in_schema=False)
    def index() -> Any:
        return responses.FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/api/threads")
    def threads() -> dict[str, Any]:
        with session("default") as chat:
            names = list(chat.memory.threads())
            # The thread written to last (turn ids grow with every write): the one to open.
            newest = {name: chat.memory.store.newest_turns(name, 1) for name in names}
        latest = max(names, key=lambda n: newest[n][0].id or 0 if newest[n] else -1, default=None)
        return {"threads": names, "latest": latest, "model": model.name}

    @app.get("/api/memory")
    def memory(thread: str) -> dict[str, Any]:
        with session(thread) as chat:
            return {**chat.summary().to_json(), "model": model.name}

    @app.get("/api/page.png")
    def page_png(thread: str, mode: Mode, page_id: int = page_id_query) -> Any:
        with session(thread) as chat:
            try:
                page = chat.memory.page_image(page_id, mode)
            except KeyError:
                raise fastapi.HTTPException(
                    404, f"no page {page_id} in thread {thread!r}"
                ) from None
            return responses.Response(page.png(), media_type="image/png")

    @app.get("/api/page-text")
    def page_text(thread: str, page_id: int = page_id_query) -> dict[str, Any]:
        with session(thread) as chat:
            try:
                text = chat.recall(page_id)
            except KeyError:
                raise fastapi.HTTPException(
                    404, f"no page {page_id} in thread {thread!r}"
                ) from None
        return {"thread": thread, "page_id": page_id, "text": text}

    @app.get("/api/search")
    def search(
        thread: str, q: str = fastapi.Query(min_length=1, max_length=MAX_QUERY_CHARS)
    ) -> Any:
        problem = text_problem(q, "the query")
        if problem is not None:
            raise fastapi.HTTPException(422, problem)
        with session(thread) as chat:
            try:
                hits = chat.memory.search(q, limit=10)
            except ValueError as error:  # a query of spaces only
                raise fastapi.HTTPException(422, str(error)) from None
        return {"thread": thread, "query": q, "hits": [hit_json(hit) for hit in hits]}

    @app.post("/api/messages")
    def send(message: MessageIn) -> dict[str, Any]:
        with session(message.thread) as chat:
            try:
                answer = chat.send(message.content)
            except Exception as error:  # the model's failure, not the viewer's: say which
                detail = f"the model failed: {type(error).__name__}: {error}"
                raise fastapi.HTTPException(502, detail) from error
            return {"reply": answer, "memory": {**chat.summary().to_json(), "model": model.name}}

    app.mount("/static", staticfiles.StaticFiles(directory=STATIC), name="static")
    return app


def hit_json(hit: SearchHit) -> dict[str, Any]:
    """A search hit as the viewer's API returns it: the turn's number, role, time, exact
    content, its page (id and mode, both null when not on a page or forgotten) and snippet."""
    turn = hit.turn
    return {
        "number": hit.number,
        "role": turn.role,
        "timestamp": None if turn.timestamp is None else turn.timestamp.isoformat(),
        "content": turn.content,
        "page_id": hit.page_id,
        "mode": None if hit.mode is None else hit.mode.value,
        "snippet": hit.snippet,
    }


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    db: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    model_spec: str | None = None,
    keep_recent_turns: int = 6,
    budget_tokens: int | None = None,
    target: str | None = None,
) -> None:
    """What ``optical-memory serve`` runs: the viewer on ``host:port`` until interrupted."""
    uvicorn = import_extra("uvicorn", "demo")
    from optical_memory.apps.backends import load_model, set_target

    model = set_target(load_model(model_spec), target)
    app = create_app(
        db,
        model=model,
        keep_recent_turns=keep_recent_turns,
        budget_tokens=budget_tokens,
        host=host,
        target=target or "deepseek-ocr",
    )
    if not is_loopback(host):
        print(
            f"warning: serving on {host}, not loopback: anyone who can reach it can read "
            "this memory and chat in it",
            file=sys.stderr,
        )
    print(f"optical-memory viewer: http://{host}:{port}/ (model {model.name}, memory {db})")
    uvicorn.run(app, host=host, port=port, log_level="warning")
