"""HtmlRenderer against the real Chromium: markdown typesetting checked on the pixels, the spans
contract, determinism, sizes per mode, and the browser's life cycle (lazy start, crash restart,
clear errors). One shared renderer per module keeps the browser warm."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from optical_memory.extras import MissingExtraError
from optical_memory.modes import Mode
from optical_memory.renderers import Renderer
from optical_memory.renderers.html import (
    MARGIN,
    ChromiumCrashedError,
    ChromiumNotFoundError,
    HtmlRenderer,
)
from optical_memory.renderers.html_markdown import fragment_html, source_blocks
from optical_memory.renderers.page import Span, page_size
from optical_memory.turns import Turn

TABLE = "| Animal | Sound | Legs |\n|---|---|---|\n| cat | meow | four |\n| duck | quack | two |\n"
# The same cells without the delimiter row: a paragraph with pipes, no table.
NOT_A_TABLE = "| Animal | Sound | Legs |\n| cat | meow | four |\n| duck | quack | two |\n"
CODE = "```\niiiiiiiiii\nMMMMMMMMMM\n```\n"
CODE_GREY = (240, 240, 240)  # the code block background in html.py's style sheet


@pytest.fixture(scope="module")
def renderer() -> Iterator[HtmlRenderer]:
    with HtmlRenderer() as shared:
        yield shared


def long_conversation() -> list[Turn]:
    """Every kind of block, a turn several pages long, and the awkward cases."""
    prose = "\n\n".join(
        " ".join(f"Paragraph {p} sentence {s} recalls what the agent saw." for s in range(12))
        for p in range(14)
    )
    code = "```python\n" + "\n".join(f"def step_{i}(x):  return x + {i}" for i in range(70))
    table = "| key | value |\n|---|--:|\n" + "\n".join(f"| k{i} | {i * i} |" for i in range(60))
    items = "\n".join(f"{i}. item {i} of a long ordered list" for i in range(1, 41))
    one_line = " ".join(f"w{i}" for i in range(1800))  # one source line over a page long
    return [
        Turn(role="user", content="# Plan\n\nShort **opening** turn with `code`."),
        Turn(role="assistant", content=f"{prose}\n\n{code}\n```\n\n{table}\n\n{items}\n"),
        Turn(role="tool", content=""),
        Turn(role="user", content="   \n\n"),
        Turn(role="user", content=one_line),
        Turn(role="assistant", content="中文回答 and مرحبا بالعالم with emoji 😀🎉 at the end."),
        Turn(role="user", content="x" * 5000),  # no word boundary at all
        # CRLF line ends, a NUL, a lone surrogate (valid in a str, not in UTF-8).
        Turn(role="tool\ud800", content="a\ud800b\x00c\r\nline\r\n\r\n```\r\ncode\r\n```\r\n"),
    ]


# -- pixel helpers ------------------------------------------------------------------------------


def grey(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.int16)


def rule_count(mask: np.ndarray, min_length: int) -> int:
    """Number of separate straight lines (groups of adjacent rows of ``mask``) that hold a run
    of at least ``min_length`` True pixels."""
    totals = np.pad(np.cumsum(mask, axis=1), ((0, 0), (1, 0)))
    windows = totals[:, min_length:] - totals[:, :-min_length]  # True pixels per window
    rows = np.flatnonzero((windows == min_length).any(axis=1))
    return 0 if rows.size == 0 else int(1 + np.count_nonzero(np.diff(rows) > 1))


def text_area(image: Image.Image) -> np.ndarray:
    """The page inside its margins, grey levels."""
    return grey(image)[MARGIN:-MARGIN, MARGIN:-MARGIN]


# -- interface and life cycle -------------------------------------------------------------------


def test_a_new_renderer_is_a_renderer_and_starts_no_browser_until_used() -> None:
    renderer = HtmlRenderer()
    assert isinstance(renderer, Renderer)
    assert renderer.settings_key.startswith("html-v")
    assert renderer.settings_key == HtmlRenderer().settings_key
    assert not renderer.is_running


def test_the_chromium_path_comes_from_the_argument_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPTICAL_MEMORY_CHROMIUM", "/opt/chromium/chrome")
    assert HtmlRenderer().chromium == "/opt/chromium/chrome"
    assert HtmlRenderer(chromium="/elsewhere/chromium").chromium == "/elsewhere/chromium"
    monkeypatch.delenv("OPTICAL_MEMORY_CHROMIUM")
    assert HtmlRenderer().chromium == "/usr/bin/chromium"


def test_missing_chromium_says_what_to_install(tmp_path: Path) -> None:
    renderer = HtmlRenderer(chromium=tmp_path / "no-chromium-here")
    with pytest.raises(ChromiumNotFoundError) as error:
        renderer.render([Turn(role="user", content="hi")], Mode.TINY)
    assert "apt-get install chromium" in str(error.value)
    assert str(tmp_path / "no-chromium-here") in str(error.value)
    assert not renderer.is_running


def test_missing_html_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "playwright", None)
    monkeypatch.setitem(sys.modules, "playwright.sync_api", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'optical-memory\[html\]'"):
        HtmlRenderer().paginate([Turn(role="user", content="hi")])


def chromium_browser_pids(helpers: bool = False) -> set[int]:
    """Chromium browser processes descended from this test process (``helpers``: and their
    zygote, renderer, GPU ... processes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, queue = set(), [os.getpid()]
    while queue:
        for pid in children.get(queue.pop(), []):
            queue.append(pid)
            try:
                argv = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            # Helpers (zygote, renderer, GPU …) carry --type=; some rewrite argv as one string.
            if b"chromium" in argv[0] and (helpers or b"--type=" not in b" ".join(argv)):
                found.add(pid)
    return found


def kill_browser_started_by(action: object, before: set[int]) -> None:
    """SIGKILL the one Chromium this test started (found as a new child of this process)."""
    started = chromium_browser_pids() - before
    assert len(started) == 1, f"expected one new Chromium, found {started} after {action}"
    pid = started.pop()
    os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        if pid not in chromium_browser_pids():
            return
        time.sleep(0.05)
    raise AssertionError(f"Chromium {pid} still alive after SIGKILL")


def test_a_killed_browser_is_restarted_and_renders_the_same_page() -> None:
    turns = [Turn(role="user", content="Restart me **once**.")]
    before = chromium_browser_pids()
    with HtmlRenderer() as renderer:
        first = renderer.render(turns, Mode.TINY)[0].png()
        kill_browser_started_by("first render", before)
        again = renderer.render(turns, Mode.TINY)[0].png()
        assert renderer.is_running
    assert again == first


def test_a_browser_that_fails_again_after_a_restart_raises_a_clear_error(tmp_path: Path) -> None:
    launches = tmp_path / "launches"
    wrapper = tmp_path / "chromium-once"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'n=$(cat "{launches}" 2>/dev/null || echo 0)\n'
        f'echo $((n + 1)) > "{launches}"\n'
        'if [ "$n" -ge 1 ]; then echo "refusing to start again" >&2; exit 1; fi\n'
        'exec /usr/bin/chromium "$@"\n'
    )
    wrapper.chmod(0o755)
    turns = [Turn(role="user", content="crash twice")]
    before = chromium_browser_pids()
    renderer = HtmlRenderer(chromium=wrapper)
    renderer.render(turns, Mode.TINY)
    kill_browser_started_by("first render", before)
    with pytest.raises(ChromiumCrashedError) as error:
        renderer.render(turns, Mode.TINY)
    message = str(error.value)
    assert "restarted" in message and str(wrapper) in message
    assert launches.read_text().strip() == "2"
    assert not renderer.is_running


def test_a_renderer_works_from_another_thread_and_inside_asyncio(renderer: HtmlRenderer) -> None:
    turns = [Turn(role="user", content="From anywhere.")]
    expected = renderer.render(turns, Mode.TINY)[0].png()

    async def inside_a_running_loop() -> bytes:
        return renderer.render(turns, Mode.TINY)[0].png()

    from_thread: list[bytes] = []
    thread = threading.Thread(
        target=lambda: from_thread.append(asyncio.run(inside_a_running_loop()))
    )
    thread.start()
    thread.join(timeout=60)
    assert from_thread == [expected]


# -- markdown typesetting, checked on the pixels ------------------------------------------------


def test_a_markdown_table_renders_as_a_ruled_grid(renderer: HtmlRenderer) -> None:
    table, paragraph = (
        renderer.render([Turn(role="user", content=c)], Mode.BASE)[0] for c in (TABLE, NOT_A_TABLE)
    )
    ink = text_area(table.image) < 110
    # Header, two rows: four horizontal borders and, with three columns, four vertical ones.
    assert rule_count(ink, min_length=150) == 4
    assert rule_count(ink.T, min_length=60) == 4
    plain = text_area(paragraph.image) < 110
    assert rule_count(plain, min_length=150) == 0
    assert rule_count(plain.T, min_length=60) == 0


def test_a_fenced_code_block_renders_monospace_on_a_grey_panel(renderer: HtmlRenderer) -> None:
    page = renderer.render([Turn(role="user", content=CODE)], Mode.BASE)[0]
    pixels = np.asarray(page.image)
    panel = np.all(pixels == CODE_GREY, axis=2)
    rows, cols = np.flatnonzero(panel.any(axis=1)), np.flatnonzero(panel.any(axis=0))
    assert cols.size and cols[-1] - cols[0] > 900  # spans the text column (1024 - 2 x 32)
    assert 40 < rows[-1] - rows[0] < 120  # two lines of code
    inside = grey(page.image)[rows[0] : rows[-1], cols[0] : cols[-1]] < 110
    lines = np.flatnonzero(inside.any(axis=1))
    split = lines[np.argmax(np.diff(lines))] + 1  # the gap between the two lines
    right_i = np.flatnonzero(inside[:split].any(axis=0))[-1]
    right_m = np.flatnonzero(inside[split:].any(axis=0))[-1]
    # Ten i and ten M are equally wide in a monospace font (in DejaVu Sans: 44 px vs 138 px).
    assert abs(int(right_i) - int(right_m)) <= 3


def test_table_and_code_read_back_with_tesseract(renderer: HtmlRenderer) -> None:
    pytesseract = pytest.importorskip("pytesseract")
    content = TABLE + "\n```\ndef greet(name):\n    return 'hello ' + name\n```\n"
    page = renderer.render([Turn(role="user", content=content)], Mode.BASE)[0]
    text = pytesseract.image_to_string(page.image)
    for word in ("Animal", "quack", "meow", "def greet(name)", "return"):
        assert word in text


def test_cjk_rtl_and_emoji_are_drawn_with_colour_emoji(renderer: HtmlRenderer) -> None:
    turn = Turn(role="user", content="中文 مرحبا 😀😀😀")
    page = renderer.render([turn], Mode.BASE)[0]
    pixels = np.asarray(page.image).astype(int)
    yellow = (pixels[..., 0] > 200) & (pixels[..., 1] > 150) & (pixels[..., 2] < 110)
    assert yellow.sum() > 200  # Noto Color Emoji's faces, not monochrome outlines
    assert renderer.page_text([turn])[0].split("\n")[-1] == "中文 مرحبا 😀😀😀"


# -- the spans contract and the layout ----------------------------------------------------------


def test_spans_cover_every_character_once_in_order(renderer: HtmlRenderer) -> None:
    turns = long_conversation()
    pages = renderer.paginate(turns)
    spans = [span for page in pages for span in page]
    assert [s[:2] for s in spans] == sorted(s[:2] for s in spans)  # in order
    for index, turn in enumerate(turns):
        own = [s for s in spans if s.turn == index]
        assert own, f"turn {index} lost"
        assert own[0].start == 0 and own[-1].end == len(turn.content)
        assert all(a.end == b.start for a, b in itertools.pairwise(own))
        assert "".join(turn.content[s.start : s.end] for s in own) == turn.content
    assert Span(2, 0, 0) in spans  # the empty turn still has its place
    assert len({i for i, page in enumerate(pages) for s in page if s.turn == 1}) >= 4
    assert len(pages) >= 8


def test_pages_are_full_and_nothing_spills_into_the_margins(renderer: HtmlRenderer) -> None:
    # Many short turns: a page of labels and one-liners, where a mismeasured label adds up.
    chat = [Turn(role=("user", "assistant")[i % 2], content=f"Reply {i}.") for i in range(50)]
    turns = long_conversation() + chat
    pages = renderer.render(turns, Mode.BASE)
    assert [p.spans for p in pages] == renderer.paginate(turns)
    filled = 0
    for number, page in enumerate(pages):
        pixels = grey(page.image)
        assert page.image.size == (1024, 1024)
        assert (pixels[-MARGIN:, :] == 255).all(), f"page {number} spills below the text area"
        assert (pixels[:, -MARGIN:] == 255).all(), f"page {number} spills right of the text area"
        ink_rows = np.flatnonzero((pixels < 200).any(axis=1))
        last = page.spans[-1]
        if last.turn == 6 and last.end < len(turns[6].content):
            # The 5000-character word goes on on the next page: this one was filled.
            assert ink_rows[-1] > 1024 - MARGIN - 40
            filled += 1
    assert filled >= 1


def test_every_mode_prints_the_same_pages_at_its_canvas(renderer: HtmlRenderer) -> None:
    turns = [
        Turn(role="user", content="## Sizes\n\nThe same page at every mode."),
        Turn(role="assistant", content=TABLE),
    ]
    expected = renderer.paginate(turns)
    for mode in Mode:
        pages = renderer.render(turns, mode)
        assert [p.spans for p in pages] == expected
        assert all(p.mode is mode and p.image.size == page_size(mode) for p in pages)
    assert page_size(Mode.TINY) == (512, 512) and page_size(Mode.GUNDAM) == (1280, 1280)


def test_the_same_input_gives_the_same_png_bytes(renderer: HtmlRenderer) -> None:
    turns = [Turn(role="user", content=TABLE + "\n" + CODE + "\n中文 😀 مرحبا")]
    first = [p.png() for p in renderer.render(turns, Mode.SMALL)]
    renderer._layouts.clear()  # measure again, not from the kept layout
    second = [p.png() for p in renderer.render(turns, Mode.SMALL)]
    with HtmlRenderer() as fresh:  # a new browser process
        third = [p.png() for p in fresh.render(turns, Mode.SMALL)]
    assert first == second == third


# -- markdown source blocks and HTML (no browser) -----------------------------------------------


def test_source_blocks_tile_the_content_at_block_boundaries() -> None:
    content = "\n# Title\n\nText line\nmore\n\n- a\n- b\n\n```\ncode\n```\n" + TABLE + "> quote"
    blocks = source_blocks(content)
    assert [b.kind for b in blocks] == [
        "heading", "paragraph", "list_item", "list_item", "fence", "table", "blockquote",
    ]  # fmt: skip
    assert blocks[0].start == 0 and blocks[-1].end == len(content)
    assert all(a.end == b.start for a, b in itertools.pairwise(blocks))
    assert content[blocks[2].start : blocks[2].end] == "- a\n"


def test_raw_html_is_escaped_and_links_are_printed_not_followed() -> None:
    content = '<b onclick="x()">hi</b> [docs](https://example.com/a) ![pic](https://x/y.png)'
    block = source_blocks(content)[0]
    html = fragment_html(content, block, 0, len(content))
    assert "<b" not in html and "&lt;b onclick" in html
    assert "href=" not in html and "src=" not in html and "<a" not in html and "<img" not in html
    assert "docs" in html and "⟨https://example.com/a⟩" in html
    assert "[image: pic]" in html


def test_a_split_fence_and_a_split_table_keep_their_shape() -> None:
    fence = "```py\na = 1\nb = 2\n```\n"
    block = source_blocks(fence)[0]
    tail = fragment_html(fence, block, fence.index("b = 2"), len(fence))
    assert tail.startswith("<pre><code") and "b = 2" in tail and "a = 1" not in tail
    table_block = source_blocks(TABLE)[0]
    rows = fragment_html(TABLE, table_block, TABLE.index("| duck"), len(TABLE))
    assert "<table>" in rows and "duck" in rows and "<thead>" not in rows and "Animal" not in rows


# -- the way in from the memory and the command line --------------------------------------------


def test_optical_memory_accepts_renderer_html() -> None:
    from optical_memory import OpticalMemory

    with OpticalMemory(None, renderer="html") as memory:
        assert isinstance(memory.renderer, HtmlRenderer)


def chromium_left(before: set[int]) -> set[int]:
    """Chromium processes (helpers included) started since ``before``, once they settle."""
    for _ in range(100):
        left = chromium_browser_pids(helpers=True) - before
        if not left:
            break
        time.sleep(0.05)
    return left


def test_a_memory_closes_the_chromium_it_started_by_name() -> None:
    from optical_memory import OpticalMemory

    before = chromium_browser_pids(helpers=True)
    memory = OpticalMemory(None, renderer="html", keep_recent_turns=1)
    for number in range(3):  # turns leave the window: the browser paginates them
        memory.add("user", f"turn {number} **in bold**")
    memory.context()
    assert len(chromium_browser_pids(helpers=True) - before) >= 2  # a browser and its helpers
    memory.close()
    assert chromium_left(before) == set()


def test_a_renderer_passed_to_a_memory_stays_open_for_its_owner() -> None:
    from optical_memory import OpticalMemory

    before = chromium_browser_pids(helpers=True)
    with HtmlRenderer() as renderer:
        with OpticalMemory(None, renderer=renderer, keep_recent_turns=1) as memory:
            for number in range(3):
                memory.add("user", f"turn {number}")
        assert renderer.is_running
        assert renderer.paginate([Turn(role="user", content="still works")]) == [[Span(0, 0, 11)]]
    assert chromium_left(before) == set()


def test_a_closed_renderer_stays_closed_for_a_memory_still_using_it() -> None:
    from optical_memory import OpticalMemory
    from optical_memory.renderers.html import RendererClosedError

    before = chromium_browser_pids(helpers=True)
    renderer = HtmlRenderer()
    with OpticalMemory(None, renderer=renderer, keep_recent_turns=1) as memory:
        for number in range(3):
            memory.add("user", f"turn {number}")
        renderer.close()  # its owner is done with it; the memory is not
        assert chromium_left(before) == set()
        with pytest.raises(RendererClosedError, match="create a new HtmlRenderer"):
            memory.add("user", "one more turn to lay out")
        assert chromium_left(before) == set()  # no browser started again behind the owner
        assert memory.store.count_turns("default") == 4  # the turn itself is kept


def test_the_render_command_prints_pages_with_renderer_html(tmp_path: Path) -> None:
    import json

    from optical_memory.apps.cli import main

    chat = tmp_path / "chat.json"
    chat.write_text(
        json.dumps([{"role": "user", "content": TABLE}, {"role": "bot", "content": CODE}])
    )
    out = tmp_path / "pages"
    assert (
        main(["render", str(chat), "--mode", "tiny", "--out", str(out), "--renderer", "html"]) == 0
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["renderer"] == HtmlRenderer().settings_key
    with Image.open(out / "page-0001-tiny.png") as page:
        assert page.size == (512, 512)
