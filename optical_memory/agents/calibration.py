"""What a model really bills for images, learnt from its bills; one bill cannot poison it.

Every answered request gives a bill: ``billed`` input tokens for a request the library counted
as ``text`` tokens (``chars`` characters) in ``messages`` messages, carrying images of known
pixel sizes (and, for DeepSeek-OCR, modes). Over a window of the latest bills
(``Tuning.calibration_window``) the model

    billed = text_rate * text + char_rate * chars + overhead + per_message * messages
             + sum(cost[size] * count[size])

is fitted as a whole, so the provider's own text count (another tokenizer, a character rule,
per-message framing) is not booked to the images, and mixed sizes separate. The fit is
iteratively re-weighted least squares on each bill's relative residual, Huber weights first,
then Tukey's biweight so a wild bill ends up weighing nothing (scale: the residuals' median
absolute deviation), drawn toward a prior (text as counted, the published formula for each
size) by one pseudo-bill per value, so a few bills cannot swing it. The prior's uncertainty is
fixed; bills that agree with the fit more closely than :data:`_MIN_SCALE` weigh more against
it, so it cannot shift cost between text and images where only the bills' precision tells them
apart. Then

- a bill that is not a whole number within :data:`BOUND` times the prediction either way (nor
  of the published formula's) is refused and logged, never kept: ``10**400`` or a negative
  count overflows nothing;
- a bill far from the prediction is logged and weighs little (Huber);
- no learnt image cost moves by more than ``Tuning.calibration_max_step`` on one bill: a new
  level is reached over several bills, never adopted in one step;
- a request with an image of unknown size (given by URL, never fetched) teaches nothing.

Learnt values are kept in the store (blob namespace :data:`COST_NAMESPACE`, one state per
model and target), shared by every thread and process; :func:`reset_costs` (and
``optical-memory image-costs reset``) forgets them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optical_memory.modes import Mode
from optical_memory.options import DEFAULT_TUNING, Tuning
from optical_memory.store import Store
from optical_memory.targets import vision_tokens

logger = logging.getLogger("optical_memory")

#: Store blob namespace of learnt costs (content_hash: model key, mode: target).
COST_NAMESPACE = "image-costs"
#: Identity of a (model, target)'s state blob; ``_INDEX`` (under empty model and target) lists
#: the (model, target) pairs that have one, for a reset of all.
_STATE = "state"
_INDEX = "index"
#: A bill more than this many times the prediction (or less than its inverse) is refused.
BOUND = 20.0
#: Huber's and Tukey's constants, in robust deviations, and the smallest deviation assumed.
_HUBER = 2.0
_TUKEY = 4.685
_MIN_SCALE = 0.01
#: Weight of the prior's pseudo-bills, in bills: enough to settle what the bills leave open.
_PRIOR_WEIGHT = 0.01
#: Smallest relative noise the bills are credited with: bills that agree more closely than
#: this (a thousand-token bill's own rounding) weigh no more against the prior.
_MIN_NOISE = 0.001


@dataclass(frozen=True)
class SentImage:
    """One image of a request: its pixel size and, for DeepSeek-OCR, the mode it is read at.
    ``known``: False for an image whose size is unknown (a URL; counted at a nominal size)."""

    width: int
    height: int
    mode: Mode | None = None
    known: bool = True

    @property
    def key(self) -> str:
        return f"{self.width}x{self.height}/{self.mode.value if self.mode else '-'}"

    @classmethod
    def of_key(cls, key: str) -> SentImage:
        """The image a :attr:`key` names."""
        size, mode = key.split("/", 1)
        width, height = size.split("x", 1)
        return cls(int(width), int(height), None if mode == "-" else Mode(mode))


@dataclass(frozen=True)
class Bill:
    """One request as counted, and what it was billed."""

    #: Text tokens of the request in the library's own count.
    text: int
    #: Characters of that text (a provider whose tokenizer differs bills per character too).
    chars: int
    #: Messages in the request (each carries a provider's per-message framing).
    messages: int
    #: Input tokens the provider billed (its ``usage_metadata``).
    billed: int
    #: Images sent, by image key (``WIDTHxHEIGHT/mode``).
    images: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "t": self.text,
            "c": self.chars,
            "m": self.messages,
            "i": self.images,
            "b": self.billed,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Bill:
        images = {str(k): int(v) for k, v in dict(data["i"]).items()}
        counts = (int(data["t"]), int(data.get("c", 0)), int(data["m"]))
        return cls(*counts, int(data["b"]), images)


@dataclass
class Fit:
    """The learnt values: ``costs`` per image key (billed tokens per image), billed tokens per
    counted text token and per character, the per-request and per-message overheads."""

    costs: dict[str, float] = field(default_factory=dict)
    text_rate: float = 1.0
    char_rate: float = 0.0
    overhead: float = 0.0
    per_message: float = 0.0

    def text_tokens(self, text: int, chars: int, messages: int) -> float:
        """Billed tokens of a request's text, as learnt."""
        return (
            self.text_rate * text + self.char_rate * chars + self.overhead
        ) + self.per_message * messages

    def to_json(self) -> dict[str, Any]:
        return {
            "costs": self.costs,
            "text_rate": self.text_rate,
            "char_rate": self.char_rate,
            "overhead": self.overhead,
            "per_message": self.per_message,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fit:
        return cls(
            costs={str(k): float(v) for k, v in dict(data.get("costs", {})).items()},
            text_rate=float(data.get("text_rate", 1.0)),
            char_rate=float(data.get("char_rate", 0.0)),
            overhead=float(data.get("overhead", 0.0)),
            per_message=float(data.get("per_message", 0.0)),
        )


class ImageCostTable:
    """Per-(model, image size, mode) image costs for ``target``: learnt ones, else the formula
    (scaled as the learnt sizes scale it). ``tuning``: the window of bills, the largest step
    and the outlier threshold (:class:`~optical_memory.options.Tuning`'s ``calibration_*``)."""

    def __init__(
        self, store: Store, target: str, model_key: str, tuning: Tuning = DEFAULT_TUNING
    ) -> None:
        self.store = store
        self.tuning = tuning
        self.target = target
        self.model_key = model_key
        self._lock = threading.Lock()
        self._bills: list[Bill] = []
        self._fit = Fit()
        self._priors: dict[str, float] = {}  # image key -> formula tokens
        self._costs: dict[tuple[int, int, Mode | None], int] = {}  # cost() memo until a bill
        self._load()
        for key in {k for bill in self._bills for k in bill.images} | set(self._fit.costs):
            self._prior(SentImage.of_key(key))

    # --- reading -----------------------------------------------------------------------------

    @property
    def fit(self) -> Fit:
        """A copy of the learnt values."""
        with self._lock:
            return dataclasses.replace(self._fit, costs=dict(self._fit.costs))

    @property
    def bills(self) -> int:
        """Bills in the window."""
        return len(self._bills)

    def cost(self, width: int, height: int, mode: Mode | None = None) -> int:
        """Tokens one ``width x height`` image at ``mode`` costs, as best known now: learnt for
        that size, else the formula scaled by the learnt sizes' median ratio to it."""
        key = (width, height, mode)
        cost = self._costs.get(key)
        if cost is None:
            costs = self._costs  # a bill replaces the dict: a cost read before it is not kept
            cost = costs[key] = max(0, round(self._estimate(SentImage(width, height, mode))))
        return cost

    def learnt(self, image: SentImage) -> bool:
        """Whether the cost of ``image``'s size has been learnt from bills."""
        with self._lock:
            return image.key in self._fit.costs

    def predict(
        self, images: Sequence[SentImage], *, text: int, chars: int = 0, messages: int = 0
    ) -> float:
        """The bill expected for a request counted so."""
        with self._lock:
            total = self._fit.text_tokens(text, chars, messages)
            return total + sum(self._estimate_locked(image) for image in images)

    def _estimate(self, image: SentImage) -> float:
        with self._lock:
            return self._estimate_locked(image)

    def _estimate_locked(self, image: SentImage) -> float:
        learnt = self._fit.costs.get(image.key)
        if learnt is not None:
            return learnt
        return self._scale_locked() * self._prior(image)

    def _prior(self, image: SentImage) -> float:
        prior = self._priors.get(image.key)
        if prior is None:
            prior = float(vision_tokens(image.width, image.height, self.target, image.mode))
            self._priors[image.key] = prior
        return prior

    def _scale_locked(self) -> float:
        """Median of learnt / formula over the learnt sizes (1 before any)."""
        ratios = [
            cost / self._priors[key]
            for key, cost in self._fit.costs.items()
            if self._priors.get(key, 0) > 0
        ]
        return float(np.median(ratios)) if ratios else 1.0

    # --- learning ----------------------------------------------------------------------------

    def observe(
        self,
        images: Sequence[SentImage],
        billed: object,
        *,
        text: int = 0,
        chars: int = 0,
        messages: int = 0,
    ) -> bool:
        """Learn from one bill: a request counted as ``text`` tokens (``chars`` characters) in
        ``messages`` messages with ``images`` was billed ``billed`` input tokens. Returns
        whether the bill was kept (see the module docstring for the bills that are not)."""
        if any(not image.known for image in images):
            logger.debug("bill not learnt from: the request has an image of unknown size")
            return False
        predicted = self.predict(images, text=text, chars=chars, messages=messages)
        formula = text + sum(self._prior(image) for image in images)  # what nothing learnt says
        if not (_plausible(billed, predicted) or _plausible(billed, formula)):
            logger.warning(
                "%s (%s): ignoring a bill of %s input tokens for a request predicted at %d: "
                "not a whole number within %gx of the prediction",
                self.model_key,
                self.target,
                _short(billed),
                round(predicted),
                BOUND,
            )
            return False
        assert isinstance(billed, int)
        counts: dict[str, int] = {}
        sizes: dict[str, SentImage] = {}
        for image in images:
            counts[image.key] = counts.get(image.key, 0) + 1
            sizes[image.key] = image
            self._prior(image)
        bill = Bill(text, chars, messages, billed, counts)
        with self._lock:
            self._bills = [*self._bills, bill][-self.tuning.calibration_window :]
            fitted, outlier = _fit(self._bills, self._priors, self.tuning.calibration_outlier)
            if outlier:
                logger.warning(
                    "%s (%s): a bill of %d input tokens is far from the predicted %d; it "
                    "weighs little in what is learnt",
                    self.model_key,
                    self.target,
                    billed,
                    round(predicted),
                )
            start = {key: self._estimate_locked(image) for key, image in sizes.items()}
            self._fit = _stepped(self._fit, fitted, start, self.tuning.calibration_max_step)
            self._costs = {}
        self._save()
        return True

    def reset(self) -> None:
        """Forget every bill and learnt value: back to the formula."""
        with self._lock:
            self._bills, self._fit, self._costs = [], Fit(), {}
        self._save()

    # --- persistence -------------------------------------------------------------------------

    def _load(self) -> None:
        data = self.store.get_blob(COST_NAMESPACE, self.model_key, self.target, _STATE)
        if data is None:
            return
        try:
            state = json.loads(data)
            bills = [Bill.from_json(b) for b in state.get("bills", [])]
            self._bills = bills[-self.tuning.calibration_window :]
            self._fit = Fit.from_json(state.get("fit", {}))
            for key in {k for bill in self._bills for k in bill.images} | set(self._fit.costs):
                SentImage.of_key(key)
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            logger.warning(
                "%s (%s): learnt image costs unreadable (%s); starting from the formula",
                self.model_key,
                self.target,
                error,
            )
            self._bills, self._fit = [], Fit()

    def _save(self) -> None:
        with self._lock:
            state = {
                "bills": [b.to_json() for b in self._bills],
                "fit": self._fit.to_json(),
            }
        self.store.put_blob(
            COST_NAMESPACE, self.model_key, self.target, _STATE, json.dumps(state).encode()
        )
        index = set(_index(self.store))
        if (self.model_key, self.target) not in index:
            index.add((self.model_key, self.target))
            payload = json.dumps(sorted(index)).encode()
            self.store.put_blob(COST_NAMESPACE, "", "", _INDEX, payload)


def reset_costs(store: Store, model_key: str | None = None, target: str | None = None) -> int:
    """Forget the learnt costs of ``model_key`` for ``target`` (``None``: any) in ``store``;
    returns how many (model, target) tables were reset."""
    reset = 0
    for model, kind in _index(store):
        if (model_key is None or model == model_key) and (target is None or kind == target):
            ImageCostTable(store, kind, model).reset()
            reset += 1
    return reset


def learnt_tables(store: Store) -> list[tuple[str, str]]:
    """The (model key, target) pairs with learnt costs in ``store``."""
    return _index(store)


def _index(store: Store) -> list[tuple[str, str]]:
    data = store.get_blob(COST_NAMESPACE, "", "", _INDEX)
    if data is None:
        return []
    try:
        return [(str(m), str(t)) for m, t in json.loads(data)]
    except (ValueError, TypeError):
        return []


def _plausible(billed: object, predicted: float) -> bool:
    if isinstance(billed, bool) or not isinstance(billed, int) or billed <= 0:
        return False
    # Compared as integers first: a huge int never becomes a float (no OverflowError).
    if predicted <= 0 or billed > 10**15:
        return False
    return predicted / BOUND <= billed <= predicted * BOUND


def _short(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**15:
        return f"a {len(str(abs(value)))}-digit number"
    return repr(value)[:40]


def _fit(bills: Sequence[Bill], priors: dict[str, float], outlier_at: float) -> tuple[Fit, bool]:
    """The robust fit over ``bills`` (module docstring); also whether the newest bill is an
    outlier of it (its relative residual over ``outlier_at`` robust deviations)."""
    keys = sorted({key for bill in bills for key in bill.images})
    scalars = 4  # text_rate, char_rate, overhead, per_message
    rows = np.zeros((len(bills), scalars + len(keys)))
    target = np.array([float(bill.billed) for bill in bills])
    for i, bill in enumerate(bills):
        rows[i, :scalars] = (bill.text, bill.chars, 1.0, bill.messages)
        for key, count in bill.images.items():
            rows[i, scalars + keys.index(key)] = count
    # Pseudo-bills drawing each value toward its prior, each as heavy as _PRIOR_WEIGHT of a
    # bill whose residual is that value's typical share of a typical bill. The text's prior is
    # one row (typical text billed as counted), leaving tokens against characters to the bills.
    typical = np.maximum(np.median(rows, axis=0), 1.0)
    typical[scalars:] = 1.0
    prior_values = np.array([1.0, 0.0, 0.0, 0.0, *[priors.get(k, 0.0) for k in keys]])
    typical_bill = max(1.0, float(np.median(target)))
    # Heavier while there are few bills, so the first ones cannot swing the text rates.
    weight = max(_PRIOR_WEIGHT, 1.0 / len(bills))
    prior_rows = np.diag(math.sqrt(weight) * typical / typical_bill)
    prior_rows[0, 1] = prior_rows[0, 0] * typical[1] / typical[0]
    prior_rows[1, 1] *= 1e-3  # a faint pull of the character rate to 0 keeps the fit defined
    scale = _MIN_SCALE
    precision = 1.0
    weights = np.ones(len(bills))
    solution = prior_values
    for iteration in range(12):
        if iteration:
            predicted = np.maximum(rows @ solution, 1.0)
            relative = (target - predicted) / predicted
            if len(bills) >= 3:
                deviation = 1.4826 * float(np.median(np.abs(relative - np.median(relative))))
                scale = max(_MIN_SCALE, deviation)
                precision = _MIN_SCALE / _noise(deviation, len(bills), rows.shape[1])
            size = np.abs(relative) / scale
            if iteration < 5:  # Huber first (a convex start), then Tukey's biweight
                weights = np.minimum(1.0, _HUBER / np.maximum(size, 1e-12))
            else:
                weights = np.where(size < _TUKEY, (1 - (size / _TUKEY) ** 2) ** 2, 0.0)
        # Relative residuals, weighed by how precisely the bills agree with the fit. The prior
        # is a statement of fixed uncertainty about the prices, not a share of the bills'
        # noise: tied to that share, it stays as strong against bills that agree to a tenth of
        # a percent as against bills that scatter by a percent, and along a direction the bills
        # pin down only by their precision (text that grows with the number of pages, as the
        # exact values printed beside each page do) it would pull the image costs off by many
        # percent. Outliers are still judged against the floored ``scale``.
        norm = precision * np.sqrt(weights) / np.maximum(target, 1.0)
        solution, *_ = np.linalg.lstsq(
            np.vstack([rows * norm[:, None], prior_rows]),
            np.concatenate([target * norm, prior_rows @ prior_values]),
            rcond=None,
        )
    newest = float(rows[-1] @ solution)
    outlier = len(bills) >= 3 and abs(target[-1] - newest) > outlier_at * scale * max(newest, 1.0)
    fit = Fit(
        costs={key: max(0.0, float(solution[scalars + i])) for i, key in enumerate(keys)},
        text_rate=float(solution[0]),
        char_rate=float(solution[1]),
        overhead=float(solution[2]),
        per_message=float(solution[3]),
    )
    return fit, outlier


def _noise(deviation: float, bills: int, values: int) -> float:
    """The bills' relative noise around the fit, from their residuals' robust ``deviation``
    corrected for the ``values`` fitted to them, between :data:`_MIN_NOISE` and
    :data:`_MIN_SCALE`; :data:`_MIN_SCALE` (the noise the prior's weight assumes) until there
    are twice as many bills as values, since a fit to few bills matches them closely whatever
    their noise."""
    if bills < 2 * values:
        return _MIN_SCALE
    return min(_MIN_SCALE, max(_MIN_NOISE, deviation * math.sqrt(bills / (bills - values))))


def _stepped(old: Fit, new: Fit, start: dict[str, float], max_step: float) -> Fit:
    """``new``, each image cost moved from ``old`` (``start``: a size's estimate before it was
    learnt) by at most ``max_step`` of its size."""
    costs = dict(old.costs)
    for key, value in new.costs.items():
        before = old.costs.get(key, start.get(key, value))
        room = max_step * max(before, 1.0)
        costs[key] = before + max(-room, min(room, value - before))
    return dataclasses.replace(new, costs=costs)
