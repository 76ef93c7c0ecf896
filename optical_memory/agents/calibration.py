"""Calibration from the bill: what images really cost a model, learnt from its responses.

Vendors change their image formulas (and servers such as vLLM bill differently from the model's
paper), so a formula in :mod:`optical_memory.tokens` is only the prior. After each call the
response's ``usage_metadata["input_tokens"]`` minus the text the request was counted to hold
is what its images cost; :class:`ImageCostTable` shares that out over the request's images in
proportion to their current estimates and keeps, per (model, image size, mode), the latest
estimate in the store (blob namespace ``image-costs``), so every later budget, profitability
gate and process uses it. A model whose text tokenizer differs from ``o200k_base`` moves its
images' estimates by the difference; the totals still match the bill.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from optical_memory.modes import Mode
from optical_memory.store import Store
from optical_memory.tokens import vision_tokens

#: Store blob namespace of learnt image costs (content_hash: model key, identity: size/mode).
COST_NAMESPACE = "image-costs"
#: The table's key for "learnt / formula" over the latest bill, applied to unseen sizes.
_ANY = "*"


@dataclass(frozen=True)
class SentImage:
    """One image of a request: its pixel size and, for DeepSeek-OCR, the mode it is read at."""

    width: int
    height: int
    mode: Mode | None = None

    @property
    def key(self) -> str:
        return f"{self.width}x{self.height}/{self.mode.value if self.mode else '-'}"


class ImageCostTable:
    """Per-(model, image size, mode) image costs for ``target``: learnt ones, else the formula."""

    def __init__(self, store: Store, target: str, model_key: str) -> None:
        self.store = store
        self.target = target
        self.model_key = model_key
        self._learnt: dict[str, float] = {}
        self._loaded: set[str] = set()
        self._costs: dict[tuple[int, int, Mode | None], int] = {}  # cost() until a bill
        self._lock = threading.Lock()

    def cost(self, width: int, height: int, mode: Mode | None = None) -> int:
        """Tokens one ``width x height`` image at ``mode`` costs, as best known now: learnt
        from a bill for that size, else the formula scaled as the latest bill scaled it."""
        key = (width, height, mode)
        cost = self._costs.get(key)
        if cost is None:
            costs = self._costs  # a bill replaces the dict: a cost read before it is not kept
            cost = costs[key] = round(self._estimate(SentImage(width, height, mode)))
        return cost

    def learnt(self, image: SentImage) -> bool:
        self._estimate(image)
        return image.key in self._learnt

    def _estimate(self, image: SentImage) -> float:
        key = image.key
        with self._lock:
            if key not in self._loaded:
                self._loaded.add(key)
                data = self.store.get_blob(COST_NAMESPACE, self.model_key, self.target, key)
                if data is not None:
                    self._learnt[key] = float(json.loads(data)["tokens"])
            if key in self._learnt:
                return self._learnt[key]
            if _ANY not in self._loaded:
                self._loaded.add(_ANY)
                data = self.store.get_blob(COST_NAMESPACE, self.model_key, self.target, _ANY)
                if data is not None:
                    self._learnt[_ANY] = float(json.loads(data)["tokens"])
            factor = self._learnt.get(_ANY, 1.0)
        return factor * vision_tokens(image.width, image.height, self.target, image.mode)

    def observe(self, images: Sequence[SentImage], image_tokens: int) -> bool:
        """Learn from one bill: the request's ``images`` cost ``image_tokens`` together.

        Shares the bill out in proportion to the current estimates and stores the new ones;
        returns False (learning nothing) when there were no images or the bill is not positive.
        """
        if not images or image_tokens <= 0:
            return False
        estimates = [self._estimate(image) for image in images]
        total = sum(estimates)
        if total <= 0:
            return False
        factor = image_tokens / total
        updated: dict[str, float] = {}
        for image, estimate in zip(images, estimates, strict=True):
            updated[image.key] = estimate * factor
        # Sizes never billed yet start from the formula scaled as the bills so far scale it.
        prior = sum(vision_tokens(i.width, i.height, self.target, i.mode) for i in images)
        updated[_ANY] = image_tokens / prior if prior else 1.0
        with self._lock:
            self._learnt.update(updated)
            self._loaded.update(updated)
            self._costs = {}
        for key, tokens in updated.items():
            payload = json.dumps({"tokens": tokens}).encode()
            self.store.put_blob(COST_NAMESPACE, self.model_key, self.target, key, payload)
        return True
