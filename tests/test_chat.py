"""The terminal chat and the models it talks to: echo, OpenAI-compatible, spec parsing."""

from __future__ import annotations

import base64
import io
import json
import os
import pty
import re
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from http_stub import send_json

from optical_memory.apps.backends import (
    ECHO_QUOTE_CHARS,
    MODEL_ENV,
    EchoModel,
    LangChainChatModel,
    ModelSpecError,
    load_model,
)
from optical_memory.apps.chat import ChatSession, MemorySummary, TerminalChat
from optical_memory.memory import OpticalMemory
from optical_memory.modes import Mode
from optical_memory.schedule import DecaySchedule
from optical_memory.store.ranking import RANKING
from optical_memory.tokens import count_text_tokens

pytest.importorskip("rich")

SCHEDULE = DecaySchedule(tiers=[(Mode.GUNDAM, 1), (Mode.LARGE, 1), (Mode.BASE, 2), (Mode.TINY, 2)])
FACT = "Remember this: my locker code is 4817-QX and my sister Inês lives in Valparaíso."


def _open(path: Path | None) -> OpticalMemory:
    return OpticalMemory(path, keep_recent_turns=2, schedule=SCHEDULE)


@pytest.fixture(scope="module")
def paged_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite memory with several pages in several tiers (the turns are long), rendered once."""
    path = tmp_path_factory.mktemp("chat") / "paged.db"
    with _open(path) as memory:
        memory.add("user", FACT)
        for i in range(24):
            role = "assistant" if i % 2 == 0 else "user"
            memory.add(role, f"Turn {i}: " + "We talked about boats, tides and the harbour. " * 15)
        for page in memory.context().pages:
            page.png()
    return path


def _terminal(memory: OpticalMemory) -> tuple[TerminalChat, io.StringIO]:
    from rich.console import Console

    out = io.StringIO()
    console = Console(file=out, width=120, highlight=False, color_system=None)
    return TerminalChat(ChatSession(memory, EchoModel()), console=console), out


# --- echo ------------------------------------------------------------------------------------


def test_echo_with_an_empty_memory_reports_one_turn_and_quotes_it() -> None:
    memory = OpticalMemory(None)
    answer = EchoModel().respond(memory, "hello there")
    tokens = count_text_tokens("user: hello there")
    assert answer == (
        "I received 0 page images (modes none, 0 vision tokens) and 1 recent turn "
        f"({tokens} text tokens); you said: hello there"
    )


def test_echo_stores_the_message_and_its_answer_as_turns() -> None:
    memory = OpticalMemory(None)
    answer = EchoModel().respond(memory, "first message")
    recent = memory.context().recent
    assert [(t.role, t.content) for t in recent] == [
        ("user", "first message"),
        ("assistant", answer),
    ]


def test_echo_counts_the_pages_by_mode_and_their_tokens(paged_db: Path) -> None:
    memory = _open(paged_db)
    context = memory.context()
    answer = EchoModel().reply(context)
    modes = [page.mode for page in context.pages]
    assert len(modes) >= 3
    assert answer.startswith(f"I received {len(modes)} page images (modes ")
    for mode in set(modes):
        assert f"{modes.count(mode)} {mode.value}" in answer
    assert f", {context.vision_tokens} vision tokens)" in answer
    assert f"({context.text_tokens} text tokens)" in answer
    if context.text_pages:
        n = len(context.text_pages)
        assert f", {n} page{'' if n == 1 else 's'} as text and " in answer


def test_echo_quotes_a_long_message_cut_with_an_ellipsis() -> None:
    message = "x" * 1000
    answer = EchoModel().respond(OpticalMemory(None), message)
    assert answer.endswith("you said: " + "x" * ECHO_QUOTE_CHARS + "…")


# --- model specs -----------------------------------------------------------------------------


def test_no_spec_and_no_environment_gives_echo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MODEL_ENV, raising=False)
    assert isinstance(load_model(None), EchoModel)


def test_the_environment_variable_chooses_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODEL_ENV, "openai:http://127.0.0.1:9/v1#served-name")
    model = load_model(None)
    assert isinstance(model, LangChainChatModel)
    assert model.name == "openai:http://127.0.0.1:9/v1#served-name"
    assert model.model.model_name == "served-name"
    assert model.model.openai_api_base == "http://127.0.0.1:9/v1"


def test_an_unknown_spec_says_which_ones_exist() -> None:
    with pytest.raises(ModelSpecError, match=r"echo, openai:URL\[#MODEL\] .* deepseek-ocr:DIR"):
        load_model("gpt-9")


def test_a_missing_checkpoint_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelSpecError, match=r"no directory .*nowhere"):
        load_model(f"deepseek-ocr:{tmp_path / 'nowhere'}")


# --- the terminal ----------------------------------------------------------------------------


def test_memory_command_prints_tiers_and_token_accounting(paged_db: Path) -> None:
    memory = _open(paged_db)
    chat, out = _terminal(memory)
    chat.run(["/memory"])
    summary = MemorySummary.of(memory.context(), "default")
    text = out.getvalue()
    for tier, count in summary.tiers.items():
        assert re.search(rf"│ {tier}\s+│\s+{count} │", text), f"no row for {tier}"
    assert (
        f"in context: {summary.total_tokens} tokens ({summary.vision_tokens} vision + "
        f"{summary.text_tokens} text)"
    ) in text
    assert f"stand for {summary.replaced_text_tokens} text tokens" in text


def test_recall_prints_the_exact_text_of_a_page(paged_db: Path) -> None:
    memory = _open(paged_db)
    oldest = memory.context().memory[0]
    chat, out = _terminal(memory)
    chat.run([f"/recall page {oldest.page_id}"])
    exact = memory.recall(oldest.page_id)
    assert exact.startswith(f"#1 user: {FACT}\n")
    assert f"page {oldest.page_id}, exact text:\n{exact}\n" in out.getvalue()


def test_recall_prints_turns_by_their_number_and_search_finds_them(paged_db: Path) -> None:
    memory = _open(paged_db)
    chat, out = _terminal(memory)
    chat.run(["/search what is my locker code?", "/recall 1", "/recall 1-2"])
    text = out.getvalue()
    page = memory.context().memory[0]
    hits = [line for line in text.splitlines() if " · page " in line]
    assert hits[0].startswith(f"1. #1 user · page {page.page_id}, ")
    first, second = memory.turns(1, 2)
    assert f"\n#1 user: {first.content}\n" in text
    assert f"#1 user: {first.content}\n\n#2 {second.role}: {second.content}\n" in text


def test_recall_of_an_unknown_page_or_turn_says_so(paged_db: Path) -> None:
    chat, out = _terminal(_open(paged_db))
    chat.run(["/recall page 999", "/recall 99999", "/recall x", "/search"])
    assert "no page 999 in this thread" in out.getvalue()
    assert "no turn 99999 in this thread" in out.getvalue()
    assert "usage: /recall N" in out.getvalue()
    assert "usage: /search QUERY" in out.getvalue()


def test_pages_command_writes_every_page_image(paged_db: Path, tmp_path: Path) -> None:
    memory = _open(paged_db)
    chat, out = _terminal(memory)
    chat.run([f"/pages {tmp_path / 'pages'}"])
    pages = memory.context().pages
    written = sorted((tmp_path / "pages").iterdir())
    assert [p.name for p in written] == [
        f"page-{page.page_id:04d}-{page.mode.value}.png" for page in pages
    ]
    assert [p.read_bytes() for p in written] == [page.png() for page in pages]
    assert f"wrote {len(pages)} pages" in out.getvalue()


def test_messages_print_as_typed_without_markup_and_quit_stops_reading() -> None:
    memory = OpticalMemory(None)
    chat, out = _terminal(memory)
    chat.run(["[bold red]not markup[/] <b>", "/quit", "never read"])
    assert "you said: [bold red]not markup[/] <b>" in out.getvalue()
    recent = [t.content for t in memory.context().recent]
    assert len(recent) == 2  # "never read" was not sent
    assert recent[0] == "[bold red]not markup[/] <b>"


def test_an_unknown_command_points_to_help() -> None:
    chat, out = _terminal(OpticalMemory(None))
    chat.run(["/frobnicate", "/help"])
    assert "unknown command /frobnicate: /help lists the commands" in out.getvalue()
    assert "/recall N" in out.getvalue() and "/search QUERY" in out.getvalue()


class _BrokenModel:
    name = "broken"

    def respond(
        self, memory: OpticalMemory, message: str, *, budget_tokens: int | None = None
    ) -> str:
        raise ConnectionError("connection refused by 127.0.0.1:9")


def test_a_failing_model_is_reported_and_the_chat_goes_on() -> None:
    from rich.console import Console

    out = io.StringIO()
    console = Console(file=out, width=120, color_system=None)
    chat = TerminalChat(ChatSession(OpticalMemory(None), _BrokenModel()), console=console)
    chat.run(["hello", "/help"])
    text = out.getvalue()
    assert "the model failed: ConnectionError: connection refused by 127.0.0.1:9" in text
    assert "/recall N" in text  # the next line was still read


# --- the command, in real processes ---------------------------------------------------------

CLI = [
    sys.executable,
    "-c",
    "import sys; from optical_memory.apps.cli import main; sys.exit(main())",
]


def _chat_process(db: Path, lines: list[str]) -> str:
    """Run ``optical-memory chat`` with ``lines`` piped to stdin (no TTY); return its stdout."""
    env = {k: v for k, v in os.environ.items() if k != MODEL_ENV}  # nothing configured: echo
    result = subprocess.run(
        [*CLI, "chat", "--db", str(db), "--thread", "trip", "--keep-recent", "2"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_fact_told_early_is_recalled_exactly_after_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    stories = [
        f"Story {i}: " + "the ferry left late and the gulls followed it. " * 60 for i in range(3)
    ]
    first = _chat_process(db, [FACT, *stories, "/quit"])
    assert "echo › I received 0 page images" in first  # the first answer, before any page

    with OpticalMemory(db, thread_id="trip") as memory:
        told = memory.search("4817-QX")[0].turn
        assert told.content == FACT
        page = next(p for p in memory.context().memory if told.id in p.turn_ids)
        exact = memory.recall(page.page_id)
    assert exact.startswith(f"#1 user: {FACT}\n")

    second = _chat_process(db, [f"/recall page {page.page_id}", "What is my locker code?"])
    assert f"page {page.page_id}, exact text:\n{exact}\n" in second
    answer = re.search(
        r"^echo › I received (\d+) page images? \([^)]*\)(?:, (\d+) pages? as text)? and",
        second,
        re.M,
    )
    assert answer is not None, second
    assert int(answer[1]) + int(answer[2] or 0) >= 1, second  # the pages of the first run


def test_in_a_terminal_the_chat_prompts_and_answers_until_quit(tmp_path: Path) -> None:
    pid, fd = pty.fork()
    if pid == 0:  # the child: optical-memory chat on a pseudo-terminal
        try:
            db = str(tmp_path / "tty.db")
            os.execv(sys.executable, [*CLI, "chat", "--db", db, "--model", "echo"])
        finally:
            os._exit(127)  # never return into pytest
    transcript = b""

    def read_until(marker: bytes, timeout: float = 30) -> None:
        nonlocal transcript
        deadline = time.monotonic() + timeout
        while marker not in transcript:
            assert time.monotonic() < deadline, f"no {marker!r} in {transcript!r}"
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    transcript += os.read(fd, 4096)
                except OSError:  # the chat has exited
                    pytest.fail(f"chat exited before {marker!r}: {transcript!r}")

    read_until("you ›".encode())
    os.write(fd, b"hello from a terminal\n")
    read_until(b"you said: hello from a terminal")
    os.write(fd, b"/quit\n")
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0


def test_importing_the_demos_loads_none_of_their_extras() -> None:
    probe = (
        "import sys, optical_memory.apps.cli, optical_memory.apps.chat, "
        "optical_memory.apps.backends, "
        "optical_memory.apps.web.app; "
        "print(sorted(m for m in ('rich', 'fastapi', 'uvicorn', 'langchain_core', 'torch') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


def test_an_unknown_model_fails_with_one_line_and_status_1(tmp_path: Path) -> None:
    result = subprocess.run(
        [*CLI, "chat", "--db", str(tmp_path / "x.db"), "--model", "gpt-9"],
        input="",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("optical-memory chat: error: unknown model 'gpt-9'")
    assert result.stderr.count("\n") == 1


# --- an OpenAI-compatible server -------------------------------------------------------------


class _CompletionsStub(BaseHTTPRequestHandler):
    """Answers every chat-completions request with one fixed message and records the request."""

    requests: ClassVar[list[dict[str, Any]]] = []
    answer = "Your locker code is 4817-QX."

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).requests.append({"path": self.path, "json": json.loads(body)})
        reply = {
            "id": "chatcmpl-stub",
            "object": "chat.completion",
            "created": 0,
            "model": "stub",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.answer},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        send_json(self, 200, reply)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def completions_server() -> Iterator[str]:
    _CompletionsStub.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CompletionsStub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_an_openai_compatible_server_gets_the_pages_as_png_image_parts(
    paged_db: Path, tmp_path: Path, completions_server: str
) -> None:
    from PIL import Image

    pytest.importorskip("langchain_openai")
    db = tmp_path / "copy.db"
    db.write_bytes(paged_db.read_bytes())
    memory = _open(db)
    page_sizes = {(page.width, page.height) for page in memory.context().pages}
    model = load_model(f"openai:{completions_server}#deepseek-ai/DeepSeek-OCR")

    answer = ChatSession(memory, model).send("What is my locker code?")

    assert answer == _CompletionsStub.answer
    (request,) = _CompletionsStub.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["json"]["model"] == "deepseek-ai/DeepSeek-OCR"
    messages = request["json"]["messages"]
    parts = [part for m in messages if isinstance(m["content"], list) for part in m["content"]]
    urls = [part["image_url"]["url"] for part in parts if part["type"] == "image_url"]
    assert urls, "no page was sent as an image"
    for url in urls:
        assert url.startswith("data:image/png;base64,")
        image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
        assert image.format == "PNG" and image.size in page_sizes
    assert messages[-1] == {"role": "user", "content": "What is my locker code?"}
    recent = memory.context().recent
    assert [(t.role, t.content) for t in recent[-2:]] == [
        ("user", "What is my locker code?"),
        ("assistant", _CompletionsStub.answer),
    ]


def test_a_runaway_search_is_cut_and_the_chat_says_so(paged_db: Path) -> None:
    memory = _open(paged_db)
    chat, out = _terminal(memory)
    chat.run(["/search locker code " + "x" * 200_000])
    text = out.getvalue()
    assert "[the query was 200,012 characters: searched for its first 1,000" in text
    assert next(line for line in text.splitlines() if " · page " in line).startswith("1. #1 user")


def test_search_shows_hits_as_hits_and_the_turns_beside_them_as_their_context() -> None:
    memory = OpticalMemory(None)
    memory.add("user", "Where did I park?")
    memory.add("assistant", "You parked on level 3 of the Harbour garage.")
    memory.add("user", "Thanks. Also, my sister visits on Friday.")
    for n in range(6):
        memory.add("user", f"Unrelated chatter, part {n}.")
    chat, out = _terminal(memory)
    chat.run(["/search harbour garage"])
    lines = out.getvalue().split("› /search harbour garage\n", 1)[1].splitlines()
    # One turn holds the words: one hit, its matched words shown bold, not as markdown marks;
    # the turns beside it, which hold none of the words, are its context under it.
    assert lines[0].startswith("1. #2 assistant · recent, not on a page")
    assert lines[1] == "   You parked on level 3 of the Harbour garage."
    assert "**" not in out.getvalue()
    beside = [line for line in lines if line.startswith("   beside it: ")]
    assert beside[0] == "   beside it: #1 user: Where did I park?"
    # The four best-weighted turns within the neighbours' reach, in reading order; no other hit.
    reach = sorted(
        (-weight, 2 - offset) for offset, weight in RANKING.neighbours if weight > 0 and offset < 2
    )
    assert [int(line.split("#")[1].split()[0]) for line in beside] == sorted(
        number for _, number in reach[:4]
    )
    assert not any(line.startswith("2. ") for line in lines)
