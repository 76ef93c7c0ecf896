"""The HTML renderer's page: its size and margins, style sheet, document, turn labels, and the
scripts the renderer runs in it (through Playwright; the page's own scripts are disabled) to
measure what it laid out. Printing and measuring use the same markup, so heights agree.
"""

from __future__ import annotations

import html

from optical_memory.renderers.html_markdown import printable
from optical_memory.renderers.page import REFERENCE_SIZE
from optical_memory.renderers.sandbox import CONTENT_SECURITY_POLICY
from optical_memory.renderers.style import label_colour
from optical_memory.turns import Turn

#: Side of the reference page in CSS px: layout (line and page breaks) happens here.
PAGE_SIZE = REFERENCE_SIZE
#: Blank border on every side of the reference page, CSS px (as PillowRenderer's default).
MARGIN = 32
#: Height available to fragments on one page, CSS px.
CONTENT_HEIGHT = PAGE_SIZE - 2 * MARGIN

_MONO = "'Page Emoji', 'DejaVu Sans Mono', 'Noto Sans Mono CJK SC', monospace"
# DejaVu has monochrome outlines for some emoji; the colour font goes first, limited to the
# emoji blocks so that digits, '#' and '*' (which it also covers) stay in the text font.
_EMOJI_FACE = """
@font-face { font-family: 'Page Emoji'; src: local('Noto Color Emoji');
  unicode-range: U+1F000-1FAFF, U+2600-27BF, U+2B00-2BFF, U+2300-23FF, U+FE0F, U+200D; }
"""
# Room for list numbers of 3 to 9 digits (markdown's most) left of the list's text, inside the
# page: about 13 px a digit at 20 px, the dot and the gap before the text.
_NUMBER_ROOM = " ".join(f"ol.digits-{d} {{ padding-left: {13 * d + 16}px; }}" for d in range(3, 10))
STYLE = f"""{_EMOJI_FACE}
html, body {{ margin: 0; padding: 0; background: #fff; }}
body {{ width: {PAGE_SIZE}px; color: #111; font-size: 20px; line-height: 1.2;
  font-family: 'Page Emoji', 'DejaVu Sans', 'Noto Sans CJK SC', sans-serif;
  caret-color: transparent; }}
* {{ animation: none !important; transition: none !important; }}
main {{ box-sizing: border-box; width: {PAGE_SIZE}px; padding: {MARGIN}px; }}
main.page {{ height: {PAGE_SIZE}px; overflow: hidden; }}
main > section {{ display: flow-root; overflow-wrap: anywhere; }}
section.head {{ font-weight: bold; border-top: 1px solid #bbb; padding: 2px 0 1px; }}
section.head .when {{ font-weight: normal; color: #666; }}
p {{ margin: 0 0 4px; }}
h1, h2, h3, h4, h5, h6 {{ margin: 2px 0 6px; line-height: 1.25; }}
h1 {{ font-size: 1.5em; }} h2 {{ font-size: 1.3em; }} h3 {{ font-size: 1.15em; }}
h4, h5, h6 {{ font-size: 1em; }}
p, li, h1, h2, h3, h4, h5, h6, th, td, blockquote {{ unicode-bidi: plaintext;
  text-align: start; }}
pre {{ margin: 0 0 6px; padding: 5px 8px; background: #f0f0f0; border: 1px solid #ccc;
  white-space: pre-wrap; font-family: {_MONO}; font-size: 17px; line-height: 1.2; }}
code {{ font-family: {_MONO}; font-size: 0.85em; background: #f0f0f0; padding: 0 2px; }}
pre code {{ background: none; padding: 0; font-size: 1em; }}
table {{ border-collapse: collapse; margin: 0 0 6px; max-width: 100%; }}
th, td {{ border: 1px solid #444; padding: 2px 6px; vertical-align: top; }}
th {{ background: #e4e4e4; }}
blockquote {{ margin: 0 0 6px; padding: 0 0 0 10px; border-left: 4px solid #aaa; color: #333; }}
ul, ol {{ margin: 0 0 2px; padding-left: 28px; }}
{_NUMBER_ROOM}
.plain {{ margin: 0 0 4px; white-space: pre-wrap; font-family: {_MONO}; font-size: 17px;
  line-height: 1.2; }}
section.head .role {{ display: inline-block; max-width: 50%; overflow: hidden;
  text-overflow: ellipsis; white-space: nowrap; vertical-align: bottom; }}
li > p {{ margin: 0 0 3px; }}
.list-cont {{ padding-left: 28px; }}
.link {{ color: #0645ad; text-decoration: underline; }}
.href, .image {{ color: #555; font-size: 0.85em; }}
hr {{ border: 0; border-top: 2px solid #999; margin: 6px 0; }}
"""
_TEMPLATE = (
    '<!doctype html><html><head><meta charset="utf-8">'
    f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">'
    "<title>optical-memory page</title><style>{style}</style></head>"
    '<body><main class="{kind}">{sections}</main></body></html>'
)
MEASURE = (
    "() => Array.from(document.querySelector('main').children,"
    " s => s.getBoundingClientRect().height)"
)
#: Page breaks in a laid-out plain block (its text is one DOM node): for each page, the offset
# (UTF-16) of the first character whose line starts below the lines that fit the page's room
# (the first page's, then the next pages'), at most `limit` characters on; a page holds whole
# lines of the same height (`line-height`), plus the block's bottom margin.
PLAIN_BREAKS = """([first, next, limit]) => {
  const block = document.querySelector('main > section > .plain');
  const nodes = Array.from(block.children, (span) => span.firstChild).filter(Boolean);
  const ends = [];
  let n = 0;
  for (const node of nodes) ends.push((n += node.length));
  const locate = (offset) => {  // [text node, offset in it]
    let low = 0, high = ends.length - 1;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (ends[middle] > offset) high = middle; else low = middle + 1;
    }
    return [nodes[low], offset - (ends[low] - nodes[low].length)];
  };
  const range = document.createRange(), style = getComputedStyle(block);
  const pitch = parseFloat(style.lineHeight), pad = parseFloat(style.marginBottom);
  const top = (offset) => {
    for (let k = offset; k < Math.min(n, offset + 16); k++) {
      const [node, at] = locate(k);
      range.setStart(node, at); range.setEnd(node, at + 1);
      const rects = range.getClientRects();
      if (rects.length) return rects[0].top;
    }
    return Infinity;
  };
  const isLowSurrogate = (offset) => {
    const [node, at] = locate(offset);
    return (node.data.charCodeAt(at) & 0xfc00) === 0xdc00;
  };
  const cuts = [];
  let start = 0, room = first;
  while (start < n) {
    const lines = Math.floor((room - pad + 0.01) / pitch);
    if (lines < 1) break;
    const below = top(start) + (lines - 0.5) * pitch;
    let low = start + 1, high = Math.min(n, start + limit);
    if (top(high - 1) < below) {
      low = high;
    } else {
      high -= 1;
      while (low < high) {
        const middle = (low + high) >> 1;
        if (top(middle) >= below) high = middle; else low = middle + 1;
      }
    }
    if (low < n && isLowSurrogate(low)) low -= 1;
    if (low <= start) break;
    cuts.push(low);
    start = low;
    room = next;
  }
  return cuts;
}"""
BOTTOM = "() => document.querySelector('main').scrollHeight"
#: Characters of a role put on the page (the style sheet cuts it to half a line).
_ROLE_CHARS = 200


def document(sections: str, kind: str) -> str:
    """A whole page: ``kind`` ``page`` (1024 px square, printed) or ``measure`` (as tall as
    its ``sections``, which :data:`MEASURE` measures)."""
    return _TEMPLATE.format(style=STYLE, kind=kind, sections=sections)


def section(fragment_html: str, is_text: bool) -> str:
    """One stacked fragment: the same markup when measured and when printed."""
    return f'<section class="{"text" if is_text else "head"}">{fragment_html}</section>'


def head_html(turn: Turn, continued: bool) -> str:
    """The turn's label, as PillowRenderer prints it: ``role:`` in the role's colour."""
    # The style sheet shortens a role wider than half the line; the rest is never drawn.
    role = printable(turn.role[:_ROLE_CHARS])
    red, green, blue = label_colour(printable(turn.role))
    when = f" · {turn.timestamp.isoformat(sep=' ')}" if turn.timestamp else ""
    more = " (continued)" if continued else ""
    number = "" if turn.number is None else f"#{turn.number} "
    return (
        f'<span style="color: rgb({red}, {green}, {blue})"><span class="role">'
        f"{number}{html.escape(role)}</span>{more}:</span>"
        f'<span class="when">{html.escape(when)}</span>'
    )
