"""Hostile layouts (``tests/data/hostile_payloads.json``): long unbroken tokens, adversarial and
deeply nested markdown, wide tables, long list numbers, long roles. Both renderers keep every
character on a page, inside the page's margins; the HTML renderer shows every character."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import numpy as np
import pytest
from hostile_payloads import LayoutPayload, layout_payloads
from PIL import Image

from optical_memory.modes import Mode
from optical_memory.renderers import PillowRenderer, Span
from optical_memory.renderers.html import MARGIN, HtmlRenderer
from optical_memory.renderers.html_markdown import source_blocks
from optical_memory.turns import Turn

PAYLOADS = layout_payloads()


@pytest.fixture(scope="module")
def html() -> Iterator[HtmlRenderer]:
    with HtmlRenderer() as renderer:
        yield renderer


@pytest.fixture(scope="module")
def pil() -> PillowRenderer:
    return PillowRenderer()


def assert_spans_tile(content: str, pages: Sequence[Sequence[Span]]) -> None:
    spans = [span for page in pages for span in page]
    assert spans[0].start == 0 and spans[-1].end == len(content)
    assert all(a.end == b.start for a, b in itertools.pairwise(spans))


def margins_are_blank(image: Image.Image, margin: int) -> bool:
    """No ink left of, right of or below the text area (a label's rule may touch its top)."""
    pixels = np.asarray(image.convert("L"))
    return bool(
        (pixels[:, : margin - 2] > 245).all()
        and (pixels[:, -margin + 2 :] > 245).all()
        and (pixels[-margin + 2 :, :] > 245).all()
    )


def page_body(text: str, role: str) -> str:
    """A page's text without its label line (``role:`` or ``role (continued):``)."""
    head, _, body = text.partition("\n")
    assert head.endswith(":"), head
    return body


def test_there_are_layout_payloads_of_every_kind() -> None:
    assert len({p.name for p in PAYLOADS}) == len(PAYLOADS) >= 12
    assert any(p.verbatim for p in PAYLOADS) and any(p.visible for p in PAYLOADS)


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: p.name)
def test_the_html_renderer_shows_every_character_inside_the_page(
    payload: LayoutPayload, html: HtmlRenderer
) -> None:
    turns = [Turn(role=payload.role, content=payload.content)]
    pages = html.render(turns, Mode.BASE)
    assert_spans_tile(payload.content, [page.spans for page in pages])
    shown = "".join(page_body(text, payload.role) for text in html.page_text(turns))
    if payload.verbatim:
        assert "".join(shown.split()) == "".join(payload.content.split())
    for expected in payload.visible:
        assert expected in shown, f"{expected!r} is not on any page"
    for number, page in enumerate(pages):
        assert margins_are_blank(page.image, MARGIN), f"page {number} prints outside its margins"


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: p.name)
def test_the_pillow_renderer_keeps_every_character_inside_the_page(
    payload: LayoutPayload, pil: PillowRenderer
) -> None:
    turns = [Turn(role=payload.role, content=payload.content)]
    layout = pil.paginate(turns)
    assert_spans_tile(payload.content, layout)
    pages = pil.render(turns, Mode.BASE)
    assert [page.spans for page in pages] == layout
    for number, page in enumerate(pages):
        assert margins_are_blank(page.image, int(pil.margin)), f"page {number} spills"


def test_markdown_within_its_limits_stays_markdown() -> None:
    """The fallback is for what markdown cannot print: ordinary blocks keep their kind."""
    content = "# Title\n\n> a quote\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n1. one\n2. two\n"
    assert [b.kind for b in source_blocks(content)] == [
        "heading", "blockquote", "table", "list_item", "list_item",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("over the length limit", "word " * 5000),
        ("over the work budget", "![" * 5000),
        ("nested to the limit", ">" * 20 + " deep"),
        ("wider than the page", "|" + "c|" * 40 + "\n|" + "-|" * 40 + "\n"),
    ],
)
def test_markdown_beyond_its_limits_is_one_plain_block(name: str, content: str) -> None:
    blocks = source_blocks(content)
    assert blocks[0].kind == "plain" and blocks[0].start == 0
    assert blocks[-1].end == len(content)
