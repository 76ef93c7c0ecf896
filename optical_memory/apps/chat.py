"""A chat over optical memory: one exchange, the memory as the demos show it, and the terminal
front end of ``optical-memory chat``.

Every exchange stores the user's message and the model's answer in the memory (a SQLite file
persists it across runs); the model is sent the memory's context: old turns as pages at their
current mode, recent turns as text. The terminal reads lines from a TTY or from piped stdin;
lines starting with ``/`` are commands (``/help`` lists them).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from optical_memory.apps import page_file_name
from optical_memory.extras import import_extra
from optical_memory.memory import MemoryPage
from optical_memory.memory.search import (
    SearchHit,
    capped_query,
    describe_hit,
    describe_turns,
    turn_head,
)
from optical_memory.modes import FADING_ORDER

if TYPE_CHECKING:
    from optical_memory.apps.backends import ChatModel
    from optical_memory.memory import MemoryContext, OpticalMemory

COMMANDS = {
    "/memory": "the memory's tiers and token accounting",
    "/search QUERY": "where something was said: ranked turns with their numbers and pages",
    "/recall N": "the exact text of turn N (N-M: a range; page ID: a whole page)",
    "/pages DIR": "write the current pages as PNG files into DIR",
    "/threads": "the threads stored in this file",
    "/help": "this list",
    "/quit": "leave (so does end of input)",
}


#: Turns ``/search`` ranks (those matching only through their neighbours show as context).
SEARCH_HITS = 5
#: Characters of a context turn ``/search`` shows.
CONTEXT_CHARS = 160

#: The tier of a page the profitability gate keeps as text (its image would cost more).
TEXT_TIER = "text"


@dataclass
class PageSummary:
    """One page as the demos list it.

    ``mode`` is the tier it is sent at: a mode, or :data:`TEXT_TIER` when the profitability
    gate sends it as text; ``age_mode`` is the mode its age earns; ``vision_tokens`` what its
    image at ``age_mode`` costs (sent or not); ``first_turn`` and ``last_turn`` are the numbers
    (in the thread) of the turns it starts and ends with.
    """

    page_id: int
    mode: str
    age_mode: str
    age: int
    turn_ids: list[int]
    first_turn: int | None
    last_turn: int | None
    vision_tokens: int
    text_tokens: int


@dataclass
class MemorySummary:
    """What the model is sent, in numbers: pages newest (sharpest) first, then the recent text.

    ``tiers`` maps each tier that holds pages (sharpest first, then ``text``) to its page
    count; ``replaced_text_tokens`` are the text tokens the page images stand for;
    ``text_tokens`` counts the recent turns and the pages sent as text.
    """

    thread_id: str
    pages: list[PageSummary]
    tiers: dict[str, int]
    recent_turns: int
    text_tokens: int
    vision_tokens: int
    total_tokens: int
    replaced_text_tokens: int
    forgotten_turns: int
    recent: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(
        cls, context: MemoryContext, thread_id: str, numbers: dict[int, int] | None = None
    ) -> MemorySummary:
        """The summary of ``context``; ``numbers`` maps turn ids to their numbers (for the
        pages' first and last turns)."""
        numbers = numbers or {}
        pages = [
            PageSummary(
                page_id=page.page_id,
                mode=page.mode.value if isinstance(page, MemoryPage) else TEXT_TIER,
                age_mode=page.mode.value,
                age=page.age,
                turn_ids=list(page.turn_ids),
                first_turn=numbers.get(page.turn_ids[0]),
                last_turn=numbers.get(page.turn_ids[-1]),
                vision_tokens=page.vision_tokens,
                text_tokens=page.text_tokens,
            )
            for page in reversed(context.memory)
        ]
        counts = {tier: 0 for tier in [*(mode.value for mode in FADING_ORDER), TEXT_TIER]}
        for page in pages:
            counts[page.mode] += 1
        return cls(
            thread_id=thread_id,
            pages=pages,
            tiers={tier: n for tier, n in counts.items() if n},
            recent_turns=len(context.recent),
            text_tokens=context.text_tokens,
            vision_tokens=context.vision_tokens,
            total_tokens=context.total_tokens,
            replaced_text_tokens=context.replaced_text_tokens,
            forgotten_turns=len(context.forgotten_turn_ids),
            recent=[
                {"id": turn.id, "number": turn.number, "role": turn.role, "content": turn.content}
                for turn in context.recent
            ],
        )

    @property
    def compression(self) -> float | None:
        """Text tokens the page images stand for per vision token (``None`` without images)."""
        return self.replaced_text_tokens / self.vision_tokens if self.vision_tokens else None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "compression": self.compression}


class ChatSession:
    """One thread of memory and the model that answers in it."""

    def __init__(
        self, memory: OpticalMemory, model: ChatModel, *, budget_tokens: int | None = None
    ) -> None:
        self.memory = memory
        self.model = model
        self.budget_tokens = budget_tokens

    @property
    def thread_id(self) -> str:
        return str(self.memory.thread_id)

    def context(self) -> MemoryContext:
        return self.memory.context(self.budget_tokens)

    def send(self, message: str) -> str:
        """Store ``message``, get the model's answer to the memory's context, store it too."""
        return self.model.respond(self.memory, message, budget_tokens=self.budget_tokens)

    def summary(self) -> MemorySummary:
        context = self.context()
        ends = {tid for page in context.memory for tid in (page.turn_ids[0], page.turn_ids[-1])}
        turns = self.memory.store.get_turns(self.memory.thread_id, sorted(ends))
        numbers = {t.id: t.number for t in turns if t.id is not None and t.number is not None}
        return MemorySummary.of(context, self.thread_id, numbers)

    def recall(self, page_id: int) -> str:
        """The exact text of a page of this thread; :class:`KeyError` if it has no such page."""
        return self.memory.recall(page_id)

    def write_pages(self, folder: Path) -> list[Path]:
        """Write the current pages as ``page-<id>-<mode>.png`` into ``folder``; return the paths."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for page in self.context().pages:  # pages sent as text have no image
            path = folder / page_file_name(page.page_id, page.mode)
            path.write_bytes(page.png())
            paths.append(path)
        return paths


# --- the terminal ------------------------------------------------------------------------------


class TerminalChat:
    """The ``optical-memory chat`` loop: reads lines, answers them, runs the ``/`` commands."""

    def __init__(self, session: ChatSession, console: Any = None) -> None:
        rich_console = import_extra("rich.console", "demo")
        self.session = session
        self.console = console or rich_console.Console(highlight=False)

    def run(self, lines: Iterable[str] | None = None) -> None:
        """Chat until ``/quit`` or end of input; ``lines`` defaults to stdin (TTY or piped)."""
        self._banner()
        interactive = lines is None and sys.stdin.isatty()
        source = iter(lines) if lines is not None else _stdin_lines(sys.stdin)
        try:
            while True:
                if interactive:
                    line = self.console.input("[bold cyan]you ›[/] ")
                else:
                    line = next(source)
                    self._print_text(f"you › {line}", style="bold cyan")
                if not self.handle(line):
                    break
        except (EOFError, StopIteration, KeyboardInterrupt):
            pass  # end of input or Ctrl-C: everything said so far is already stored

    def handle(self, line: str) -> bool:
        """Answer one line; ``False`` when the chat should end."""
        if not line.strip():
            return True
        if not line.lstrip().startswith("/"):
            try:
                answer = self.session.send(line)  # as typed: recall gives back exactly this
            except Exception as error:  # a model server down, a bad checkpoint: keep chatting
                self._print_text(f"the model failed: {type(error).__name__}: {error}", style="red")
                return True
            self._print_text(f"{self.session.model.name} › ", style="bold green", end="")
            self._print_text(answer)
            return True
        command, _, argument = line.strip().partition(" ")
        argument = argument.strip()
        if command in ("/quit", "/exit"):
            return False
        if command == "/memory":
            self.show_memory()
        elif command == "/recall":
            self.show_recall(argument)
        elif command == "/search":
            self.show_search(argument)
        elif command == "/pages":
            self.write_pages(argument)
        elif command == "/threads":
            threads = self.session.memory.threads()
            self._print_text(", ".join(threads) if threads else "no threads yet")
        elif command == "/help":
            self.show_help()
        else:
            self._print_text(f"unknown command {command}: /help lists the commands", style="red")
        return True

    def show_memory(self) -> None:
        table_module = import_extra("rich.table", "demo")
        summary = self.session.summary()
        table = table_module.Table(title=f"memory of thread {summary.thread_id!r}")
        table.add_column("tier")
        table.add_column("pages", justify="right")
        table.add_column("tokens", justify="right")
        table.add_column("page ids")
        for tier in summary.tiers:
            pages = [page for page in summary.pages if page.mode == tier]
            tokens = (
                f"{sum(page.text_tokens for page in pages)} text"
                if tier == TEXT_TIER
                else f"{sum(page.vision_tokens for page in pages)} vision"
            )  # a page sent as text costs its text, not its image
            table.add_row(
                tier, str(len(pages)), tokens, " ".join(str(page.page_id) for page in pages)
            )
        recent_tokens = summary.text_tokens - sum(
            page.text_tokens for page in summary.pages if page.mode == TEXT_TIER
        )
        table.add_row("recent", f"{summary.recent_turns} turns", f"{recent_tokens} text", "")
        self.console.print(table)
        ratio = f"{summary.compression:.1f}x" if summary.compression else "–"
        self._print_text(
            f"in context: {summary.total_tokens} tokens ({summary.vision_tokens} vision + "
            f"{summary.text_tokens} text); the page images stand for "
            f"{summary.replaced_text_tokens} text tokens ({ratio}); "
            f"forgotten turns: {summary.forgotten_turns}"
        )

    def show_recall(self, argument: str) -> None:
        kind, _, rest = argument.partition(" ")
        if kind == "page" and rest.strip().isdigit():
            page_id = int(rest)
            try:
                text = self.session.recall(page_id)
            except KeyError:
                self._print_text(
                    f"no page {page_id} in this thread: /memory lists them", style="red"
                )
                return
            self._print_text(f"page {page_id}, exact text:", style="bold")
        else:
            first, _, last = argument.partition("-")
            if not first.strip().isdigit() or (last and not last.strip().isdigit()):
                self._print_text(
                    "usage: /recall N (a turn number), /recall N-M, /recall page ID", style="red"
                )
                return
            start = int(first)
            end = int(last) if last else start
            turns = self.session.memory.turns(start, end) if 1 <= start <= end else []
            if not turns:
                self._print_text(f"no turn {argument} in this thread", style="red")
                return
            text = describe_turns(turns)
        # Verbatim: no wrapping, markup or highlighting, so what is printed is what was said.
        self.console.out(text, highlight=False)

    def show_search(self, query: str) -> None:
        if not query:
            self._print_text(
                'usage: /search QUERY (a question, words, "a phrase", a code)', style="red"
            )
            return
        query, cut = capped_query(query)
        if cut:
            self._print_text(cut, style="yellow")
        found = self.session.memory.search(query, limit=SEARCH_HITS)
        hits = [hit for hit in found if hit.own_match]
        if not hits:
            self._print_text(f"no stored turn matches {query!r}")
            return
        # A turn found only because the turns beside it match is their context, not a hit:
        # it is shown under the nearest hit, in reading order.
        context: dict[int, list[SearchHit]] = {hit.number: [] for hit in hits}
        for near in (hit for hit in found if not hit.own_match):
            closest = min(hits, key=lambda hit: abs(hit.number - near.number))
            context[closest.number].append(near)
        text_module = import_extra("rich.text", "demo")
        for rank, hit in enumerate(hits, start=1):
            head, _, _ = describe_hit(hit).partition(": ")
            line = text_module.Text(f"{rank}. ", style="bold")
            line.append(head, style="bold cyan")
            self.console.print(line, soft_wrap=True)
            self.console.print(_marked(hit.snippet, indent="   "), soft_wrap=True)
            for near in sorted(context[hit.number], key=lambda n: n.number):
                beside = text_module.Text("   beside it: ", style="dim")
                beside.append(f"{turn_head(near.turn)}: {_excerpt(near.turn.content)}", style="dim")
                self.console.print(beside, soft_wrap=True)

    def write_pages(self, argument: str) -> None:
        if not argument:
            self._print_text("usage: /pages DIR", style="red")
            return
        paths = self.session.write_pages(Path(argument))
        self._print_text(f"wrote {len(paths)} page{'' if len(paths) == 1 else 's'} to {argument}")
        for path in paths:
            self._print_text(f"  {path}")

    def show_help(self) -> None:
        for usage, meaning in COMMANDS.items():
            self._print_text(f"{usage:<12} {meaning}")

    def _banner(self) -> None:
        self._print_text(
            f"optical-memory chat · thread {self.session.thread_id!r} · "
            f"model {self.session.model.name} · /help for commands",
            style="dim",
        )

    def _print_text(self, text: str, *, style: str = "", end: str = "\n") -> None:
        # rich.Text, never markup: what people type ("[bold]", "<script>") prints as typed.
        text_module = import_extra("rich.text", "demo")
        self.console.print(text_module.Text(text, style=style), end=end, soft_wrap=True)


def _marked(snippet: str, *, indent: str = "") -> Any:
    """A search snippet as rich text: the words it marks with ``**`` in bold, the marks gone
    (never read as markup, so what people typed prints as typed)."""
    text = import_extra("rich.text", "demo").Text(indent)
    for index, piece in enumerate(snippet.split("**")):
        text.append(piece, style="bold yellow" if index % 2 else "")
    return text


def _excerpt(content: str) -> str:
    """The start of a turn's text on one line, cut at :data:`CONTEXT_CHARS` with ``…``."""
    flat = " ".join(content.split())
    return flat if len(flat) <= CONTEXT_CHARS else flat[: CONTEXT_CHARS - 1] + "…"


def _stdin_lines(stream: IO[str]) -> Iterator[str]:
    for line in stream:
        yield line.rstrip("\n")


def run_chat(
    db: str | Path | None,
    *,
    thread_id: str = "default",
    model_spec: str | None = None,
    keep_recent_turns: int = 6,
    budget_tokens: int | None = None,
    target: str | None = None,
) -> None:
    """What ``optical-memory chat`` runs: open the memory, load the model, chat on stdin.

    ``target`` names the model family tokens are counted for (default: the model's own)."""
    from optical_memory.apps.backends import load_model, set_target
    from optical_memory.memory import OpticalMemory

    model = set_target(load_model(model_spec), target)
    memory = OpticalMemory(
        db,
        thread_id=thread_id,
        keep_recent_turns=keep_recent_turns,
        target=target or "deepseek-ocr",
    )
    TerminalChat(ChatSession(memory, model, budget_tokens=budget_tokens)).run()
