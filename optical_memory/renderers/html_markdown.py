"""Markdown source for the HTML renderer: source blocks with exact offsets, and safe HTML.

A turn's content is cut into *source blocks* at markdown block boundaries (paragraph, heading,
code fence, indented code, table, block quote, rule, and each item of a top-level list). The
blocks tile the content: block ``k`` runs from its first source line to the first line of block
``k + 1``, so blank lines travel with the block before them and every character belongs to
exactly one block. The page layout stacks *fragments* (a block, a run of its source lines, or a
run of characters of one line) and renders each fragment on its own, so a page's HTML is a
function of exactly the characters its spans name.

Content is untrusted: markdown-it runs with raw HTML disabled (tags come out as escaped text),
links and images are printed as text (no ``href``, no ``src``), and the result passes an
allow-list sanitizer (nh3) as a second wall.
"""

from __future__ import annotations

import functools
import html
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from optical_memory.extras import import_extra

# markdown-it's own line splitting (its input normalization turns all three into "\n").
_NEWLINE = re.compile(r"\r\n?|\n")
_LIST_MARKER = re.compile(r"[ \t]*(?:[-+*]|\d{1,9}[.)])(?:[ \t]+|$)")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_ZERO_WIDTH_JOINERS = {"\u200d", "\u200c", "\ufe0e", "\ufe0f"}

_BLOCK_KINDS = {
    "paragraph_open": "paragraph",
    "heading_open": "heading",
    "fence": "fence",
    "code_block": "code_block",
    "table_open": "table",
    "blockquote_open": "blockquote",
    "hr": "hr",
}

_ALLOWED_TAGS = {
    "p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "table", "thead", "tbody",
    "tr", "th", "td", "pre", "code", "blockquote", "em", "strong", "s", "hr", "br", "span",
    "div",
}  # fmt: skip
_ALLOWED_ATTRIBUTES = {
    "ol": {"start"},
    "span": {"class"},
    "div": {"class"},
    "code": {"class"},
    "th": {"style"},
    "td": {"style"},
}


@dataclass(frozen=True)
class SourceBlock:
    """Characters ``content[start:end]`` forming one markdown block (``kind`` as above)."""

    start: int
    end: int
    kind: str


def line_starts(content: str) -> list[int]:
    """Offsets where each source line begins, as markdown-it numbers lines."""
    return [0, *(match.end() for match in _NEWLINE.finditer(content))]


def source_blocks(content: str) -> list[SourceBlock]:
    """Cut ``content`` into blocks that tile it exactly (one ``text`` block if it has none)."""
    starts = line_starts(content)
    marks: list[tuple[int, str]] = []
    for token in _markdown().parse(content):
        if token.map is None or token.nesting == -1:
            continue
        if token.level == 0 and token.type in _BLOCK_KINDS:
            marks.append((token.map[0], _BLOCK_KINDS[token.type]))
        elif token.level == 1 and token.type == "list_item_open":
            marks.append((token.map[0], "list_item"))
    if not marks:
        return [SourceBlock(0, len(content), "text")]
    offsets = [starts[line] if line < len(starts) else len(content) for line, _ in marks]
    offsets[0] = 0  # leading blank lines belong to the first block
    blocks = []
    for k, ((_, kind), start) in enumerate(zip(marks, offsets, strict=True)):
        end = offsets[k + 1] if k + 1 < len(offsets) else len(content)
        if end > start:
            blocks.append(SourceBlock(start, end, kind))
    return blocks


def fragment_html(content: str, block: SourceBlock, start: int, end: int) -> str:
    """Sanitized HTML for ``content[start:end]``, a piece of ``block``.

    A piece that is not the block's head is given the context it needs to look like the rest
    of its block: a code fence's opening line, a table's header (rendered, then dropped), a
    list item's indentation removed, a split line's indentation or quote marker restored.
    """
    text = content[start:end]
    if start == block.start:
        return _to_html(text)
    mid_line = content[start - 1] not in "\r\n"
    first_line = _line_at(content, block.start)
    if block.kind == "fence":
        return _to_html(first_line + "\n" + text)
    if block.kind == "table":
        header = _line_at(content, block.start, 2)
        return re.sub(
            r"<thead>.*?</thead>", "", _to_html(header + "\n" + text), count=1, flags=re.S
        )
    if block.kind == "list_item":
        marker = _LIST_MARKER.match(first_line)
        indent = len(marker.group(0)) if marker else 0
        dedented = re.sub(rf"(?m)^ {{1,{indent}}}", "", text) if indent else text
        return f'<div class="list-cont">{_to_html(dedented)}</div>'
    if mid_line and block.kind == "code_block":
        return _to_html("    " + text)
    if mid_line and block.kind == "blockquote":
        return _to_html("> " + text)
    return _to_html(text)


def is_cut_point(content: str, offset: int) -> bool:
    """Whether a page may end before ``content[offset]`` without splitting a character
    (no cut before a combining mark, a joiner or a variation selector)."""
    if not 0 < offset < len(content):
        return False
    char = content[offset]
    previous = content[offset - 1]
    return not (
        unicodedata.combining(char)
        or char in _ZERO_WIDTH_JOINERS
        or previous == "\u200d"
        or (previous == "\r" and char == "\n")
    )


def _line_at(content: str, start: int, count: int = 1) -> str:
    """``count`` source lines from offset ``start``, without the final line break."""
    end = start
    for _ in range(count):
        match = _NEWLINE.search(content, end)
        if match is None:
            return content[start:]
        end = match.end()
    return content[start:end].rstrip("\r\n")


def printable(text: str) -> str:
    """``text`` with lone surrogates (valid in a Python str, not in UTF-8) shown as U+FFFD."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def _to_html(text: str) -> str:
    nh3 = import_extra("nh3", "html")
    rendered = _markdown().render(printable(text), {"links": []})
    return str(
        nh3.clean(
            rendered,
            tags=_ALLOWED_TAGS,
            attributes=_ALLOWED_ATTRIBUTES,
            filter_style_properties={"text-align"},
            link_rel=None,
            strip_comments=True,
        )
    )


@functools.cache
def _markdown() -> Any:
    markdown_it = import_extra("markdown_it", "html")
    md = markdown_it.MarkdownIt(
        "commonmark", {"html": False, "linkify": False, "typographer": False}
    ).enable(["table", "strikethrough"])
    md.add_render_rule("link_open", _link_open)
    md.add_render_rule("link_close", _link_close)
    md.add_render_rule("image", _image)
    return md


# Links and images are printed, never followed: the text, then the target as plain text.
def _link_open(renderer: Any, tokens: Any, idx: int, options: Any, env: dict[str, Any]) -> str:
    token = tokens[idx]
    target = "" if token.markup == "autolink" else str(token.attrGet("href") or "")
    env["links"].append(target)
    return '<span class="link">'


def _link_close(renderer: Any, tokens: Any, idx: int, options: Any, env: dict[str, Any]) -> str:
    target = env["links"].pop() if env["links"] else ""
    shown = f' <span class="href">⟨{html.escape(target)}⟩</span>' if target else ""
    return "</span>" + shown


def _image(renderer: Any, tokens: Any, idx: int, options: Any, env: dict[str, Any]) -> str:
    token = tokens[idx]
    alt = renderer.renderInlineAsText(token.children or [], options, env)
    target = str(token.attrGet("src") or "")
    return (
        f'<span class="image">[image: {html.escape(alt)}]</span>'
        f' <span class="href">⟨{html.escape(target)}⟩</span>'
    )
