"""The demo's pictures: every page fading with age (the contact sheet), and the whole idea in
one image (a conversation, its pages, the request a model receives)."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

from optical_memory.memory import MemoryContext, MemoryPage, OpticalMemory
from optical_memory.modes import FADING_ORDER

_TILE = 360  # px of one close-up cell
_CAPTION = 44


def _newest_per_mode(memory: OpticalMemory, context: MemoryContext) -> list[MemoryPage]:
    """The newest page of each mode; a mode whose pages all went as text (the profitability
    gate) shows its newest such page, drawn for the sheet only."""
    newest: dict[str, MemoryPage] = {}
    for text_page in context.text_pages:
        newest[text_page.mode.value] = memory.page_image(text_page.page_id, text_page.mode)
    for page in context.pages:  # oldest first: later pages overwrite
        newest[page.mode.value] = page
    return [newest[m.value] for m in FADING_ORDER if m.value in newest]


#: The sheet's colour for each mode (and for pages sent as text): frame and legend.
_MODE_COLOURS = {
    "gundam": "#6a3d9a",
    "large": "#1f78b4",
    "base": "#33a02c",
    "small": "#ff7f00",
    "tiny": "#e31a1c",
    "text": "#808080",
}
_SHEET_WIDTH = 1600
_SCALE = 4  # every page drawn at 1/4 of its own pixels: a TINY page is smaller than a SMALL one


def contact_sheet(memory: OpticalMemory, context: MemoryContext) -> Image.Image:
    """Every page in age order (oldest first, left to right), each drawn at a quarter of the
    pixels it is sent at and framed in its mode's colour, under a legend; then a close-up row:
    the same top-left corner of the newest page of each mode, all at one display size, so a page
    drawn on fewer pixels looks softer. That is the fading the model sees."""
    font = ImageFont.load_default(size=16)
    as_text = {page.page_id for page in context.text_pages}
    every = _every_page(memory, context)
    gap, legend_height = 8, 40
    placed, bottom = _flow(every, _SCALE, gap, legend_height + gap, _SHEET_WIDTH - 2 * gap, gap, 20)
    close_ups = _newest_per_mode(memory, context)
    top = bottom + 20 + 2 * gap
    sheet = Image.new("RGB", (_SHEET_WIDTH, top + _CAPTION + _TILE + gap), "white")
    draw = ImageDraw.Draw(sheet)
    legend_x = gap
    shown = {"text" if page.page_id in as_text else page.mode.value for page in every}
    for name, colour in _MODE_COLOURS.items():
        if name not in shown:
            continue
        draw.rectangle((legend_x, 12, legend_x + 16, 28), fill=colour)
        label = f"{name} ({_MODE_SIDES.get(name, 'sent as text')})"
        draw.text((legend_x + 22, 12), label, fill="black", font=font)
        legend_x += 30 + int(draw.textlength(label, font=font))
    _paste_framed(sheet, placed, as_text, _SCALE)
    for page, px, py in placed:
        label_y = py + page.height // _SCALE + 3
        draw.text((px, label_y), f"page {page.page_id}", fill="dimgray", font=font)
    for column, page in enumerate(close_ups):
        cx = gap + column * (_TILE + gap)
        if cx + _TILE > _SHEET_WIDTH:
            break
        image = page.image.convert("RGB")
        corner = image.crop((0, 0, image.width // 6, image.height // 6))
        sheet.paste(corner.resize((_TILE, _TILE), Image.Resampling.BICUBIC), (cx, top + _CAPTION))
        caption = f"close-up: {page.mode.name} {page.width}px, {page.vision_tokens} tok"
        draw.text((cx, top + 4), caption, fill=_MODE_COLOURS[page.mode.value], font=font)
        draw.text((cx, top + 22), f"page {page.page_id}, age {page.age}", fill="dimgray", font=font)
    return sheet


_MODE_SIDES = {"gundam": "tiles", "large": "1280 px", "base": "1024 px", "small": "640 px",
               "tiny": "512 px"}  # fmt: skip


def _every_page(memory: OpticalMemory, context: MemoryContext) -> list[MemoryPage]:
    """Every page of the context in age order, oldest first; a page sent as text is drawn at
    its mode for the picture."""
    return [
        page if isinstance(page, MemoryPage) else memory.page_image(page.page_id, page.mode)
        for page in context.memory
    ]


def _flow(
    pages: list[MemoryPage], scale: int, left: int, top: int, width: int, gap: int, row_gap: int
) -> tuple[list[tuple[MemoryPage, int, int]], int]:
    """Thumbnails at ``1/scale`` of each page's own pixels, left to right, wrapping at
    ``width``: their places, and the bottom of the last row."""
    placed: list[tuple[MemoryPage, int, int]] = []
    x, y, row_height = left, top, 0
    for page in pages:
        w, h = page.width // scale, page.height // scale
        if x + w > left + width and placed:
            x, y, row_height = left, y + row_height + row_gap + gap, 0
        placed.append((page, x, y))
        x += w + gap
        row_height = max(row_height, h)
    return placed, y + row_height


def _paste_framed(
    sheet: Image.Image, placed: list[tuple[MemoryPage, int, int]], as_text: set[int], scale: int
) -> None:
    """Paste each page at ``1/scale`` of its pixels where ``_flow`` placed it, framed in the
    colour of its mode (or of text, for a page sent as text)."""
    draw = ImageDraw.Draw(sheet)
    for page, px, py in placed:
        kind = "text" if page.page_id in as_text else page.mode.value
        thumb = page.image.convert("RGB").resize(
            (page.width // scale, page.height // scale), Image.Resampling.BILINEAR
        )
        sheet.paste(thumb, (px, py))
        draw.rectangle(
            (px - 2, py - 2, px + thumb.width + 1, py + thumb.height + 1),
            outline=_MODE_COLOURS[kind],
            width=2,
        )


def _wrap_line(
    draw: ImageDraw.ImageDraw,
    text: str,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
    width: int,
) -> str:
    """``text`` cut with an ellipsis to fit ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def overview_picture(
    memory: OpticalMemory, context: MemoryContext, history_tokens: int
) -> Image.Image:
    """Three panels, left to right: the conversation as text, its pages in age order (each at
    an eighth of the pixels it is sent at, framed in its mode's colour), and the request the
    model receives: the pages, then the newest turns as text. Every figure is this memory's."""
    width, height, gap = 1600, 600, 12
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    title = ImageFont.load_default(size=22)
    font = ImageFont.load_default(size=15)
    small = ImageFont.load_default(size=12)
    panels = [(gap, 430), (470, 640), (1140, 1600 - 1140 - gap)]
    headings = [
        "1. A conversation",
        "2. Old turns become pages that fade",
        "3. What the model reads",
    ]
    for (x, _), heading in zip(panels, headings, strict=True):
        draw.text((x, gap), heading, fill="black", font=title)
    for x in (452, 1122):  # arrows between the panels
        draw.polygon([(x - 8, 270), (x + 8, 280), (x - 8, 290)], fill="dimgray")

    # 1. The conversation: its first turns, a gap, its last turns.
    turns = list(memory.store.iter_turns(memory.thread_id))
    x, w = panels[0]
    shown = [*turns[:9], None, *turns[-9:]] if len(turns) > 18 else turns
    y = 56
    for number, turn in enumerate(shown):
        if turn is None:
            draw.text((x, y), "   . . .", fill="dimgray", font=font)
        else:
            label = f"#{turns.index(turn) + 1 if number < 9 else len(turns) - 18 + number} "
            line = _wrap_line(draw, f"{label}{turn.role}: {turn.content}", small, w)
            draw.text(
                (x, y), line, fill="#1f4e99" if turn.role == "user" else "#8b1a1a", font=small
            )
        y += 24
    draw.text(
        (x, height - 40),
        f"{len(turns):,} turns · {history_tokens:,} text tokens",
        fill="black",
        font=font,
    )

    # 2. The pages, oldest first, each an eighth of its sent pixels.
    x, w = panels[1]
    as_text = {page.page_id for page in context.text_pages}
    placed, bottom = _flow(_every_page(memory, context), 8, x, 56, w, 8, 8)
    _paste_framed(sheet, placed, as_text, 8)
    y = bottom + 16
    counts: dict[str, list[int]] = {}
    for page in context.pages:
        counts.setdefault(page.mode.value, []).append(page.vision_tokens)
    for mode in FADING_ORDER:
        if mode.value in counts:
            tokens = counts[mode.value]
            draw.rectangle((x, y + 3, x + 14, y + 17), fill=_MODE_COLOURS[mode.value])
            draw.text(
                (x + 22, y),
                f"{len(tokens)} {mode.value} pages ({_MODE_SIDES[mode.value]}, "
                f"{tokens[0]} tokens each)",
                fill="black",
                font=font,
            )
            y += 24
    if context.text_pages:
        draw.rectangle((x, y + 3, x + 14, y + 17), fill=_MODE_COLOURS["text"])
        draw.text(
            (x + 22, y),
            f"{len(context.text_pages)} sent as text (cheaper)",
            font=font,
            fill="black",
        )
        y += 24
    draw.text(
        (x, y + 4), "oldest first, left to right; newest pages sharpest", fill="dimgray", font=font
    )

    # 3. The request: memory message first (cacheable), then the recent turns as text.
    x, w = panels[2]
    # The context's text tokens hold the exact values beside the pages and the pages sent as
    # text too; each gets its own box.
    exact = sum(page.verbatim_tokens for page in context.pages)
    text_pages = sum(page.text_tokens for page in context.text_pages)
    boxes: list[tuple[str, int | None, str]] = [
        ("system prompt and tools", None, "#eeeeee"),
        (f"{len(context.pages)} page images, oldest first", context.vision_tokens, "#fde0c5"),
    ]
    if exact:
        boxes.append(("exact values beside them, as text", exact, "#fde0c5"))
    if text_pages:
        boxes.append((f"{len(context.text_pages)} pages sent as text", text_pages, "#fde0c5"))
    recent = context.text_tokens - exact - text_pages
    boxes += [
        (f"{len(context.recent)} newest turns as text", recent, "#dbe8f6"),
        ("the new message", None, "#dbe8f6"),
    ]
    y = 56
    for label, cost, colour in boxes:
        box_height = 70 if cost else 44
        draw.rectangle((x, y, x + w, y + box_height), fill=colour, outline="gray")
        draw.text((x + 10, y + 10), label, fill="black", font=font)
        if cost:
            draw.text((x + 10, y + 36), f"{cost:,} tokens", fill="black", font=title)
        y += box_height + gap
    ratio = history_tokens / max(1, context.total_tokens)
    lines = [
        f"{context.total_tokens:,} tokens for the whole history",
        f"instead of {history_tokens:,} as text ({ratio:.1f} times fewer)",
        "every page's exact text stays in the store:",
        "search and recall read it back",
    ]
    for line in lines:
        draw.text((x, y + 8), line, fill="black", font=font)
        y += 24
    return sheet
