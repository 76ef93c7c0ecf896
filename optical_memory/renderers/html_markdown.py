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

Markdown costs from 0.01 to 10 µs a character depending on the syntax (``![`` is the worst),
and markdown-it silently drops what lies deeper than its nesting limit. So a block is printed
as escaped *plain* text (kind ``plain``: every character shown, monospace, wrapped) when the
turn is longer than :data:`MARKDOWN_MAX_CHARS`, when its estimated work (:func:`markdown_work`)
exceeds :data:`BLOCK_WORK_BUDGET`, when it nests as deep as markdown-it's limit, or when it is
a table of more than :data:`WIDEST_TABLE` columns (which could not fit the page's width). The
decision depends on the text alone, so the same turn always prints the same way.
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

#: Turns longer than this, in characters, print as plain text (several pages of prose).
MARKDOWN_MAX_CHARS = 20_000
#: Most work (:func:`markdown_work`) one block may cost before it prints as plain text.
BLOCK_WORK_BUDGET = 150_000
#: Tables with more columns print as plain text (each column needs about 25 px of the 960).
WIDEST_TABLE = 30
# Work units per character, in markdown-it's time for a plain character: link/image openers
# scan ahead for their label, other delimiters for their partner; everything else costs 1.
_WORK = {"[": 60, "!": 20, "*": 20, "_": 20, "~": 20, "`": 20, "<": 20, "|": 20, "\\": 20}

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
    "ol": {"start", "class"},
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
    """Cut ``content`` into blocks that tile it exactly (one ``text`` block if it has none);
    blocks markdown cannot print safely and cheaply are of kind ``plain`` (module docstring)."""
    if len(content) > MARKDOWN_MAX_CHARS:
        return [SourceBlock(0, len(content), "plain")]
    starts = line_starts(content)
    marks: list[tuple[int, str]] = []
    unsafe: set[int] = set()  # indices into marks
    limit = _markdown().options["maxNesting"]
    columns = 0
    for token in _markdown().parse(content):
        if marks and token.level + token.nesting >= limit:
            unsafe.add(len(marks) - 1)  # markdown-it stops reading here: the rest would be lost
        if token.type == "th_open" and token.level == 3:
            columns += 1  # header cells of a top-level table
        elif token.type == "thead_close" and token.level == 1:
            if columns > WIDEST_TABLE:
                unsafe.add(len(marks) - 1)
            columns = 0
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
            if k in unsafe or markdown_work(content[start:end]) > BLOCK_WORK_BUDGET:
                kind = "plain"
            blocks.append(SourceBlock(start, end, kind))
    return _merge_plain(blocks)


def _merge_plain(blocks: list[SourceBlock]) -> list[SourceBlock]:
    """Adjacent plain blocks as one (a list item's lost tail may lie in the next item)."""
    merged: list[SourceBlock] = []
    for block in blocks:
        if merged and block.kind == merged[-1].kind == "plain":
            merged[-1] = SourceBlock(merged[-1].start, block.end, "plain")
        else:
            merged.append(block)
    return merged


def markdown_work(text: str) -> int:
    """Estimated cost of rendering ``text`` as markdown, in markdown-it's time for a plain
    character: one per character, more for characters that make it scan ahead (``[``: 60)."""
    return len(text) + sum((weight - 1) * text.count(char) for char, weight in _WORK.items())


def plain_html(text: str, chunk: int = 0) -> str:
    """``text`` as escaped plain text (wrapped, every character shown), one DOM character per
    character of ``text``: NUL shows as U+FFFD, CR LF as a space and a line break, a lone CR
    as a line break, a lone surrogate as U+FFFD (the HTML parser would drop or merge them).

    ``chunk > 0`` puts every ``chunk`` characters in a ``<span>`` of their own (the same
    layout; the browser finds a character's position in time proportional to its text node).
    """
    shown = printable(text).replace("\r\n", " \n").translate(_PLAIN_CHARACTERS)
    if chunk <= 0:
        return f'<div class="plain">{html.escape(shown, quote=False)}</div>'
    spans = (
        f"<span>{html.escape(shown[k : k + chunk], quote=False)}</span>"
        for k in range(0, len(shown), chunk)
    )
    return f'<div class="plain">{"".join(spans)}</div>'


_PLAIN_CHARACTERS = {0: 0xFFFD, 13: 10}


def fragment_html(content: str, block: SourceBlock, start: int, end: int) -> str:
    """Sanitized HTML for ``content[start:end]``, a piece of ``block``.

    A piece that is not the block's head is given the context it needs to look like the rest
    of its block: a code fence's opening line, a table's header (rendered, then dropped), a
    list item's indentation removed, a split line's indentation or quote marker restored.
    """
    text = content[start:end]
    if block.kind == "plain":
        return plain_html(text)
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
    md.add_render_rule("ordered_list_open", _ordered_list_open)
    return md


def _ordered_list_open(
    renderer: Any, tokens: Any, idx: int, options: Any, env: dict[str, Any]
) -> str:
    """``<ol>`` with class ``digits-N`` when its widest number has N >= 3 digits, so the style
    sheet gives the numbers room inside the page (they hang left of the list's text)."""
    token = tokens[idx]
    widest = 0
    for later in tokens[idx + 1 :]:
        if later.level == token.level and later.type == "ordered_list_close":
            break
        if later.level == token.level + 1 and later.type == "list_item_open":
            widest = max(widest, len(later.info))
    if widest >= 3:
        token.attrSet("class", f"digits-{widest}")
    return str(renderer.renderToken(tokens, idx, options, env))


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
