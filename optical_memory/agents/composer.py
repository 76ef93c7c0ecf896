"""The composer: one memory context as the request a model is sent.

The request is ``[one memory message] + [the caller's messages for the turns not on a page]``,
and every character of the thread is sent once: a turn whose head is on the newest page is sent
as its tail only. The memory message holds a header that never changes, then per page a caption
(:mod:`optical_memory.agents.captions`) and the page as a v1 image block (``extras``: its
``mode`` and ``page_ids``; encoded once, :mod:`optical_memory.agents.encoded`), or the page's
exact text when the profitability gate kept it as text; pages beyond the target's per-request
limits are tiled into mosaics or forgotten (:mod:`optical_memory.memory.limits`). What changes
per call (turns not on a page that the caller no longer holds, with their images; the note that
the newest page ends inside a message) comes after the pages, behind the cache breakpoint. The
caller's messages are sent as they are (images included), and a tool result whose call is on a
page is preceded by that call alone (no text, its ``tool_calls``), so providers accept the pair.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from optical_memory.agents.breakpoints import Cacheable
from optical_memory.agents.calibration import SentImage
from optical_memory.agents.captions import Captions
from optical_memory.agents.encoded import EncodedImages
from optical_memory.agents.options import MemoryOptions
from optical_memory.agents.threads import ThreadState
from optical_memory.agents.usage import CallUsage
from optical_memory.agents.window import (
    MEMORY_MESSAGE_SOURCE,
    images_in,
    images_sent,
    is_call_envelope,
    message_chars,
    message_tokens,
    model_key,
    tail_of,
    with_tool_calls,
)
from optical_memory.extras import import_extra
from optical_memory.messages import ImageRef
from optical_memory.modes import Mode
from optical_memory.targets import target_spec, vision_tokens
from optical_memory.tokens import count_text_tokens

import_extra("langchain_core", "langchain")

from langchain_core.messages import BaseMessage, HumanMessage  # noqa: E402

from optical_memory.memory import MemoryContext, MemoryPage, RequestOverhead  # noqa: E402
from optical_memory.memory.limits import Mosaic, bound_pages  # noqa: E402

#: The text that follows the pages when the newest page ends inside a message.
SPLIT_NOTE = (
    "The newest page ends inside a message; the rest of that message is the first one below."
)
#: Heads the turns not on a page that the caller no longer holds.
LATEST_TURNS = "Latest turns, not yet on a page:"
#: A long caption, for pricing captions before the pages are known.
_CAPTION_SAMPLE = (
    "pages 99999–99999 · turns 99999–99999 · 30 Dec 2026 – 2 Jan 2027 · very low resolution"
)
#: The size an image given by URL is counted at: it is never fetched, so its size is unknown.
URL_IMAGE_SIZE = (1024, 1024)

ImageCosts = Callable[[int, int, Mode | None], int]


def _counted_size(image: ImageRef) -> tuple[int, int, bool]:
    """The size a caller's image is priced at, and whether it is its own: an image without
    bytes or a readable size counts as :data:`URL_IMAGE_SIZE`."""
    if image.data is not None and image.width and image.height:
        return image.width, image.height, True
    return (*URL_IMAGE_SIZE, False)


def _image_key(mosaic: Mosaic) -> str:
    return "mosaic:" + ",".join(page.image_key for page in mosaic.pages)


class RequestComposer:
    """Composes one thread's request from its memory's context (see the module docstring).

    ``live`` are the caller's messages as the request sends them; ``fixed`` the tokens of the
    system prompt and tool schemas (``fixed_chars`` their characters, for calibration);
    ``costs`` prices images when learnt from bills (``None``: the target's formula);
    ``recall_tool`` names the recall tool in the header, when the model has one this call.
    """

    def __init__(
        self,
        thread: ThreadState,
        live: list[BaseMessage],
        *,
        options: MemoryOptions,
        images: EncodedImages,
        costs: ImageCosts | None,
        fixed: int,
        fixed_chars: int,
        model: Any,
        recall_tool: str | None,
    ) -> None:
        self.options = options
        self.recall_tool = recall_tool
        self.thread = thread
        self.memory = thread.memory
        self.live = live
        self.fixed = fixed
        self.fixed_chars = fixed_chars
        self.target = thread.memory.target
        self.model_name = model_key(model)
        self.spec = target_spec(self.target)
        self.images = images
        self.costs = costs
        #: The last composed memory message's blocks up to its last page (see compose).
        self.cacheable = Cacheable([], [])

    def image_cost(self, width: int, height: int, mode: Mode | None) -> int:
        if self.costs is not None:
            return self.costs(width, height, mode)
        return vision_tokens(width, height, self.target, mode)

    def compose(self, context: MemoryContext) -> tuple[list[BaseMessage], CallUsage]:
        info = self.thread.info
        recent = {turn.id: turn for turn in context.recent}
        verbatim: list[BaseMessage] = []
        held: set[int] = set()
        for message in self.live:
            known = info.get(message.id or "")
            if known is None or known.turn_id not in recent:
                continue
            held.add(known.turn_id)
            piece = recent[known.turn_id]
            offset = known.length - len(piece.content)
            verbatim.extend(tail_of(message, offset, known) if offset > 0 else [message])
        verbatim = with_tool_calls(verbatim, self.live)
        earlier = [turn for turn in context.recent if turn.id not in held]

        message_images: list[ImageRef] = []
        for message in verbatim:
            known = info.get(message.id or "")
            if known is not None and not is_call_envelope(message):
                message_images.extend(images_sent(message, known))
        earlier_images = {
            turn.id: images_in(turn.content, self.memory.turn_images(turn.id))
            for turn in earlier
            if turn.id is not None and "[image " in turn.content
        }
        own_images = message_images + [i for images in earlier_images.values() for i in images]
        bounded = bound_pages(
            context.pages,
            self.options.request_limits or self.spec.limits,
            self.image_cost,
            self.memory.store,
            reserved_images=len(own_images),
            reserved_bytes=sum(len(i.data or b"") for i in own_images),
            size=self.images.size,
        )

        captions = Captions(context, self.thread.marks)
        blocks: list[dict[str, Any]] = []
        keys: list[str] = []  # what fixes each page block's bytes, for the cache breakpoint
        images: list[int] = []  # tokens of each page block
        sent_images: list[SentImage] = []

        def add(block: dict[str, Any], key: str, tokens: int) -> None:
            blocks.append(block)
            keys.append(key)
            images.append(tokens)

        if context.memory:
            add({"type": "text", "text": self.header()}, "header", 0)
        shown = sorted([*bounded.images, *context.text_pages], key=lambda item: item.seq)
        for item in shown:
            if isinstance(item, Mosaic):
                lines = "\n".join(filter(None, (captions.caption(page) for page in item.pages)))
                text = f"{len(item.pages)} pages on one image, left to right, top to bottom:\n"
                add({"type": "text", "text": text + lines}, "text", 0)
                add(self.images.block(item), _image_key(item), item.vision_tokens)
                sent_images.append(SentImage(item.width, item.height, item.mode))
                for block in verbatim_blocks(item.pages):
                    add(block, "text", 0)
            elif isinstance(item, MemoryPage):
                caption = captions.caption(item)
                if caption:  # "" continues a run of pages of one long turn
                    add({"type": "text", "text": caption}, "text", 0)
                add(self.images.block(item), item.image_key, item.vision_tokens)
                sent_images.append(SentImage(item.width, item.height, item.mode))
                for block in verbatim_blocks([item]):
                    add(block, "text", 0)
            else:
                caption = captions.caption(item)
                text = f"{caption}\n{item.text}".lstrip("\n")
                add({"type": "text", "text": text}, "text", 0)
        # Each text block is its own key: its text.
        keys = [b["text"] if k == "text" else k for b, k in zip(blocks, keys, strict=True)]
        block_tokens = [
            count_text_tokens(b["text"]) if b["type"] == "text" else t
            for b, t in zip(blocks, images, strict=True)
        ]
        ends, total = [], self.fixed
        for tokens in block_tokens:
            total += tokens
            ends.append(total)
        self.cacheable = Cacheable(keys, ends)
        # What changes per call comes after the pages, behind the cache breakpoint.
        if earlier:
            lines = "\n".join(f"{turn.role}: {turn.content}" for turn in earlier)
            if not blocks:
                blocks.append({"type": "text", "text": self.header()})
            blocks.append({"type": "text", "text": f"{LATEST_TURNS}\n{lines}"})
            for turn in earlier:
                blocks.extend(image.block() for image in earlier_images.get(turn.id or 0, []))
        if verbatim and context.recent and verbatim[0] is not self.live[0]:
            first = info.get(verbatim[0].id or "")
            if first is not None and len(context.recent[0].content) < first.length:
                if not blocks:
                    blocks.append({"type": "text", "text": self.header()})
                blocks.append({"type": "text", "text": SPLIT_NOTE})

        request: list[BaseMessage] = []
        if blocks:
            request.append(
                HumanMessage(
                    content_blocks=blocks,  # type: ignore[arg-type]
                    additional_kwargs={"lc_source": MEMORY_MESSAGE_SOURCE},
                )
            )
        request.extend(verbatim)
        for image in own_images:
            width, height, sized = _counted_size(image)
            sent_images.append(SentImage(width, height, None, known=sized))
        text_tokens = self.fixed + sum(
            count_text_tokens(block["text"]) for block in blocks if block["type"] == "text"
        )
        text_tokens += sum(message_tokens(m) for m in verbatim)
        text_chars = self.fixed_chars + sum(
            len(block["text"]) for block in blocks if block["type"] == "text"
        )
        text_chars += sum(message_chars(m) for m in verbatim)
        vision = sum(page.vision_tokens for page in bounded.images)
        own = sent_images[len(bounded.images) :]
        vision += sum(self.image_cost(i.width, i.height, i.mode) for i in own)
        page_count = sum(len(i.pages) if isinstance(i, Mosaic) else 1 for i in bounded.images)
        usage = CallUsage(
            thread_id=self.memory.thread_id,
            text_tokens=text_tokens,
            vision_tokens=vision,
            replaced_text_tokens=sum(i.text_tokens for i in bounded.images),
            pages=page_count,
            text_pages=len(context.text_pages),
            messages=len(verbatim),
            budget_tokens=self.options.budget_tokens,
            target=self.target,
            model=self.model_name,
            images=len(bounded.images) + len(own_images),
            image_bytes=sum(self.images.size(i) for i in bounded.images)
            + sum(len(i.data or b"") for i in own_images),
            mosaics=sum(isinstance(i, Mosaic) for i in bounded.images),
            forgotten_for_limits=len(bounded.forgotten),
            sent_images=tuple(sent_images),
            text_chars=text_chars,
        )
        return request, usage

    def header(self) -> str:
        # Nothing in it changes from call to call (no page count): it opens the cached prefix.
        header = "Earlier in this conversation (optical memory, pages oldest first"
        if self.recall_tool:
            header += (
                f"; each turn is labelled with its number, and the {self.recall_tool} tool "
                "returns the exact text of a turn or a page"
            )
        return header + "):"

    def overhead(self) -> RequestOverhead:
        """What the request adds to the memory's pages and recent text, priced before they
        are planned: instructions, header, the caller's images, and a caption per page (a
        long one, so the plan errs on the safe side). The notes that only some calls carry
        are left to the plan's headroom (a tight budget keeps a turn rather than room for a
        note it may not need)."""
        fixed = self.fixed + count_text_tokens(self.header())
        for message in self.live:
            known = self.thread.info.get(message.id or "")
            if known is not None and known.images:
                for image in images_sent(message, known):
                    width, height, _ = _counted_size(image)
                    fixed += self.image_cost(width, height, None)
        return RequestOverhead(fixed=fixed, per_page=count_text_tokens(_CAPTION_SAMPLE))


def verbatim_blocks(pages: Sequence[MemoryPage]) -> list[dict[str, Any]]:
    """The text block of exact values that follows a page's image (one per page that has
    them): fixed when the page was frozen, so it never changes a cached prefix."""
    return [{"type": "text", "text": page.verbatim} for page in pages if page.verbatim]
